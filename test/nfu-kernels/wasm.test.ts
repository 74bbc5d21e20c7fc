import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import initWabt from 'wabt';
import { gemmWasmBase64 } from '../../nfu-kernels/wasm/gemm-wasm.js';
import { GemmWorkspace } from '../../nfu-kernels/wasm/gemm.js';
import { scatterWasmBase64 } from '../../nfu-kernels/wasm/scatter-wasm.js';
import { philoxWasmBase64 } from '../../nfu-kernels/wasm/philox-wasm.js';
import fc from 'fast-check';
import { normalRows, normals, normalsReference, philox4x32, words } from '../../nfu-kernels/index.js';

describe('WASM GEMM', () => {
  it.each([
    ['gemm', gemmWasmBase64],
    ['scatter', scatterWasmBase64],
    ['philox', philoxWasmBase64],
  ])('the committed %s binary is the compiled .wat (run npm run build:wasm after editing it)', async (name, b64) => {
    const wabt = await initWabt();
    const wat = readFileSync(new URL(`../../nfu-kernels/wasm/${name}.wat`, import.meta.url), 'utf8');
    const mod = wabt.parseWat(`${name}.wat`, wat, { simd: true });
    expect(Buffer.from(mod.toBinary({}).buffer).toString('base64')).toBe(b64);
  });

  it('the WASM Philox gives the words of the JS reference (which passes the Random123 KAT vectors)', () => {
    fc.assert(
      fc.property(
        fc.nat(2 ** 53 - 1),
        fc.nat(2 ** 32 - 1),
        fc.nat(2 ** 32 - 1),
        fc.nat(2 ** 40),
        fc.nat(40),
        (seed, stream, block, first, n) => {
          const got = new Uint32Array(n);
          words(seed, stream, block, first, got);
          const ref = new Uint32Array(4);
          for (let i = 0; i < n; i++) {
            const ctr = Math.floor((first + i) / 4);
            philox4x32(
              ctr >>> 0,
              Math.floor(ctr / 4294967296) >>> 0,
              block,
              stream,
              seed >>> 0,
              Math.floor(seed / 4294967296) >>> 0,
              ref,
            );
            expect(got[i]).toBe(ref[(first + i) % 4]);
          }
        },
      ),
      { seed: 11, numRuns: 200 },
    );
  });

  it.each([
    [1, 1, 1],
    [4, 8, 3],
    [7, 13, 5],
    [12, 24, 33],
  ])('f32: C += X·Y with edges, M=%i N=%i P=%i', (M, N, P) => {
    const { view: h, gemm } = new GemmWorkspace().precision('float32', M * P + P * N + M * N + 10);
    for (let i = 0; i < M * P + P * N; i++) h[i] = Math.fround(Math.sin(i + 1));
    const c = M * P + P * N;
    h.fill(0, c, c + M * N);
    gemm(M, N, P, 0, P, 1, M * P, N, c, N);
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let p = 0; p < P; p++) s += h[m * P + p]! * h[M * P + p * N + n]!;
        expect(Math.abs(h[c + m * N + n]! - s)).toBeLessThan(1e-5 * (1 + Math.abs(s)));
      }
  });

  it.each([
    [1, 1, 1],
    [4, 4, 3],
    [7, 9, 5],
    [16, 12, 33],
  ])('C += X·Y and Xᵀ·Y with edges, M=%i N=%i P=%i', (M, N, P) => {
    const { view: h, gemm } = new GemmWorkspace().precision('float64', M * P + P * N + M * N + 10);
    for (let i = 0; i < M * P + P * N; i++) h[i] = Math.sin(i + 1);
    const x = 0;
    const y = M * P;
    const c = y + P * N;
    h.fill(1, c, c + M * N);
    gemm(M, N, P, x, P, 1, y, N, c, N); // X row-major M×P
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        let s = 1;
        for (let p = 0; p < P; p++) s += h[x + m * P + p]! * h[y + p * N + n]!;
        expect(h[c + m * N + n]).toBeCloseTo(s, 12);
      }
    h.fill(0, c, c + M * N);
    gemm(M, N, P, x, 1, M, y, N, c, N); // X stored as P×M, used transposed
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let p = 0; p < P; p++) s += h[x + p * M + m]! * h[y + p * N + n]!;
        expect(h[c + m * N + n]).toBeCloseTo(s, 12);
      }
  });
});

describe('WASM Box–Muller', () => {
  it('gives the JS reference normals bit for bit, any start, length and precision (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
        fc.nat(0xffffffff),
        fc.nat(0xffffffff),
        fc.oneof(fc.nat(100), fc.integer({ min: 0, max: 2 ** 45 })),
        fc.nat(300),
        fc.boolean(),
        (seed, stream, block, first, n, f32) => {
          const got = f32 ? new Float32Array(n) : new Float64Array(n);
          const want = f32 ? new Float32Array(n) : new Float64Array(n);
          normals(seed, stream, block, first, got);
          normalsReference(seed, stream, block, first, want);
          expect(Buffer.from(got.buffer).equals(Buffer.from(want.buffer))).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('matches near 2⁵³ across a chunk edge, and refuses variates past 2⁵³', () => {
    const n = 131_074;
    const first = 2 ** 53 - n - 1; // odd, so every chunk starts mid-pair
    const got = new Float64Array(n);
    const want = new Float64Array(n);
    normals(1, 2, 3, first, got);
    normalsReference(1, 2, 3, first, want);
    expect(Buffer.from(got.buffer).equals(Buffer.from(want.buffer))).toBe(true);
    expect(() => normals(1, 2, 3, 2 ** 53 - 1, new Float64Array(2))).toThrow(RangeError);
    expect(() => normals(1, 2, 3, -1, new Float64Array(2))).toThrow(RangeError);
  });

  it('matches across its 2¹⁶-pair chunks (300 000 values from an odd start)', () => {
    const got = new Float64Array(300_000);
    const want = new Float64Array(300_000);
    normals(77, 1, 2, 12345, got);
    normalsReference(77, 1, 2, 12345, want);
    expect(Buffer.from(got.buffer).equals(Buffer.from(want.buffer))).toBe(true);
  });
});

describe('WASM normal rows (the Ω of the left Gaussian sketch)', () => {
  it.each([
    [7, 5, 2 ** 32 - 3],
    [32, 300, 12345],
    [70_001, 3, 9], // one row per pass
  ])('k = %i, %i rows from block %i: row i is normals 0…k−1 of block block0 + i (mod 2³²)', (k, rows, block0) => {
    const got = new Float64Array(rows * k);
    normalRows(11, 2, block0, rows, k, got);
    for (let i = 0; i < rows; i++) {
      const want = new Float64Array(k);
      normalsReference(11, 2, (block0 + i) % 2 ** 32, 0, want);
      expect(Buffer.from(got.buffer, i * k * 8, k * 8).equals(Buffer.from(want.buffer))).toBe(true);
    }
  });
});
