import { createHash } from 'node:crypto';
import { invalidArgument } from './errors.js';
import { CholeskyDecomposition, Matrix, inverse } from 'ml-matrix';
import { FLOAT64_UNIT_ROUNDOFF, gamma } from './rounding.js';
import { frobeniusNorm, symmetricEigenvalues } from './symmetric-eigen.js';
import type { BlockSummary, ScatterReference } from './types.js';

/** Widest block whose Gram spectrum `summarizeBlock` records by default. */
export const DEFAULT_SPECTRUM_MAX_COLS = 64;

/**
 * Widest block whose exact centred scatter `summarizeBlock` records by default ({@link BlockSummary.exactScatter}):
 * cols·(cols + 1)/2 numbers per block, 528 at this width.
 */
export const EXACT_SCATTER_MAX_COLS = 32;

/**
 * The ingest summary of a row block `A_b` (rows × cols, row-major): column sums, column sums of squares,
 * ‖A_b‖_F², max |entry| and the SHA-256 of its bytes.
 *
 * With `spectrum` (default: when cols ≤ {@link DEFAULT_SPECTRUM_MAX_COLS}) it also records the extreme eigenvalues
 * of the centred scatter A_bᵀA_b − s sᵀ/n_b (O(rows·cols²) more work), which tighten Gram bounds for missing blocks.
 *
 * With `reference` (a dataset's {@link ScatterReference} of `cols` columns) it also records how far the centred
 * scatter is from tr(K_b)·Ref (see {@link attachScatterRadius}).
 *
 * With `exactScatter` (default: when cols ≤ {@link EXACT_SCATTER_MAX_COLS}) it records the centred scatter K_b
 * itself, packed ({@link BlockSummary.exactScatter}).
 *
 * @param data - the block, row-major, `rows · cols` elements (float64 or float32 as stored)
 * @throws CoordinatorError `COORD_E_INVALID_ARGUMENT` if the shape does not match the data or an entry is not
 *   finite, or the reference has another number of columns
 * @example
 * summarizeBlock(new Float64Array([1, 2, 3, 4]), 2, 2).colSums // Float64Array [4, 6]
 */
export function summarizeBlock(
  data: Float64Array | Float32Array,
  rows: number,
  cols: number,
  options: { spectrum?: boolean; reference?: ScatterReference; exactScatter?: boolean } = {},
): BlockSummary {
  if (options.reference !== undefined && options.reference.cols !== cols)
    throw invalidArgument('options.reference.cols', `${cols}`, options.reference.cols);
  if (!Number.isInteger(rows) || rows < 0) throw invalidArgument('rows', 'a non-negative integer', rows);
  if (!Number.isInteger(cols) || cols < 1) throw invalidArgument('cols', 'a positive integer', cols);
  if (data.length !== rows * cols) throw invalidArgument('data.length', `rows · cols = ${rows * cols}`, data.length);
  const colSums = new Float64Array(cols);
  const colSumSq = new Float64Array(cols);
  let maxAbs = 0;
  for (let i = 0; i < rows; i++) {
    const base = i * cols;
    for (let j = 0; j < cols; j++) {
      const v = data[base + j]!;
      if (!Number.isFinite(v)) throw invalidArgument(`data[${base + j}]`, 'finite', v);
      colSums[j]! += v;
      colSumSq[j]! += v * v;
      const a = Math.abs(v);
      if (a > maxAbs) maxAbs = a;
    }
  }
  let frob2 = 0;
  for (let j = 0; j < cols; j++) frob2 += colSumSq[j]!;
  const hash = createHash('sha256')
    .update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
    .digest('hex');
  const summary: BlockSummary = { rows, cols, colSums, colSumSq, frob2, maxAbs, hash };
  const spectrum = options.spectrum ?? cols <= DEFAULT_SPECTRUM_MAX_COLS;
  const exact = options.exactScatter ?? cols <= EXACT_SCATTER_MAX_COLS;
  if (spectrum || exact || options.reference !== undefined) {
    const gram = scatterOf(data, rows, cols, colSums);
    if (exact) summary.exactScatter = packScatter(gram, cols);
    if (options.reference !== undefined) attachScatterRadius(summary, gram, options.reference);
    if (!spectrum) return summary;
    const eig = symmetricEigenvalues(gram, cols);
    // Jacobi is accurate to a few ulps of ‖K‖_F ≤ frob2: widen by that so the values stay bounds.
    const slack = 1e-12 * frob2;
    summary.scatterEigMax = Math.min(frob2, Math.max(0, eig[cols - 1]! + slack));
    summary.scatterEigMin = Math.min(summary.scatterEigMax, Math.max(0, eig[0]! - slack));
  }
  return summary;
}

