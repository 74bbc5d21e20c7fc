import { buildEstimate, MAR, weightingText } from './estimate-builder.js';
import { CoordinatorError, CoordinatorErrorCode, invalidArgument } from './errors.js';
import { groupOf, htRadius, htWeights, unansweredGroupsPart, unansweredText, type BoundBlock } from './horvitz-thompson.js';
import { coverageOf, resolvePlan } from './plan.js';
import { FLOAT64_UNIT_ROUNDOFF, gamma, roundingAllowance } from './rounding.js';
import type { BlockSummary, Estimate, EstimateOptions, PlannedBlock } from './types.js';

/**
 * An additive vector statistic T = Σ_b T_b of row blocks, and what a block's summary says about its T_b.
 */
export interface VectorStatistic {
  readonly name: string;
  /** Length of T_b for a block with these summary columns. */
  dim(cols: number): number;
  /** An interval [lo, hi] (per coordinate) that contains T_b, from the summary alone. */
  interval(summary: BlockSummary): { lo: ArrayLike<number>; hi: ArrayLike<number> };
  /**
   * Optional, for the floating-point rounding allowance (`parts.rounding`): per coordinate a bound on Σ|terms|
   * of the sum T_b is (`magnitude`), and the most roundings one term passes through in the block's op
   * (`depth`, e.g. `rows` for a sum of `rows` values in any order). Without it the estimate has no rounding part.
   */
  rounding?(summary: BlockSummary): { magnitude: ArrayLike<number>; depth: number };
}

/** Σ_i |a_ij| ≤ min(rows·max|a|, √(rows·Σ_i a_ij²)) per column. */
function absColumnSums(s: BlockSummary): Float64Array {
  return Float64Array.from(s.colSumSq, (q) => Math.min(s.rows * s.maxAbs, Math.sqrt(s.rows * q)));
}

/** Column sums Σ_i a_ij (the summary holds them exactly). */
export const columnSums: VectorStatistic = {
  name: 'column-sums',
  dim: (cols) => cols,
  interval: (s) => ({ lo: s.colSums, hi: s.colSums }),
  rounding: (s) => ({ magnitude: absColumnSums(s), depth: s.rows }),
};

/** Column sums of squares Σ_i a_ij² (exact in the summary). */
export const columnSumsOfSquares: VectorStatistic = {
  name: 'column-sums-of-squares',
  dim: (cols) => cols,
  interval: (s) => ({ lo: s.colSumSq, hi: s.colSumSq }),
  rounding: (s) => ({ magnitude: s.colSumSq, depth: s.rows + 1 }),
};

/** ‖A‖_F² as a 1-vector (exact in the summary). */
export const squaredFrobenius: VectorStatistic = {
  name: 'squared-frobenius',
  dim: () => 1,
  interval: (s) => ({ lo: [s.frob2], hi: [s.frob2] }),
  rounding: (s) => ({ magnitude: [s.frob2], depth: s.rows * s.cols + 1 }),
};

/**
 * A statistic whose blocks are only bounded in magnitude by the summary: T_b ∈ [−U_b, U_b].
 * @example magnitudeBounded('weighted-sums', 1, (s) => [Math.sqrt(s.rows * s.frob2)]) // |Σ_ij w_i a_ij| with ‖w‖_∞ ≤ 1
 */
export function magnitudeBounded(
  name: string,
  dim: number,
  bound: (summary: BlockSummary) => ArrayLike<number>,
): VectorStatistic {
  return {
    name,
    dim: () => dim,
    interval: (s) => {
      const u = bound(s);
      return { lo: Array.from(u, (x) => -Math.abs(x)), hi: Array.from(u, (x) => Math.abs(x)) };
    },
  };
}

/**
 * Incremental Horvitz–Thompson / Hájek estimation of an additive vector statistic over row blocks.
 * Add each block's T_b as it answers; ask for an estimate at any time — planned blocks not (yet) added are
 * missing at that moment.
 *
 * @example
 * const acc = new VectorAccumulator(d, columnSums);
 * acc.add('b0', colSumsOfBlock0, bytes);
 * const est = acc.estimateSum(planned, { delta: 0.05 }); // est.value ≈ Σ_b colSums_b, est.epsilon in linf
 */
export class VectorAccumulator {
  readonly #values = new Map<string, Float64Array>();
  #bytesMoved = 0;

