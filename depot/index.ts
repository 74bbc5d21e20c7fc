/**
 * The Anvil depot: an IBP server (wire-compatible with the LoCI and ACCRE depots for the core
 * calls), its protocol codec and its configuration. Framework code uses the protocol pieces
 * exported here (codec, caps, constants), never the server internals.
 */
export { DepotServer, type DepotServerDeps } from './server/depot-server.js';
export { DepotCore, type AllocatedCaps } from './core/depot-core.js';
export { VirtualClock, systemClock, type Clock } from './core/clock.js';
export { DepotError, DepotErrorCode, type DepotErrorCodeValue } from './errors.js';
export {
  parseDepotOptions,
  parseByteSize,
  defaultLimits,
  defaultResource,
  DEFAULT_MAX_COMMAND_LINE_BYTES,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_COMMAND_LINE_TIMEOUT_MS,
  DEFAULT_DATA_PROGRESS_TIMEOUT_MS,
  DEFAULT_MAX_ALLOCATIONS,
  DEFAULT_SHUTDOWN_GRACE_MS,
  DEFAULT_OVERLOAD_RETRY_SEC,
  DEFAULT_READ_HIGH_WATER_BYTES,
  DEFAULT_SWEEP_INTERVAL_MS,
  DEFAULT_RESOURCE_CAPACITY_BYTES,
  DEFAULT_MAX_ALLOCATION_BYTES,
  DEFAULT_MAX_DURATION_SEC,
  DEFAULT_STATUS_PASSWORD,
  DEFAULT_HOST,
  type DepotOptions,
  type DepotOptionsInput,
  type DepotLimits,
  type ResourceOptions,
  type LogLevel,
} from './options.js';
export {
  Command,
  ManageOp,
  StatusOp,
  Status,
  Reliability,
  AllocationType,
  CapType,
  IBP_DEFAULT_PORT,
  statusName,
  type CapTypeNumber,
} from './protocol/commands.js';
export { parseCapability, formatCapability, capTokens, MAX_CAP_LENGTH, type Capability } from './protocol/caps.js';
export { parseRequest, tokenize } from './protocol/parse.js';
export type { IbpRequest } from './protocol/requests.js';
export { ByteQueue, LINE_TOO_LONG } from './protocol/byte-queue.js';
export { StreamReader, ReadError, type ReadFailure } from './protocol/stream-reader.js';
export {
  IbpClient,
  DEFAULT_CLIENT_TIMEOUT_MS,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_MAX_IDLE_PER_DEPOT,
  DEFAULT_IDLE_CLOSE_MS,
  DEFAULT_EAGER_BODY_BYTES,
  type IbpClientOptions,
  type DepotAddress,
  type AllocateOptions,
  type AllocationCaps,
  type ProbeResult,
  type ChangeOptions,
  type NfuParamSpec,
  type TransferOptions as ClientTransferOptions,
} from './client/ibp-client.js';
export {
  parseInquiryV1,
  parseInquiryV0,
  type DepotInquiry,
  type DepotInquiryV0,
  type ResourceInquiry,
} from './client/inquiry.js';
export { ClientError, ClientErrorCode } from './client/client-error.js';
export { NfuExecutor, MIN_SPLIT_ROWS } from './nfu/nfu-executor.js';
export { loadNativeKernels, installNativeKernels, checkNativeKernels } from './nfu/native-loader.js';