/** K = AᵀA − s sᵀ/n (s = column sums), symmetric, row-major, float64 accumulation. */
function scatterOf(data: ArrayLike<number>, rows: number, cols: number, colSums: Float64Array): Float64Array {
  const gram = new Float64Array(cols * cols);
  for (let i = 0; i < rows; i++) {
    const base = i * cols;
    for (let j = 0; j < cols; j++) {
      const v = data[base + j]!;
      if (v === 0) continue;
      for (let k = j; k < cols; k++) gram[j * cols + k]! += v * data[base + k]!;
    }
  }
  for (let j = 0; j < cols; j++) {
    for (let k = j; k < cols; k++) {
      const v = gram[j * cols + k]! - (rows > 0 ? (colSums[j]! * colSums[k]!) / rows : 0);
      gram[j * cols + k] = v;
      gram[k * cols + j] = v;
    }
  }
  return gram;
}

/** Length of a packed upper triangle of a cols × cols symmetric matrix: cols·(cols + 1)/2. */
export function packedLength(cols: number): number {
  return (cols * (cols + 1)) / 2;
}

/** The upper triangle of a symmetric cols × cols row-major matrix, packed row by row. */
export function packScatter(full: ArrayLike<number>, cols: number): Float64Array {
  const out = new Float64Array(packedLength(cols));
  let q = 0;
  for (let j = 0; j < cols; j++) for (let k = j; k < cols; k++) out[q++] = full[j * cols + k]!;
  return out;
}

/** The full symmetric cols × cols row-major matrix of a packed upper triangle ({@link packScatter}). */
export function unpackScatter(packed: ArrayLike<number>, cols: number): Float64Array {
  const out = new Float64Array(cols * cols);
  let q = 0;
  for (let j = 0; j < cols; j++)
    for (let k = j; k < cols; k++) {
      const v = packed[q++]!;
      out[j * cols + k] = v;
      out[k * cols + j] = v;
    }
  return out;
}

/**
 * A block's Gram A_bᵀA_b from its summary's exact scatter: K_b + s_b s_bᵀ/n_b (cols × cols, row-major), with
 * `error` ≥ its distance to the exact Gram of the stored values in the spectral (indeed Frobenius) norm: K_b's
 * entries are sums of n_b products less s_js_k/n_b (Higham 2002, Lemma 3.1: |ΔK| ≤ γ_{n_b+3}(|A_b|ᵀ|A_b| +
 * |s||s|ᵀ/n_b) entrywise, Frobenius ≤ 2γ_{n_b+3}·frob2 as ‖s‖²/n_b ≤ frob2), adding s_js_k/n_b back rounds by
 * ≤ γ_3(|K_jk| + |s_js_k|/n_b) (Frobenius ≤ γ_3·(‖K‖_F + frob2) ≤ 2γ_3·frob2 to first order). Undefined without
 * an exact scatter.
 */
export function exactGramOf(s: BlockSummary): { gram: Float64Array; error: number } | undefined {
  if (s.exactScatter === undefined) return undefined;
  const d = s.cols;
  const gram = unpackScatter(s.exactScatter, d);
  if (s.rows > 0)
    for (let j = 0; j < d; j++) for (let k = 0; k < d; k++) gram[j * d + k]! += (s.colSums[j]! * s.colSums[k]!) / s.rows;
  const error = (2 * gamma(s.rows + 3) + 3 * gamma(3)) * s.frob2 * 1.01;
  return { gram, error };
}

