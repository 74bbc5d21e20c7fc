import { f64Bytes, matrixView, type Attrs } from '../attrs.js';
import type { KernelConfig } from '../kernel.js';
import { words } from '../rng/philox.js';
import { requireAttrs } from './gaussian-sketch.js';

export const STREAM_SPARSE_SIGN = 3;
export const STREAM_COUNT_SKETCH = 4;

/**
 * Z = S·A with S a `k × m` sparse sign embedding: global row g of A goes to `s` distinct rows of Z
 * with independent random signs, scaled by 1/√s (Clarkson–Woodruff; s = 1 is CountSketch). The
 * targets and signs of row g come from stream `(seed, stream, g)`, so blocks are additive.
 */
export function sparseSignSketch(a: Attrs, A: Float32Array | Float64Array, s: number, stream: number): Float64Array {
  const { rows, cols, k } = a;
  const nnz = Math.min(s, k);
  const scale = 1 / Math.sqrt(nnz);
  const Z = new Float64Array(k * cols);
  const bits = new Uint32Array(4 * nnz + 8);
  const targets = new Int32Array(nnz);
  const signs = new Float64Array(nnz);
  for (let i = 0; i < rows; i++) {
    words(a.seed, stream, a.rowOffset + i, 0, bits);
    // Distinct targets by rejection; fresh words if the first batch has too many collisions.
    let got = 0;
    let w = 0;
    let batch = 0;
    while (got < nnz) {
      if (w === bits.length) {
        batch++;
        words(a.seed, stream, a.rowOffset + i, batch * bits.length, bits);
        w = 0;
      }
      const word = bits[w++]!;
      const t = word % k;
      let dup = false;
      for (let q = 0; q < got; q++) if (targets[q] === t) dup = true;
      if (dup) continue;
      targets[got] = t;
      signs[got] = word >>> 31 === 1 ? -scale : scale;
      got++;
    }
    const ai = i * cols;
    for (let q = 0; q < nnz; q++) {
      const zt = targets[q]! * cols;
      const sg = signs[q]!;
      for (let j = 0; j < cols; j++) Z[zt + j]! += sg * A[ai + j]!;
    }
  }
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
  run: (a, [A]) =>
    f64Bytes(sparseSignSketch(requireAttrs(a), matrixView(A!, requireAttrs(a)), requireAttrs(a).s, STREAM_SPARSE_SIGN)),
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
  run: (a, [A]) => f64Bytes(sparseSignSketch(requireAttrs(a), matrixView(A!, requireAttrs(a)), 1, STREAM_COUNT_SKETCH)),
};
