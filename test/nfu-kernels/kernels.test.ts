import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  KernelError,
  atb,
  builtinRegistry,
  columnStats,
  encodeAttrs,
  gaussianSketchLeft,
  gaussianSketchRight,
  gram,
  normals,
  parseAttrs,
  sparseSignSketch,
  srht,
  words,
  xorBytes,
  STREAM_GAUSSIAN_LEFT,
  STREAM_GAUSSIAN_RIGHT,
  STREAM_SPARSE_SIGN,
  type Attrs,
} from '../../nfu-kernels/index.js';

function matrix(rows: number, cols: number, seed: number, dtype: 'float32' | 'float64' = 'float64') {
  const v = new Float64Array(rows * cols);
  normals(seed, 99, 0, 0, v);
  return dtype === 'float64' ? v : Float32Array.from(v);
}
const attrs = (o: Partial<Attrs> & { rows: number; cols: number }): Attrs => ({
  dtype: 'float64',
  k: 1,
  seed: 0,
  rowOffset: 0,
  s: 8,
  blockId: 0,
  ...o,
});
/** Plain reference product of row-major matrices. */
function matmul(X: ArrayLike<number>, Y: ArrayLike<number>, n: number, m: number, p: number): Float64Array {
  const out = new Float64Array(n * p);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < p; j++) {
      let s = 0;
      for (let q = 0; q < m; q++) s += X[i * m + q]! * Y[q * p + j]!;
      out[i * p + j] = s;
    }
  return out;
}
function transpose(X: ArrayLike<number>, n: number, m: number): Float64Array {
  const out = new Float64Array(n * m);
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) out[j * n + i] = X[i * m + j]!;
  return out;
}
function expectClose(a: ArrayLike<number>, b: ArrayLike<number>, tol: number) {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / (1 + Math.abs(b[i]!)));
  expect(worst).toBeLessThan(tol);
}

describe('counter-based RNG', () => {
  it('the same (seed, stream, block, index) gives the same variate whatever order they are drawn in', () => {
    fc.assert(
      fc.property(fc.nat(2 ** 40), fc.nat(10), fc.nat(1000), fc.nat(100), fc.nat(50), (seed, stream, block, first, n) => {
        const all = new Float64Array(first + n);
        normals(seed, stream, block, 0, all);
        const part = new Float64Array(n);
        normals(seed, stream, block, first, part);
        expect([...part]).toEqual([...all.subarray(first)]);
        const w1 = new Uint32Array(first + n);
        words(seed, stream, block, 0, w1);
        const w2 = new Uint32Array(n);
        words(seed, stream, block, first, w2);
        expect([...w2]).toEqual([...w1.subarray(first)]);
      }),
      { seed: 5, numRuns: 100 },
    );
  });
  it('normals have mean 0 and variance 1 (200k draws)', () => {
    const v = new Float64Array(200_000);
    normals(123, 1, 7, 0, v);
    const mean = v.reduce((s, x) => s + x, 0) / v.length;
    const variance = v.reduce((s, x) => s + (x - mean) ** 2, 0) / v.length;
    expect(Math.abs(mean)).toBeLessThan(0.01);
    expect(Math.abs(variance - 1)).toBeLessThan(0.01);
  });
});