  constructor(
    readonly dim: number,
    readonly statistic: VectorStatistic,
  ) {
    if (!Number.isInteger(dim) || dim < 1) throw invalidArgument('dim', 'a positive integer', dim);
  }

  /**
   * Records block `blockId`'s statistic. A block already recorded (e.g. a hedged duplicate) is ignored and
   * `false` returned; its bytes are still counted.
   * @throws CoordinatorError `COORD_E_INVALID_ARGUMENT` for a wrong length, a non-finite value or bad bytes
   */
  add(blockId: string, value: ArrayLike<number>, bytesMoved = 0): boolean {
    if (!Number.isFinite(bytesMoved) || bytesMoved < 0) throw invalidArgument('bytesMoved', 'finite and ≥ 0', bytesMoved);
    if (value.length !== this.dim) throw invalidArgument('value.length', `${this.dim}`, value.length);
    for (let j = 0; j < value.length; j++) {
      if (!Number.isFinite(value[j]!)) throw invalidArgument(`value[${j}]`, 'finite', value[j]);
    }
    this.#bytesMoved += bytesMoved;
    if (this.#values.has(blockId)) return false;
    this.#values.set(blockId, Float64Array.from(value));
    return true;
  }

  has(blockId: string): boolean {
    return this.#values.has(blockId);
  }

  /** Blocks recorded. */
  get size(): number {
    return this.#values.size;
  }

  /** Bytes reported with every `add`. */
  get bytesMoved(): number {
    return this.#bytesMoved;
  }

  /** @internal The recorded value of a block. */
  valueOf(blockId: string): Float64Array | undefined {
    return this.#values.get(blockId);
  }

  /**
   * HT estimate of the total T = Σ_b T_b over `planned`, with a per-coordinate Bernstein bound (see
   * docs/estimation.md). Norm: `abs` for dim 1, else `linf` (`epsilonPerCoordinate` holds each bound).
   * @throws CoordinatorError `COORD_E_COVERAGE` below `minCoverage`; `COORD_E_INVALID_ARGUMENT` for a bad plan
   */
  estimateSum(planned: readonly PlannedBlock[], options: EstimateOptions): Estimate<Float64Array> {
    const resolved = resolvePlan(planned, options);
    const answered = (id: string): boolean => this.#values.has(id);
    const weights = htWeights(planned, answered, resolved.weighting);
    const value = new Float64Array(this.dim);
    for (const [id, w] of weights) {
      const t = this.#values.get(id)!;
      for (let j = 0; j < this.dim; j++) value[j]! += w * t[j]!;
    }
    const blocks = planned.map((b, i) => this.#boundBlock(b, i));
    // A response group with no answer adds its blocks' summary values (htRadius bounds their error).
    const unanswered = unansweredGroupsPart(planned, blocks, resolved.weighting, this.dim);
    for (let j = 0; j < this.dim; j++) value[j]! += unanswered.value[j]!;
    const eps = htRadius(blocks, this.dim, resolved.weighting, resolved.delta);
    const rounding = this.#sumRounding(planned, weights, options, unanswered.ids);
    const est = buildEstimate(value, maxOf(eps), resolved, options, {
      coverage: coverageOf(planned, answered),
      blocksUsed: weights.size,
      blocksPlanned: planned.length,
      bytesMoved: this.#bytesMoved,
      method: `horvitz-thompson(${this.statistic.name}); ${weightingText(resolved)}${unansweredText(unanswered.ids.size)}; bennett per coordinate + union bound${rounding === undefined ? '' : ' + float rounding γ_k·Σ|terms|'}; ${MAR}`,
      norm: this.dim === 1 ? 'abs' : 'linf',
      rounding: rounding === undefined ? 0 : maxOf(rounding),
    });
    if (this.dim > 1) est.epsilonPerCoordinate = rounding === undefined ? eps : eps.map((e, j) => e + rounding[j]!);
    return est;
  }

  /**
   * Hájek (ratio) estimate of the per-row mean T / Σ_b rows_b: R̂ = Σ_ans w_b T_b / Σ_ans w_b rows_b.
   * Bound: R̂ − R = Ẑ / X̂ with z_b = T_b − R·rows_b (Σ_b z_b = 0), so an HT bound ε_Z on Ẑ gives
   * |R̂ − R| ≤ ε_Z / X̂; the z_b intervals come from the summaries and the interval R lies in.
   * @throws CoordinatorError `COORD_E_COVERAGE` below `minCoverage` or when no answered block has rows
   */
  estimateMean(planned: readonly PlannedBlock[], options: EstimateOptions): Estimate<Float64Array> {
    const resolved = resolvePlan(planned, options);
    const answered = (id: string): boolean => this.#values.has(id);
    const weights = htWeights(planned, answered, resolved.weighting);
    const sum = new Float64Array(this.dim);
    let rowsHat = 0;
    for (const b of planned) {
      const w = weights.get(b.id);
      if (w === undefined) continue;
      const t = this.#values.get(b.id)!;
      for (let j = 0; j < this.dim; j++) sum[j]! += w * t[j]!;
      rowsHat += w * b.summary.rows;
    }
    const coverage = coverageOf(planned, answered);
    if (!(rowsHat > 0)) {
      throw new CoordinatorError(
        CoordinatorErrorCode.COVERAGE,
        `coverage ${coverage.toFixed(4)}: no answered block has rows, a mean cannot be estimated`,
        { details: { coverage, minCoverage: resolved.minCoverage, blocksUsed: weights.size, blocksPlanned: planned.length } },
      );
    }
    const blocks = planned.map((b, i) => this.#boundBlock(b, i));
    // A response group with no answer adds its blocks' summary values and their rows (exact, from the summaries).
    const unanswered = unansweredGroupsPart(planned, blocks, resolved.weighting, this.dim);
    for (let j = 0; j < this.dim; j++) sum[j]! += unanswered.value[j]!;
    rowsHat += unanswered.rows;
    // With response groups whose blocks all have one row count r_g where the group has an answer,
    // X̂ = Σ_g (N_g/n_g)·n_g·r_g + (rows of the groups without an answer) = X exactly and Ẑ = Ŝ − R·X̂ = Ŝ − S: the
    // residuals' error is the sum's error, bounded from the sums' own intervals (no interval for R is needed, which
    // would widen every answered block's residual). The bounds hold given the groups' answer counts, so choosing by
    // them is allowed.
    if (resolved.weighting === 'response-groups' && equalRowsPerGroup(planned, answered)) {
      const epsS = htRadius(blocks, this.dim, resolved.weighting, resolved.delta);
      return this.#meanEstimate(sum, rowsHat, epsS, resolved, options, coverage, planned, weights, unanswered.ids);
    }
    let totalRows = 0;
    const sumLo = new Float64Array(this.dim);
    const sumHi = new Float64Array(this.dim);
    for (const b of blocks) {
      for (let j = 0; j < this.dim; j++) {
        sumLo[j]! += b.lo[j]!;
        sumHi[j]! += b.hi[j]!;
      }
    }
    for (const b of planned) totalRows += b.summary.rows;
    const zBlocks: BoundBlock[] = blocks.map((b, i) => {
      const rows = planned[i]!.summary.rows;
      const lo = new Float64Array(this.dim);
      const hi = new Float64Array(this.dim);
      for (let j = 0; j < this.dim; j++) {
        lo[j] = b.lo[j]! - (sumHi[j]! / totalRows) * rows;
        hi[j] = b.hi[j]! - (sumLo[j]! / totalRows) * rows;
      }
      return { ...b, lo, hi };
    });
    // A group without an answer: its error c_b − T_b does not involve R, and the z interval is wider than T's.
    const epsZ = htRadius(zBlocks, this.dim, resolved.weighting, resolved.delta);
    return this.#meanEstimate(sum, rowsHat, epsZ, resolved, options, coverage, planned, weights, unanswered.ids);
  }

  #meanEstimate(
    sum: Float64Array,
    rowsHat: number,
    epsZ: Float64Array,
    resolved: ReturnType<typeof resolvePlan>,
    options: EstimateOptions,
    coverage: number,
    planned: readonly PlannedBlock[],
    weights: ReadonlyMap<string, number>,
    unanswered: ReadonlySet<string>,
  ): Estimate<Float64Array> {
    const blocksUsed = weights.size;
    const blocksPlanned = planned.length;
    const value = new Float64Array(this.dim);
    const eps = new Float64Array(this.dim);
    for (let j = 0; j < this.dim; j++) {
      value[j] = sum[j]! / rowsHat;
      eps[j] = epsZ[j]! / rowsHat;
    }
    // Rounding: the weighted sum's allowance over the computed row count, plus the row count's own rounding
    // (a sum of B positive terms w_b·rows_b, relative γ_{B+2}) and the division's (relative u).
    const sumRounding = this.#sumRounding(planned, weights, options, unanswered);
    let rounding: Float64Array | undefined;
    if (sumRounding !== undefined) {
      const g = gamma(planned.length + 4, options.unitRoundoff ?? FLOAT64_UNIT_ROUNDOFF);
      rounding = sumRounding.map((r, j) => (r / rowsHat + Math.abs(value[j]!) * g) * (1 + g) * (1 + 1e-6));
    }
    const est = buildEstimate(value, maxOf(eps), resolved, options, {
      coverage,
      blocksUsed,
      blocksPlanned,
      bytesMoved: this.#bytesMoved,
      method: `hajek-ratio(${this.statistic.name} per row); ${weightingText(resolved)}${unansweredText(unanswered.size)}; bennett on residuals per coordinate + union bound${rounding === undefined ? '' : ' + float rounding γ_k·Σ|terms|'}; ${MAR}`,
      norm: this.dim === 1 ? 'abs' : 'linf',
      rounding: rounding === undefined ? 0 : maxOf(rounding),
    });
    if (this.dim > 1) est.epsilonPerCoordinate = rounding === undefined ? eps : eps.map((e, j) => e + rounding[j]!);
    return est;
  }

  /**
   * Per coordinate, the rounding allowance of the computed Σ_ans w_b·T_b against its real value: each T_b
   * (computed by the block's op) errs by γ_depth·Σ|terms|, then the weight (rounded N/n: two roundings) and
   * the sum over at most B blocks add B + 2 roundings to every term's path. A block of a group without an answer
   * (`unanswered`) enters with weight 1: its summary value was computed at ingest like the op's. Undefined without
   * {@link VectorStatistic.rounding}.
   */
  #sumRounding(
    planned: readonly PlannedBlock[],
    weights: ReadonlyMap<string, number>,
    options: EstimateOptions,
    unanswered: ReadonlySet<string>,
  ): Float64Array | undefined {
    const r = this.statistic.rounding;
    if (r === undefined) return undefined;
    const magnitude = new Float64Array(this.dim);
    let depth = 0;
    for (const b of planned) {
      const w = weights.get(b.id) ?? (unanswered.has(b.id) ? 1 : undefined);
      if (w === undefined) continue;
      const { magnitude: m, depth: k } = r(b.summary);
      depth = Math.max(depth, k);
      for (let j = 0; j < this.dim; j++) magnitude[j]! += Math.abs(w) * Math.abs(m[j]!);
    }
    const u = options.unitRoundoff ?? FLOAT64_UNIT_ROUNDOFF;
    return magnitude.map((m) => roundingAllowance(depth + planned.length + 2, m, u));
  }

  #boundBlock(b: PlannedBlock, i: number): BoundBlock {
    const t = this.#values.get(b.id);
    const pLower = b.inclusion?.pLower ?? 1;
    if (t !== undefined) return { group: groupOf(b), answered: true, pLower, lo: t, hi: t };
    if (this.statistic.dim(b.summary.cols) !== this.dim) {
      throw invalidArgument(`planned[${i}].summary.cols`, `columns giving a statistic of length ${this.dim}`, b.summary.cols);
    }
    const { lo, hi } = this.statistic.interval(b.summary);
    return { group: groupOf(b), answered: false, pLower, lo, hi };
  }
}

/** True when, in every response group with an answered block, all the group's blocks have one row count. */
function equalRowsPerGroup(planned: readonly PlannedBlock[], answered: (id: string) => boolean): boolean {
  const rows = new Map<string, Set<number>>();
  const hasAnswer = new Set<string>();
  for (const b of planned) {
    const g = groupOf(b);
    if (answered(b.id)) hasAnswer.add(g);
    const r = rows.get(g);
    if (r === undefined) rows.set(g, new Set([b.summary.rows]));
    else r.add(b.summary.rows);
  }
  for (const g of hasAnswer) if (rows.get(g)!.size > 1) return false;
  return true;
}

/** @internal */
export function maxOf(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, a[i]!);
  return m;
}
