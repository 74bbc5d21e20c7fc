import { f64Bytes, f64Out, matrixView, type Attrs } from '../attrs.js';
import type { RunOptions } from '../backend.js';
import { catalogued, type KernelConfig } from '../kernel.js';
import { asMatrix, at, copyRows, rowsFrom, type Matrix } from '../matrix.js';
import { requireAttrs } from '../sketch/gaussian-sketch.js';
import { blasTarget, nativePanelRows, type FloatArray } from '../native.js';
import { PANEL_ROWS, workspace } from '../wasm/gemm.js';

/** G = AᵀA: `cols × cols` float64 (symmetric; additive over row blocks). */
export function gram(a: Attrs, A: FloatArray | Matrix, options: RunOptions = {}): Float64Array {
  const { rows, cols } = a;
  const M = asMatrix(A, rows, cols);
  const { out } = options;
  const blas = options.backend?.blas;
  if (blas !== undefined) {
    // SYRK panel by panel on the block where it lies (upper triangle, mirrored: exactly symmetric).
    const G = blasTarget(out, a.dtype, cols * cols, 'gram32');
    G.work.fill(0);
    const R = nativePanelRows(cols * cols);
    for (let r0 = 0; r0 < rows; r0 += R) {
      const n = Math.min(R, rows - r0);
      blas.syrk(cols, n, rowsFrom(M, r0, n), M.ld, 1, G.work, cols);
    }
    return G.finish();
  }
  // Workspace: G (cols·cols) | A panel (R·cols); G += panelᵀ·panel.
  const R = PANEL_ROWS;
  const aAt = cols * cols;
  const { view: h, gemm } = workspace().precision(a.dtype, aAt + R * cols);
  h.fill(0, 0, cols * cols);
  for (let r0 = 0; r0 < rows; r0 += R) {
    const n = Math.min(R, rows - r0);
    copyRows(M, r0, n, h, aAt);
    gemm(cols, cols, n, aAt, 1, cols, aAt, cols, 0, cols);
  }
  const G = f64Out(out, cols * cols);
  G.set(h.subarray(0, cols * cols));
  // Exact symmetry whatever the summation order of the two halves.
  for (let p = 0; p < cols; p++) for (let q = 0; q < p; q++) G[p * cols + q] = G[q * cols + p]!;
  return G;
}

/**
 * Column statistics of a block, `6 × cols` float64, rows: count, sum, sum of squares, min, max,
 * sum of squared deviations from the block mean (for a stable pooled variance). Combine blocks
 * with Chan et al.'s parallel formula; means, variances and norms follow.
 */
export function columnStats(a: Attrs, A: FloatArray | Matrix): Float64Array {
  const { rows, cols } = a;
  const M = asMatrix(A, rows, cols);
  const out = new Float64Array(6 * cols);
  for (let j = 0; j < cols; j++) {
    out[3 * cols + j] = rows === 0 ? Number.NaN : Number.POSITIVE_INFINITY;
    out[4 * cols + j] = rows === 0 ? Number.NaN : Number.NEGATIVE_INFINITY;
    out[j] = rows;
  }
  for (let i = 0; i < rows; i++) {
    const ai = M.offset + i * M.ld;
    for (let j = 0; j < cols; j++) {
      const v = M.data[ai + j]!;
      out[cols + j]! += v;
      out[2 * cols + j]! += v * v;
      if (v < out[3 * cols + j]!) out[3 * cols + j] = v;
      if (v > out[4 * cols + j]!) out[4 * cols + j] = v;
    }
  }
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const d = at(M, i, j) - out[cols + j]! / rows;
      out[5 * cols + j]! += d * d;
    }
  }
  return out;
}

/** C = Aᵀ·B for a supplied B (`rows × k`, same dtype): `cols × k` float64 (power iterations). */
export function atb(a: Attrs, A: FloatArray | Matrix, B: FloatArray | Matrix, options: RunOptions = {}): Float64Array {
  const { rows, cols, k } = a;
  const MA = asMatrix(A, rows, cols);
  const MB = asMatrix(B, rows, k);
  const { out } = options;
  const blas = options.backend?.blas;
  if (blas !== undefined) {
    const C = blasTarget(out, a.dtype, cols * k, 'atb32');
    C.work.fill(0);
    const R = nativePanelRows(cols * k);
    for (let r0 = 0; r0 < rows; r0 += R) {
      const n = Math.min(R, rows - r0);
      blas.gemm(true, false, cols, k, n, rowsFrom(MA, r0, n), MA.ld, rowsFrom(MB, r0, n), MB.ld, 1, C.work, k);
    }
    return C.finish();
  }
  // Workspace: C (cols·k) | A panel (R·cols) | B panel (R·k); C += Aᵀ·B panel by panel.
  const R = PANEL_ROWS;
  const aAt = cols * k;
  const bAt = aAt + R * cols;
  const { view: h, gemm } = workspace().precision(a.dtype, bAt + R * k);
  h.fill(0, 0, cols * k);
  for (let r0 = 0; r0 < rows; r0 += R) {
    const n = Math.min(R, rows - r0);
    copyRows(MA, r0, n, h, aAt);
    copyRows(MB, r0, n, h, bAt);
    gemm(cols, k, n, aAt, 1, cols, bAt, k, 0, k);
  }
  const C = f64Out(out, cols * k);
  C.set(h.subarray(0, cols * k));
  return C;
}

const panel = (a: Attrs) => Math.min(PANEL_ROWS, Math.max(a.rows, 1));

export const gramKernel: KernelConfig = {
  ...catalogued('gram'),
  inputRowElements: (a) => [a.cols],
  outputBytes: (a) => requireAttrs(a).cols ** 2 * 8,
  workBytes: (a) => (requireAttrs(a).cols + panel(requireAttrs(a))) * requireAttrs(a).cols * 8,
  run: (a, [A], options) => f64Bytes(gram(requireAttrs(a), matrixView(A!, requireAttrs(a)), options)),
};

export const columnStatsKernel: KernelConfig = {
  ...catalogued('column-stats'),
  outputBytes: (a) => 6 * requireAttrs(a).cols * 8,
  workBytes: (a) => 6 * requireAttrs(a).cols * 8,
  run: (a, [A]) => f64Bytes(columnStats(requireAttrs(a), matrixView(A!, requireAttrs(a)))),
};

export const atbKernel: KernelConfig = {
  ...catalogued('atb'),
  inputRowElements: (a) => [a.cols, a.k],
  outputBytes: (a) => requireAttrs(a).cols * requireAttrs(a).k * 8,
  workBytes: (a) => {
    const { rows, cols, k } = requireAttrs(a);
    return (cols * k + panel({ ...requireAttrs(a), rows }) * (cols + k)) * 8;
  },
  run: (a, [A, B], options) => {
    const at = requireAttrs(a);
    return f64Bytes(atb(at, matrixView(A!, at), matrixView(B!, at, at.rows, at.k, 'B'), options));
  },
};
