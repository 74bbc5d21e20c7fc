import { f64Bytes, matrixView, type Attrs } from '../attrs.js';
import { Stream } from '../catalogue.js';
import { KernelError, KernelErrorCode } from '../errors.js';
import { catalogued, type KernelConfig } from '../kernel.js';
import { asMatrix, at, type Matrix } from '../matrix.js';
import type { FloatArray } from '../native.js';
import { words } from '../rng/philox.js';
import { requireAttrs } from './gaussian-sketch.js';

export const STREAM_SRHT_SIGNS = Stream.SRHT_SIGNS;
export const STREAM_SRHT_ROWS = Stream.SRHT_ROWS;

/** Rows after zero-padding to a power of two. */
function paddedRows(rows: number): number {
  let n = 1;
  while (n < Math.max(rows, 1)) n *= 2;
  return n;
}

/** In-place fast Walsh–Hadamard transform of each column of a `n × cols` row-major block (n a power of 2). */
export function fwhtColumns(X: Float64Array, n: number, cols: number): void {
  for (let h = 1; h < n; h *= 2) {
    for (let i = 0; i < n; i += 2 * h) {
      for (let r = i; r < i + h; r++) {
        const a = r * cols;
        const b = (r + h) * cols;
        for (let j = 0; j < cols; j++) {
          const x = X[a + j]!;
          const y = X[b + j]!;
          X[a + j] = x + y;
          X[b + j] = x - y;
        }
      }
    }
  }
}

/**
 * Subsampled randomized Hadamard transform of a row block (block-local): Z = √(n/k)·R·H·D·A, with
 * A zero-padded to n = 2^⌈log₂ rows⌉ rows, D random signs per global row, H the orthonormal
 * Walsh–Hadamard matrix, and R k rows sampled without replacement (stream keyed by `blockId`).
 * Output `k × cols` float64; k ≤ n.
 */
export function srht(a: Attrs, A: FloatArray | Matrix): Float64Array {
  const { rows, cols, k } = a;
  const M = asMatrix(A, rows, cols);
  const n = paddedRows(rows);
  if (k > n)
    throw new KernelError(
      KernelErrorCode.BAD_ATTRIBUTES,
      `invalid kernel attributes: \`k\` (${k}) exceeds the padded row count ${n}`,
    );
  const X = new Float64Array(n * cols);
  const signBits = new Uint32Array(1);
  for (let i = 0; i < rows; i++) {
    words(a.seed, STREAM_SRHT_SIGNS, a.rowOffset + i, 0, signBits);
    const sg = (signBits[0]! & 1) === 1 ? -1 : 1;
    const xi = i * cols;
    for (let j = 0; j < cols; j++) X[xi + j] = sg * at(M, i, j);
  }
  fwhtColumns(X, n, cols);
  // Partial Fisher–Yates over [0, n) picks k distinct rows.
  const perm = new Uint32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  const r = new Uint32Array(k);
  words(a.seed, STREAM_SRHT_ROWS, a.blockId, 0, r);
  for (let t = 0; t < k; t++) {
    const pick = t + (r[t]! % (n - t));
    const tmp = perm[t]!;
    perm[t] = perm[pick]!;
    perm[pick] = tmp;
  }
  const scale = Math.sqrt(n / k) / Math.sqrt(n); // √(n/k) · (1/√n) for the orthonormal H
  const Z = new Float64Array(k * cols);
  for (let t = 0; t < k; t++) {
    const src = perm[t]! * cols;
    for (let j = 0; j < cols; j++) Z[t * cols + j] = scale * X[src + j]!;
  }
  return Z;
}

export const srhtKernel: KernelConfig = {
  ...catalogued('srht'),
  outputBytes: (a) => requireAttrs(a).k * requireAttrs(a).cols * 8,
  // The padded copy X (n·cols f64) and the permutation (n u32).
  workBytes: (a) => paddedRows(requireAttrs(a).rows) * (requireAttrs(a).cols * 8 + 4),
  run: (a, [A]) => f64Bytes(srht(requireAttrs(a), matrixView(A!, requireAttrs(a)))),
};
