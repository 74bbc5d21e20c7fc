import { describe, expect, it } from 'vitest';
import {
  ColumnMomentsAccumulator,
  VectorAccumulator,
  type BlockSummary,
  type PlannedBlock,
  type VectorStatistic,
} from '../../framework/estimation/index.js';
import { median, mulberry32, plan, syntheticMatrix, type SyntheticBlock } from './synthetic.js';

// Response groups (depots) in which no block answered: the estimate takes those blocks' values from their
// summaries (the midpoint of the interval each summary allows) and the bound adds half the intervals' widths.
// Seeded trials with whole depots down (a failed depot loses all its blocks), and with per-depot failure rates
// (groups partly answered as well).
const TRIALS = 200;
const DELTA = 0.1;
const D = 6;
const BLOCKS = 24;
const ROWS = 20;
const DEPOTS = 6;
const SLACK = 3 * Math.sqrt((DELTA * (1 - DELTA)) / TRIALS);

/** Each depot is down with probability `rate`; a down depot loses every block it holds. */
function depotsDown(rate: number, rand: () => number, blocks: readonly SyntheticBlock[]): Set<string> {
  const down = new Map<string, boolean>();
  for (const b of blocks) if (!down.has(b.depot)) down.set(b.depot, rand() < rate);
  return new Set(blocks.filter((b) => down.get(b.depot)).map((b) => b.id));
}

/** Each depot draws a failure rate in [0, 2·rate) per trial, shared by its blocks: some groups partly answered. */
function depotRates(rate: number, rand: () => number, blocks: readonly SyntheticBlock[]): Set<string> {
  const r = new Map<string, number>();
  for (const b of blocks) if (!r.has(b.depot)) r.set(b.depot, Math.min(0.95, 2 * rate * rand()));
  return new Set(blocks.filter((b) => rand() < r.get(b.depot)!).map((b) => b.id));
}

/**
 * Σ_i |a_ij| per column, which a summary holds only within [|Σ_i a_ij|, min(rows·max|a|, √(rows·Σ_i a_ij²))]
 * (triangle inequality, Cauchy–Schwarz), widened by 10⁻¹² for the summary's own rounding: an interval that is
 * neither a point nor centred at 0.
 */
const absColumnSums: VectorStatistic = {
  name: 'column-abs-sums',
  dim: (cols) => cols,
  interval: (s: BlockSummary) => ({
    lo: Float64Array.from(s.colSums, (v) => Math.abs(v) * (1 - 1e-12)),
    hi: Float64Array.from(s.colSumSq, (q) => Math.min(s.rows * s.maxAbs, Math.sqrt(s.rows * q)) * (1 + 1e-12)),
  }),
};

function absSums(b: SyntheticBlock): Float64Array {
  const t = new Float64Array(D);
  for (let i = 0; i < b.rows; i++) for (let j = 0; j < D; j++) t[j]! += Math.abs(b.data[i * D + j]!);
  return t;
}

interface Outcome {
  trials: number;
  violations: number;
  /** ε / true error, for trials whose error is above the rounding level. */
  ratios: number[];
  /** ε relative to the truth's scale, per trial. */
  epsilons: number[];
  /** Largest true error and ε relative to the truth's scale. */
  worstError: number;
  worstEpsilon: number;
}

function outcome(): Outcome {
  return { trials: 0, violations: 0, ratios: [], epsilons: [], worstError: 0, worstEpsilon: 0 };
}

function record(o: Outcome, value: ArrayLike<number>, truth: ArrayLike<number>, epsilon: number): void {
  let err = 0;
  let scale = 0;
  for (let j = 0; j < truth.length; j++) {
    err = Math.max(err, Math.abs(value[j]! - truth[j]!));
    scale = Math.max(scale, Math.abs(truth[j]!));
  }
  o.trials++;
  if (err > epsilon + 1e-12 * scale) o.violations++;
  if (err > 1e-12 * scale) o.ratios.push(epsilon / err);
  o.epsilons.push(epsilon / scale);
  o.worstError = Math.max(o.worstError, err / scale);
  o.worstEpsilon = Math.max(o.worstEpsilon, epsilon / scale);
}

function columnMeans(seed: number, rate: number): Outcome {
  const rand = mulberry32(seed);
  const blocks = syntheticMatrix(seed * 1000, BLOCKS, ROWS, D, DEPOTS);
  const planned: PlannedBlock[] = plan(blocks);
  const truth = new Float64Array(D);
  for (const b of blocks) for (let j = 0; j < D; j++) truth[j]! += b.summary.colSums[j]! / (BLOCKS * ROWS);
  const o = outcome();
  for (let t = 0; t < TRIALS; t++) {
    const failed = depotsDown(rate, rand, blocks);
    if (failed.size === blocks.length) continue; // no answer at all: refused for coverage
    const acc = new ColumnMomentsAccumulator(D);
    for (const b of blocks) if (!failed.has(b.id)) acc.add(b.id, b.summary);
    const e = acc.means(planned, { delta: DELTA });
    record(o, e.value, truth, e.epsilon);
  }
  return o;
}

