import type { BlockSummary } from '../estimation/index.js';
import type { DatasetBlock } from './dataset-shape.js';
import { float64Values } from './job.js';

/**
 * Plausibility checks of op outputs against a block's ingest summary — what a job's `validate` runs, so that
 * a reply corrupted on the way (or by a faulty depot) is a failed attempt, not a sample.
 *
 * Tolerances are rounding bounds, not guesses: a sum of n terms computed in unit roundoff u is off by at
 * most γ_n·Σ|terms| with γ_n = n·u/(1 − n·u) (Higham 2002, §3.1); the summary is exact to the same order in
 * float64. Each check allows twice that, so an honest output from any summation order passes, while a
 * flipped byte above the rounding level of the numbers it hits does not. Outputs are little-endian float64.
 */

/** Unit roundoff of the arithmetic an op accumulates in: float32 kernels may sum in float32. */
export function unitRoundoff(precision: 'float32' | 'float64'): number {
  return precision === 'float32' ? 2 ** -24 : 2 ** -53;
}

/** γ_n for n terms in unit roundoff u (a bound on the relative rounding error of the sum). */
export function gamma(n: number, u: number): number {
  const nu = Math.max(1, n) * u;
  return nu < 0.5 ? nu / (1 - nu) : 1;
}

/** Smallest magnitude treated as "zero" in a comparison scaled by `scale` (denormals, zero blocks). */
const TINY = 1e-300;

function close(got: number, want: number, tol: number): boolean {
  return Math.abs(got - want) <= tol + TINY;
}

function describe(what: string, got: number, want: string): string {
  return `${what} is ${got}, expected ${want}`;
}

function firstNonFinite(v: Float64Array): number {
  for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i]!)) return i;
  return -1;
}

function checkLength(output: Uint8Array, values: number): string | undefined {
  return output.byteLength === values * 8 ? undefined : `${output.byteLength} bytes, expected ${values * 8}`;
}

function summaryOf(block: DatasetBlock): BlockSummary | undefined {
  return block.summary;
}

/**
 * A `column-stats` output (6 × cols: count, Σx, Σx², min, max, Σ(x − mean)²): the count equals the block's
 * rows, Σx and Σx² equal the summary's colSums and colSumSq to rounding, min ≤ mean ≤ max within ±maxAbs,
 * and the centred sum of squares equals Σx² − (Σx)²/n to rounding. The kernel sums in float64.
 */
export function validateColumnStats(block: DatasetBlock, output: Uint8Array, cols: number): string | undefined {
  const bad = checkLength(output, 6 * cols);
  if (bad !== undefined) return bad;
  const s = summaryOf(block);
  if (s === undefined) return undefined;
  const t = float64Values(output);
  const n = s.rows;
  if (n === 0) return undefined;
  const g = 2 * gamma(n + 2, unitRoundoff('float64'));
  for (let j = 0; j < cols; j++) {
    const count = t[j]!;
    const sum = t[cols + j]!;
    const sumSq = t[2 * cols + j]!;
    const min = t[3 * cols + j]!;
    const max = t[4 * cols + j]!;
    const m2 = t[5 * cols + j]!;
    if (count !== n) return describe(`column ${j} count`, count, `${n} rows`);
    if (!(Number.isFinite(sum) && Number.isFinite(sumSq) && Number.isFinite(min) && Number.isFinite(max) && Number.isFinite(m2)))
      return `column ${j}: a statistic is not finite (Σx ${sum}, Σx² ${sumSq}, min ${min}, max ${max}, Σ(x − x̄)² ${m2})`;
    const csq = s.colSumSq[j]!;
    // Σ|x| ≤ √(n·Σx²) (Cauchy–Schwarz) bounds the rounding of Σx.
    const absSum = Math.sqrt(n * csq);
    if (!close(sum, s.colSums[j]!, g * absSum)) return describe(`column ${j} sum`, sum, `${s.colSums[j]} (summary)`);
    if (!close(sumSq, csq, g * csq)) return describe(`column ${j} sum of squares`, sumSq, `${csq} (summary)`);
    if (!(min <= max) || min < -s.maxAbs || max > s.maxAbs)
      return `column ${j} min ${min} / max ${max} outside [−maxAbs, maxAbs] = ±${s.maxAbs} or crossed`;
    const meanTol = (g * absSum) / n;
    const mean = s.colSums[j]! / n;
    if (mean < min - meanTol || mean > max + meanTol)
      return `column ${j} mean ${mean} (summary) outside [min, max] = [${min}, ${max}]`;
    const centred = csq - (s.colSums[j]! * s.colSums[j]!) / n;
    if (m2 < 0 || !close(m2, centred, 2 * g * csq))
      return describe(`column ${j} centred sum of squares`, m2, `Σx² − (Σx)²/n = ${centred}`);
  }
  return undefined;
}

