import { describe, expect, it } from 'vitest';
import {
  WASM_BACKEND,
  affineGram,
  affineProduct,
  builtins,
  encodeAttrs,
  fdShrink,
  fdUpdate,
  jacobiEigen,
  normals,
  parseAttrs,
  transposeProduct,
  KernelError,
  matrix,
} from '../../nfu-kernels/index.js';
import { kernelBackendFor } from '../../depot/nfu/native-loader.js';

const attrs = (rows: number, cols: number, k: number, dtype: 'float64' | 'float32' = 'float64', rowOffset = 0) =>
  parseAttrs(encodeAttrs({ rows, cols, k, dtype, rowOffset }));
const gaussian = (n: number, seed: number) => {
  const v = new Float64Array(n);
  normals(seed, 91, 0, 0, v);
  return v;
};
/** Reference product of row-major matrices. */
function mul(A: ArrayLike<number>, B: ArrayLike<number>, m: number, p: number, n: number): Float64Array {
  const C = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let t = 0; t < p; t++) for (let j = 0; j < n; j++) C[i * n + j]! += A[i * p + t]! * B[t * n + j]!;
  return C;
}
const transpose = (A: ArrayLike<number>, m: number, n: number) => {
  const T = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) T[j * m + i] = A[i * n + j]!;
  return T;
};
const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-10) => {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - b[i]!)).toBeLessThanOrEqual(tol * (1 + Math.abs(b[i]!)));
};

describe('product kernels against the reference products', () => {
  const rows = 301;
  const cols = 13;
  const k = 6;
  const A = gaussian(rows * cols, 1);
  const X = gaussian((cols + 1) * k, 2);
  const ones = new Float64Array(rows).fill(1);
  const want = mul(A, X.subarray(0, cols * k), rows, cols, k);
  for (let i = 0; i < rows; i++) for (let t = 0; t < k; t++) want[i * k + t]! += X[cols * k + t]!;

  it('affine-product is A·W + 1·bᵀ, for float64 and float32 blocks', () => {
    close(affineProduct(attrs(rows, cols, k), A, X), want);
    const A32 = Float32Array.from(A);
    const want32 = mul(A32, X.subarray(0, cols * k), rows, cols, k);
    for (let i = 0; i < rows; i++) for (let t = 0; t < k; t++) want32[i * k + t]! += X[cols * k + t]!;
    close(affineProduct(attrs(rows, cols, k, 'float32'), A32, X), want32);
  });

  it('affine-gram is YᵀY of that product, exactly symmetric', () => {
    const G = affineGram(attrs(rows, cols, k), A, X);
    close(G, mul(transpose(want, rows, k), want, k, rows, k), 1e-9);
    for (let p = 0; p < k; p++) for (let q = 0; q < k; q++) expect(G[p * k + q]).toBe(G[q * k + p]);
  });

  it('transpose-product is [AᵀY; 1ᵀY]', () => {
    const Y = gaussian(rows * 3, 3);
    const C = transposeProduct(attrs(rows, cols, 3), A, Y);
    close(C.subarray(0, cols * 3), mul(transpose(A, rows, cols), Y, cols, rows, 3));
    close(C.subarray(cols * 3), mul(ones, Y, 1, rows, 3));
  });

  // The native backend reads float64 blocks in place (row stride and offset given to BLAS), in one product
  // over all rows where it can; a strided view must give the same products as a dense copy.
  const { backend } = kernelBackendFor(true);
  const strided = (M: Float64Array, m: number, n: number, pad: number, lead: number) => {
    const data = new Float64Array(lead + m * (n + pad)).fill(Number.NaN);
    for (let i = 0; i < m; i++) data.set(M.subarray(i * n, (i + 1) * n), lead + i * (n + pad));
    return matrix(data, m, n, { offset: lead, ld: n + pad });
  };
  it.each([
    ['dense', 0, 0],
    ['strided, at an offset', 3, 7],
  ])('on the %s native path the products match the reference', (_name, pad, lead) => {
    expect(backend.blas, 'native kernels with BLAS (npm run build:native with libopenblas-dev)').toBeDefined();
    const MA = strided(A, rows, cols, pad, lead);
    close(affineProduct(attrs(rows, cols, k), MA, X, { backend }), want);
    const G = affineGram(attrs(rows, cols, k), MA, X, { backend });
    close(G, mul(transpose(want, rows, k), want, k, rows, k), 1e-9);
    const Y = gaussian(rows * 3, 3);
    const C = transposeProduct(attrs(rows, cols, 3), MA, strided(Y, rows, 3, pad, lead), { backend });
    close(C.subarray(0, cols * 3), mul(transpose(A, rows, cols), Y, cols, rows, 3));
    close(C.subarray(cols * 3), mul(ones, Y, 1, rows, 3));
    const A32 = Float32Array.from(A);
    const want32 = mul(A32, X.subarray(0, cols * k), rows, cols, k);
    for (let i = 0; i < rows; i++) for (let t = 0; t < k; t++) want32[i * k + t]! += X[cols * k + t]!;
    close(affineProduct(attrs(rows, cols, k, 'float32'), A32, X, { backend }), want32);
  });

  it('the registered kernels refuse an X of the wrong shape with NFU_ERR_SHAPE_MISMATCH', () => {
    const kernel = builtins().byNameOrThrow('affine-product');
    const bad = new Uint8Array(cols * k * 8);
    expect(() => kernel.run(attrs(rows, cols, k), [new Uint8Array(A.buffer), bad], { backend: WASM_BACKEND })).toThrow(
      expect.objectContaining({ code: 'NFU_ERR_SHAPE_MISMATCH' }),
    );
    expect(KernelError.is(new KernelError('NFU_ERR_SHAPE_MISMATCH', 'x'))).toBe(true);
  });
});

