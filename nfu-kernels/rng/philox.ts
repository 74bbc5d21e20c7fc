/**
 * Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011): a
 * counter-based generator. The output for a counter depends only on (key, counter), so any depot
 * regenerates the same numbers for the same `(seed, stream, block, index)` in any order.
 */

import { philoxWasmBase64 } from '../wasm/philox-wasm.js';
import { WasmWorkspace } from '../wasm/wasm-memory.js';
import type { KernelBackend } from '../backend.js';

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** High 32 bits of the 64-bit product of two u32. */
function mulhi(a: number, b: number): number {
  const a0 = a & 0xffff;
  const a1 = a >>> 16;
  const b0 = b & 0xffff;
  const b1 = b >>> 16;
  const lo = a0 * b0;
  const m1 = a1 * b0;
  const m2 = a0 * b1;
  const mid = (lo >>> 16) + (m1 & 0xffff) + (m2 & 0xffff);
  return (a1 * b1 + (m1 >>> 16) + (m2 >>> 16) + (mid >>> 16)) >>> 0;
}

/**
 * Fills `out[0..3]` with the Philox4x32-10 output for counter `(c0, c1, c2, c3)` and key
 * `(k0, k1)`, all u32.
 */
export function philox4x32(c0: number, c1: number, c2: number, c3: number, k0: number, k1: number, out: Uint32Array): void {
  for (let r = 0; r < 10; r++) {
    const hi0 = mulhi(M0, c0);
    const lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = mulhi(M1, c2);
    const lo1 = Math.imul(M1, c2) >>> 0;
    c0 = (hi1 ^ c1 ^ k0) >>> 0;
    c1 = lo1;
    c2 = (hi0 ^ c3 ^ k1) >>> 0;
    c3 = lo0;
    k0 = (k0 + W0) >>> 0;
    k1 = (k1 + W1) >>> 0;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

/** A seed as the two u32 words of a Philox key (seeds are non-negative safe integers). */
export function seedKey(seed: number): [number, number] {
  return [seed >>> 0, Math.floor(seed / 4294967296) >>> 0];
}

const TWO_POW_M53 = 1 / 9007199254740992;

/** A double in [0, 1) from two u32 (53 random bits). */
export function uniform53(a: number, b: number): number {
  return ((a >>> 5) * 67108864 + (b >>> 6)) * TWO_POW_M53;
}

// Box–Muller with its own logarithm and sine/cosine: only +, −, ×, ÷ and √ (IEEE-754, correctly
// rounded) in a fixed order, so every implementation of this generator (this reference, the
// native addon's vector loops, any other depot) produces the same bits for the same counter —
// unlike Math.log/Math.cos, whose last bit differs between libraries. Accuracy ≈ 1e-16 relative.

/** 1/(2n+1), n = 0…11: 2·atanh(s) = 2s·Σ s²ⁿ/(2n+1), for ln m = 2·atanh((m−1)/(m+1)). */
const ATANH = [
  1, 0.3333333333333333, 0.2, 0.14285714285714285, 0.1111111111111111, 0.09090909090909091, 0.07692307692307693,
  0.06666666666666667, 0.058823529411764705, 0.05263157894736842, 0.047619047619047616, 0.043478260869565216,
] as const;
/** (−1)ⁿ/(2n+1)!, n = 0…9: sin x = x·Σ aₙ x²ⁿ on |x| ≤ π/4. */
const SIN = [
  1, -0.16666666666666666, 0.008333333333333333, -0.0001984126984126984, 0.0000027557319223985893, -2.505210838544172e-8,
  1.6059043836821613e-10, -7.647163731819816e-13, 2.8114572543455206e-15, -8.22063524662433e-18,
] as const;
/** (−1)ⁿ/(2n)!, n = 0…9: cos x = Σ bₙ x²ⁿ on |x| ≤ π/4. */
const COS = [
  1, -0.5, 0.041666666666666664, -0.001388888888888889, 0.0000248015873015873, -2.755731922398589e-7, 2.08767569878681e-9,
  -1.1470745597729725e-11, 4.779477332387385e-14, -1.5619206968586225e-16,
] as const;
const LN2 = 0.6931471805599453;
const SQRT2 = 1.4142135623730951;
const HALF_PI = 1.5707963267948966;

const BITS = new DataView(new ArrayBuffer(8));

/**
 * ln x for a positive normal double: x = 2ᵉ·m with m in [√½, √2) (exact), ln m = 2·atanh(s),
 * s = (m − 1)/(m + 1), |s| ≤ 0.172, by a degree-23 odd polynomial.
 */
export function lnPoly(x: number): number {
  BITS.setFloat64(0, x, true);
  const hi = BITS.getUint32(4, true);
  let e = (hi >>> 20) - 1023;
  BITS.setUint32(4, (hi & 0xfffff) | 0x3ff00000, true);
  let m = BITS.getFloat64(0, true); // [1, 2)
  if (m > SQRT2) {
    m *= 0.5;
    e += 1;
  }
  const f = m - 1; // exact (Sterbenz)
  const s = f / (2 + f);
  const z = s * s;
  let p: number = ATANH[11];
  for (let i = 10; i >= 0; i--) p = p * z + ATANH[i]!;
  return e * LN2 + 2 * s * p;
}

/**
 * (cos 2πu, sin 2πu) for u in [0, 1): u·4 = q + f exactly, f in [−½, ½], x = f·π/2, and the
 * quadrant q rotates (cos x, sin x).
 */
export function sinCosTurn(u: number, out: Float64Array): void {
  const t = u * 4;
  let q = Math.floor(t);
  let f = t - q;
  if (f > 0.5) {
    f -= 1;
    q += 1;
  }
  const x = f * HALF_PI;
  const z = x * x;
  let sp: number = SIN[9];
  for (let i = 8; i >= 0; i--) sp = sp * z + SIN[i]!;
  let cp: number = COS[9];
  for (let i = 8; i >= 0; i--) cp = cp * z + COS[i]!;
  const sn = x * sp;
  switch (q & 3) {
    case 0:
      out[0] = cp;
      out[1] = sn;
      break;
    case 1:
      out[0] = -sn;
      out[1] = cp;
      break;
    case 2:
      out[0] = -cp;
      out[1] = -sn;
      break;
    default:
      out[0] = sn;
      out[1] = -cp;
  }
}

const PAIR = new Float64Array(2);
const NATIVE_CHUNK = 1 << 20;
const WASM_CHUNK = 1 << 16;
const TURN = new Float64Array(2);

/**
 * Two standard normals from one Philox output (words w0…w3): u1 = 1 − U(w0, w1) in (0, 1],
 * u2 = U(w2, w3) in [0, 1), r = √(−2 ln u1), (r·cos 2πu2, r·sin 2πu2) into `out[0]`, `out[1]`.
 */
export function boxMuller(w0: number, w1: number, w2: number, w3: number, out: Float64Array): void {
  const u1 = 1 - uniform53(w0, w1);
  const r = Math.sqrt(-2 * lnPoly(u1));
  sinCosTurn(uniform53(w2, w3), TURN);
  out[0] = r * TURN[0]!;
  out[1] = r * TURN[1]!;
}

type PhiloxFill = (
  out: number,
  count: number,
  ctrLo: number,
  ctrHi: number,
  c2: number,
  c3: number,
  k0: number,
  k1: number,
) => void;

type BoxMullerFill = (wordsAt: number, count: number, outAt: number) => void;

let bulkModule: { ws: WasmWorkspace; fill: PhiloxFill; boxMuller: BoxMullerFill } | undefined;

/** This thread's Philox/Box–Muller WebAssembly module and its workspace. */
function bulk(): { ws: WasmWorkspace; fill: PhiloxFill; boxMuller: BoxMullerFill } {
  if (bulkModule === undefined) {
    const ws = new WasmWorkspace(philoxWasmBase64);
    bulkModule = { ws, fill: ws.exports['philox'] as PhiloxFill, boxMuller: ws.exports['boxmuller'] as BoxMullerFill };
  }
  return bulkModule;
}

/**
 * `count` consecutive Philox outputs (4 words each) from counter `first`, computed in WebAssembly
 * (exact 64-bit products) into a workspace; bit-identical to {@link philox4x32}.
 */
function philoxRun(seed: number, stream: number, block: number, first: number, count: number, extra = 0): Uint32Array {
  const m = bulk();
  m.ws.reserveBytes(count * 16 + extra);
  const [k0, k1] = seedKey(seed);
  m.fill(0, count, first >>> 0, Math.floor(first / 4294967296) >>> 0, block >>> 0, stream >>> 0, k0, k1);
  return new Uint32Array(m.ws.i32.buffer, 0, count * 4);
}

/**
 * Standard normal variates number `first … first + out.length - 1` of the stream
 * `(seed, stream, block)`, by Box–Muller on Philox uniforms: counter `i` yields variates `2i` and
 * `2i + 1`. The same arguments always give the same values, whatever was generated before, and
 * on every backend (the native one computes them in C++ vector loops, bit for bit).
 */
export function normals(
  seed: number,
  stream: number,
  block: number,
  first: number,
  out: Float64Array | Float32Array | number[],
  backend?: KernelBackend,
): void {
  if (!Number.isSafeInteger(first) || first < 0 || first > 2 ** 53 - out.length)
    throw new RangeError(`normals: variates ${first} … ${first} + ${out.length} are not in 0 … 2⁵³`);
  const native = backend?.native;
  if (native !== undefined && !Array.isArray(out) && out.length > 0) {
    const [k0, k1] = seedKey(seed);
    // In calls of at most 2²⁰ values: a worker stopped at its deadline is back in JS soon.
    for (let at = 0; at < out.length; at += NATIVE_CHUNK)
      native.normals(k0, k1, stream >>> 0, block >>> 0, first + at, out.subarray(at, at + NATIVE_CHUNK));
    return;
  }
  if (Array.isArray(out)) {
    normalsReference(seed, stream, block, first, out);
    return;
  }
  // WebAssembly: Philox words, then the same Box–Muller, WASM_CHUNK pairs at a time.
  // Counters from first/2 exactly (first + at may not be representable near 2⁵³; at is even).
  const c0 = Math.floor(first / 2);
  const skip = first % 2;
  for (let at = 0; at < out.length; at += 2 * WASM_CHUNK) {
    const part = out.subarray(at, Math.min(out.length, at + 2 * WASM_CHUNK));
    const count = Math.ceil((skip + part.length) / 2);
    philoxRun(seed, stream, block, c0 + at / 2, count, count * 16);
    const m = bulk();
    m.boxMuller(0, count, count * 16);
    part.set(m.ws.f64.subarray(count * 2 + skip, count * 2 + skip + part.length));
  }
}

/** {@link normals} computed here in JS (the reference every native path must match bit for bit). */
export function normalsReference(
  seed: number,
  stream: number,
  block: number,
  first: number,
  out: Float64Array | Float32Array | number[],
): void {
  const n = out.length;
  if (n === 0) return;
  const c0 = Math.floor(first / 2);
  const skip = first % 2;
  const count = Math.ceil((skip + n) / 2);
  const w = philoxRun(seed, stream, block, c0, count);
  let o = 0;
  const pair = PAIR;
  for (let c = 0; c < count; c++) {
    const q = c * 4;
    boxMuller(w[q]!, w[q + 1]!, w[q + 2]!, w[q + 3]!, pair);
    if (c > 0 || skip === 0) {
      out[o++] = pair[0]!;
      if (o === n) break;
    }
    out[o++] = pair[1]!;
    if (o === n) break;
  }
}

/**
 * Row i of `out` (`rows × k`) gets normals 0…k−1 of block `(block0 + i) mod 2³²` of the stream —
 * what {@link normals} gives row by row, in one native call or a few WebAssembly ones.
 */
export function normalRows(
  seed: number,
  stream: number,
  block0: number,
  rows: number,
  k: number,
  out: Float64Array | Float32Array,
  backend?: KernelBackend,
): void {
  if (rows === 0 || k === 0) return;
  const native = backend?.native;
  const [k0, k1] = seedKey(seed);
  if (native !== undefined) {
    native.normalRows(k0, k1, stream >>> 0, block0, rows, k, out);
    return;
  }
  const perRow = Math.ceil(k / 2); // counters per row
  const rowsPerPass = Math.max(1, Math.floor(WASM_CHUNK / perRow));
  for (let r0 = 0; r0 < rows; r0 += rowsPerPass) {
    const n = Math.min(rowsPerPass, rows - r0);
    const count = n * perRow;
    const m = bulk();
    m.ws.reserveBytes(count * 32);
    for (let i = 0; i < n; i++)
      m.fill(i * perRow * 16, perRow, 0, 0, ((block0 + r0 + i) % 4294967296) >>> 0, stream >>> 0, k0, k1);
    m.boxMuller(0, count, count * 16);
    const f64 = m.ws.f64;
    for (let i = 0; i < n; i++) {
      const from = count * 2 + i * perRow * 2;
      out.set(f64.subarray(from, from + k), (r0 + i) * k);
    }
  }
}

/**
 * u32 words number `first …` of the stream `(seed, stream, block)`: counter `i` yields words
 * `4i … 4i + 3`. Used for signs (Rademacher) and hashing rows to sketch rows.
 */
export function words(seed: number, stream: number, block: number, first: number, out: Uint32Array): void {
  if (out.length === 0) return;
  const skip = first % 4;
  const count = Math.ceil((skip + out.length) / 4);
  const w = philoxRun(seed, stream, block, Math.floor(first / 4), count);
  out.set(w.subarray(skip, skip + out.length));
}
