import { f64Bytes, matrixView, type Attrs } from '../attrs.js';
import { KernelError, KernelErrorCode } from '../errors.js';
import type { KernelConfig } from '../kernel.js';
import { normals } from '../rng/philox.js';

/** RNG streams, so the sketches of one seed never share random numbers. */
export const STREAM_GAUSSIAN_RIGHT = 1;
export const STREAM_GAUSSIAN_LEFT = 2;

function need(a: Attrs | undefined): Attrs {
  if (a === undefined)
    throw new KernelError(KernelErrorCode.BAD_ATTRIBUTES, 'invalid kernel attributes: this op needs attributes');
  return a;
}

/**
 * The Gaussian test matrix Ω (`cols × k`) of the right sketch: Ω[j, t] is variate `j·k + t` of
 * stream `(seed, STREAM_GAUSSIAN_RIGHT, 0)`. Regenerated where it is used, never stored.
 */
export function rightOmega(seed: number, cols: number, k: number): Float64Array {
  const omega = new Float64Array(cols * k);
  normals(seed, STREAM_GAUSSIAN_RIGHT, 0, 0, omega);
  return omega;
}

/** Y = A·Ω: `rows × k`, float64. Row blocks of A give the matching row blocks of Y. */
export function gaussianSketchRight(a: Attrs, A: Float32Array | Float64Array): Float64Array {
  const { rows, cols, k } = a;
  const omega = rightOmega(a.seed, cols, k);
  const Y = new Float64Array(rows * k);
  for (let i = 0; i < rows; i++) {
    const yi = i * k;
    const ai = i * cols;
    for (let j = 0; j < cols; j++) {
      const v = A[ai + j]!;
      if (v === 0) continue;
      const oj = j * k;
      for (let t = 0; t < k; t++) Y[yi + t]! += v * omega[oj + t]!;
    }
  }
  return Y;
}

/**
 * Z = Ωᵀ·A: `k × cols`, float64, where row g of Ω (`m × k`, m the global row count) is variates
 * `0…k-1` of stream `(seed, STREAM_GAUSSIAN_LEFT, g)` and g = rowOffset + i. Additive over row
 * blocks: the sum of every block's Z is the sketch of the whole matrix.
 */
export function gaussianSketchLeft(a: Attrs, A: Float32Array | Float64Array): Float64Array {
  const { rows, cols, k } = a;
  const Z = new Float64Array(k * cols);
  const w = new Float64Array(k);
  for (let i = 0; i < rows; i++) {
    normals(a.seed, STREAM_GAUSSIAN_LEFT, a.rowOffset + i, 0, w);
    const ai = i * cols;
    for (let t = 0; t < k; t++) {
      const wt = w[t]!;
      const zt = t * cols;
      for (let j = 0; j < cols; j++) Z[zt + j]! += wt * A[ai + j]!;
    }
  }
  return Z;
}

export const gaussianSketchRightKernel: KernelConfig = {
  opcode: 32,
  name: 'gaussian-sketch-right',
  summary: 'Y = A·Ω, Ω cols×k standard normal from (seed); output rows×k float64',
  inputs: ['A'],
  takesAttrs: true,
  outputBytes: (a) => need(a).rows * need(a).k * 8,
  run: (a, [A]) => f64Bytes(gaussianSketchRight(need(a), matrixView(A!, need(a)))),
};

export const gaussianSketchLeftKernel: KernelConfig = {
  opcode: 33,
  name: 'gaussian-sketch-left',
  summary: 'Z = Ωᵀ·A, Ω rows standard normal from (seed, global row); output k×cols float64, additive over row blocks',
  inputs: ['A'],
  takesAttrs: true,
  outputBytes: (a) => need(a).k * need(a).cols * 8,
  run: (a, [A]) => f64Bytes(gaussianSketchLeft(need(a), matrixView(A!, need(a)))),
};

export { need as requireAttrs };
