import { f64Bytes, f64Out, matrixView, type Attrs } from '../attrs.js';
import type { RunOptions } from '../backend.js';
import { KernelError, KernelErrorCode } from '../errors.js';
import { catalogued, type KernelConfig } from '../kernel.js';
import { asMatrix, copyRows, rowsFrom, type Matrix } from '../matrix.js';
import { scratch, type FloatArray } from '../native.js';
import { requireAttrs } from '../sketch/gaussian-sketch.js';
import { PANEL_ROWS, workspace } from '../wasm/gemm.js';

/**
 * Products of a row block with a small supplied matrix, the building blocks of randomized SVD, PCA and
 * least squares run where the block lies:
 * - {@link affineProduct}: Y = A·W + 1·bᵀ (the tall factor, kept at the depot);
 * - {@link affineGram}: (A·W + 1·bᵀ)ᵀ(A·W + 1·bᵀ) (CholeskyQR's Gram, probe residual norms), without forming Y;
 * - {@link transposeProduct}: [Aᵀ·Y; 1ᵀY] for a float64 Y read from an allocation (power iterations, Aᵀr).
 * The affine map X = [W; bᵀ] (`(cols + 1) × k`, float64) centres a block (b = −Wᵀμ) without a pass of its own.
 * Every product runs in float64 (float32 blocks are widened panel by panel): on the native backend with
 * BLAS dgemm, else in WebAssembly SIMD; both agree to rounding (BLAS sums in another order).
 */

function checkX(X: Float64Array, cols: number, k: number): void {
  if (X.length !== (cols + 1) * k)
    throw new KernelError(
      KernelErrorCode.SHAPE_MISMATCH,
      `input X has ${X.length * 8} bytes; (cols + 1)×k = ${cols + 1}×${k} float64 needs ${(cols + 1) * k * 8}`,
    );
}

/** A float64 view of an input's bytes (copied when unaligned). */
function f64Input(bytes: Uint8Array, n: number, what: string, shape: string): Float64Array {
  if (bytes.byteLength !== n * 8)
    throw new KernelError(
      KernelErrorCode.SHAPE_MISMATCH,
      `input ${what} has ${bytes.byteLength} bytes; ${shape} float64 needs ${n * 8}`,
    );
  const aligned = bytes.byteOffset % 8 === 0 ? bytes : bytes.slice();
  return new Float64Array(aligned.buffer, aligned.byteOffset, n);
}

/**
 * Runs `each(panel, r0, n)` over panels of Y = A·W + 1·bᵀ (`n × k` float64, dense) for rows r0 … r0+n−1.
 * The panel array is scratch, valid during the call.
 */
function productPanels(
  a: Attrs,
  A: Matrix,
  X: Float64Array,
  options: RunOptions,
  each: (panel: Float64Array, r0: number, n: number) => void,
): void {
  const { rows, cols, k } = a;
  const R = PANEL_ROWS;
  const blas = options.backend?.blas;
  if (blas !== undefined) {
    // A float64 block is read in place (BLAS takes its row stride); a float32 one is widened panel by panel.
    const inPlace = A.data instanceof Float64Array;
    const aPanel = inPlace ? undefined : (scratch('affine-a', 'float64', R * cols) as Float64Array);
    const yPanel = scratch('affine-y', 'float64', R * k) as Float64Array;
    const b = X.subarray(cols * k, cols * k + k);
    for (let r0 = 0; r0 < rows; r0 += R) {
      const n = Math.min(R, rows - r0);
      let a: Float64Array;
      let lda = cols;
      if (aPanel === undefined) {
        a = rowsFrom(A as Matrix<Float64Array>, r0, n);
        lda = A.ld;
      } else {
        copyRows(A, r0, n, aPanel, 0);
        a = aPanel;
      }
      fillRows(yPanel, b, n, k);
      blas.gemm(false, false, n, k, cols, a, lda, X, k, 1, yPanel, k);
      each(yPanel.subarray(0, n * k), r0, n);
    }
    return;
  }
  // Workspace (f64 elements): X (cols+1)·k | A panel R·cols | Y panel R·k.
  const aAt = (cols + 1) * k;
  const yAt = aAt + R * cols;
  const ws = workspace();
  const { gemm } = ws.precision('float64', yAt + R * k);
  const h = ws.f64;
  h.set(X, 0);
  for (let r0 = 0; r0 < rows; r0 += R) {
    const n = Math.min(R, rows - r0);
    copyRows(A, r0, n, h, aAt);
    for (let i = 0; i < n; i++) h.copyWithin(yAt + i * k, cols * k, cols * k + k);
    gemm(n, k, cols, aAt, cols, 1, 0, k, yAt, k);
    each(h.subarray(yAt, yAt + n * k), r0, n);
  }
}

