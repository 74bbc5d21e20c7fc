/**
 * The reactive coordinator: jobs of one NFU op per row block, run where the data sits over many depots,
 * with hedging, deadlines, transfer-then-transform, failures as sampling and reliability weights.
 */
export { Coordinator, defaultReliabilityPath, type CoordinatorOptions, type JobRunOptions } from './coordinator.js';
export {
  runJob,
  DEFAULT_CONCURRENCY,
  DEFAULT_PER_DEPOT_CONCURRENCY,
  DEFAULT_OP_TIMEOUT_MS,
  DEFAULT_HEDGE_MS,
  DEFAULT_MIN_HEDGE_MS,
  DEFAULT_HEDGE_QUANTILE,
  DEFAULT_DELTA,
  DEFAULT_PARTIAL_INTERVAL_MS,
  type RunJobOptions,
} from './run-job.js';
export { followDataset, type StreamWindow } from './follow-dataset.js';
export type { Job, JobCombiner } from './job.js';
export type { OpRunner, OpSpec, OpAttempt, OpAnswer, CoordinatorOpName } from './op-runner.js';
export {
  IbpOpRunner,
  NoDepotOffersOpError,
  DEFAULT_TRANSFER_LEASE_SEC,
  DEFAULT_OFFERS_TTL_MS,
  type IbpOpRunnerOptions,
} from './ibp-op-runner.js';
export { DepotGate } from './depot-gate.js';
export {
  hedgeDelayMs,
  InvalidAnswerError,
  isOpInvalid,
  OpTimeoutError,
  type BlockOutcome,
  type HedgeContext,
  type LateKind,
} from './hedged-block.js';
export { SuspectDepots, DEFAULT_SUSPECT_WAIT_MS, SUSPECT_WAIT_LATENCY_FACTOR } from './suspect-depots.js';
export type { ReliabilityView, OpOutcome } from './reliability-view.js';
export {
  storeReliability,
  reliabilityReport,
  isSourceEntry,
  SOURCE_ID_PREFIX,
  type ReliabilityReport,
  type SourceReliability,
} from './store-reliability.js';
export { robustCovarianceJob, RobustPcaState, TRUST_WEIGHT } from './robust-covariance-job.js';
export { validateColumnStats, validateGram, validateSketch } from './validate-output.js';
export { CoordinatorMetrics } from './coordinator-metrics.js';
export { columnStatsJob, columnStatsOp, type ColumnStatistic } from './column-stats-job.js';
export { gramJob, covarianceJob, gramOp } from './gram-job.js';
export { sketchJob, type SketchKind, type SketchJobOptions } from './sketch-job.js';
export { projectionJob } from './projection-job.js';
export { depotId, type Dataset, type DatasetBlock, type DatasetReplica } from './dataset-shape.js';
