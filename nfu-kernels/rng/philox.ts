/**
 * Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011): a
 * counter-based generator. The output for a counter depends only on (key, counter), so any depot
 * regenerates the same numbers for the same `(seed, stream, block, index)` in any order.
 */

import { philoxWasmBase64 } from '../wasm/philox-wasm.js';
import { WasmWorkspace } from '../wasm/wasm-memory.js';

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

/**
 * Standard normal variates number `first … first + out.length - 1` of the stream
 * `(seed, stream, block)`, by Box–Muller on Philox uniforms: counter `i` yields variates `2i` and
 * `2i + 1`. The same arguments always give the same values, whatever was generated before.
 */
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

let bulk: { ws: WasmWorkspace; fill: PhiloxFill } | undefined;

/**
 * `count` consecutive Philox outputs (4 words each) from counter `first`, computed in WebAssembly
 * (exact 64-bit products) into a workspace; bit-identical to {@link philox4x32}.
 */
function philoxRun(seed: number, stream: number, block: number, first: number, count: number): Uint32Array {
  if (bulk === undefined) {
    const ws = new WasmWorkspace(philoxWasmBase64);
    bulk = { ws, fill: ws.exports['philox'] as PhiloxFill };
  }
  bulk.ws.reserveBytes(count * 16);
  const [k0, k1] = seedKey(seed);
  bulk.fill(0, count, first >>> 0, Math.floor(first / 4294967296) >>> 0, block >>> 0, stream >>> 0, k0, k1);
  return new Uint32Array(bulk.ws.i32.buffer, 0, count * 4);
}

/**
 * Standard normal variates number `first … first + out.length - 1` of the stream
 * `(seed, stream, block)`, by Box–Muller on Philox uniforms: counter `i` yields variates `2i` and
 * `2i + 1`. The same arguments always give the same values, whatever was generated before.
 */
export function normals(
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
  for (let c = 0; c < count; c++) {
    const q = c * 4;
    const u1 = 1 - uniform53(w[q]!, w[q + 1]!); // (0, 1]
    const u2 = uniform53(w[q + 2]!, w[q + 3]!);
    const r = Math.sqrt(-2 * Math.log(u1));
    const theta = 2 * Math.PI * u2;
    if (c > 0 || skip === 0) {
      out[o++] = r * Math.cos(theta);
      if (o === n) break;
    }
    out[o++] = r * Math.sin(theta);
    if (o === n) break;
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
