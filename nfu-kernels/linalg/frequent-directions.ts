import { f64Bytes, f64Out, matrixView, type Attrs } from '../attrs.js';
import type { RunOptions } from '../backend.js';
import { KernelError, KernelErrorCode } from '../errors.js';
import { catalogued, type KernelConfig } from '../kernel.js';
import { asMatrix, type Matrix } from '../matrix.js';
import type { FloatArray } from '../native.js';
import { requireAttrs } from '../sketch/gaussian-sketch.js';

/**
 * Frequent Directions (Liberty 2013; Ghashami, Liberty, Phillips, Woodruff 2016), the variant with a 2ℓ-row
 * buffer: rows are appended to the sketch until 2ℓ rows are held, then the buffer is shrunk — its squared
 * singular values lowered by δ = σ_ℓ² — leaving at most ℓ − 1 non-zero rows. The sum Δ of the shifts bounds the
 * covariance error deterministically, ‖AᵀA − BᵀB‖₂ ≤ Δ ≤ ‖A − A_k‖_F² / (ℓ − k) for every k < ℓ, and two sketches
 * merge by stacking and shrinking (their Δ add up).
 *
 * State layout (float64, `4 + ℓ·cols` values): `[ℓ, cols, rows seen, Δ]`, then the ℓ sketch rows, row-major
 * (unused rows zero). An empty state is a fresh sketch. Pure JS (no BLAS): every backend gives the same bits.
 *
 * Idempotent: "rows seen" is the end of the source's row range the sketch has absorbed, and the attribute
 * `rowOffset` is the source index of the block's first row. Only rows at or beyond "rows seen" are absorbed,
 * so an update applied again (a retried attempt whose first run already wrote the state back, a hedge that
 * also completed) returns the state it was given, bit for bit. A block that starts beyond "rows seen" would
 * leave a gap and is refused. A fresh sketch starts at `rowOffset`.
 */

/** Values in an FD state of `ell` rows and `cols` columns. */
export function fdStateLength(ell: number, cols: number): number {
  return 4 + ell * cols;
}

/**
 * Eigen-decomposition of a symmetric `m × m` matrix (row-major, overwritten) by cyclic Jacobi rotations:
 * eigenvalues descending in `values`, eigenvectors as the rows of the returned array.
 */
export function jacobiEigen(S: Float64Array, m: number): { values: Float64Array; vectors: Float64Array } {
  const V = new Float64Array(m * m);
  for (let i = 0; i < m; i++) V[i * m + i] = 1;
  let total = 0;
  for (let i = 0; i < m * m; i++) total += S[i]! * S[i]!;
  for (let sweep = 0; sweep < 60; sweep++) {
    let off = 0;
    for (let p = 0; p < m; p++) for (let q = p + 1; q < m; q++) off += S[p * m + q]! * S[p * m + q]!;
    if (off <= 1e-30 * total || off === 0) break;
    for (let p = 0; p < m - 1; p++) {
      for (let q = p + 1; q < m; q++) {
        const apq = S[p * m + q]!;
        if (apq === 0) continue;
        const app = S[p * m + p]!;
        const aqq = S[q * m + q]!;
        const theta = (aqq - app) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let r = 0; r < m; r++) {
          const srp = S[r * m + p]!;
          const srq = S[r * m + q]!;
          S[r * m + p] = c * srp - s * srq;
          S[r * m + q] = s * srp + c * srq;
        }
        for (let r = 0; r < m; r++) {
          const spr = S[p * m + r]!;
          const sqr = S[q * m + r]!;
          S[p * m + r] = c * spr - s * sqr;
          S[q * m + r] = s * spr + c * sqr;
        }
        for (let r = 0; r < m; r++) {
          const vpr = V[p * m + r]!;
          const vqr = V[q * m + r]!;
          V[p * m + r] = c * vpr - s * vqr;
          V[q * m + r] = s * vpr + c * vqr;
        }
      }
    }
  }
  const order = Array.from({ length: m }, (_, i) => i).sort((a, b) => S[b * m + b]! - S[a * m + a]! || a - b);
  const values = new Float64Array(m);
  const vectors = new Float64Array(m * m);
  order.forEach((src, dst) => {
    values[dst] = S[src * m + src]!;
    vectors.set(V.subarray(src * m, src * m + m), dst * m);
  });
  return { values, vectors };
}

/**
 * Shrinks the first `m` rows of `buf` (`· × cols`, row-major) in place: B ← diag(√(max(λ_i − δ, 0)/λ_i))·UᵀB with
 * λ, U the eigenpairs of BBᵀ and δ = λ_ℓ (the ℓ-th largest, 1-based; 0 when m < ℓ). Returns δ; rows ≥ ℓ − 1 are
 * zero afterwards (rows ≥ m untouched).
 */
