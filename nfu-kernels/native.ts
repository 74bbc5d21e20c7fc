/**
 * The interface of the optional native addon (native/anvil_nfu.cc, a Node-API addon built by
 * node-gyp at install time), and helpers of the kernels' native paths. nfu-kernels stays free of
 * I/O: the host (the depot's worker, a bench) loads the addon and passes it to each kernel call as
 * a {@link KernelBackend} (backend.ts); without it every kernel runs its WebAssembly/JS path.
 */

import { f64Out } from './attrs.js';

export type FloatArray = Float64Array | Float32Array;

export interface NativeKernels {
  /** `blas`: OpenBLAS's configuration string, or null when built without BLAS; `isa`: the vector clone in use. */
  info(): { blas: string | null; isa: string };
  setBlasThreads(n: number): void;
  /** Caps the sparse sign scatter's vector level (process-wide; for tests). Returns the level in use. */
  useIsa(level: 'avx512f' | 'avx2' | 'default'): string;
  /** C = op(A)·op(B) + beta·C, row-major; A, B, C all f64 or all f32. Needs `info().blas`. */
  gemm(
    transA: boolean,
    transB: boolean,
    M: number,
    N: number,
    K: number,
    A: FloatArray,
    lda: number,
    B: FloatArray,
    ldb: number,
    beta: number,
    C: FloatArray,
    ldc: number,
  ): void;
  /** C (N×N, full square) = AᵀA + beta·C for A (K×N). Needs `info().blas`. */
  syrk(N: number, K: number, A: FloatArray, lda: number, beta: number, C: FloatArray, ldc: number): void;
  /** The reference's `normals(seed, stream, block, first, out)` with the seed as its key words. */
  normals(k0: number, k1: number, stream: number, block: number, first: number, out: FloatArray): void;
  /** Row i of `out` (rows×k) = variates 0…k−1 of block (block0 + i) mod 2³². */
  normalRows(k0: number, k1: number, stream: number, block0: number, rows: number, k: number, out: FloatArray): void;
  /** Z (k×cols) += S·A for the sparse sign embedding with s non-zeros per row of A. */
  sparseSign(
    A: FloatArray,
    rows: number,
    cols: number,
    k: number,
    s: number,
    k0: number,
    k1: number,
    stream: number,
    rowOffset: number,
    Z: Float64Array,
  ): void;
}

/**
 * Rows per native call for an op doing `perRow` multiply-adds per row: about 2²⁴ multiply-adds a
 * call (a few milliseconds), so a worker stopped at its deadline is back in JS — where the
 * termination takes effect — within one call, and the scratch of a panel stays small.
 */
export function nativePanelRows(perRow: number): number {
  return Math.max(16, Math.floor(2 ** 24 / Math.max(1, perRow)));
}

/**
 * Where a BLAS kernel computes a float64 result of `n` values: straight into the result (f64
 * inputs), or into an f32 scratch (f32 inputs compute in f32, as BLAS sgemm does), which
 * `finish()` widens into the result. The work array is not cleared.
 */
export function blasTarget(
  out: Uint8Array | undefined,
  dtype: 'float64' | 'float32',
  n: number,
  name: string,
): { work: FloatArray; finish(): Float64Array } {
  const result = f64Out(out, n);
  const work = dtype === 'float64' ? result : scratch(name, 'float32', n);
  return {
    work,
    finish: () => {
      if (work !== result) result.set(work);
      return result;
    },
  };
}

const scratch64 = new Map<string, Float64Array>();
const scratch32 = new Map<string, Float32Array>();

/**
 * A reusable per-thread array of at least `n` elements for the named purpose (its pages are touched
 * once, not on every op). Its contents are garbage; callers overwrite what they use.
 */
export function scratch(name: string, dtype: 'float64' | 'float32', n: number): FloatArray {
  const map = dtype === 'float64' ? scratch64 : scratch32;
  let a = map.get(name);
  if (a === undefined || a.length < n) {
    a = dtype === 'float64' ? new Float64Array(n) : new Float32Array(n);
    (map as Map<string, FloatArray>).set(name, a);
  }
  return a.subarray(0, n);
}
