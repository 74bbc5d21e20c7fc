import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  builtinRegistry,
  encodeAttrs,
  WASM_BACKEND,
  nativeBackend,
  normals,
  normalsReference,
  parseAttrs,
  seedKey,
  type NativeKernels,
} from '../../nfu-kernels/index.js';
import { checkNativeKernels, loadNativeKernels } from '../../depot/index.js';

// CI builds the addon with ANVIL_NATIVE=require, so there these tests must run, never skip.
const { native, why } = loadNativeKernels();
const required = process.env['ANVIL_NATIVE'] === 'require';

describe('native kernels are present where the build requires them', () => {
  it('loads the addon when ANVIL_NATIVE=require, with OpenBLAS', () => {
    if (!required) return;
    expect(native, why).toBeDefined();
    expect(native!.info().blas).toMatch(/OpenBLAS/);
  });
});

const registry = builtinRegistry();

/** Runs a registered kernel with the native backend on or off in this thread. */
function runWith(nat: NativeKernels | undefined, name: string, attrs: object, inputs: Uint8Array[]): Float64Array {
  const backend = nat === undefined ? WASM_BACKEND : nativeBackend(nat);
  const out = registry.byNameOrThrow(name).run(parseAttrs(encodeAttrs(attrs as never)), inputs, { backend });
  return new Float64Array(out.slice().buffer);
}

function matrix(rows: number, cols: number, seed: number, dtype: 'float64' | 'float32'): Uint8Array {
  const v = new Float64Array(rows * cols);
  normalsReference(seed, 5, 0, 0, v);
  return new Uint8Array((dtype === 'float64' ? v : Float32Array.from(v)).buffer);
}