/**
 * The centred scatter K = AᵀA − s sᵀ/n of a block (s = column sums), cols × cols, row-major.
 * @throws CoordinatorError `COORD_E_INVALID_ARGUMENT` if the shape does not match the data
 */
export function centredScatter(data: Float64Array | Float32Array, rows: number, cols: number): Float64Array {
  if (!Number.isInteger(rows) || rows < 0) throw invalidArgument('rows', 'a non-negative integer', rows);
  if (!Number.isInteger(cols) || cols < 1) throw invalidArgument('cols', 'a positive integer', cols);
  if (data.length !== rows * cols) throw invalidArgument('data.length', `rows · cols = ${rows * cols}`, data.length);
  const colSums = new Float64Array(cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) colSums[j]! += data[i * cols + j]!;
  return scatterOf(data, rows, cols, colSums);
}

/**
 * A dataset's reference scatter from a symmetric positive semidefinite matrix (e.g. the sum of the first
 * blocks' {@link centredScatter}s): symmetrised and scaled to trace 1, with its id (SHA-256 of the float64 bytes).
 * Any reference gives valid bounds; one close to the blocks' typical scatter gives tight ones.
 * @throws CoordinatorError `COORD_E_INVALID_ARGUMENT` for a wrong length, a non-finite entry or a trace ≤ 0
 */
export function makeScatterReference(matrix: ArrayLike<number>, cols: number): ScatterReference {
  if (!Number.isInteger(cols) || cols < 1) throw invalidArgument('cols', 'a positive integer', cols);
  if (matrix.length !== cols * cols) throw invalidArgument('matrix.length', `cols² = ${cols * cols}`, matrix.length);
  let trace = 0;
  for (let k = 0; k < matrix.length; k++)
    if (!Number.isFinite(matrix[k]!)) throw invalidArgument(`matrix[${k}]`, 'finite', matrix[k]);
  for (let j = 0; j < cols; j++) trace += matrix[j * cols + j]!;
  if (!(trace > 0)) throw invalidArgument('matrix trace', '> 0', trace);
  const m = new Float64Array(cols * cols);
  for (let j = 0; j < cols; j++) {
    for (let k = 0; k < cols; k++) m[j * cols + k] = (0.5 * (matrix[j * cols + k]! + matrix[k * cols + j]!)) / trace;
  }
  return { id: referenceId(m), cols, matrix: m };
}

function referenceId(m: Float64Array): string {
  return createHash('sha256')
    .update(new Uint8Array(m.buffer, m.byteOffset, m.byteLength))
    .digest('hex');
}

/** tr K_b of a block from its summary: frob2 − ‖s_b‖²/n_b (≥ 0); the centre of its scatter ball is this times Ref. */
export function scatterTrace(s: BlockSummary): number {
  let s2 = 0;
  for (let j = 0; j < s.cols; j++) s2 += s.colSums[j]! * s.colSums[j]!;
  return Math.max(0, s.frob2 - (s.rows > 0 ? s2 / s.rows : 0));
}

/** Default regularisation of the reference in {@link attachScatterRadius}'s relative bound: τ = this · tr(Ref)/d. */
export const DEFAULT_SCATTER_RHO_TAU = 1e-6;

/**
 * Records on `summary` (and returns it) how far the block's centred scatter `scatter` (from
 * {@link centredScatter}) is from tr(K_b)·Ref, in two ways:
 * - the radius of the ball around tr(K_b)·Ref: ‖K_b − tr(K_b)·Ref‖₂ by Jacobi, widened by the solver's accuracy
 *   and by 10⁻⁹·frob2 for the rounding of K_b and of tr(K_b) in any summation order (`scatterRadius`);
 * - the relative (Loewner) bound K_b − tr(K_b)·Ref ⪯ ρ·(Ref + τI), τ = `options.tau` (default
 *   {@link DEFAULT_SCATTER_RHO_TAU}·tr(Ref)/d): ρ = λ_max of the deviation whitened by the regularised reference,
 *   widened so that the inequality holds for the exact K_b (`scatterRho`, `scatterRhoTau`; see {@link scatterRho}).
 * @throws CoordinatorError `COORD_E_INVALID_ARGUMENT` for a reference or scatter of another size, or τ ≤ 0
 */