/**
 * A `gram` output A_bᵀA_b (cols × cols): finite, its diagonal equal to the summary's colSumSq to rounding
 * (in the dataset's precision: float32 blocks may be multiplied in float32), symmetric to rounding, and
 * every entry within the Cauchy–Schwarz bound |G_pq| ≤ √(G_pp·G_qq).
 */
export function validateGram(
  block: DatasetBlock,
  output: Uint8Array,
  cols: number,
  precision: 'float32' | 'float64',
): string | undefined {
  const bad = checkLength(output, cols * cols);
  if (bad !== undefined) return bad;
  const s = summaryOf(block);
  if (s === undefined) return undefined;
  const g = float64Values(output);
  const i = firstNonFinite(g);
  if (i >= 0) return `entry (${Math.floor(i / cols)}, ${i % cols}) is not finite (${g[i]})`;
  const tol = 2 * gamma(s.rows + cols + 2, unitRoundoff(precision));
  for (let p = 0; p < cols; p++) {
    const want = s.colSumSq[p]!;
    if (!close(g[p * cols + p]!, want, tol * want))
      return describe(`diagonal entry ${p}`, g[p * cols + p]!, `${want} (summary colSumSq)`);
  }
  for (let p = 0; p < cols; p++) {
    for (let q = p + 1; q < cols; q++) {
      const scale = Math.sqrt(s.colSumSq[p]! * s.colSumSq[q]!);
      const a = g[p * cols + q]!;
      const b = g[q * cols + p]!;
      if (!close(a, b, 2 * tol * scale)) return `entries (${p}, ${q}) = ${a} and (${q}, ${p}) = ${b} differ: not symmetric`;
      if (Math.abs(a) > scale * (1 + 2 * tol) + TINY) return `entry (${p}, ${q}) = ${a} exceeds √(G_pp·G_qq) = ${scale}`;
    }
  }
  return undefined;
}

/**
 * A sketch output S_bA_b (k × cols): finite, and each column's norm within ‖S_b‖₂·‖A_b e_j‖₂ =
 * `sNorm`·√colSumSq_j (plus rounding in the dataset's precision). `sNorm` must bound ‖S_b‖₂ — with
 * certainty, or with a failure probability small enough that an honest block is practically never rejected.
 */
export function validateSketch(
  block: DatasetBlock,
  output: Uint8Array,
  cols: number,
  k: number,
  sNorm: number,
  precision: 'float32' | 'float64',
): string | undefined {
  const bad = checkLength(output, k * cols);
  if (bad !== undefined) return bad;
  const s = summaryOf(block);
  if (s === undefined) return undefined;
  const z = float64Values(output);
  const i = firstNonFinite(z);
  if (i >= 0) return `entry (${Math.floor(i / cols)}, ${i % cols}) is not finite (${z[i]})`;
  const tol = 2 * gamma(s.rows + k + 2, unitRoundoff(precision));
  for (let j = 0; j < cols; j++) {
    let norm2 = 0;
    for (let r = 0; r < k; r++) norm2 += z[r * cols + j]! ** 2;
    const bound = sNorm * Math.sqrt(s.colSumSq[j]!) * (1 + tol);
    if (Math.sqrt(norm2) > bound + TINY) return `column ${j} has norm ${Math.sqrt(norm2)}, above ‖S_b‖·‖a_j‖ ≤ ${bound}`;
  }
  return undefined;
}