export function fdShrink(buf: Float64Array, m: number, cols: number, ell: number): number {
  const C = new Float64Array(m * m);
  for (let i = 0; i < m; i++) {
    for (let j = i; j < m; j++) {
      let s = 0;
      for (let c = 0; c < cols; c++) s += buf[i * cols + c]! * buf[j * cols + c]!;
      C[i * m + j] = s;
      C[j * m + i] = s;
    }
  }
  const { values, vectors } = jacobiEigen(C, m);
  const delta = m >= ell ? Math.max(0, values[ell - 1]!) : 0;
  const out = new Float64Array(m * cols);
  for (let i = 0; i < m; i++) {
    const lambda = values[i]!;
    if (!(lambda > delta) || lambda <= 0) continue;
    const scale = Math.sqrt((lambda - delta) / lambda);
    for (let j = 0; j < m; j++) {
      const u = vectors[i * m + j]! * scale;
      if (u === 0) continue;
      for (let c = 0; c < cols; c++) out[i * cols + c]! += u * buf[j * cols + c]!;
    }
  }
  buf.set(out, 0);
  return delta;
}

function badState(message: string): KernelError {
  return new KernelError(KernelErrorCode.SHAPE_MISMATCH, `invalid Frequent Directions state: ${message}`);
}

/** Rows of `buf` with a non-zero entry, moved to the front (order kept); returns their count. */
function compact(buf: Float64Array, m: number, cols: number): number {
  let n = 0;
  for (let i = 0; i < m; i++) {
    let any = false;
    for (let c = 0; c < cols && !any; c++) any = buf[i * cols + c] !== 0;
    if (!any) continue;
    if (n !== i) buf.copyWithin(n * cols, i * cols, (i + 1) * cols);
    n++;
  }
  buf.fill(0, n * cols, m * cols);
  return n;
}

/**
 * The FD state after appending the block's rows to `state` (empty: a fresh sketch of ℓ = `k` rows). The block's
 * row i is row `rowOffset` + i of the source; rows before the state's "rows seen" are already in the sketch and
 * are skipped (an update with nothing new returns a copy of `state`).
 * @throws KernelError NFU_ERR_SHAPE_MISMATCH when the state's header disagrees with `k`, `cols` or its length, or
 *   when the block starts beyond the rows the state has seen (a gap)
 */
export function fdUpdate(a: Attrs, state: Float64Array, A: FloatArray | Matrix, options: RunOptions = {}): Float64Array {
  const { rows, cols, k: ell } = a;
  const offset = a.rowOffset;
  const M = asMatrix(A, rows, cols);
  const n = fdStateLength(ell, cols);
  let seen = offset;
  let delta = 0;
  const buf = new Float64Array(2 * ell * cols);
  if (state.length !== 0) {
    if (state.length !== n) throw badState(`${state.length} values; ℓ = ${ell}, cols = ${cols} needs ${n}`);
    if (state[0] !== ell || state[1] !== cols)
      throw badState(`the header says ℓ = ${state[0]}, cols = ${state[1]}; the attributes say ${ell}, ${cols}`);
    seen = state[2]!;
    delta = state[3]!;
    if (!(Number.isSafeInteger(seen) && seen >= 0 && Number.isFinite(delta) && delta >= 0))
      throw badState(`rows seen ${seen} and Δ ${delta} must be a count and a finite non-negative number`);
    if (offset > seen)
      throw badState(`the block starts at row ${offset} but the sketch has seen rows up to ${seen} only (a gap)`);
    // Nothing new (the update was applied already): the state as it is.
    if (offset + rows <= seen) {
      const out = f64Out(options.out, n);
      out.set(state);
      return out;
    }
    buf.set(state.subarray(4), 0);
  }
  let m = compact(buf, ell, cols);
  // Rows the sketch already holds (a repeated or overlapping update) are skipped.
  for (let i = seen - offset; i < rows; i++) {
    if (m === 2 * ell) {
      delta += fdShrink(buf, m, cols, ell);
      m = compact(buf, m, cols);
    }
    const from = M.offset + i * M.ld;
    for (let c = 0; c < cols; c++) buf[m * cols + c] = M.data[from + c]!;
    m++;
  }
  if (m > ell) {
    delta += fdShrink(buf, m, cols, ell);
    m = compact(buf, m, cols);
  }
  const out = f64Out(options.out, n);
  out.fill(0);
  out[0] = ell;
  out[1] = cols;
  out[2] = offset + rows;
  out[3] = delta;
  out.set(buf.subarray(0, ell * cols), 4);
  return out;
}

export const fdUpdateKernel: KernelConfig = {
  ...catalogued('fd-update'),
  outputBytes: (a) => fdStateLength(requireAttrs(a).k, requireAttrs(a).cols) * 8,
  workBytes: (a) => {
    const { k, cols } = requireAttrs(a);
    return (4 * k * cols + 12 * k * k) * 8;
  },
  run: (a, [S, A], options) => {
    const at = requireAttrs(a);
    if (S!.byteLength % 8 !== 0) throw badState(`${S!.byteLength} bytes is not a whole number of float64 values`);
    const aligned = S!.byteOffset % 8 === 0 ? S! : S!.slice();
    const state = new Float64Array(aligned.buffer, aligned.byteOffset, S!.byteLength / 8);
    return f64Bytes(fdUpdate(at, state, matrixView(A!, at), options));
  },
};