/** Y = A·W + 1·bᵀ with X = [W; bᵀ] (`(cols + 1) × k` float64): `rows × k` float64. */
export function affineProduct(a: Attrs, A: FloatArray | Matrix, X: Float64Array, options: RunOptions = {}): Float64Array {
  const { rows, cols, k } = a;
  checkX(X, cols, k);
  const M = asMatrix(A, rows, cols);
  const Y = f64Out(options.out, rows * k);
  const blas = options.backend?.blas;
  if (blas !== undefined && M.data instanceof Float64Array && rows > 0) {
    // One product straight into Y: Y = 1·bᵀ, then Y += A·W (each row of Y depends on its row of A only).
    fillRows(Y, X.subarray(cols * k, cols * k + k), rows, k);
    blas.gemm(false, false, rows, k, cols, rowsFrom(M as Matrix<Float64Array>, 0, rows), M.ld, X, k, 1, Y, k);
    return Y;
  }
  productPanels(a, M, X, options, (panel, r0) => Y.set(panel, r0 * k));
  return Y;
}

/** Sets each of the first `n` rows of the dense `n × k` array `P` to `b`, doubling the copied span. */
function fillRows(P: Float64Array, b: Float64Array, n: number, k: number): void {
  if (n === 0) return;
  P.set(b, 0);
  for (let done = 1; done < n;) {
    const m = Math.min(done, n - done);
    P.copyWithin(done * k, 0, m * k);
    done += m;
  }
}

/** G = YᵀY for Y = A·W + 1·bᵀ (`k × k` float64, exactly symmetric), Y never stored. */
export function affineGram(a: Attrs, A: FloatArray | Matrix, X: Float64Array, options: RunOptions = {}): Float64Array {
  const { rows, cols, k } = a;
  checkX(X, cols, k);
  const M = asMatrix(A, rows, cols);
  const G = f64Out(options.out, k * k);
  G.fill(0);
  const blas = options.backend?.blas;
  productPanels(a, M, X, options, (panel, _r0, n) => {
    if (blas !== undefined) blas.syrk(k, n, panel, k, 1, G, k);
    else symmetricUpdate(G, panel, n, k);
  });
  for (let p = 0; p < k; p++) for (let q = 0; q < p; q++) G[p * k + q] = G[q * k + p]!;
  return G;
}

/** G (upper triangle and diagonal) += PᵀP for a dense `n × k` panel P, in JS with 4 accumulators a row. */
function symmetricUpdate(G: Float64Array, P: Float64Array, n: number, k: number): void {
  for (let p = 0; p < k; p++) {
    for (let q = p; q < k; q++) {
      let s0 = 0;
      let s1 = 0;
      let i = 0;
      for (; i + 1 < n; i += 2) {
        s0 += P[i * k + p]! * P[i * k + q]!;
        s1 += P[(i + 1) * k + p]! * P[(i + 1) * k + q]!;
      }
      if (i < n) s0 += P[i * k + p]! * P[i * k + q]!;
      G[p * k + q]! += s0 + s1;
    }
  }
}