/**
 * Σ|a| sums or means under `failure`; `old` also records what the previous rule gave for whole depots down (the
 * group counted as 0, its bound Σ_b max(|lo_b|, |hi_b|)), for sums only.
 */
function absStatistic(
  seed: number,
  failure: (rand: () => number, blocks: readonly SyntheticBlock[]) => Set<string>,
  kind: 'sum' | 'mean',
  old?: Outcome,
): Outcome {
  const rand = mulberry32(seed);
  const blocks = syntheticMatrix(seed * 1000, BLOCKS, ROWS, D, DEPOTS, { factor: 2 });
  const planned: PlannedBlock[] = plan(blocks);
  const values = blocks.map(absSums);
  const total = new Float64Array(D);
  for (const v of values) for (let j = 0; j < D; j++) total[j]! += v[j]!;
  const truth = kind === 'sum' ? total : total.map((v) => v / (BLOCKS * ROWS));
  const o = outcome();
  for (let t = 0; t < TRIALS; t++) {
    const failed = failure(rand, blocks);
    if (failed.size === blocks.length) continue;
    const acc = new VectorAccumulator(D, absColumnSums);
    blocks.forEach((b, i) => {
      if (!failed.has(b.id)) acc.add(b.id, values[i]!);
    });
    const e = kind === 'sum' ? acc.estimateSum(planned, { delta: DELTA }) : acc.estimateMean(planned, { delta: DELTA });
    record(o, e.value, truth, e.epsilon);
    if (old !== undefined) {
      // Whole depots down: every group answered fully or not at all, so the previous estimate was the answered
      // blocks' sum and its ε the missing blocks' Σ max(|lo|, |hi|).
      const value = new Float64Array(D);
      const eps = new Float64Array(D);
      blocks.forEach((b, i) => {
        const { hi } = absColumnSums.interval(b.summary);
        for (let j = 0; j < D; j++) {
          if (failed.has(b.id)) eps[j]! += hi[j]!;
          else value[j]! += values[i]![j]!;
        }
      });
      record(old, value, truth, Math.max(...eps));
    }
  }
  return o;
}

describe('response groups with no answer take their summaries’ values', () => {
  for (const rate of [0.3, 0.5]) {
    it(`column means with whole depots down (${rate * 100} %) are exact to rounding, and ε says so`, () => {
      const o = columnMeans(71 + rate * 100, rate);
      expect(o.trials).toBeGreaterThan(TRIALS * 0.9);
      expect(o.violations).toBe(0);
      // Before, a down depot's blocks counted as 0 and ε added their Σ|z_b|: errors of a few % of the mean.
      expect(o.worstError).toBeLessThan(1e-12);
      expect(o.worstEpsilon).toBeLessThan(1e-12);
      expect(o.worstEpsilon).toBeGreaterThan(0); // the rounding allowance is still there
    });
  }

  for (const rate of [0.3, 0.5]) {
    it(`an interval statistic with whole depots down (${rate * 100} %): covered, closer and tighter than counting the group as 0`, () => {
      const old = outcome();
      const sums = absStatistic(81 + rate * 100, (r, b) => depotsDown(rate, r, b), 'sum', old);
      const means = absStatistic(83 + rate * 100, (r, b) => depotsDown(rate, r, b), 'mean');
      for (const o of [sums, means]) {
        // The bound for a group with no answer is deterministic: it holds in every trial.
        expect(o.violations).toBe(0);
        expect(o.ratios.length).toBeGreaterThan(TRIALS / 2);
      }
      expect(old.violations).toBe(0);
      const ratio = median(sums.ratios);
      console.log(
        `Σ|a|, ${rate * 100} % depots down: median ε/error ${ratio.toFixed(2)} (means ${median(means.ratios).toFixed(2)}); ` +
          `median ε ${median(sums.epsilons).toExponential(2)} and worst error ${sums.worstError.toExponential(2)} of the total, ` +
          `counting the group as 0: ${median(old.epsilons).toExponential(2)} and ${old.worstError.toExponential(2)}`,
      );
      // Counting the group as 0 was as far off as ε said (ratio ≈ 1), but ε and the error were both the group's whole value.
      expect(median(sums.epsilons)).toBeLessThan(median(old.epsilons) / 2);
      expect(sums.worstError).toBeLessThan(old.worstError / 4);
      expect(ratio).toBeLessThanOrEqual(3);
      expect(median(means.ratios)).toBeLessThanOrEqual(3);
    });
  }

  for (const rate of [0.1, 0.3, 0.5]) {
    it(`an interval statistic with per-depot failure rates (${rate * 100} %): violations within δ`, () => {
      for (const kind of ['sum', 'mean'] as const) {
        const o = absStatistic(91 + rate * 100 + (kind === 'mean' ? 7 : 0), (r, b) => depotRates(rate, r, b), kind);
        expect(o.violations / o.trials).toBeLessThanOrEqual(DELTA + SLACK);
        console.log(
          `Σ|a| ${kind}, per-depot rates ${rate * 100} %: violations ${(o.violations / o.trials).toFixed(3)}, ` +
            `median ε/error ${median(o.ratios).toFixed(2)}`,
        );
      }
    });
  }
});
