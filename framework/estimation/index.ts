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
  Inclusion,
  PlannedBlock,
  Weighting,
  EstimateOptions,
} from './types.js';
export { CoordinatorError, CoordinatorErrorCode, type CoordinatorErrorCodeValue } from './errors.js';
export { summarizeBlock, summaryToJson, summaryFromJson, validateSummary, type BlockSummaryJson } from './block-summary.js';
export { lnGamma, regularizedIncompleteBeta, betaQuantile } from './beta.js';
export { bernsteinRadius } from './bernstein.js';
export { blockInclusion, DEFAULT_PI_MIN } from './inclusion.js';