function bits(a: Float64Array | Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

describe.skipIf(native === undefined)('native kernels agree with the reference', () => {
  const nat = native!;

  it('names the backend it runs', () => {
    expect(nativeBackend(nat).name).toMatch(/^native \((avx512f|avx2|default)/);
    expect(WASM_BACKEND.name).toBe('wasm');
  });

  it('normals are bit-identical to the JS reference (2²⁰ variates, every vector lane and chunk edge)', () => {
    const n = 1 << 20;
    const want = new Float64Array(n);
    normalsReference(987654321, 2, 77, 0, want);
    const got = new Float64Array(n);
    const [k0, k1] = seedKey(987654321);
    nat.normals(k0, k1, 2, 77, 0, got);
    expect(Buffer.from(bits(got)).equals(Buffer.from(bits(want)))).toBe(true);
  });

  it('normals match for any seed, stream, block, start and length, f64 and f32 (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
        fc.nat(0xffffffff),
        fc.nat(0xffffffff),
        fc.oneof(fc.nat(1000), fc.integer({ min: 0, max: 2 ** 40 })),
        fc.nat(1200),
        fc.boolean(),
        (seed, stream, block, first, n, f32) => {
          const want = f32 ? new Float32Array(n) : new Float64Array(n);
          normalsReference(seed, stream, block, first, want);
          const got = f32 ? new Float32Array(n) : new Float64Array(n);
          const [k0, k1] = seedKey(seed);
          nat.normals(k0, k1, stream, block, first, got);
          expect(Buffer.from(bits(got)).equals(Buffer.from(bits(want)))).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('normalRows gives row i the variates of block block0 + i (wrapping at 2³²)', () => {
    const k = 7;
    const rows = 5;
    const block0 = 2 ** 32 - 2;
    const got = new Float64Array(rows * k);
    nat.normalRows(1, 2, 3, block0, rows, k, got);
    for (let i = 0; i < rows; i++) {
      const want = new Float64Array(k);
      normalsReference(1 + 2 * 2 ** 32, 3, (block0 + i) % 2 ** 32, 0, want);
      expect(Array.from(got.subarray(i * k, (i + 1) * k))).toEqual(Array.from(want));
    }
  });

  it.each(['avx512f', 'avx2', 'default'] as const)(
    'the sparse sign and CountSketch give the WebAssembly kernel’s bytes exactly (vector level %s)',
    (level) => {
      const used = nat.useIsa(level);
      try {
        // 300 columns: two 128-column tiles (AVX-512), four 64-column ones (AVX2), and a tail
        for (const cols of [37, 300]) {
          for (const dtype of ['float64', 'float32'] as const) {
            const A = matrix(1001, cols, 11, dtype);
            for (const [name, extra] of [
              ['sparse-sign-sketch', { k: 64, s: 8 }],
              ['sparse-sign-sketch', { k: 5, s: 5 }],
              ['count-sketch', { k: 128 }],
            ] as const) {
              const attrs = { dtype, rows: 1001, cols, seed: 2 ** 40 + 5, rowOffset: 2 ** 32 - 100, ...extra };
              const a = runWith(nat, name, attrs, [A]);
              const b = runWith(undefined, name, attrs, [A]);
              expect(Buffer.from(bits(a)).equals(Buffer.from(bits(b))), `${name} ${dtype} ${cols} on ${used}`).toBe(true);
            }
          }
        }
      } finally {
        nat.useIsa('avx512f');
      }
    },
  );

  it('the BLAS kernels agree with the WebAssembly ones to rounding', () => {
    for (const dtype of ['float64', 'float32'] as const) {
      const rows = 2500;
      const cols = 33;
      const A = matrix(rows, cols, 12, dtype);
      const B = matrix(rows, 5, 13, dtype);
      const base = { dtype, rows, cols, seed: 7, rowOffset: 123 };
      const tol = dtype === 'float64' ? 1e-12 : 2e-5;
      for (const [name, attrs, inputs] of [
        ['gaussian-sketch-right', { ...base, k: 9 }, [A]],
        ['gaussian-sketch-left', { ...base, k: 9 }, [A]],
        ['gram', base, [A]],
        ['atb', { ...base, k: 5 }, [A, B]],
      ] as const) {
        const a = runWith(nat, name, attrs, [...inputs]);
        const b = runWith(undefined, name, attrs, [...inputs]);
        expect(a.length).toBe(b.length);
        const scale = b.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
        const err = a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);
        expect(err / scale, `${name} ${dtype}`).toBeLessThan(tol);
      }
    }
  });

  it('the Gram matrix is exactly symmetric', () => {
    const g = runWith(nat, 'gram', { dtype: 'float64', rows: 300, cols: 17 }, [matrix(300, 17, 3, 'float64')]);
    for (let p = 0; p < 17; p++) for (let q = 0; q < p; q++) expect(g[p * 17 + q]).toBe(g[q * 17 + p]);
  });

  it('refuses bad calls with typed errors before touching memory', () => {
    const A = new Float64Array(12).fill(1);
    const B = new Float64Array(12).fill(1);
    const C = new Float64Array(9).fill(7);
    const blas = nat.info().blas !== null;
    if (blas) {
      // 3×4 · 4×3 fits; a leading dimension or size that would overrun is refused
      expect(() => nat.gemm(false, false, 3, 3, 5, A, 5, B, 3, 0, C, 3)).toThrow(RangeError);
      expect(() => nat.gemm(false, false, 3, 3, 4, A, 3, B, 3, 0, C, 3)).toThrow(/leading dimension/);
      expect(() => nat.gemm(false, false, 4, 3, 4, A, 4, B, 3, 0, C, 3)).toThrow(/larger than its array/);
      expect(() => nat.gemm(false, false, 3, 3, 4, A, 4, new Float32Array(12), 3, 0, C, 3)).toThrow(TypeError);
      expect(() => nat.gemm(false, false, -1, 3, 4, A, 4, B, 3, 0, C, 3)).toThrow(RangeError);
      expect(() => nat.gemm(false, false, 1.5, 3, 4, A, 4, B, 3, 0, C, 3)).toThrow(RangeError);
      expect(() => nat.syrk(4, 3, A, 4, 0, C, 4)).toThrow(/larger than its array/);
    } else {
      // a build without OpenBLAS says so, and the kernels use the WebAssembly GEMM
      expect(() => nat.gemm(false, false, 3, 3, 4, A, 4, B, 3, 0, C, 3)).toThrow(/no BLAS/);
      expect(() => nat.syrk(3, 4, A, 3, 0, C, 3)).toThrow(/no BLAS/);
    }
    expect(() => nat.normalRows(0, 0, 0, 0, 3, 4, C)).toThrow(/larger than the output/);
    expect(() => nat.sparseSign(A, 4, 3, 3, 4, 0, 0, 0, 0, C)).toThrow(/1 ≤ s ≤ k/);
    expect(() => nat.sparseSign(A, 5, 3, 3, 1, 0, 0, 0, 0, C)).toThrow(/larger than A/);
    expect(() => nat.sparseSign(A, 4, 3, 4, 1, 0, 0, 0, 0, C)).toThrow(/larger than Z/);
    expect(() => nat.sparseSign(A, 4, 3, 3, 1, 0, 0, 0, 0, new Float32Array(9) as unknown as Float64Array)).toThrow(TypeError);
    expect(() => nat.normals(0, 0, 0, 0, 0, new Int32Array(3) as never)).toThrow(TypeError);
    expect(Array.from(C)).toEqual(new Array(9).fill(7));
    if (blas) {
      nat.gemm(false, false, 3, 3, 4, A, 4, B, 3, 0, C, 3);
      expect(Array.from(C)).toEqual(new Array(9).fill(4));
    }
  });

  it('refuses sizes whose product would overflow, before writing anything', () => {
    const out = new Float64Array(4).fill(3);
    expect(() => nat.normalRows(1, 2, 3, 0, 2 ** 34, 2 ** 30, out)).toThrow(/larger than the output/);
    expect(() => nat.normalRows(1, 2, 3, 0, 2 ** 53, 2, out)).toThrow(RangeError);
    expect(Array.from(out)).toEqual([3, 3, 3, 3]);
  });

  it('the load-time check passes this addon and refuses one that is off by a bit', () => {
    expect(checkNativeKernels(nat)).toBeUndefined();
    const offByOne: NativeKernels = {
      ...nat,
      info: () => nat.info(),
      normals: (k0, k1, stream, block, first, out) => {
        nat.normals(k0, k1, stream, block, first, out);
        if (out.length > 500) out[500] = out[500]! * (1 + Number.EPSILON);
      },
    };
    expect(checkNativeKernels(offByOne)).toMatch(/normal 500 is/);
    const wrongScatter: NativeKernels = {
      ...nat,
      info: () => nat.info(),
      sparseSign: (A, rows, cols, k, s, k0, k1, stream, rowOffset, Z) => {
        nat.sparseSign(A, rows, cols, k, s, k0, k1, stream, rowOffset + 1, Z);
      },
    };
    expect(checkNativeKernels(wrongScatter)).toMatch(/sparse sign entry/);
  });

  it('normals() on the native backend uses the native path and still matches', () => {
    let calls = 0;
    const counting: NativeKernels = { ...nat, info: () => nat.info(), normals: (...args) => (calls++, nat.normals(...args)) };
    const a = new Float64Array(1001);
    normals(5, 6, 7, 3, a, nativeBackend(counting));
    expect(calls).toBe(1);
    const b = new Float64Array(1001);
    normals(5, 6, 7, 3, b, WASM_BACKEND);
    expect(calls).toBe(1);
    expect(Buffer.from(bits(a)).equals(Buffer.from(bits(b)))).toBe(true);
  });

  it('two backends in one thread do not disturb each other (no thread-global state)', () => {
    const attrs = { dtype: 'float64', rows: 64, cols: 9, k: 5, seed: 4, s: 3 };
    const A = matrix(64, 9, 8, 'float64');
    const interleaved = [runWith(nat, 'sparse-sign-sketch', attrs, [A]), runWith(undefined, 'sparse-sign-sketch', attrs, [A])];
    expect(Buffer.from(bits(interleaved[0]!)).equals(Buffer.from(bits(interleaved[1]!)))).toBe(true);
  });
});