export function attachScatterRadius(
  summary: BlockSummary,
  scatter: ArrayLike<number>,
  reference: ScatterReference,
  options: { tau?: number } = {},
): BlockSummary {
  const d = summary.cols;
  if (reference.cols !== d) throw invalidArgument('reference.cols', `${d}`, reference.cols);
  if (scatter.length !== d * d) throw invalidArgument('scatter.length', `${d * d}`, scatter.length);
  const tau = options.tau ?? DEFAULT_SCATTER_RHO_TAU / d;
  if (!(tau > 0) || !Number.isFinite(tau)) throw invalidArgument('options.tau', 'finite and > 0', tau);
  const t = scatterTrace(summary);
  const diff = new Float64Array(d * d);
  for (let k = 0; k < diff.length; k++) diff[k] = scatter[k]! - t * reference.matrix[k]!;
  const eig = symmetricEigenvalues(diff, d);
  const norm = Math.max(Math.abs(eig[0]!), Math.abs(eig[d - 1]!));
  if (!Number.isFinite(norm)) throw invalidArgument('scatter', 'finite', norm);
  let f2 = 0;
  for (const v of diff) f2 += v * v;
  summary.scatterRadius = norm + 1e-12 * Math.sqrt(f2) + 1e-9 * summary.frob2;
  summary.scatterReference = reference;
  let k2 = 0;
  for (let k = 0; k < diff.length; k++) k2 += scatter[k]! * scatter[k]!;
  let r2 = 0;
  for (const v of reference.matrix) r2 += v * v;
  // Absolute error of the computed deviation against the exact K_b − t·Ref: the rounding of K_b's entries (sums of
  // n products, and the mean correction: ≤ 4γ_{n+4}·frob2 in Frobenius norm, |s_j| ≤ √(n·colSumSq_j)) and of the
  // subtraction (≤ 2u(‖K̂‖_F + t‖Ref‖_F)).
  const u = FLOAT64_UNIT_ROUNDOFF;
  const absError = (4 * gamma(summary.rows + 4) * summary.frob2 + 2 * u * (Math.sqrt(k2) + t * Math.sqrt(r2))) * 1.01;
  const rho = scatterRho(diff, reference.matrix, d, tau, absError);
  if (rho === undefined) {
    delete summary.scatterRho;
    delete summary.scatterRhoTau;
  } else {
    summary.scatterRho = rho;
    summary.scatterRhoTau = tau;
  }
  return summary;
}

/**
 * The smallest ρ ≥ 0 this computation can certify with D_exact ⪯ ρ·(Ref + τI), for a symmetric d × d deviation
 * `diff` known to within `absError` in spectral norm. With W = L⁻¹ as computed (L the Cholesky factor of
 * R = Ref + τI; W is some invertible matrix, exactly), D ⪯ ρR ⟺ WDWᵀ ⪯ ρ·WRWᵀ, so ρ = max(0, λ_max(WDWᵀ)) /
 * λ_min(WRWᵀ) suffices. Both products and their eigenvalues are computed in floating point, and widened: the
 * products by γ_{2d+2}‖W‖_F²‖·‖_F (|fl(WXWᵀ) − WXWᵀ| ≤ γ|W||X||W|ᵀ), Jacobi by 10⁻¹²‖·‖_F, and the error of `diff`
 * by absError·‖W‖₂² ≤ absError·‖W‖_F². Undefined when R is not numerically positive definite.
 */