/** C = [Aᵀ·Y; 1ᵀY] (`(cols + 1) × k` float64) for Y (`rows × k` float64). */
export function transposeProduct(
  a: Attrs,
  A: FloatArray | Matrix,
  Y: Float64Array | Matrix<Float64Array>,
  options: RunOptions = {},
): Float64Array {
  const { rows, cols, k } = a;
  const MA = asMatrix(A, rows, cols);
  const MY = asMatrix(Y, rows, k);
  const C = f64Out(options.out, (cols + 1) * k);
  C.fill(0);
  const R = PANEL_ROWS;
  const blas = options.backend?.blas;
  if (blas !== undefined && MA.data instanceof Float64Array && rows > 0) {
    // One product over all rows, both factors read in place: C = AᵀY, then the column sums of Y.
    const y = MY.data as Float64Array;
    blas.gemm(
      true,
      false,
      cols,
      k,
      rows,
      rowsFrom(MA as Matrix<Float64Array>, 0, rows),
      MA.ld,
      rowsFrom(MY, 0, rows),
      MY.ld,
      1,
      C,
      k,
    );
    for (let i = 0; i < rows; i++) {
      const from = MY.offset + i * MY.ld;
      for (let t = 0; t < k; t++) C[cols * k + t]! += y[from + t]!;
    }
    return C;
  }
  if (blas !== undefined) {
    const aPanel = scratch('aty-a', 'float64', R * cols) as Float64Array;
    const yPanel = scratch('aty-y', 'float64', R * k) as Float64Array;
    for (let r0 = 0; r0 < rows; r0 += R) {
      const n = Math.min(R, rows - r0);
      copyRows(MA, r0, n, aPanel, 0);
      copyRows(MY, r0, n, yPanel, 0);
      blas.gemm(true, false, cols, k, n, aPanel, cols, yPanel, k, 1, C, k);
      columnSumsInto(C, cols * k, yPanel, n, k);
    }
    return C;
  }
  // Workspace: C (cols·k) | A panel (R·cols) | Y panel (R·k).
  const aAt = cols * k;
  const yAt = aAt + R * cols;
  const ws = workspace();
  const { gemm } = ws.precision('float64', yAt + R * k);
  const h = ws.f64;
  h.fill(0, 0, cols * k);
  for (let r0 = 0; r0 < rows; r0 += R) {
    const n = Math.min(R, rows - r0);
    copyRows(MA, r0, n, h, aAt);
    copyRows(MY, r0, n, h, yAt);
    gemm(cols, k, n, aAt, 1, cols, yAt, k, 0, k);
    columnSumsInto(C, cols * k, h.subarray(yAt, yAt + n * k), n, k);
  }
  C.set(h.subarray(0, cols * k));
  return C;
}

function columnSumsInto(C: Float64Array, at: number, P: Float64Array, n: number, k: number): void {
  for (let i = 0; i < n; i++) for (let t = 0; t < k; t++) C[at + t]! += P[i * k + t]!;
}

const xOf = (a: Attrs, bytes: Uint8Array) => f64Input(bytes, (a.cols + 1) * a.k, 'X', `(cols + 1)×k = ${a.cols + 1}×${a.k}`);
const panelWork = (a: Attrs) => (Math.min(PANEL_ROWS, Math.max(1, a.rows)) * (a.cols + a.k) + (a.cols + 1) * a.k) * 8;

export const affineProductKernel: KernelConfig = {
  ...catalogued('affine-product'),
  outputBytes: (a) => requireAttrs(a).rows * requireAttrs(a).k * 8,
  workBytes: (a) => panelWork(requireAttrs(a)),
  run: (a, [A, X], options) => {
    const at = requireAttrs(a);
    return f64Bytes(affineProduct(at, matrixView(A!, at), xOf(at, X!), options));
  },
};

export const affineGramKernel: KernelConfig = {
  ...catalogued('affine-gram'),
  outputBytes: (a) => requireAttrs(a).k ** 2 * 8,
  workBytes: (a) => panelWork(requireAttrs(a)),
  run: (a, [A, X], options) => {
    const at = requireAttrs(a);
    return f64Bytes(affineGram(at, matrixView(A!, at), xOf(at, X!), options));
  },
};

export const transposeProductKernel: KernelConfig = {
  ...catalogued('transpose-product'),
  outputBytes: (a) => (requireAttrs(a).cols + 1) * requireAttrs(a).k * 8,
  workBytes: (a) => panelWork(requireAttrs(a)) + requireAttrs(a).cols * requireAttrs(a).k * 8,
  run: (a, [A, Y], options) => {
    const at = requireAttrs(a);
    const y = f64Input(Y!, at.rows * at.k, 'Y', `rows×k = ${at.rows}×${at.k}`);
    return f64Bytes(transposeProduct(at, matrixView(A!, at), y, options));
  },
};
