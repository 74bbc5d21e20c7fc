import { columnSums, columnSumsOfSquares, gamma, VectorAccumulator } from '../estimation/index.js';
import { unitRoundoff } from './gram-job.js';
import type { Estimate, EstimateOptions, PlannedBlock } from '../estimation/index.js';
import type { Dataset } from './dataset-shape.js';
import { float64Values, type Job, type JobCombiner } from './job.js';
import type { OpSpec } from './op-runner.js';
import { validateColumnStats } from './validate-output.js';

/** The `column-stats` op: per block a 6 × cols float64 table (count, Σx, Σx², min, max, Σ(x − mean)²). */
export const columnStatsOp: OpSpec = {
  name: 'column-stats',
  outputBytes: (ds) => 6 * ds.cols * 8,
};

/** Which column statistic a {@link columnStatsJob} estimates. */
export type ColumnStatistic = 'sums' | 'means' | 'variances';

/**
 * Column sums (Horvitz–Thompson), means (Hájek ratio) or population variances (Hájek means of x and x²)
 * of a dataset, from one `column-stats` op per block. ε is in the `linf` norm (per-column bounds in
 * `epsilonPerCoordinate`, all holding together with probability ≥ 1 − δ).
 *
 * Variances: v = E[x²] − E[x]²; with |m̂₂ − m₂| ≤ ε₂ and |m̂₁ − m₁| ≤ ε₁ (δ/2 each, union bound),
 * |v̂ − v| ≤ ε₂ + ε₁·(2|m̂₁| + ε₁), plus γ₃·(m̂₂ + m̂₁²) for computing m̂₂ − m̂₁² in floating point (ε₁ and ε₂
 * already hold the means' rounding allowances).
 *
 * @example
 * runJob(columnStatsJob(dataset, 'means'), { runner, reliability }).subscribe((e) => console.log(e.value));
 */
export function columnStatsJob(dataset: Dataset, statistic: ColumnStatistic): Job<Float64Array> {
  const d = dataset.cols;
  return {
    name: `column-${statistic}`,
    dataset,
    op: columnStatsOp,
    validate: (block, output) => validateColumnStats(block, output, d),
    combiner(): JobCombiner<Float64Array> {
      const sums = new VectorAccumulator(d, columnSums);
      const squares = statistic === 'variances' ? new VectorAccumulator(d, columnSumsOfSquares) : undefined;
      return {
        add(block, output, wireBytes) {
          const t = float64Values(output);
          const id = String(block.index);
          sums.add(id, t.subarray(d, 2 * d), wireBytes);
          squares?.add(id, t.subarray(2 * d, 3 * d));
        },
        estimate(planned: readonly PlannedBlock[], given: EstimateOptions): Estimate<Float64Array> {
          const options = { unitRoundoff: unitRoundoff(dataset), ...given };
          if (statistic === 'sums') return sums.estimateSum(planned, options);
          if (statistic === 'means') return sums.estimateMean(planned, options);
          const half = { ...options, delta: options.delta / 2 };
          const m1 = sums.estimateMean(planned, half);
          const m2 = squares!.estimateMean(planned, half);
          const value = new Float64Array(d);
          const eps = new Float64Array(d);
          let worst = 0;
          let worstSampling = 0;
          const g3 = gamma(3, options.unitRoundoff);
          const r1 = m1.parts.rounding?.epsilon ?? 0;
          const r2 = m2.parts.rounding?.epsilon ?? 0;
          for (let j = 0; j < d; j++) {
            const mean = m1.value[j]!;
            // Per coordinate with the rounding allowances (d = 1: the estimate's ε holds both parts).
            const e1 = m1.epsilonPerCoordinate?.[j] ?? m1.parts.sampling.epsilon + r1;
            const e2 = m2.epsilonPerCoordinate?.[j] ?? m2.parts.sampling.epsilon + r2;
            value[j] = Math.max(0, m2.value[j]! - mean * mean);
            eps[j] = (e2 + e1 * (2 * Math.abs(mean) + e1) + g3 * (Math.abs(m2.value[j]!) + mean * mean)) * (1 + 1e-6);
            worst = Math.max(worst, eps[j]!);
            const s1 = Math.max(0, e1 - r1);
            worstSampling = Math.max(worstSampling, Math.max(0, e2 - r2) + s1 * (2 * Math.abs(mean) + s1));
          }
          worstSampling = Math.min(worstSampling, worst);
          const sketch = options.sketch ?? { epsilon: 0, delta: 0 };
          return {
            ...m1,
            value,
            epsilon: worst + sketch.epsilon,
            // A sampling part with ε 0 (every block answered) holds surely: no δ for it.
            delta: (worstSampling > 0 ? options.delta : 0) + sketch.delta,
            parts: {
              sampling: { epsilon: worstSampling, delta: worstSampling > 0 ? options.delta : 0 },
              sketch,
              rounding: { epsilon: worst - worstSampling, delta: 0 },
            },
            method: `population variance = hajek(Σx²)/n − hajek(Σx)²/n², δ/2 each (union bound); ${m1.method}`,
            ...(d > 1 ? { epsilonPerCoordinate: eps } : {}),
          };
        },
      };
    },
  };
}