describe('kernels agree with plain reference implementations', () => {
  const rows = 37;
  const cols = 11;
  const k = 5;
  for (const dtype of ['float64', 'float32'] as const) {
    const A = matrix(rows, cols, 1, dtype);
    const tol = dtype === 'float64' ? 1e-12 : 1e-5;
    it(`gaussian sketch right, Y = AΩ (${dtype})`, () => {
      const omega = new Float64Array(cols * k);
      for (let j = 0; j < cols; j++)
        for (let t = 0; t < k; t++) {
          const one = new Float64Array(1);
          normals(42, STREAM_GAUSSIAN_RIGHT, 0, j * k + t, one);
          omega[j * k + t] = one[0]!;
        }
      expectClose(gaussianSketchRight(attrs({ dtype, rows, cols, k, seed: 42 }), A), matmul(A, omega, rows, cols, k), tol);
    });
    it(`gaussian sketch left, Z = ΩᵀA, additive over row blocks (${dtype})`, () => {
      const omega = new Float64Array(rows * k);
      for (let i = 0; i < rows; i++) normals(42, STREAM_GAUSSIAN_LEFT, i, 0, omega.subarray(i * k, (i + 1) * k));
      const want = matmul(transpose(omega, rows, k), A, k, rows, cols);
      expectClose(gaussianSketchLeft(attrs({ dtype, rows, cols, k, seed: 42 }), A), want, tol);
      const top = gaussianSketchLeft(attrs({ dtype, rows: 20, cols, k, seed: 42 }), A.subarray(0, 20 * cols));
      const bottom = gaussianSketchLeft(attrs({ dtype, rows: 17, cols, k, seed: 42, rowOffset: 20 }), A.subarray(20 * cols));
      expectClose(
        top.map((x, i) => x + bottom[i]!),
        want,
        tol,
      );
    });
    it(`sparse sign sketch equals the dense S·A; s distinct targets per row (${dtype})`, () => {
      const s = 3;
      const Z = sparseSignSketch(attrs({ dtype, rows, cols, k: 7, seed: 9 }), A, s, STREAM_SPARSE_SIGN);
      // Build S column by column by sketching unit rows.
      const S = new Float64Array(7 * rows);
      for (let i = 0; i < rows; i++) {
        const e = new Float64Array(1);
        e[0] = 1;
        const col = sparseSignSketch(attrs({ rows: 1, cols: 1, k: 7, seed: 9, rowOffset: i }), e, s, STREAM_SPARSE_SIGN);
        expect(col.filter((x) => x !== 0).length).toBe(s);
        for (const x of col) if (x !== 0) expect(Math.abs(Math.abs(x) - 1 / Math.sqrt(s))).toBeLessThan(1e-15);
        for (let t = 0; t < 7; t++) S[t * rows + i] = col[t]!;
      }
      expectClose(Z, matmul(S, A, 7, rows, cols), tol);
    });
    it(`SRHT equals √(n/k)·R·H·D·A built densely (${dtype})`, () => {
      const Z = srht(attrs({ dtype, rows, cols, k: 6, seed: 3, blockId: 2 }), A);
      const n = 64;
      const H = new Float64Array(n * n);
      for (let i = 0; i < n; i++)
        for (let j = 0; j < n; j++) {
          let bits = i & j;
          let par = 0;
          while (bits) {
            par ^= bits & 1;
            bits >>>= 1;
          }
          H[i * n + j] = (par ? -1 : 1) / Math.sqrt(n);
        }
      const DA = new Float64Array(n * cols);
      for (let i = 0; i < rows; i++) {
        const w = new Uint32Array(1);
        words(3, 5, i, 0, w);
        for (let j = 0; j < cols; j++) DA[i * cols + j] = ((w[0]! & 1) === 1 ? -1 : 1) * A[i * cols + j]!;
      }
      const HDA = matmul(H, DA, n, n, cols);
      // every output row must be √(n/k) times a distinct row of H·D·A
      const used = new Set<number>();
      for (let t = 0; t < 6; t++) {
        const row = Z.subarray(t * cols, (t + 1) * cols);
        const match = [...Array(n).keys()].find(
          (r) =>
            !used.has(r) && row.every((x, j) => Math.abs(x - Math.sqrt(n / 6) * HDA[r * cols + j]!) < 1e-6 * (1 + Math.abs(x))),
        );
        expect(match).toBeDefined();
        used.add(match!);
      }
    });
    it(`gram, column stats, AᵀB (${dtype})`, () => {
      const a = attrs({ dtype, rows, cols, k: 3 });
      expectClose(gram(a, A), matmul(transpose(A, rows, cols), A, cols, rows, cols), tol);
      const B = matrix(rows, 3, 2, dtype);
      expectClose(atb(a, A, B), matmul(transpose(A, rows, cols), B, cols, rows, 3), tol);
      const st = columnStats(a, A);
      for (let j = 0; j < cols; j++) {
        const col = [...Array(rows).keys()].map((i) => A[i * cols + j]!);
        const mean = col.reduce((s, x) => s + x, 0) / rows;
        expect(st[j]).toBe(rows);
        expect(st[cols + j]).toBeCloseTo(
          col.reduce((s, x) => s + x, 0),
          10,
        );
        expect(st[2 * cols + j]).toBeCloseTo(
          col.reduce((s, x) => s + x * x, 0),
          10,
        );
        expect(st[3 * cols + j]).toBe(Math.min(...col));
        expect(st[4 * cols + j]).toBe(Math.max(...col));
        expect(st[5 * cols + j]).toBeCloseTo(
          col.reduce((s, x) => s + (x - mean) ** 2, 0),
          10,
        );
      }
    });
  }
  it('sha256 and xor (LoCI semantics)', () => {
    const reg = builtinRegistry();
    const data = new TextEncoder().encode('hello world');
    expect(Buffer.from(reg.byNameOrThrow('sha256').run(undefined, [data])).toString('hex')).toBe(
      createHash('sha256').update('hello world').digest('hex'),
    );
    expect(Buffer.from(xorBytes(data, new Uint8Array([1]))).toString()).toBe('idmmn!vnsme');
    expect([...xorBytes(data, data)].every((b) => b === 0)).toBe(true);
  });
});

describe('registry and attributes', () => {
  it('registering a duplicate opcode or name throws', () => {
    const reg = builtinRegistry();
    const xor = reg.byNameOrThrow('xor');
    expect(() => reg.register(xor)).toThrow(KernelError);
    expect(() => reg.register({ ...xor, opcode: 999 })).toThrow('kernel xor (opcode 999) clashes with xor (opcode 1)');
    expect(() => reg.byOpcodeOrThrow(77)).toThrow('no kernel with opcode 77');
    expect(reg.list().map((k) => k.opcode)).toEqual([1, 16, 32, 33, 34, 35, 36, 48, 49, 50, 51, 52, 53, 54]);
  });
  it.each([
    ['{"rows": 1}', 'invalid kernel attributes: `cols` must be an integer from 1 to 2147483647 (got undefined)'],
    ['{"rows": 1, "cols": 2, "dtype": "int8"}', 'invalid kernel attributes: `dtype` must be "float32" or "float64" (got "int8")'],
    ['{"rows": 1, "cols": 2, "colour": 1}', 'invalid kernel attributes: unknown attribute `colour`'],
    ['[1]', 'invalid kernel attributes: must be a JSON object'],
    [
      '{"rows": 10, "cols": 2, "rowOffset": 9007199254740990}',
      'invalid kernel attributes: `rowOffset` + `rows` must be at most 9007199254740991 (got 9007199254740990 + 10)',
    ],
  ])('bad attributes %s', (json, message) => {
    expect(() => parseAttrs(new TextEncoder().encode(json))).toThrow(message);
  });
  it('an input of the wrong size is NFU_ERR_SHAPE_MISMATCH', () => {
    const reg = builtinRegistry();
    const a = parseAttrs(encodeAttrs({ rows: 2, cols: 3 }));
    expect(() => reg.byNameOrThrow('gram').run(a, [new Uint8Array(40)])).toThrow('input A has 40 bytes; 2×3 float64 needs 48');
  });
});