describe('Frequent Directions kernel', () => {
  it('Jacobi gives the eigen-decomposition of a symmetric matrix', () => {
    const m = 9;
    const B = gaussian(m * m, 5);
    const S = mul(B, transpose(B, m, m), m, m, m);
    const { values, vectors } = jacobiEigen(S.slice(), m);
    for (let i = 0; i < m; i++) {
      const v = vectors.subarray(i * m, i * m + m);
      close(
        mul(S, v, m, m, 1),
        v.map((x) => x * values[i]!),
        1e-9,
      );
      if (i > 0) expect(values[i]!).toBeLessThanOrEqual(values[i - 1]!);
    }
  });

  it('a stream of blocks gives a sketch with ‖AᵀA − BᵀB‖₂ ≤ Δ ≤ ‖A − A_k‖_F²/(ℓ − k)', () => {
    const cols = 10;
    const ell = 6;
    const blocks = [40, 3, 57, 1, 20].map((r, i) => ({ rows: r, data: gaussian(r * cols, 10 + i) }));
    let state: Float64Array = new Float64Array(0);
    const all: number[] = [];
    for (const b of blocks) {
      state = fdUpdate(attrs(b.rows, cols, ell, 'float64', all.length / cols), state, b.data);
      all.push(...b.data);
    }
    const n = all.length / cols;
    expect(state[2]).toBe(n);
    const delta = state[3]!;
    const B = state.subarray(4);
    const AtA = mul(transpose(all, n, cols), all, cols, n, cols);
    const BtB = mul(transpose(B, ell, cols), B, cols, ell, cols);
    const diff = AtA.map((v, i) => v - BtB[i]!);
    const eig = jacobiEigen(diff, cols).values;
    const err = Math.max(Math.abs(eig[0]!), Math.abs(eig[cols - 1]!));
    expect(err).toBeLessThanOrEqual(delta * (1 + 1e-9));
    const spectrum = jacobiEigen(AtA.slice(), cols).values;
    for (let k = 0; k < ell; k++) {
      let tail = 0;
      for (let i = k; i < cols; i++) tail += spectrum[i]!;
      expect(delta).toBeLessThanOrEqual((tail / (ell - k)) * (1 + 1e-9));
    }
  });

  it('shrinking leaves at most ℓ − 1 non-zero rows and never raises the norm', () => {
    const cols = 7;
    const buf = gaussian(12 * cols, 21);
    const before = buf.reduce((s, x) => s + x * x, 0);
    const delta = fdShrink(buf, 12, cols, 6);
    expect(delta).toBeGreaterThan(0);
    for (let i = 5; i < 12; i++) for (let c = 0; c < cols; c++) expect(Math.abs(buf[i * cols + c]!)).toBeLessThan(1e-9);
    expect(buf.reduce((s, x) => s + x * x, 0)).toBeLessThanOrEqual(before);
  });

  it('is idempotent: an update applied twice gives the state of one application, bit for bit', () => {
    const cols = 6;
    const ell = 4;
    const first = gaussian(30 * cols, 31);
    const s1 = fdUpdate(attrs(30, cols, ell), new Float64Array(0), first);
    const more = gaussian(25 * cols, 32);
    const s2 = fdUpdate(attrs(25, cols, ell, 'float64', 30), s1, more);
    expect(s2[2]).toBe(55);
    // The retry reads the state its first run wrote back, with the same rows.
    const again = fdUpdate(attrs(25, cols, ell, 'float64', 30), s2, more);
    expect(Buffer.from(again.buffer).equals(Buffer.from(s2.buffer))).toBe(true);
    // Through the registered kernel (the depot's path) as well.
    const kernel = builtins().byNameOrThrow('fd-update');
    const viaKernel = kernel.run(attrs(25, cols, ell, 'float64', 30), [new Uint8Array(s2.buffer), new Uint8Array(more.buffer)], {
      backend: WASM_BACKEND,
    });
    expect(Buffer.from(viaKernel).equals(Buffer.from(s2.buffer))).toBe(true);
    // An overlapping update absorbs only the rows beyond those seen: the same state as the new rows alone.
    const tail = gaussian(10 * cols, 33);
    const overlap = new Float64Array(15 * cols);
    overlap.set(more.subarray(20 * cols), 0);
    overlap.set(tail, 5 * cols);
    const viaOverlap = fdUpdate(attrs(15, cols, ell, 'float64', 50), s2, overlap);
    const viaNew = fdUpdate(attrs(10, cols, ell, 'float64', 55), s2, tail);
    expect(Buffer.from(viaOverlap.buffer).equals(Buffer.from(viaNew.buffer))).toBe(true);
    expect(viaNew[2]).toBe(65);
  });

  it('refuses a block that starts beyond the rows the state has seen (a gap)', () => {
    const s1 = fdUpdate(attrs(5, 4, 3), new Float64Array(0), gaussian(20, 1));
    expect(() => fdUpdate(attrs(5, 4, 3, 'float64', 6), s1, gaussian(20, 2))).toThrow(
      expect.objectContaining({ code: 'NFU_ERR_SHAPE_MISMATCH' }),
    );
  });

  it('refuses a state whose header disagrees with the attributes', () => {
    const state = fdUpdate(attrs(5, 4, 3), new Float64Array(0), gaussian(20, 1));
    expect(() => fdUpdate(attrs(5, 4, 2), state, gaussian(20, 2))).toThrow(/header|values/);
  });
});