export function scatterRho(
  diff: ArrayLike<number>,
  ref: ArrayLike<number>,
  d: number,
  tau: number,
  absError = 0,
): number | undefined {
  const R = new Float64Array(d * d);
  for (let i = 0; i < d; i++)
    for (let j = 0; j < d; j++) R[i * d + j] = 0.5 * (ref[i * d + j]! + ref[j * d + i]!) + (i === j ? tau : 0);
  // W = L⁻¹, L the Cholesky factor of R = LLᵀ.
  const chol = new CholeskyDecomposition(
    new Matrix(Array.from({ length: d }, (_, i) => Array.from(R.subarray(i * d, i * d + d)))),
  );
  if (!chol.isPositiveDefinite()) return undefined;
  const W = Float64Array.from(inverse(chol.lowerTriangularMatrix).to1DArray());
  // L⁻¹ is lower triangular; the products below read only that part, so the computed W is exactly this
  // lower triangle (any invertible W certifies ρ; this one makes it tight).
  for (let i = 0; i < d; i++) W.fill(0, i * d + i + 1, i * d + d);
  let w2 = 0;
  for (const v of W) w2 += v * v;
  if (!Number.isFinite(w2)) return undefined;
  const congruence = (X: ArrayLike<number>): { M: Float64Array; xF: number } => {
    const XW = new Float64Array(d * d); // X·Wᵀ
    for (let i = 0; i < d; i++)
      for (let j = 0; j < d; j++) {
        let v = 0;
        for (let k = 0; k <= j; k++) v += X[i * d + k]! * W[j * d + k]!;
        XW[i * d + j] = v;
      }
    const M = new Float64Array(d * d);
    for (let i = 0; i < d; i++)
      for (let j = i; j < d; j++) {
        let v = 0;
        for (let k = 0; k <= i; k++) v += W[i * d + k]! * XW[k * d + j]!;
        M[i * d + j] = v;
        M[j * d + i] = v;
      }
    return { M, xF: frobeniusNorm(X) };
  };
  const u = FLOAT64_UNIT_ROUNDOFF;
  const g = gamma(2 * d + 2);
  const T = congruence(diff);
  const S = congruence(R);
  const eT = symmetricEigenvalues(T.M, d);
  const eS = symmetricEigenvalues(S.M, d);
  const top = eT[d - 1]! + 1e-12 * frobeniusNorm(T.M) + g * w2 * T.xF * 1.01 + absError * w2 * 1.01;
  const bottom = eS[0]! - 1e-12 * frobeniusNorm(S.M) - g * w2 * S.xF * 1.01;
  if (!(bottom > 0) || !Number.isFinite(top)) return undefined;
  return (Math.max(0, top) / bottom) * (1 + 4 * u);
}

/** JSON form of a {@link ScatterReference}. */
export interface ScatterReferenceJson {
  id: string;
  cols: number;
  matrix: number[];
}

export function scatterReferenceToJson(r: ScatterReference): ScatterReferenceJson {
  return { id: r.id, cols: r.cols, matrix: Array.from(r.matrix) };
}

/**
 * Parses a reference and checks it: cols², finite, symmetric, trace 1 (to rounding), and its id the SHA-256 of
 * its float64 bytes (so a reference altered in transit is refused rather than trusted).
 * @throws CoordinatorError `COORD_E_INVALID_ARGUMENT` naming the field
 */
export function scatterReferenceFromJson(json: unknown, name = 'scatterReference'): ScatterReference {
  if (typeof json !== 'object' || json === null) throw invalidArgument(name, 'an object', json);
  const o = json as Record<string, unknown>;
  const cols = o['cols'];
  if (typeof cols !== 'number' || !Number.isInteger(cols) || cols < 1)
    throw invalidArgument(`${name}.cols`, 'a positive integer', cols);
  const v = o['matrix'];
  if (!Array.isArray(v) || v.length !== cols * cols || !v.every((x) => typeof x === 'number' && Number.isFinite(x)))
    throw invalidArgument(`${name}.matrix`, `${cols * cols} finite numbers`, Array.isArray(v) ? v.length : v);
  const m = Float64Array.from(v as number[]);
  let trace = 0;
  for (let j = 0; j < cols; j++) {
    trace += m[j * cols + j]!;
    for (let k = j + 1; k < cols; k++)
      if (m[j * cols + k] !== m[k * cols + j]) throw invalidArgument(`${name}.matrix`, 'symmetric', `[${j}][${k}]`);
  }
  if (!(Math.abs(trace - 1) <= 1e-9)) throw invalidArgument(`${name}.matrix`, 'trace 1', trace);
  const id = referenceId(m);
  if (o['id'] !== id) throw invalidArgument(`${name}.id`, `the SHA-256 of its matrix (${id})`, o['id']);
  return { id, cols, matrix: m };
}

