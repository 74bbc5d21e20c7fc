/**
 * Shared types of the estimation core: what every estimate carries, block summaries recorded at ingest,
 * and the plan of a job as the estimators see it.
 */

/** Time source (milliseconds). Injected everywhere; the estimation core never reads the wall clock itself. */
export interface Clock {
  now(): number;
}

/**
 * The norm `epsilon` is measured in.
 * - `abs`: a scalar's absolute error;
 * - `linf`: the largest absolute coordinate error of a vector (per-coordinate bounds + union bound);
 * - `l2`: Euclidean norm of a vector's error;
 * - `spectral`: operator 2-norm of a matrix's error;
 * - `frobenius`: Frobenius norm of a matrix's error;
 * - `relative`: error divided by the true value's norm.
 */
export type Norm = 'abs' | 'linf' | 'l2' | 'spectral' | 'frobenius' | 'relative';

/** One part of an (ε, δ) guarantee: `P(error > epsilon) ≤ delta`. */
export interface ErrorPart {
  epsilon: number;
  delta: number;
}

/** A data source (depot or sensor) that contributed to an estimate, with the weight it was given. */
export interface SourceWeight {
  id: string;
  /** Weight in [0, 1] the estimator gave this source (1 = full weight). */
  weight: number;
  /** Reliability in [0, 1] (posterior answer probability for a depot, quality weight for a sensor). */
  reliability: number;
}

/**
 * An estimate with its guarantee: `P(‖value − truth‖ > epsilon) ≤ delta` in the norm `norm`, under the
 * assumptions named by `method`. `epsilon = parts.sampling.epsilon + parts.sketch.epsilon +
 * (parts.rounding?.epsilon ?? 0)` and `delta = parts.sampling.delta + parts.sketch.delta` (triangle inequality
 * and union bound). `parts.rounding` is the floating-point rounding allowance (delta 0: it always holds), so
 * `truth` is the real-number answer even when every block answered and the sampling part is 0.
 */
export interface Estimate<V> {
  value: V;
  epsilon: number;
  delta: number;
  /** Answered mass / total mass of the planned blocks, mass = squared Frobenius norm from the summaries. */
  coverage: number;
  blocksUsed: number;
  blocksMissing: number;
  /** Bytes that crossed the network for this estimate (as reported by the caller with each block). */
  bytesMoved: number;
  /** Estimator, bound and assumptions, e.g. `horvitz-thompson/response-groups; bernstein(union); MAR`. */
  method: string;
  norm: Norm;
  parts: { sampling: ErrorPart; sketch: ErrorPart; rounding?: ErrorPart };
  sources: SourceWeight[];
  /** True for the last estimate of a job. */
  final: boolean;
  /** For vector values in the `linf` norm: each coordinate's own bound (all hold together with prob. ≥ 1 − δ). */
  epsilonPerCoordinate?: Float64Array;
}

/**
 * What is recorded at ingest for a row block `A_b` (n_b × d). It lets estimators bound what a
 * missing block could have contributed without reading it.
 */
