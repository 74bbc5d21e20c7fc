import { createHash } from 'node:crypto';
import { invalidArgument } from './errors.js';
import { symmetricEigenvalues } from './symmetric-eigen.js';
import type { BlockSummary, ScatterReference } from './types.js';

/** Widest block whose Gram spectrum `summarizeBlock` records by default. */
export const DEFAULT_SPECTRUM_MAX_COLS = 64;

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
  options: { spectrum?: boolean; reference?: ScatterReference } = {},
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
  if (spectrum || options.reference !== undefined) {
    const gram = scatterOf(data, rows, cols, colSums);
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

/**
 * Records on `summary` (and returns it) the radius of the ball around tr(K_b)·Ref that holds the block's centred
 * scatter `scatter` (from {@link centredScatter}): ‖K_b − tr(K_b)·Ref‖₂ by Jacobi, widened by the solver's
 * accuracy and by 10⁻⁹·frob2 for the rounding of K_b and of tr(K_b) in any summation order.
 * @throws CoordinatorError `COORD_E_INVALID_ARGUMENT` for a reference or scatter of another size
 */
export function attachScatterRadius(
  summary: BlockSummary,
  scatter: ArrayLike<number>,
  reference: ScatterReference,
): BlockSummary {
  const d = summary.cols;
  if (reference.cols !== d) throw invalidArgument('reference.cols', `${d}`, reference.cols);
  if (scatter.length !== d * d) throw invalidArgument('scatter.length', `${d * d}`, scatter.length);
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
  return summary;
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
  };
}

/**
 * Parses and validates a summary from JSON (see {@link validateSummary}). A `scatterRadius` is kept only when
 * its `scatterReference` id is one of `references` (the dataset's); otherwise both are dropped, which only
 * loosens Gram bounds.
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
  if (o['scatterEigMax'] !== undefined) s.scatterEigMax = o['scatterEigMax'] as number;
  if (o['scatterEigMin'] !== undefined) s.scatterEigMin = o['scatterEigMin'] as number;
  const reference = references.find((r) => r.id === o['scatterReference']);
  if (o['scatterRadius'] !== undefined && reference !== undefined) {
    s.scatterRadius = o['scatterRadius'] as number;
    s.scatterReference = reference;
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