/** JSON form of a {@link BlockSummary} (arrays instead of typed arrays), for exNodes and files. */
export interface BlockSummaryJson {
  rows: number;
  cols: number;
  colSums: number[];
  colSumSq: number[];
  frob2: number;
  maxAbs: number;
  hash: string;
  scatterEigMax?: number;
  scatterEigMin?: number;
  scatterRadius?: number;
  /** The id of the summary's {@link ScatterReference} (the matrix travels once per dataset). */
  scatterReference?: string;
  scatterRho?: number;
  scatterRhoTau?: number;
  /** The exact centred scatter, packed upper triangle (see {@link BlockSummary.exactScatter}). */
  exactScatter?: number[];
}

/** Plain-JSON form of a summary. */
export function summaryToJson(s: BlockSummary): BlockSummaryJson {
  return {
    rows: s.rows,
    cols: s.cols,
    colSums: Array.from(s.colSums),
    colSumSq: Array.from(s.colSumSq),
    frob2: s.frob2,
    maxAbs: s.maxAbs,
    hash: s.hash,
    ...(s.scatterEigMax === undefined ? {} : { scatterEigMax: s.scatterEigMax }),
    ...(s.scatterEigMin === undefined ? {} : { scatterEigMin: s.scatterEigMin }),
    ...(s.scatterRadius === undefined || s.scatterReference === undefined
      ? {}
      : { scatterRadius: s.scatterRadius, scatterReference: s.scatterReference.id }),
    ...(s.scatterRho === undefined || s.scatterRhoTau === undefined || s.scatterReference === undefined
      ? {}
      : { scatterRho: s.scatterRho, scatterRhoTau: s.scatterRhoTau }),
    ...(s.exactScatter === undefined ? {} : { exactScatter: Array.from(s.exactScatter) }),
  };
}

/**
 * Parses and validates a summary from JSON (see {@link validateSummary}). A `scatterRadius` (and a `scatterRho`
 * with its `scatterRhoTau`) is kept only when its `scatterReference` id is one of `references` (the dataset's);
 * otherwise they are dropped, which only loosens bounds.
 * @throws CoordinatorError `COORD_E_INVALID_ARGUMENT` naming the field
 */
export function summaryFromJson(json: unknown, name = 'summary', references: readonly ScatterReference[] = []): BlockSummary {
  if (typeof json !== 'object' || json === null) throw invalidArgument(name, 'an object', json);
  const o = json as Record<string, unknown>;
  const numbers = (field: string): Float64Array => {
    const v = o[field];
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'number')) {
      throw invalidArgument(`${name}.${field}`, 'an array of numbers', v);
    }
    return Float64Array.from(v as number[]);
  };
  const s: BlockSummary = {
    rows: o['rows'] as number,
    cols: o['cols'] as number,
    colSums: numbers('colSums'),
    colSumSq: numbers('colSumSq'),
    frob2: o['frob2'] as number,
    maxAbs: o['maxAbs'] as number,
    hash: o['hash'] as string,
  };
  if (o['exactScatter'] !== undefined) s.exactScatter = numbers('exactScatter');
  if (o['scatterEigMax'] !== undefined) s.scatterEigMax = o['scatterEigMax'] as number;
  if (o['scatterEigMin'] !== undefined) s.scatterEigMin = o['scatterEigMin'] as number;
  const reference = references.find((r) => r.id === o['scatterReference']);
  if (o['scatterRadius'] !== undefined && reference !== undefined) {
    s.scatterRadius = o['scatterRadius'] as number;
    s.scatterReference = reference;
    if (o['scatterRho'] !== undefined || o['scatterRhoTau'] !== undefined) {
      s.scatterRho = o['scatterRho'] as number;
      s.scatterRhoTau = o['scatterRhoTau'] as number;
    }
  }
  validateSummary(s, name);
  return s;
}