export interface BlockSummary {
  rows: number;
  cols: number;
  /** Σ_i a_ij, length `cols`. */
  colSums: Float64Array;
  /** Σ_i a_ij², length `cols`. */
  colSumSq: Float64Array;
  /** ‖A_b‖_F² = Σ_j colSumSq_j. */
  frob2: number;
  /** max |a_ij| (0 for an empty block). */
  maxAbs: number;
  /** SHA-256 of the block's bytes as stored (lower-case hex). */
  hash: string;
  /**
   * Optional: largest and smallest eigenvalue of the block's centred scatter K_b = A_bᵀA_b − s_b s_bᵀ / n_b
   * (s_b = colSums). When present they tighten the bounds of matrix statistics (Gram, covariance) for blocks
   * that do not answer; without them λ_max(K_b) ≤ tr K_b = frob2 − ‖s_b‖²/n_b and λ_min(K_b) ≥ 0 are used.
   */
  scatterEigMax?: number;
  scatterEigMin?: number;
  /**
   * Optional orientation of the centred scatter: ‖K_b − tr(K_b)·Ref‖₂ ≤ scatterRadius, Ref =
   * `scatterReference.matrix` (a symmetric d × d matrix of trace 1 shared by the dataset's blocks, fixed at
   * ingest) and tr(K_b) = frob2 − ‖s_b‖²/n_b from this summary. Eigenvalue bounds alone cannot say which way
   * a missing block's scatter points; with this a Gram bound knows it up to the radius. Both or neither.
   */
  scatterRadius?: number;
  scatterReference?: ScatterReference;
  /**
   * Optional relative (Loewner) bound of the same deviation, with the regularised reference R = Ref + τI
   * (τ = `scatterRhoTau` > 0): K_b − tr(K_b)·Ref ⪯ scatterRho·R, i.e. K_b ⪯ (tr(K_b) + ρ)·Ref + ρτ·I. Unlike the
   * radius, it scales with Ref in every direction, so a direction where the reference is small (the residual of a
   * low-rank fit, a regression's residual) gets a small bound. Only with a `scatterReference`; both or neither.
   */
  scatterRho?: number;
  scatterRhoTau?: number;
  /**
   * Optional: the block's exact centred scatter K_b = A_bᵀA_b − s_b s_bᵀ/n_b itself (as computed in float64 at
   * ingest), its upper triangle packed row by row (K_00, K_01, …, K_0,d−1, K_11, …): cols·(cols + 1)/2 numbers.
   * Recorded when cols ≤ `EXACT_SCATTER_MAX_COLS`. With it a missing block's Gram A_bᵀA_b = K_b + s_b s_bᵀ/n_b is
   * known (to rounding), so estimators need not bound what it could have contributed.
   */
  exactScatter?: Float64Array;
}

/**
 * A dataset's reference scatter: a symmetric d × d matrix of trace 1 (row-major), e.g. the pooled centred
 * scatter of the first blocks ingested, normalised; `id` is the SHA-256 of its float64 bytes, which block
 * summaries and exNodes name it by.
 */
export interface ScatterReference {
  readonly id: string;
  readonly cols: number;
  readonly matrix: Float64Array;
}

/** Answer probability of a block: point value (for weights) and a conservative lower value (for bounds). */
export interface Inclusion {
  /** Posterior-mean probability that the block answers, in [π_min, 1]. */
  p: number;
  /** A lower posterior quantile of that probability, in [π_min, p]. */
  pLower: number;
}

/** A block the job planned to use, as the estimators see it. */
export interface PlannedBlock {
  id: string;
  summary: BlockSummary;
  /**
   * Response group (e.g. the depot or replica set the block was asked on). With `weighting: 'response-groups'`
   * blocks of one group are assumed to answer independently with a common (unknown) probability.
   * Omitted: the block belongs to the default group `''`.
   */
  group?: string;
  /** Answer probability from the reliability history; required with `weighting: 'inclusion'`. */
  inclusion?: Inclusion;
}

/**
 * How missing blocks are compensated.
 * - `response-groups` (default): Horvitz–Thompson with π̂_b = n_g / N_g, the answered fraction of the block's
 *   group in this job (response homogeneity groups). Robust to a depot whose failure rate changed.
 * - `inclusion`: Horvitz–Thompson with π_b from the reliability history (`PlannedBlock.inclusion`).
 */
export type Weighting = 'response-groups' | 'inclusion';

/** Options of every `estimate*` call. */
export interface EstimateOptions {
  /** Failure probability of the sampling part, in (0, 1). */
  delta: number;
  weighting?: Weighting;
  /** Minimum coverage in [0, 1]; below it the estimate throws `COORD_E_COVERAGE`. Default 0. */
  minCoverage?: number;
  /** Sketching error to add. Default `{ epsilon: 0, delta: 0 }`. */
  sketch?: ErrorPart;
  sources?: SourceWeight[];
  final?: boolean;
  /**
   * Unit roundoff of the arithmetic that produced the block values (default 2⁻⁵³, float64; jobs over float32
   * datasets pass 2⁻²⁴): the rounding allowance (`parts.rounding`) is computed with it.
   */
  unitRoundoff?: number;
}
