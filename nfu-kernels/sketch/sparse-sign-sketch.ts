import { f64Bytes, f64Out, matrixView, type Attrs } from '../attrs.js';
import type { RunOptions } from '../backend.js';
import { Stream } from '../catalogue.js';
import { catalogued, type KernelConfig } from '../kernel.js';
import { asMatrix, copyRows, denseRows, type Matrix } from '../matrix.js';
import { nativePanelRows, type FloatArray } from '../native.js';
import { seedKey, words } from '../rng/philox.js';
import { PANEL_ROWS } from '../wasm/gemm.js';
import { scatterWorkspace } from '../wasm/scatter.js';
import { requireAttrs } from './gaussian-sketch.js';

export const STREAM_SPARSE_SIGN = Stream.SPARSE_SIGN;
export const STREAM_COUNT_SKETCH = Stream.COUNT_SKETCH;

/**
 * Z = S·A with S a `k × m` sparse sign embedding: global row g of A goes to `s` distinct rows of Z
 * with independent random signs, scaled by 1/√s (Clarkson–Woodruff; s = 1 is CountSketch). The
 * targets and signs of row g come from stream `(seed, stream, g)`, so blocks are additive.
 */
export function sparseSignSketch(
  a: Attrs,
  A: FloatArray | Matrix,
  s: number,
  stream: number,
  options: RunOptions = {},
): Float64Array {
  const { rows, cols, k } = a;
  const M = asMatrix(A, rows, cols);
  const { out } = options;
  const nnz = Math.min(s, k);
  const native = options.backend?.native;
  if (native !== undefined) {
    // The same targets, signs and addition order in C++ vector loops: identical bytes.
    const Z = f64Out(out, k * cols);
    Z.fill(0);
    const [k0, k1] = seedKey(a.seed);
    const R = nativePanelRows(cols * nnz);
    for (let r0 = 0; r0 < rows; r0 += R) {
      const n = Math.min(R, rows - r0);
      // The addon reads dense rows: a strided view's panel is packed first.
      native.sparseSign(denseRows(M, r0, n), n, cols, k, nnz, k0, k1, stream, a.rowOffset + r0, Z);
    }
    return Z;
  }
  const scale = 1 / Math.sqrt(nnz);
  // Workspace (bytes): Z (k·cols f64) | A panel (R·cols f64) | entries (R·nnz × 16 bytes).
  const ws = scatterWorkspace();
  const R = PANEL_ROWS;
  const aAt = k * cols; // in f64 elements
  const listAt = (aAt + R * cols) * 8; // in bytes
  ws.reserveBytes(listAt + R * nnz * 16);
  ws.f64.fill(0, 0, k * cols);
  // Enough words for nnz targets plus a couple of collisions; more are drawn when needed.
  const bits = new Uint32Array(Math.ceil((nnz + 2) / 4) * 4);
  const targets = new Int32Array(nnz);
  for (let r0 = 0; r0 < rows; r0 += R) {
    const n = Math.min(R, rows - r0);
    copyRows(M, r0, n, ws.f64, aAt);
    const i32 = ws.i32;
    const f64 = ws.f64;
    let e = 0;
    for (let i = 0; i < n; i++) {
      const g = a.rowOffset + r0 + i;
      words(a.seed, stream, g, 0, bits);
      // Distinct targets by rejection; fresh words if the first batch has too many collisions.
      let got = 0;
      let w = 0;
      let batch = 0;
      while (got < nnz) {
        if (w === bits.length) {
          batch++;
          words(a.seed, stream, g, batch * bits.length, bits);
          w = 0;
        }
        const word = bits[w++]!;
        const t = word % k;
        let dup = false;
        for (let q = 0; q < got; q++) if (targets[q] === t) dup = true;
        if (dup) continue;
        targets[got++] = t;
        const at = listAt + e * 16;
        i32[at >> 2] = (aAt + i * cols) * 8;
        i32[(at >> 2) + 1] = t * cols * 8;
        f64[(at >> 3) + 1] = word >>> 31 === 1 ? -scale : scale;
        e++;
      }
    }
    ws.scatter(e, cols, listAt);
  }
  const Z = f64Out(out, k * cols);
  Z.set(ws.f64.subarray(0, k * cols));
  return Z;
}

/** Scratch of the WebAssembly path: Z, an A panel and its entry list (f64 elements). */
const work = (a: Attrs, s: number) =>
  (a.k * a.cols + Math.min(PANEL_ROWS, Math.max(a.rows, 1)) * (a.cols + 2 * Math.min(s, a.k))) * 8;

export const sparseSignSketchKernel: KernelConfig = {
  ...catalogued('sparse-sign-sketch'),
  inputRowElements: (a) => [a.cols],
  outputBytes: (a) => requireAttrs(a).k * requireAttrs(a).cols * 8,
  workBytes: (a) => work(requireAttrs(a), requireAttrs(a).s),
  run: (a, [A], options) =>
    f64Bytes(sparseSignSketch(requireAttrs(a), matrixView(A!, requireAttrs(a)), requireAttrs(a).s, STREAM_SPARSE_SIGN, options)),
};

export const countSketchKernel: KernelConfig = {
  ...catalogued('count-sketch'),
  inputRowElements: (a) => [a.cols],
  outputBytes: (a) => requireAttrs(a).k * requireAttrs(a).cols * 8,
  workBytes: (a) => work(requireAttrs(a), 1),
  run: (a, [A], options) =>
    f64Bytes(sparseSignSketch(requireAttrs(a), matrixView(A!, requireAttrs(a)), 1, STREAM_COUNT_SKETCH, options)),
};