/**
 * Checks a summary's invariants: non-negative integer rows, positive cols, vectors of length cols, finite
 * values, non-negative sums of squares, `frob2 ≈ Σ colSumSq`, `maxAbs ≥ 0`, a 64-hex-digit hash.
 * @throws CoordinatorError `COORD_E_INVALID_ARGUMENT` naming the field, the rule and the value
 */
export function validateSummary(s: BlockSummary, name = 'summary'): void {
  if (!Number.isInteger(s.rows) || s.rows < 0) throw invalidArgument(`${name}.rows`, 'a non-negative integer', s.rows);
  if (!Number.isInteger(s.cols) || s.cols < 1) throw invalidArgument(`${name}.cols`, 'a positive integer', s.cols);
  for (const field of ['colSums', 'colSumSq'] as const) {
    const v = s[field];
    if (!(v instanceof Float64Array) || v.length !== s.cols) {
      throw invalidArgument(`${name}.${field}`, `a Float64Array of length ${s.cols}`, v?.length);
    }
    for (let j = 0; j < v.length; j++) {
      if (!Number.isFinite(v[j]!) || (field === 'colSumSq' && v[j]! < 0)) {
        throw invalidArgument(`${name}.${field}[${j}]`, field === 'colSumSq' ? 'finite and ≥ 0' : 'finite', v[j]);
      }
    }
  }
  if (!Number.isFinite(s.frob2) || s.frob2 < 0) throw invalidArgument(`${name}.frob2`, 'finite and ≥ 0', s.frob2);
  let total = 0;
  for (let j = 0; j < s.cols; j++) total += s.colSumSq[j]!;
  if (Math.abs(total - s.frob2) > 1e-9 * Math.max(1, total)) {
    throw invalidArgument(`${name}.frob2`, `Σ colSumSq = ${total}`, s.frob2);
  }
  if (!Number.isFinite(s.maxAbs) || s.maxAbs < 0) throw invalidArgument(`${name}.maxAbs`, 'finite and ≥ 0', s.maxAbs);
  if (s.scatterEigMax !== undefined || s.scatterEigMin !== undefined) {
    const hi = s.scatterEigMax;
    const lo = s.scatterEigMin;
    if (typeof hi !== 'number' || !(hi >= 0 && hi <= s.frob2 * (1 + 1e-9))) {
      throw invalidArgument(`${name}.scatterEigMax`, `a number in [0, frob2 = ${s.frob2}]`, hi);
    }
    if (typeof lo !== 'number' || !(lo >= 0 && lo <= hi))
      throw invalidArgument(`${name}.scatterEigMin`, `a number in [0, ${hi}]`, lo);
  }
  if (typeof s.hash !== 'string' || !/^[0-9a-f]{64}$/.test(s.hash)) {
    throw invalidArgument(`${name}.hash`, '64 lower-case hex digits', s.hash);
  }
  if (s.scatterRadius !== undefined || s.scatterReference !== undefined) {
    const r = s.scatterRadius;
    if (typeof r !== 'number' || !(r >= 0) || !Number.isFinite(r))
      throw invalidArgument(`${name}.scatterRadius`, 'finite and ≥ 0, with a scatterReference', r);
    const ref = s.scatterReference;
    if (
      ref === undefined ||
      ref.cols !== s.cols ||
      !(ref.matrix instanceof Float64Array) ||
      ref.matrix.length !== s.cols * s.cols
    )
      throw invalidArgument(`${name}.scatterReference`, `a reference of ${s.cols} columns`, ref?.cols);
  }
  if (s.exactScatter !== undefined) validateExactScatter(s, name);
  if (s.scatterRho !== undefined || s.scatterRhoTau !== undefined) {
    const rho = s.scatterRho;
    const tau = s.scatterRhoTau;
    if (typeof rho !== 'number' || !(rho >= 0) || !Number.isFinite(rho))
      throw invalidArgument(`${name}.scatterRho`, 'finite and ≥ 0, with a scatterRhoTau', rho);
    if (typeof tau !== 'number' || !(tau > 0) || !Number.isFinite(tau))
      throw invalidArgument(`${name}.scatterRhoTau`, 'finite and > 0, with a scatterRho', tau);
    if (s.scatterReference === undefined)
      throw invalidArgument(`${name}.scatterReference`, 'present with a scatterRho', undefined);
  }
}

