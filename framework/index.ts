/**
 * Anvil framework: the client side. The IBP client itself lives with the wire codec in `ibp/` and is
 * re-exported here; exNodes, LoRS-style tools and the coordinator build on it.
 */
export {
  IbpClient,
  DEFAULT_CLIENT_TIMEOUT_MS,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_MAX_IDLE_PER_DEPOT,
  DEFAULT_IDLE_CLOSE_MS,
  DEFAULT_EAGER_BODY_BYTES,
  parseInquiryV1,
  parseInquiryV0,
  ClientError,
  ClientErrorCode,
  type IbpClientOptions,
  type DepotAddress,
  type AllocateOptions,
  type AllocationCaps,
  type ProbeResult,
  type ChangeOptions,
  type DepotInquiry,
  type DepotInquiryV0,
  type ResourceInquiry,
} from '../ibp/index.js';
export { FrameworkError, FrameworkErrorCode, type FrameworkErrorCodeValue } from './errors.js';
export {
  validateExnode,
  blocksOf,
  depotOf,
  depotKey,
  type Exnode,
  type Mapping,
  type Dtype,
  type RowRange,
  type ExnodeBlockSummary,
} from './exnode/exnode.js';
export { type MetaEntry, formatLocalTime, parseLeaseTime } from './exnode/metadata.js';
export { toXnd, fromXnd, XND_NAMESPACE, XND_LORS_VERSION } from './exnode/xnd.js';
export { toUnisJson, fromUnisJson, EXNODE_SCHEMA, IBP_EXTENT_SCHEMA } from './exnode/unis-json.js';
export { parseExnode, readExnode, writeExnode, formatFor } from './exnode/exnode-file.js';
export { parseDepotList, readDepotFile } from './lors/depot-list.js';
export { upload, DEFAULT_BLOCK_SIZE, DEFAULT_THREADS, DEFAULT_DURATION_SEC, type UploadOptions } from './lors/upload.js';
export { download, type DownloadOptions, type DownloadResult } from './lors/download.js';
export {
  statMappings,
  trimDead,
  trimMappings,
  refreshLeases,
  replicate,
  augment,
  type MappingStatus,
  type RefreshMode,
} from './lors/maintenance.js';
export { parsePolicy, type WarmerPolicy } from './warmer/policy.js';
export { Warmer, WarmerMetrics, type WarmReport } from './warmer/warmer.js';
export {
  systemClock,
  ManualClock,
  schedulerClock,
  sleep,
  MANUAL_CLOCK_MAX_FIRINGS,
  type Clock,
  type TimerHandle,
  type SchedulerLikeClock,
} from './clock.js';
export { WorkQueue, forEachBounded, type Task, type TaskOptions, type WorkQueueOptions } from './work-queue.js';
export { runKernel, type KernelCall, type KernelInput, type KernelOutput } from './nfu/run-kernel.js';
export {
  LiveServer,
  DEFAULT_LIVE_PORT,
  DEFAULT_LIVE_MAX_CLIENTS,
  DEFAULT_LIVE_MAX_PAYLOAD,
  DEFAULT_LIVE_SOFT_BUFFER_BYTES,
  DEFAULT_LIVE_HARD_BUFFER_BYTES,
  DEFAULT_LIVE_HEARTBEAT_MS,
  type LiveServerOptions,
} from './live/live-server.js';
export { LiveHub } from './live/live-hub.js';
export { liveStream, type LiveStreamOptions } from './live/live-client.js';
export {
  LIVE_PROTOCOL_VERSION,
  LiveErrorCode,
  parseClientMessage,
  type LiveErrorCodeValue,
  type LiveMessage,
  type LiveClientMessage,
  type LiveEstimate,
  type LiveSeriesPoint,
  type DepotState,
  type HelloMessage,
  type JobStartedMessage,
  type EstimateMessage,
  type DepotHealthMessage,
  type SourceWeightMessage,
  type JobDoneMessage,
  type JobFailedMessage,
  type EventMessage,
  type ErrorMessage,
} from './live/messages.js';
export {
  Coordinator,
  defaultReliabilityPath,
  runJob,
  followDataset,
  IbpOpRunner,
  NoDepotOffersOpError,
  DepotGate,
  hedgeDelayMs,
  storeReliability,
  CoordinatorMetrics,
  columnStatsJob,
  columnStatsOp,
  gramJob,
  covarianceJob,
  gramOp,
  sketchJob,
  projectionJob,
  depotId,
  DEFAULT_CONCURRENCY,
  DEFAULT_PER_DEPOT_CONCURRENCY,
  DEFAULT_OP_TIMEOUT_MS,
  DEFAULT_HEDGE_MS,
  DEFAULT_MIN_HEDGE_MS,
  DEFAULT_HEDGE_QUANTILE,
  DEFAULT_DELTA,
  DEFAULT_TRANSFER_LEASE_SEC,
  DEFAULT_OFFERS_TTL_MS,
  SOURCE_ID_PREFIX,
  type CoordinatorOptions,
  type JobRunOptions,
  type RunJobOptions,
  type StreamWindow,
  type Job,
  type JobCombiner,
  type OpRunner,
  type OpSpec,
  type OpAttempt,
  type OpAnswer,
  type CoordinatorOpName,
  type IbpOpRunnerOptions,
  type BlockOutcome,
  type ReliabilityView,
  type OpOutcome,
  type ColumnStatistic,
  type SketchKind,
  type SketchJobOptions,
  type Dataset as CoordinatorDataset,
  type DatasetBlock as CoordinatorDatasetBlock,
  type DatasetReplica as CoordinatorDatasetReplica,
} from './coordinator/index.js';
