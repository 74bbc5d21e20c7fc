import { EigenvalueDecomposition, Matrix } from 'ml-matrix';
import type { Estimate, ReliabilityStore } from '../estimation/index.js';
import type { Dataset } from './dataset-shape.js';
import { covarianceJob } from './gram-job.js';
import type { Job, JobCombiner } from './job.js';

/** Sources whose quality weight falls below this are left out of the estimate (and named in it). */
export const TRUST_WEIGHT = 0.5;

/**
 * What a streaming robust PCA carries from one refresh to the next: the current principal subspace and
 * centre (to score each block's residual against), and the source-quality history (in the reliability
 * store: a robust z-score of each source's residual against its peers, decayed over time).
 */
export class RobustPcaState {
  /** Top-k eigenvectors of the last estimate (d × k, column-major by component). */
  basis: Float64Array[] | undefined;
  mean: Float64Array | undefined;

  constructor(
    readonly store: ReliabilityStore,
    readonly k: number,
  ) {}

  weight(source: string | undefined): number {
    return source === undefined ? 1 : this.store.sourceWeight(source);
  }

  /** Updates the subspace and centre from a covariance estimate (d × d) and the planned blocks' means. */
  update(cov: Float64Array, d: number, mean: Float64Array): void {
    // An estimate with nothing answered yet carries no direction: keep the subspace we have.
    if (!cov.every(Number.isFinite) || !mean.every(Number.isFinite)) return;
    const m = new Matrix(d, d);
    for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) m.set(i, j, 0.5 * (cov[i * d + j]! + cov[j * d + i]!));
    const evd = new EigenvalueDecomposition(m, { assumeSymmetric: true });
    const order = evd.realEigenvalues.map((v, i) => [v, i] as const).sort((a, b) => b[0] - a[0]);
    const vectors = evd.eigenvectorMatrix;
    this.basis = order.slice(0, this.k).map(([, i]) => Float64Array.from({ length: d }, (_, r) => vectors.get(r, i)));
    this.mean = mean;
  }

  /**
   * Residual energy per row of a block outside the current subspace, around the current centre:
   * (tr S − Σ_i vᵢᵀ S vᵢ)/n with S = G − s μᵀ − μ sᵀ + n μμᵀ, from the block's Gram G (computed at the depot)
   * and its ingest summary (n, column sums s). Undefined before the first estimate.
   */
  residual(gram: Float64Array, rows: number, colSums: ArrayLike<number>, d: number): number | undefined {
    if (this.basis === undefined || this.mean === undefined || rows === 0) return undefined;
    const mu = this.mean;
    const s = new Float64Array(d * d);
    for (let i = 0; i < d; i++)
      for (let j = 0; j < d; j++)
        s[i * d + j] = gram[i * d + j]! - colSums[i]! * mu[j]! - mu[i]! * colSums[j]! + rows * mu[i]! * mu[j]!;
    let trace = 0;
    for (let i = 0; i < d; i++) trace += s[i * d + i]!;
    let captured = 0;
    for (const v of this.basis) {
      for (let i = 0; i < d; i++) {
        let row = 0;
        for (let j = 0; j < d; j++) row += s[i * d + j]! * v[j]!;
        captured += v[i]! * row;
      }
    }
    return Math.max(0, trace - captured) / rows;
  }
}

/**
 * Robust covariance of a sensor dataset, for a streaming PCA: every block's Gram is computed where the block
 * sits (as in the covariance job) and scored against the current principal subspace; each source's residuals
 * feed its quality weight, and blocks of sources below {@link TRUST_WEIGHT} are left out of the estimate —
 * which then estimates the covariance of the trusted sources' rows, with the covariance job's matrix-Bernstein
 * bound over those blocks, and names the sources it left out. Sources that recover regain weight as their
 * residuals return among their peers'. Run it again and again (a streaming PCA): the first run trusts every
 * source and sets the subspace; later runs score and weigh.
 * @example
 * const state = new RobustPcaState(coordinator.store, 3);
 * for (let i = 0; i < 5; i++) await lastValueFrom(coordinator.run(robustCovarianceJob(dataset, state)));
 */
export function robustCovarianceJob(dataset: Dataset, state: RobustPcaState): Job<Float64Array> {
  const inner = covarianceJob(dataset);
  const d = dataset.cols;
  return {
    name: 'robust-covariance',
    dataset,
    op: inner.op,
    // A corrupted Gram must neither enter the estimate nor a source's quality history.
    ...(inner.validate === undefined ? {} : { validate: (block, output) => inner.validate!(block, output) }),
    combiner(): JobCombiner<Float64Array> {
      const c = inner.combiner();
      // Trust is decided once per run, so the blocks added and the blocks planned always agree.
      const trusted = new Set<string>();
      const excluded = new Set<string>();
      for (const b of dataset.blocks) {
        if (state.weight(b.source) >= TRUST_WEIGHT) trusted.add(String(b.index));
        else if (b.source !== undefined) excluded.add(b.source);
      }
      return {
        add(block, output, wireBytes) {
          // A copy: the output may be a view into a pooled buffer (a Node Buffer's slice does not copy).
          const bytes = new Uint8Array(output.byteLength);
          bytes.set(output);
          const gram = new Float64Array(bytes.buffer);
          if (block.source !== undefined && block.summary !== undefined) {
            const r = state.residual(gram, block.summary.rows, block.summary.colSums, d);
            if (r !== undefined && Number.isFinite(r)) state.store.recordResidual(block.source, r);
          }
          if (trusted.has(String(block.index))) c.add(block, output, wireBytes);
        },
        estimate(planned, options): Estimate<Float64Array> {
          const kept = planned.filter((p) => trusted.has(p.id));
          const e = c.estimate(kept, options);
          if (options.final === true) {
            const mean = new Float64Array(d);
            let n = 0;
            for (const p of kept) {
              n += p.summary.rows;
              for (let j = 0; j < d; j++) mean[j]! += p.summary.colSums[j]!;
            }
            for (let j = 0; j < d; j++) mean[j]! /= Math.max(1, n);
            state.update(e.value, d, mean);
          }
          const note =
            excluded.size === 0
              ? '; robust: every source trusted'
              : `; robust: left out ${excluded.size} source(s) with quality weight < ${TRUST_WEIGHT}: ${[...excluded].sort().join(', ')}`;
          return {
            ...e,
            method: `${e.method}${note}`,
            sources: state.store.sourceWeights(),
          };
        },
      };
    },
  };
}
