import { MatrixAccumulator, projectionStatistic } from '../estimation/index.js';
import { invalidArgument } from '../estimation/errors.js';
import type { Dataset } from './dataset-shape.js';
import { float64Values, type Job } from './job.js';
import { gramOp } from './gram-job.js';
import { validateGram } from './validate-output.js';

/**
 * Aᵀ(AX) = Σ_b (A_bᵀA_b)·X for a supplied small X (d × k, row-major): each block's Gram comes back from a
 * `gram` op (d² numbers, independent of the block's rows) and is multiplied by X at the coordinator —
 * the block itself never moves. Horvitz–Thompson over answered blocks, ε in the spectral norm with
 * ‖A_bᵀA_b X‖ ≤ ‖A_b‖_F²·‖X‖_F.
 * @throws CoordinatorError `COORD_E_INVALID_ARGUMENT` when X is not d × k with finite entries
 */
export function projectionJob(dataset: Dataset, x: Float64Array, k: number): Job<Float64Array> {
  const d = dataset.cols;
  if (!Number.isInteger(k) || k < 1) throw invalidArgument('k', 'a positive integer', k);
  if (x.length !== d * k) throw invalidArgument('x.length', `cols · k = ${d * k}`, x.length);
  let xNorm2 = 0;
  for (const v of x) {
    if (!Number.isFinite(v)) throw invalidArgument('x', 'finite entries', v);
    xNorm2 += v * v;
  }
  return {
    name: 'gram-times-x',
    dataset,
    op: gramOp,
    validate: (block, output) => validateGram(block, output, d, dataset.dtype),
    combiner() {
      const acc = new MatrixAccumulator(projectionStatistic(d, k, Math.sqrt(xNorm2)));
      return {
        add(block, output, wireBytes) {
          const g = float64Values(output);
          const y = new Float64Array(d * k);
          for (let p = 0; p < d; p++) {
            for (let q = 0; q < d; q++) {
              const gpq = g[p * d + q]!;
              if (gpq === 0) continue;
              for (let c = 0; c < k; c++) y[p * k + c]! += gpq * x[q * k + c]!;
            }
          }
          acc.add(String(block.index), y, wireBytes);
        },
        estimate: (planned, opts) => acc.estimate(planned, opts),
      };
    },
  };
}
