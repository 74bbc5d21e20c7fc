/**
 * Randomized linear algebra in locus: randomized SVD / PCA (robust, centred, rank-adaptive), Frequent
 * Directions and spectral norms over a row-distributed dataset whose blocks sit in depot allocations. Every
 * algorithm runs its NFU ops where the blocks lie through the coordinator's engine (hedging, deadlines,
 * failures as missing samples), moves only small k × d / k × k matrices, and returns `Observable<Estimate>`
 * whose last value is final, with (ε, δ), coverage, bytes moved and the method named.
 *
 * @example
 * const coordinator = await Coordinator.open({ runner: new IbpLocus(client) });
 * const e = await final(pca(dataset, coordinatorContext(coordinator), { rank: 10 }));
 * console.log(e.value.explainedVarianceRatio, e.epsilon, e.delta);
 */
import type { Observable } from 'rxjs';
import type { CoordinatorDataset as Dataset, Estimate } from '../framework/index.js';
import type { LocusContext } from './engine.js';
import { algorithm$ } from './observable.js';
import { rsvdCore, type RsvdOptions, type SpectralResult } from './rsvd.js';
import { frequentDirectionsCore, type FrequentDirectionsOptions, type FrequentDirectionsResult } from './frequent-directions.js';
import { traceCore, type TraceOptions, type TraceResult } from './hutchpp.js';
import { leastSquaresCore, type LeastSquaresOptions, type LeastSquaresResult } from './least-squares.js';

export { final } from './observable.js';
export {
  coordinatorContext,
  runnerContext,
  attemptReason,
  MissingBlocks,
  type LocusContext,
  type MissingReason,
} from './engine.js';
export {
  InProcessLocus,
  IbpLocus,
  inMemoryDataset,
  DEFAULT_STATE_LEASE_SEC,
  type LocusRunner,
  type LocusCall,
  type LocusInput,
  type LocusOpSpec,
  type StateLocation,
  type SharedInput,
  type InProcessLocusOptions,
} from './locus.js';
export { ALGORITHM_STREAMS, requireRows, type RsvdOptions, type SpectralResult } from './rsvd.js';
export type { LeastSquaresOptions, LeastSquaresResult } from './least-squares.js';
export type { FrequentDirectionsOptions, FrequentDirectionsResult } from './frequent-directions.js';
export type { TraceOptions, TraceResult } from './hutchpp.js';

/**
 * tr(Cᵖ) of the covariance C = AᵀA/(n − 1) (centred by default) by Hutch++ in locus, with an a-posteriori
 * (ε, δ) in the `abs` norm, and the effective rank (tr C)ᵖ/tr(Cᵖ) to the 1/(p − 1).
 */
export function traceEstimate(
  dataset: Dataset,
  ctx: LocusContext,
  options: TraceOptions = {},
): Observable<Estimate<TraceResult>> {
  return algorithm$(() => traceCore(ctx, dataset, options), options.signal);
}

/**
 * Streaming Frequent Directions in locus: each block's ℓ-row sketch lives in an allocation at its depot and is
 * updated in place with the rows appended since the previous call (same `ctx`); the sketches merge here.
 * ε bounds ‖AᵀA − BᵀB‖₂ deterministically (δ = 0).
 */
export function frequentDirections(
  dataset: Dataset,
  ctx: LocusContext,
  options: FrequentDirectionsOptions = {},
): Observable<Estimate<FrequentDirectionsResult>> {
  return algorithm$((_emit, signal) => frequentDirectionsCore(ctx, dataset, { ...options, signal }), options.signal);
}

/**
 * Least squares min ‖Ax − b‖ (b a column of the dataset, A the others): sketch-and-solve, or sketch-preconditioned
 * conjugate gradients in locus, with ε bounding ‖x − x*‖₂ (solve error certified by the gradient, sampling error
 * by matrix Bernstein on the Gram).
 * @throws CoordinatorError `COORD_E_INVALID_ARGUMENT`, `COORD_E_COVERAGE` (as observable errors)
 */
export function leastSquares(
  dataset: Dataset,
  ctx: LocusContext,
  options: LeastSquaresOptions = {},
): Observable<Estimate<LeastSquaresResult>> {
  return algorithm$((emit, signal) => leastSquaresCore(ctx, dataset, { ...options, signal }, emit), options.signal);
}

/**
 * Randomized SVD of the dataset (HMT 2011 subspace iteration with CholeskyQR2 in locus): top `rank` right
 * singular vectors and singular values, ε a certified bound on ‖A − AVVᵀ‖₂.
 * @throws CoordinatorError `COORD_E_INVALID_ARGUMENT` (as an observable error) for bad options
 */
export function rsvd(dataset: Dataset, ctx: LocusContext, options: RsvdOptions): Observable<Estimate<SpectralResult>> {
  return algorithm$((emit, signal) => rsvdCore(ctx, dataset, { ...options, signal }, emit), options.signal);
}

/** PCA: {@link rsvd} of the matrix centred by the column means from the ingest summaries. */
export function pca(dataset: Dataset, ctx: LocusContext, options: RsvdOptions): Observable<Estimate<SpectralResult>> {
  return rsvd(dataset, ctx, { ...options, centre: options.centre ?? true });
}

/** The spectral norm ‖A‖₂ = σ₁ with a two-sided interval, and the stable rank of A. */
export interface SpectralNormResult {
  readonly sigma1: number;
  readonly lower: number;
  readonly upper: number;
  /**
   * The stable rank ‖A‖_F²/σ₁² of the uncentred A (exact Frobenius norm from the summaries, σ₁ estimated) — not
   * the effective rank (tr C)²/tr(C²) of the centred covariance that {@link traceEstimate} reports.
   */
  readonly effectiveRank: number;
}

/**
 * ‖A‖₂ by randomized subspace iteration (rank 1 + oversampling), ε = max(σ̂₁ − lower, upper − σ̂₁) in the `abs` norm:
 * P(σ₁ ∉ [lower, upper]) ≤ δ.
 */
export function spectralNorm(
  dataset: Dataset,
  ctx: LocusContext,
  options: Omit<RsvdOptions, 'rank' | 'tolerance' | 'maxRank' | 'robustIterations'> = {},
): Observable<Estimate<SpectralNormResult>> {
  return algorithm$(async (_emit, signal) => {
    const e = await rsvdCore(ctx, dataset, { powerIterations: 4, ...options, rank: 1, signal });
    const sigma1 = e.value.singularValues[0]!;
    const lower = e.value.singularValueLower[0]!;
    const upper = e.value.singularValueUpper[0]!;
    let frob2 = 0;
    for (const b of dataset.blocks) frob2 += b.summary?.frob2 ?? 0;
    return {
      ...e,
      value: { sigma1, lower, upper, effectiveRank: frob2 / Math.max(sigma1 * sigma1, 1e-300) },
      epsilon: Math.max(sigma1 - lower, upper - sigma1),
      norm: 'abs',
      method: `σ₁ interval from ${e.method}`,
    };
  }, options.signal);
}
