import { f64Bytes, f64Out, matrixView, type Attrs } from '../attrs.js';
import type { KernelBackend, RunOptions } from '../backend.js';
import { Stream } from '../catalogue.js';
import { KernelError, KernelErrorCode } from '../errors.js';
import { catalogued, type KernelConfig } from '../kernel.js';
import { asMatrix, copyRows, rowsFrom, type Matrix } from '../matrix.js';
import { blasTarget, nativePanelRows, scratch, type FloatArray } from '../native.js';
import { normalRows, normals } from '../rng/philox.js';
import { PANEL_ROWS, workspace } from '../wasm/gemm.js';

/** RNG streams (from the catalogue), so the sketches of one seed never share random numbers. */
export const STREAM_GAUSSIAN_RIGHT = Stream.GAUSSIAN_RIGHT;
export const STREAM_GAUSSIAN_LEFT = Stream.GAUSSIAN_LEFT;

function need(a: Attrs | undefined): Attrs {
  if (a === undefined)
    throw new KernelError(KernelErrorCode.BAD_ATTRIBUTES, 'invalid kernel attributes: this op needs attributes');
  return a;
}

/**
 * The Gaussian test matrix Ω (`cols × k`) of the right sketch: Ω[j, t] is variate `j·k + t` of
 * stream `(seed, STREAM_GAUSSIAN_RIGHT, 0)`. Regenerated where it is used, never stored.
 */
export function rightOmega(seed: number, cols: number, k: number, backend?: KernelBackend): Float64Array {
  const omega = new Float64Array(cols * k);
  normals(seed, STREAM_GAUSSIAN_RIGHT, 0, 0, omega, backend);
  return omega;
}

/**
 * Y = A·Ω: `rows × k`, float64. Row blocks of A give the matching row blocks of Y. A is a dense
 * array of `rows × cols` or a {@link Matrix} view (offset and row stride).
 */
export function gaussianSketchRight(a: Attrs, A: FloatArray | Matrix, options: RunOptions = {}): Float64Array {
  const { rows, cols, k } = a;
  const M = asMatrix(A, rows, cols);
  const { out, backend } = options;
  if (rows === 0) return f64Out(out, 0); // no rows: nothing to multiply, Ω is not drawn
  const blas = backend?.blas;
  if (blas !== undefined) {
    // BLAS on the block where it lies, panel by panel; Ω in the input's precision, as below.
    const omega = scratch('omega', a.dtype, cols * k);
    normals(a.seed, STREAM_GAUSSIAN_RIGHT, 0, 0, omega, backend);
    const Y = blasTarget(out, a.dtype, rows * k, 'y32');
    const R = nativePanelRows(cols * k);
    for (let r0 = 0; r0 < rows; r0 += R) {
      const n = Math.min(R, rows - r0);
      blas.gemm(false, false, n, k, cols, rowsFrom(M, r0, n), M.ld, omega, k, 0, Y.work.subarray(r0 * k, (r0 + n) * k), k);
    }
    return Y.finish();
  }
  const Y = f64Out(out, rows * k);
  // Workspace layout (elements): Ω (cols·k) | A panel (R·cols) | Y panel (R·k).
  const R = PANEL_ROWS;
  const omegaAt = 0;
  const aAt = cols * k;
  const yAt = aAt + R * cols;
  const { view: h, gemm } = workspace().precision(a.dtype, yAt + R * k);
  normals(a.seed, STREAM_GAUSSIAN_RIGHT, 0, 0, h.subarray(omegaAt, omegaAt + cols * k), backend);
  for (let r0 = 0; r0 < rows; r0 += R) {
    const n = Math.min(R, rows - r0);
    copyRows(M, r0, n, h, aAt);
    h.fill(0, yAt, yAt + n * k);
    gemm(n, k, cols, aAt, cols, 1, omegaAt, k, yAt, k);
    Y.set(h.subarray(yAt, yAt + n * k), r0 * k);
  }
  return Y;
}

/**
 * Z = Ωᵀ·A: `k × cols`, float64, where row g of Ω (`m × k`, m the global row count) is variates
 * `0…k-1` of stream `(seed, STREAM_GAUSSIAN_LEFT, g)` and g = rowOffset + i. Additive over row
 * blocks: the sum of every block's Z is the sketch of the whole matrix.
 */
export function gaussianSketchLeft(a: Attrs, A: FloatArray | Matrix, options: RunOptions = {}): Float64Array {
  const { rows, cols, k } = a;
  const M = asMatrix(A, rows, cols);
  const { out, backend } = options;
  const blas = backend?.blas;
  if (blas !== undefined) {
    // Ω rows panel by panel, Z += Ω_panelᵀ·A_panel in BLAS.
    const R = nativePanelRows(cols * k);
    const W = scratch('omega-panel', a.dtype, Math.min(R, rows) * k);
    const Z = blasTarget(out, a.dtype, k * cols, 'z32');
    Z.work.fill(0);
    for (let r0 = 0; r0 < rows; r0 += R) {
      const n = Math.min(R, rows - r0);
      normalRows(a.seed, STREAM_GAUSSIAN_LEFT, a.rowOffset + r0, n, k, W, backend);
      blas.gemm(true, false, k, cols, n, W, k, rowsFrom(M, r0, n), M.ld, 1, Z.work, cols);
    }
    return Z.finish();
  }
  // Workspace layout: Z (k·cols) | Ω panel (R·k) | A panel (R·cols).
  const R = PANEL_ROWS;
  const zAt = 0;
  const wAt = k * cols;
  const aAt = wAt + R * k;
  const { view: h, gemm } = workspace().precision(a.dtype, aAt + R * cols);
  h.fill(0, zAt, zAt + k * cols);
  for (let r0 = 0; r0 < rows; r0 += R) {
    const n = Math.min(R, rows - r0);
    normalRows(a.seed, STREAM_GAUSSIAN_LEFT, a.rowOffset + r0, n, k, h.subarray(wAt, wAt + n * k), backend);
    copyRows(M, r0, n, h, aAt);
    gemm(k, cols, n, wAt, 1, k, aAt, cols, zAt, cols);
  }
  const Z = f64Out(out, k * cols);
  Z.set(h.subarray(zAt, zAt + k * cols));
  return Z;
}

/** Elements of a panel workspace: the panel rows the kernels copy at a time. */
const panel = (a: Attrs) => Math.min(PANEL_ROWS, Math.max(a.rows, 1));

export const gaussianSketchRightKernel: KernelConfig = {
  ...catalogued('gaussian-sketch-right'),
  inputRowElements: (a) => [a.cols],
  outputBytes: (a) => need(a).rows * need(a).k * 8,
  workBytes: (a) => (need(a).rows === 0 ? 0 : (need(a).cols * need(a).k + panel(need(a)) * (need(a).cols + need(a).k)) * 8),
  run: (a, [A], options) => f64Bytes(gaussianSketchRight(need(a), matrixView(A!, need(a)), options)),
};

export const gaussianSketchLeftKernel: KernelConfig = {
  ...catalogued('gaussian-sketch-left'),
  inputRowElements: (a) => [a.cols],
  outputBytes: (a) => need(a).k * need(a).cols * 8,
  workBytes: (a) => (need(a).k * need(a).cols + panel(need(a)) * (need(a).cols + need(a).k)) * 8,
  run: (a, [A], options) => f64Bytes(gaussianSketchLeft(need(a), matrixView(A!, need(a)), options)),
};

export { need as requireAttrs };
