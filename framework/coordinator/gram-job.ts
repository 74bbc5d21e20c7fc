import { FLOAT32_UNIT_ROUNDOFF, FLOAT64_UNIT_ROUNDOFF, gamma, gramStatistic, MatrixAccumulator } from '../estimation/index.js';
import type { Estimate } from '../estimation/index.js';
import type { Dataset } from './dataset-shape.js';
import { float64Values, type Job, type JobCombiner } from './job.js';
import type { OpSpec } from './op-runner.js';
import { validateGram } from './validate-output.js';

/** The `gram` op: per block A_bᵀA_b, cols × cols float64. */
export const gramOp: OpSpec = {
  name: 'gram',
  outputBytes: (ds) => ds.cols * ds.cols * 8,
};

/**
 * The Gram matrix AᵀA = Σ_b A_bᵀA_b (d × d, row-major), Horvitz–Thompson over the answered blocks, ε in the
 * spectral norm (matrix Bernstein).
 * @example
 * runJob(gramJob(dataset), { runner, reliability }).subscribe((e) => console.log(e.value, e.epsilon));
 */
export function gramJob(dataset: Dataset): Job<Float64Array> {
  return {
    name: 'gram',
    dataset,
    op: gramOp,
    validate: (block, output) => validateGram(block, output, dataset.cols, dataset.dtype),
    combiner: () => gramCombiner(dataset),
  };
}

/**
 * The sample covariance C = (AᵀA − n·μμᵀ)/(n − 1), with n and the column means μ exact from the ingest
 * summaries and AᵀA estimated as in {@link gramJob}: ‖Ĉ − C‖₂ = ‖Ĝ − G‖₂/(n − 1).
 */
export function covarianceJob(dataset: Dataset): Job<Float64Array> {
  return {
    name: 'covariance',
    dataset,
    op: gramOp,
    validate: (block, output) => validateGram(block, output, dataset.cols, dataset.dtype),
    combiner(): JobCombiner<Float64Array> {
      const d = dataset.cols;
      const gram = gramCombiner(dataset);
      return {
        add: (block, output, wireBytes) => gram.add(block, output, wireBytes),
        estimate(planned, options): Estimate<Float64Array> {
          const g = gram.estimate(planned, options);
          let n = 0;
          const mu = new Float64Array(d);
          for (const b of planned) {
            n += b.summary.rows;
            for (let j = 0; j < d; j++) mu[j]! += b.summary.colSums[j]!;
          }
          for (let j = 0; j < d; j++) mu[j]! /= Math.max(1, n);
          const scale = 1 / Math.max(1, n - 1);
          const value = new Float64Array(d * d);
          for (let p = 0; p < d; p++)
            for (let q = 0; q < d; q++) value[p * d + q] = (g.value[p * d + q]! - n * mu[p]! * mu[q]!) * scale;
          const sampling = { epsilon: g.parts.sampling.epsilon * scale, delta: g.parts.sampling.delta };
          const sketch = g.parts.sketch;
          // Rounding: Ĝ's own allowance, plus n·μμᵀ from the summaries' column sums (‖·‖_F ≤ Σ_b ‖A_b‖_F², each
          // term through the block's sums, B more, then ·, ·, −) and the final scaling (relative u per entry).
          let frob2 = 0;
          let depth = 0;
          for (const b of planned) {
            frob2 += b.summary.frob2;
            depth = Math.max(depth, b.summary.rows);
          }
          let valueFrob = 0;
          for (const v of value) valueFrob += v * v;
          const u = unitRoundoff(dataset);
          const rounding =
            ((g.parts.rounding?.epsilon ?? 0) + 2 * gamma(depth + planned.length + 6, u) * frob2) * scale * (1 + 1e-6) +
            gamma(2, u) * Math.sqrt(valueFrob) * (1 + 1e-6);
          return {
            ...g,
            value,
            epsilon: sampling.epsilon + sketch.epsilon + rounding,
            parts: { sampling, sketch, rounding: { epsilon: rounding, delta: 0 } },
            method: `covariance = (Ĝ − n·μμᵀ)/(n − 1), n and μ exact from the ingest summaries; ${g.method}`,
          };
        },
      };
    },
  };
}

function gramCombiner(dataset: Dataset): JobCombiner<Float64Array> {
  const acc = new MatrixAccumulator(gramStatistic(dataset.cols));
  const u = unitRoundoff(dataset);
  return {
    add: (block, output, wireBytes) => void acc.add(String(block.index), float64Values(output), wireBytes),
    estimate: (planned, options) => acc.estimate(planned, { unitRoundoff: u, ...options }),
  };
}

/** @internal Unit roundoff of a dataset's block arithmetic: depots may accumulate float32 blocks in float32. */
export function unitRoundoff(dataset: Dataset): number {
  return dataset.dtype === 'float32' ? FLOAT32_UNIT_ROUNDOFF : FLOAT64_UNIT_ROUNDOFF;
}
