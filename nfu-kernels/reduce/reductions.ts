import { f64Bytes, f64Out, matrixView, type Attrs } from '../attrs.js';
import type { KernelConfig } from '../kernel.js';
import { requireAttrs } from '../sketch/gaussian-sketch.js';
import { blasTarget, nativeBlas, nativePanelRows } from '../native.js';
import { PANEL_ROWS, workspace } from '../wasm/gemm.js';

/** G = AᵀA: `cols × cols` float64 (symmetric; additive over row blocks). */
export function gram(a: Attrs, A: Float32Array | Float64Array, out?: Uint8Array): Float64Array {
  const { rows, cols } = a;
  const blas = nativeBlas();
  if (blas !== undefined) {
    // SYRK panel by panel on the block where it lies (upper triangle, mirrored: exactly symmetric).
    const G = blasTarget(out, a.dtype, cols * cols, 'gram32');
    G.work.fill(0);
    const R = nativePanelRows(cols * cols);
    for (let r0 = 0; r0 < rows; r0 += R) {
      const n = Math.min(R, rows - r0);
      blas.syrk(cols, n, A.subarray(r0 * cols, (r0 + n) * cols), cols, 1, G.work, cols);
    }
    return G.finish();
  }
  // Workspace: G (cols·cols) | A panel (R·cols); G += panelᵀ·panel.
  const R = PANEL_ROWS;
  const aAt = cols * cols;
  const { view: h, gemm } = workspace().precision(a.dtype, aAt + R * cols);
  h.fill(0, 0, cols * cols);
  for (let r0 = 0; r0 < rows; r0 += R) {
    const n = Math.min(R, rows - r0);
    h.set(A.subarray(r0 * cols, (r0 + n) * cols), aAt);
    gemm(cols, cols, n, aAt, 1, cols, aAt, cols, 0, cols);
  }
  const G = f64Out(out, cols * cols);
  G.set(h.subarray(0, cols * cols));
  // Exact symmetry whatever the summation order of the two halves.
  for (let p = 0; p < cols; p++) for (let q = 0; q < p; q++) G[p * cols + q] = G[q * cols + p]!;
  return G;
}

/**
 * Column statistics of a block, `6 × cols` float64, rows: count, sum, sum of squares, min, max,
 * sum of squared deviations from the block mean (for a stable pooled variance). Combine blocks
 * with Chan et al.'s parallel formula; means, variances and norms follow.
 */
export function columnStats(a: Attrs, A: Float32Array | Float64Array): Float64Array {
  const { rows, cols } = a;
  const out = new Float64Array(6 * cols);
  for (let j = 0; j < cols; j++) {
    out[3 * cols + j] = rows === 0 ? Number.NaN : Number.POSITIVE_INFINITY;
    out[4 * cols + j] = rows === 0 ? Number.NaN : Number.NEGATIVE_INFINITY;
    out[j] = rows;
  }
  for (let i = 0; i < rows; i++) {
    const ai = i * cols;
    for (let j = 0; j < cols; j++) {
      const v = A[ai + j]!;
      out[cols + j]! += v;
      out[2 * cols + j]! += v * v;
      if (v < out[3 * cols + j]!) out[3 * cols + j] = v;
      if (v > out[4 * cols + j]!) out[4 * cols + j] = v;
    }
  }
  for (let i = 0; i < rows; i++) {
    const ai = i * cols;
    for (let j = 0; j < cols; j++) {
      const d = A[ai + j]! - out[cols + j]! / rows;
      out[5 * cols + j]! += d * d;
    }
  }
  return out;
}

/** C = Aᵀ·B for a supplied B (`rows × k`, same dtype): `cols × k` float64 (power iterations). */
export function atb(a: Attrs, A: Float32Array | Float64Array, B: Float32Array | Float64Array, out?: Uint8Array): Float64Array {
  const { rows, cols, k } = a;
  const blas = nativeBlas();
  if (blas !== undefined) {
    const C = blasTarget(out, a.dtype, cols * k, 'atb32');
    C.work.fill(0);
    const R = nativePanelRows(cols * k);
    for (let r0 = 0; r0 < rows; r0 += R) {
      const n = Math.min(R, rows - r0);
      const Ap = A.subarray(r0 * cols, (r0 + n) * cols);
      blas.gemm(true, false, cols, k, n, Ap, cols, B.subarray(r0 * k, (r0 + n) * k), k, 1, C.work, k);
    }
    return C.finish();
  }
  // Workspace: C (cols·k) | A panel (R·cols) | B panel (R·k); C += Aᵀ·B panel by panel.
  const R = PANEL_ROWS;
  const aAt = cols * k;
  const bAt = aAt + R * cols;
  const { view: h, gemm } = workspace().precision(a.dtype, bAt + R * k);
  h.fill(0, 0, cols * k);
  for (let r0 = 0; r0 < rows; r0 += R) {
    const n = Math.min(R, rows - r0);
    h.set(A.subarray(r0 * cols, (r0 + n) * cols), aAt);
    h.set(B.subarray(r0 * k, (r0 + n) * k), bAt);
    gemm(cols, k, n, aAt, 1, cols, bAt, k, 0, k);
  }
  const C = f64Out(out, cols * k);
  C.set(h.subarray(0, cols * k));
  return C;
}

export const gramKernel: KernelConfig = {
  opcode: 48,
  name: 'gram',
  rowSplit: 'sum',
  inputRowElements: (a) => [a.cols],
  summary: 'G = AᵀA; output cols×cols float64, additive over row blocks',
  inputs: ['A'],
  takesAttrs: true,
  outputBytes: (a) => requireAttrs(a).cols ** 2 * 8,
  run: (a, [A], out) => f64Bytes(gram(requireAttrs(a), matrixView(A!, requireAttrs(a)), out)),
};

export const columnStatsKernel: KernelConfig = {
  opcode: 49,
  name: 'column-stats',
  summary: 'per column: count, Σx, Σx², min, max, Σ(x−mean)²; output 6×cols float64',
  inputs: ['A'],
  takesAttrs: true,
  outputBytes: (a) => 6 * requireAttrs(a).cols * 8,
  run: (a, [A]) => f64Bytes(columnStats(requireAttrs(a), matrixView(A!, requireAttrs(a)))),
};

export const atbKernel: KernelConfig = {
  opcode: 50,
  name: 'atb',
  rowSplit: 'sum',
  inputRowElements: (a) => [a.cols, a.k],
  summary: 'C = Aᵀ·B, B rows×k; output cols×k float64, additive over row blocks',
  inputs: ['A', 'B'],
  takesAttrs: true,
  outputBytes: (a) => requireAttrs(a).cols * requireAttrs(a).k * 8,
  run: (a, [A, B], out) => {
    const at = requireAttrs(a);
    return f64Bytes(atb(at, matrixView(A!, at), matrixView(B!, at, at.rows, at.k, 'B'), out));
  },
};
