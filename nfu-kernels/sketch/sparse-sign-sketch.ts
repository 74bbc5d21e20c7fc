import { f64Bytes, f64Out, matrixView, type Attrs } from '../attrs.js';
import type { KernelConfig } from '../kernel.js';
import { nativeKernels, nativePanelRows } from '../native.js';
import { seedKey, words } from '../rng/philox.js';
import { PANEL_ROWS } from '../wasm/gemm.js';
import { scatterWorkspace } from '../wasm/scatter.js';
import { requireAttrs } from './gaussian-sketch.js';

export const STREAM_SPARSE_SIGN = 3;
export const STREAM_COUNT_SKETCH = 4;

/**
 * Z = S·A with S a `k × m` sparse sign embedding: global row g of A goes to `s` distinct rows of Z
 * with independent random signs, scaled by 1/√s (Clarkson–Woodruff; s = 1 is CountSketch). The
 * targets and signs of row g come from stream `(seed, stream, g)`, so blocks are additive.
 */
export function sparseSignSketch(
  a: Attrs,
  A: Float32Array | Float64Array,
  s: number,
  stream: number,
  out?: Uint8Array,
): Float64Array {
  const { rows, cols, k } = a;
  const nnz = Math.min(s, k);
  const native = nativeKernels();
  if (native !== undefined) {
    // The same targets, signs and addition order in C++ vector loops: identical bytes.
    const Z = f64Out(out, k * cols);
    Z.fill(0);
    const [k0, k1] = seedKey(a.seed);
    const R = nativePanelRows(cols * nnz);
    for (let r0 = 0; r0 < rows; r0 += R) {
      const n = Math.min(R, rows - r0);
      native.sparseSign(A.subarray(r0 * cols, (r0 + n) * cols), n, cols, k, nnz, k0, k1, stream, a.rowOffset + r0, Z);
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
    ws.f64.set(A.subarray(r0 * cols, (r0 + n) * cols), aAt);
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

export const sparseSignSketchKernel: KernelConfig = {
  opcode: 34,
  name: 'sparse-sign-sketch',
  rowSplit: 'sum',
  inputRowElements: (a) => [a.cols],
  summary: 'Z = S·A, S k×m with s ±1/√s per column (rows of A); output k×cols float64, additive over row blocks',
  inputs: ['A'],
  takesAttrs: true,
  outputBytes: (a) => requireAttrs(a).k * requireAttrs(a).cols * 8,
  run: (a, [A], out) =>
    f64Bytes(sparseSignSketch(requireAttrs(a), matrixView(A!, requireAttrs(a)), requireAttrs(a).s, STREAM_SPARSE_SIGN, out)),
};

export const countSketchKernel: KernelConfig = {
  opcode: 35,
  name: 'count-sketch',
  rowSplit: 'sum',
  inputRowElements: (a) => [a.cols],
  summary: 'Z = S·A, S k×m with one ±1 per column (CountSketch); output k×cols float64, additive over row blocks',
  inputs: ['A'],
  takesAttrs: true,
  outputBytes: (a) => requireAttrs(a).k * requireAttrs(a).cols * 8,
  run: (a, [A], out) => f64Bytes(sparseSignSketch(requireAttrs(a), matrixView(A!, requireAttrs(a)), 1, STREAM_COUNT_SKETCH, out)),
};