/**
 * An exact scatter must be cols·(cols + 1)/2 finite numbers (a packed upper triangle: symmetric by construction),
 * its diagonal the one the column sums and sums of squares give (K_jj = colSumSq_j − s_j²/n_b, to rounding) and
 * every entry within the PSD limit |K_jk| ≤ √(K_jj·K_kk) (to rounding): a scatter that does not belong to this
 * summary's block is refused rather than trusted.
 */
function validateExactScatter(s: BlockSummary, name: string): void {
  const v = s.exactScatter;
  const d = s.cols;
  const field = `${name}.exactScatter`;
  if (!(v instanceof Float64Array) || v.length !== packedLength(d))
    throw invalidArgument(field, `a Float64Array of length cols·(cols + 1)/2 = ${packedLength(d)}`, v?.length);
  for (let q = 0; q < v.length; q++) if (!Number.isFinite(v[q]!)) throw invalidArgument(`${field}[${q}]`, 'finite', v[q]);
  // Rounding of K_jj and of colSumSq_j − s_j²/n_b (each ≤ γ_{n+3}·colSumSq_j, loosely).
  const tol = (j: number): number => 1e-9 * s.colSumSq[j]! + 1e-300;
  const diag = new Float64Array(d);
  let q = 0;
  for (let j = 0; j < d; j++) {
    diag[j] = v[q]!;
    const expected = s.colSumSq[j]! - (s.rows > 0 ? (s.colSums[j]! * s.colSums[j]!) / s.rows : 0);
    if (!(Math.abs(v[q]! - expected) <= tol(j)))
      throw invalidArgument(
        `${field}[${q}]`,
        `colSumSq[${j}] − colSums[${j}]²/rows = ${expected} (the diagonal of the scatter)`,
        v[q],
      );
    q += d - j;
  }
  q = 0;
  for (let j = 0; j < d; j++)
    for (let k = j; k < d; k++, q++) {
      const limit = Math.sqrt(Math.max(0, diag[j]!) * Math.max(0, diag[k]!)) + tol(j) + tol(k);
      if (k > j && !(Math.abs(v[q]!) <= limit))
        throw invalidArgument(
          `${field}[${q}]`,
          `at most √(K_${j}${j}·K_${k}${k}) = ${limit} in magnitude (positive semidefinite)`,
          v[q],
        );
    }
}

/**
 * Bounds on the centred scatter K_b = A_bᵀA_b − s_b s_bᵀ/n_b of a block from its summary: λ_max(K_b) (recorded,
 * else tr K_b) and λ_min(K_b) (recorded, else 0).
 */
export function scatterBounds(s: BlockSummary): { eigMax: number; eigMin: number; meanPart: number } {
  let s2 = 0;
  for (let j = 0; j < s.cols; j++) s2 += s.colSums[j]! * s.colSums[j]!;
  const meanPart = s.rows > 0 ? s2 / s.rows : 0;
  const trace = Math.max(0, s.frob2 - meanPart) * (1 + 1e-12);
  return { eigMax: Math.min(trace, s.scatterEigMax ?? trace), eigMin: s.scatterEigMin ?? 0, meanPart };
}

/** ‖A_bᵀA_b‖₂ ≤ λ_max(K_b) + ‖s_b‖²/n_b (Weyl), and ≤ f_b. */
export function gramNormBound(s: BlockSummary): number {
  const b = scatterBounds(s);
  return Math.min(s.frob2, b.eigMax + b.meanPart);
}
