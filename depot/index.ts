/**
 * The Anvil depot: an IBP server (wire-compatible with the LoCI and ACCRE depots for the core
 * calls) and its configuration. The wire codec and the client live in `ibp/`; nothing outside the
 * command-line layer and the tests imports this module.
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
export { NfuExecutor, MIN_SPLIT_ROWS } from './nfu/nfu-executor.js';
export { loadNativeKernels, kernelBackendFor, checkNativeKernels } from './nfu/native-loader.js';
