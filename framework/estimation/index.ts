/**
 * Estimation and reliability core of the coordinator: block summaries, inclusion probabilities,
 * Horvitz–Thompson / Hájek estimators with (ε, δ) bounds, and the reliability & quality store.
 * Pure modules (no I/O but the reliability store's own file); time comes from an injected {@link Clock}.
 */
export type {
  Clock,
  Norm,
  ErrorPart,
  SourceWeight,
  Estimate,
  BlockSummary,
  ScatterReference,
  Inclusion,
  PlannedBlock,
  Weighting,
  EstimateOptions,
} from './types.js';
export { CoordinatorError, CoordinatorErrorCode, type CoordinatorErrorCodeValue } from './errors.js';
export {
  summarizeBlock,
  summaryToJson,
  summaryFromJson,
  validateSummary,
  scatterBounds,
  gramNormBound,
  centredScatter,
  makeScatterReference,
  attachScatterRadius,
  scatterRho,
  DEFAULT_SCATTER_RHO_TAU,
  scatterTrace,
  scatterReferenceToJson,
  scatterReferenceFromJson,
  DEFAULT_SPECTRUM_MAX_COLS,
  EXACT_SCATTER_MAX_COLS,
  exactGramOf,
  packScatter,
  unpackScatter,
  type BlockSummaryJson,
  type ScatterReferenceJson,
} from './block-summary.js';
export { lnGamma, regularizedIncompleteBeta, betaQuantile } from './beta.js';
export { bernsteinRadius, bennettRadius, bennettRadiusTerms, type TailTerm } from './bernstein.js';
export { blockInclusion, DEFAULT_PI_MIN } from './inclusion.js';
export { coverageOf, combineErrors } from './plan.js';
export { FLOAT32_UNIT_ROUNDOFF, FLOAT64_UNIT_ROUNDOFF, gamma } from './rounding.js';
export {
  VectorAccumulator,
  columnSums,
  columnSumsOfSquares,
  squaredFrobenius,
  magnitudeBounded,
  type VectorStatistic,
} from './vector-accumulator.js';
export { ColumnMomentsAccumulator, type ColumnMoments } from './column-moments.js';
export {
  MatrixAccumulator,
  gramStatistic,
  projectionStatistic,
  sketchStatistic,
  DEFAULT_EXACT_NORM_MAX_DIM,
  type MatrixStatistic,
  type RemainderBall,
} from './matrix-accumulator.js';
export { estimateCovariance } from './covariance.js';
export { symmetricEigenvalues } from './symmetric-eigen.js';
export { LatencyHistogram } from './latency-histogram.js';
export { robustQualityWeights, toSourceWeights, type QualityScore, type QualityWeightOptions } from './quality.js';
export {
  ReliabilityStore,
  DEFAULT_RELIABILITY_HALF_LIFE_MS,
  DEFAULT_QUALITY_HALF_LIFE_MS,
  DEFAULT_LOWER_QUANTILE,
  type ReliabilityStoreOptions,
  type DepotReliability,
  type ReliabilitySnapshot,
  type ReliabilityStateJson,
} from './reliability-store.js';
