import { constants as bufferConstants } from 'node:buffer';
import { isIP } from 'node:net';
import { DEFAULT_STATUS_PASSWORD, IBP_DEFAULT_PORT } from '../ibp/index.js';
import { DepotError, DepotErrorCode } from './errors.js';
import { defaultNfuMemoryBudgetMb } from './nfu/memory-budget.js';

/*
 * Every limit of the depot, with its named default. "Unlimited" does not exist: each value is a
 * finite number chosen here and overridable from the config file or flags.
 */

/** Longest accepted command line, newline included (64 KiB). */
export const DEFAULT_MAX_COMMAND_LINE_BYTES = 64 * 1024;
/** Open client connections; the next one is answered `-66 <retry>` and closed. */
export const DEFAULT_MAX_CONNECTIONS = 1024;
/** A connection with no command in progress is closed after this long (ACCRE `min_idle`). */
export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
/** Once a command line has started, it must be complete within this (slowloris guard). */
export const DEFAULT_COMMAND_LINE_TIMEOUT_MS = 10_000;
/** A STORE/WRITE body or a LOAD reply must make progress at least this often. */
export const DEFAULT_DATA_PROGRESS_TIMEOUT_MS = 30_000;
/** Allocations held by the whole depot at once. */
export const DEFAULT_MAX_ALLOCATIONS = 1_000_000;
/** On shutdown, in-flight commands get this long to finish before connections are cut. */
export const DEFAULT_SHUTDOWN_GRACE_MS = 10_000;
/** Seconds suggested to clients in a `-66 <seconds>` overload reply. */
export const DEFAULT_OVERLOAD_RETRY_SEC = 2;
/** Unread input held per connection before the socket is paused. */
export const DEFAULT_READ_HIGH_WATER_BYTES = 1024 * 1024;
/** How often expired leases are swept (lookups also check expiry). */
export const DEFAULT_SWEEP_INTERVAL_MS = 1_000;
/**
 * A STORE/WRITE body (or NFU parameter data) must arrive at least this fast on average: its
 * whole-body deadline is the start allowance (the command's timeout token, at least
 * `dataProgressTimeoutMs`) plus LENGTH / this rate (64 KiB/s).
 */
export const DEFAULT_MIN_BODY_BYTES_PER_SEC = 64 * 1024;
/**
 * The command's timeout token is honoured up to this (5 min): it bounds how long a STORE/WRITE
 * waits behind another writer of the same allocation (then `-42`), and extends a body's allowance.
 */
export const DEFAULT_MAX_REQUEST_TIMEOUT_MS = 300_000;
/**
 * When the depot closes a connection (after a refusal, a timeout, or idle), it reads and discards
 * at most this much more of the client's input, so a client still sending a body can finish and
 * read the reply; beyond it the connection is reset (4 MiB).
 */
export const DEFAULT_CLOSE_DRAIN_BYTES = 4 * 1024 * 1024;
/** A connection the depot closed is destroyed at the latest this long after its reply (the client need not close). */
export const DEFAULT_CLOSE_LINGER_MS = 2_000;

/** A transfer's remote depot must accept the connection within this. */
export const DEFAULT_TRANSFER_CONNECT_TIMEOUT_MS = 5_000;
/** A whole depot-to-depot transfer (SEND, PUSH, PULL) must finish within this. */
export const DEFAULT_TRANSFER_TIMEOUT_MS = 300_000;

/** Memory resource size when none is configured (1 GiB). */
export const DEFAULT_RESOURCE_CAPACITY_BYTES = 1024 ** 3;
/** Largest single allocation when none is configured: the whole default capacity. */
export const DEFAULT_MAX_ALLOCATION_BYTES = 1024 ** 3;
/** Longest lease when none is configured: 30 days, as the ACCRE depot. */
export const DEFAULT_MAX_DURATION_SEC = 2_592_000;
/** Status (ST_INQ) password the IBP peer tools send by default. */
export { DEFAULT_STATUS_PASSWORD };
export const DEFAULT_HOST = '127.0.0.1';

export type ResourceKind = 'memory' | 'disk';
/** `safe`: a write is acknowledged after its data and metadata are fsynced. `fast`: no fsync (unsafe on power loss). */
export type FsyncPolicy = 'safe' | 'fast';
/** What a disk resource checks at start-up: file sizes only, or every block checksum too. */
export type StartupCheck = 'full' | 'size';

/** Grace period before the bytes of an expired or deleted allocation are freed, disk resources (1 hour). */
export const DEFAULT_DISK_TRASH_GRACE_SEC = 3600;
export type WrmKeyPolicy = 'ignore' | 'check';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface ResourceOptions {
  /** Resource id, a decimal string (`0` is reserved: it means "any" in requests). */
  readonly rid: string;
  readonly kind: ResourceKind;
  readonly capacityBytes: number;
  readonly maxAllocationBytes: number;
  readonly maxDurationSec: number;
  /** Seconds an expired or deleted allocation stays in the trash (still counted in capacity); 0 frees at once. */
  readonly trashGraceSec: number;
  /** Data directory of a disk resource; undefined for memory. */
  readonly path: string | undefined;
  readonly fsync: FsyncPolicy;
  readonly startupCheck: StartupCheck;
  /**
   * Disk: most bytes of warm files (sparse, their pages read into the page cache ahead) that new
   * allocations' files start from, so their first writes do not wait for fresh pages; kept only as
   * far as new allocations asked for them lately. 0 turns it off; undefined: 1 GiB, at most 1/16 of memory.
   */
  readonly warmBytes?: number | undefined;
}

export interface DepotLimits {
  readonly maxCommandLineBytes: number;
  readonly maxConnections: number;
  readonly idleTimeoutMs: number;
  readonly commandLineTimeoutMs: number;
  readonly dataProgressTimeoutMs: number;
  readonly maxAllocations: number;
  readonly shutdownGraceMs: number;
  readonly overloadRetrySec: number;
  readonly readHighWaterBytes: number;
  readonly sweepIntervalMs: number;
  readonly minBodyBytesPerSec: number;
  readonly maxRequestTimeoutMs: number;
  readonly closeDrainBytes: number;
  readonly closeLingerMs: number;
}

export interface TransferOptions {
  /**
   * Remote depots this depot may connect to for SEND/PUSH/PULL: `*` (any), CIDRs
   * (`10.0.0.0/8`, `::1/128`), bare IPs, or `host:port`. Default `["*"]`.
   */
  readonly allow: readonly string[];
  readonly connectTimeoutMs: number;
  readonly timeoutMs: number;
}

/** NFU (transform) execution limits. */
export interface NfuOptions {
  /** Opcodes or kernel names served; `["*"]` = every built-in kernel, `[]` = none. */
  readonly enable: readonly (number | string)[];
  /** Worker threads running ops; 0 runs them on the event loop (tests, debugging only). */
  readonly workers: number;
  /** Ops waiting for a worker; beyond it a call answers `-66 <retry>`. */
  readonly maxQueue: number;
  /** An op running longer (counted from when a worker starts it) is stopped and answers -46. */
  readonly timeoutMs: number;
  /** An op no worker starts within this time is withdrawn and answers `-66 <retry>`. */
  readonly queueTimeoutMs: number;
  /** Heap limit of each worker (MB). */
  readonly memoryMb: number;
  /** Largest VAL_IN / VAL_INOUT / VAL_OUT parameter (bytes). */
  readonly maxValueBytes: number;
  /**
   * Run the native kernels (OpenBLAS + vector loops) when the addon was built; false keeps every
   * op in WebAssembly/JS. Random numbers are bit-identical either way; dense products agree to
   * rounding.
   */
  readonly native: boolean;
  /** Idle shared buffers kept for op inputs and outputs (MiB); reused buffers cost no page faults. */
  readonly bufferPoolMb: number;
  /** Bytes all running and queued NFU ops may hold (MiB); beyond, `-66 <retry>` (default: memory/16, 128–4096). */
  readonly memoryBudgetMb: number;
  /**
   * Admin code upload: with a secret, NFU opcode 0 registers a WebAssembly module as a new op
   * (memory bounded by `maxMemoryPages` × 64 KiB, no imports but that memory). Off when undefined.
   */
  readonly admin: { readonly secret: string; readonly maxMemoryPages: number } | undefined;
}

export interface DepotOptions {
  readonly host: string;
  /** TCP port; 0 picks a free one (tests). */
  readonly port: number;
  /** Host written into capabilities (defaults to `host`; set it when binding 0.0.0.0 or behind NAT). */
  readonly publicHost: string;
  readonly statusPassword: string;
  /** `ignore` (ACCRE behaviour, default) or `check` the WRM-key token of requests. */
  readonly wrmKey: WrmKeyPolicy;
  readonly logLevel: LogLevel;
  readonly resources: readonly ResourceOptions[];
  readonly limits: DepotLimits;
  readonly transfer: TransferOptions;
  readonly nfu: NfuOptions;
}

/** What a config file or the command line may set; every field optional. */
export interface DepotOptionsInput {
  host?: unknown;
  port?: unknown;
  publicHost?: unknown;
  statusPassword?: unknown;
  wrmKey?: unknown;
  logLevel?: unknown;
  resource?: unknown;
  resources?: unknown;
  limits?: unknown;
  transfer?: unknown;
  nfu?: unknown;
}

export function defaultLimits(): DepotLimits {
  return {
    maxCommandLineBytes: DEFAULT_MAX_COMMAND_LINE_BYTES,
    maxConnections: DEFAULT_MAX_CONNECTIONS,
    idleTimeoutMs: DEFAULT_IDLE_TIMEOUT_MS,
    commandLineTimeoutMs: DEFAULT_COMMAND_LINE_TIMEOUT_MS,
    dataProgressTimeoutMs: DEFAULT_DATA_PROGRESS_TIMEOUT_MS,
    maxAllocations: DEFAULT_MAX_ALLOCATIONS,
    shutdownGraceMs: DEFAULT_SHUTDOWN_GRACE_MS,
    overloadRetrySec: DEFAULT_OVERLOAD_RETRY_SEC,
    readHighWaterBytes: DEFAULT_READ_HIGH_WATER_BYTES,
    sweepIntervalMs: DEFAULT_SWEEP_INTERVAL_MS,
    minBodyBytesPerSec: DEFAULT_MIN_BODY_BYTES_PER_SEC,
    maxRequestTimeoutMs: DEFAULT_MAX_REQUEST_TIMEOUT_MS,
    closeDrainBytes: DEFAULT_CLOSE_DRAIN_BYTES,
    closeLingerMs: DEFAULT_CLOSE_LINGER_MS,
  };
}

export function defaultResource(): ResourceOptions {
  return {
    rid: '1',
    kind: 'memory',
    capacityBytes: DEFAULT_RESOURCE_CAPACITY_BYTES,
    maxAllocationBytes: DEFAULT_MAX_ALLOCATION_BYTES,
    maxDurationSec: DEFAULT_MAX_DURATION_SEC,
    trashGraceSec: 0,
    path: undefined,
    fsync: 'safe',
    startupCheck: 'full',
  };
}

const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const TOP_KEYS = new Set([
  'host',
  'port',
  'publicHost',
  'statusPassword',
  'wrmKey',
  'logLevel',
  'resource',
  'resources',
  'limits',
  'transfer',
  'nfu',
]);
const NFU_KEYS = new Set([
  'enable',
  'workers',
  'maxQueue',
  'timeoutMs',
  'memoryMb',
  'maxValueBytes',
  'native',
  'bufferPoolMb',
  'memoryBudgetMb',
  'queueTimeoutMs',
  'admin',
]);
const RESOURCE_KEYS = new Set([
  'rid',
  'kind',
  'capacityBytes',
  'maxAllocationBytes',
  'maxDurationSec',
  'trashGraceSec',
  'path',
  'fsync',
  'startupCheck',
  'warmBytes',
]);
const TRANSFER_KEYS = new Set(['allow', 'connectTimeoutMs', 'timeoutMs']);
const LIMIT_KEYS = new Set(Object.keys(defaultLimits()));
/** Keys that were renamed; the message names the replacement. */
const RENAMED: Readonly<Record<string, string>> = {
  password: 'statusPassword',
  maxSize: 'maxAllocationBytes',
  maxDuration: 'maxDurationSec',
  capacity: 'capacityBytes',
};

function configError(message: string, field: string, actual?: unknown): DepotError {
  return new DepotError(DepotErrorCode.CONFIG, `invalid config: ${message}`, {
    details: actual === undefined ? { field } : { field, actual },
  });
}

function show(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

function checkKeys(obj: Record<string, unknown>, allowed: ReadonlySet<string>, where: string): void {
  for (const key of Object.keys(obj)) {
    if (allowed.has(key)) continue;
    const renamed = RENAMED[key];
    throw configError(
      renamed !== undefined
        ? `\`${where}${key}\` is not an option; use \`${where}${renamed}\``
        : `unknown option \`${where}${key}\``,
      `${where}${key}`,
    );
  }
}

const SIZE_UNITS: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
  tb: 1000 ** 4,
};

/**
 * Parses a byte size: a non-negative safe integer, or a string like `"64MiB"`, `"1.5GiB"`,
 * `"500kB"` (binary and decimal units).
 */
export function parseByteSize(value: unknown, field: string): number {
  if (typeof value === 'number' || typeof value === 'bigint') {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < 0) {
      throw configError(`\`${field}\` must be a non-negative integer number of bytes (got ${show(value)})`, field, value);
    }
    return n;
  }
  if (typeof value === 'string') {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value);
    const unit = m === null ? undefined : SIZE_UNITS[m[2]!.toLowerCase()];
    if (m !== null && unit !== undefined) {
      const n = Math.round(Number(m[1]) * unit);
      if (Number.isSafeInteger(n)) return n;
    }
  }
  throw configError(`\`${field}\` must be a byte size such as 1048576 or "64MiB" (got ${show(value)})`, field, value);
}

function integerIn(value: unknown, field: string, min: number, max: number): number {
  const n = typeof value === 'bigint' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw configError(`\`${field}\` must be an integer from ${min} to ${max} (got ${show(value)})`, field, value);
  }
  return n;
}

function nonEmptyString(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length === 0 || /\s/.test(value)) {
    throw configError(`\`${field}\` must be a non-empty string without spaces (got ${show(value)})`, field, value);
  }
  return value;
}

function asObject(value: unknown, field: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw configError(`\`${field}\` must be a table/object (got ${show(value)})`, field, value);
  }
  return value as Record<string, unknown>;
}

function parseResource(value: unknown, index: number): ResourceOptions {
  const where = `resource[${index}].`;
  const obj = asObject(value, `resource[${index}]`);
  checkKeys(obj, RESOURCE_KEYS, where);
  const base = defaultResource();
  const rid = obj['rid'] === undefined ? String(index + 1) : String(obj['rid']);
  if (!/^[1-9]\d{0,7}$/.test(rid)) {
    throw configError(
      `\`${where}rid\` must be a decimal id from 1 to 99999999 (got ${show(obj['rid'])})`,
      `${where}rid`,
      obj['rid'],
    );
  }
  const kind = obj['kind'] ?? (obj['path'] === undefined ? 'memory' : 'disk');
  if (kind !== 'memory' && kind !== 'disk') {
    throw configError(`\`${where}kind\` must be "memory" or "disk" (got ${show(kind)})`, `${where}kind`, kind);
  }
  let path: string | undefined;
  if (kind === 'disk') {
    if (typeof obj['path'] !== 'string' || obj['path'] === '') {
      throw configError(`\`${where}path\` (the data directory) is required for a disk resource`, `${where}path`, obj['path']);
    }
    path = obj['path'];
  } else if (obj['path'] !== undefined) {
    throw configError(`\`${where}path\` applies to disk resources only; this one is "memory"`, `${where}path`, obj['path']);
  }
  const fsync = obj['fsync'] ?? 'safe';
  if (fsync !== 'safe' && fsync !== 'fast') {
    throw configError(`\`${where}fsync\` must be "safe" or "fast" (got ${show(fsync)})`, `${where}fsync`, fsync);
  }
  if (kind === 'memory' && obj['fsync'] !== undefined) {
    throw configError(
      `\`${where}fsync\` applies to disk resources only (give a path / --data); this one is "memory"`,
      `${where}fsync`,
      fsync,
    );
  }
  const startupCheck = obj['startupCheck'] ?? 'full';
  if (startupCheck !== 'full' && startupCheck !== 'size') {
    throw configError(
      `\`${where}startupCheck\` must be "full" or "size" (got ${show(startupCheck)})`,
      `${where}startupCheck`,
      startupCheck,
    );
  }
  const trashGraceSec =
    obj['trashGraceSec'] === undefined
      ? kind === 'disk'
        ? DEFAULT_DISK_TRASH_GRACE_SEC
        : 0
      : integerIn(obj['trashGraceSec'], `${where}trashGraceSec`, 0, 365 * 86_400);
  const capacityBytes =
    obj['capacityBytes'] === undefined ? base.capacityBytes : parseByteSize(obj['capacityBytes'], `${where}capacityBytes`);
  if (capacityBytes < 1) throw configError(`\`${where}capacityBytes\` must be at least 1 (got 0)`, `${where}capacityBytes`, 0);
  const maxAllocationBytes =
    obj['maxAllocationBytes'] === undefined
      ? // The whole capacity, as documented; a memory allocation is one Buffer, so at most its maximum length.
        kind === 'memory'
        ? Math.min(capacityBytes, bufferConstants.MAX_LENGTH)
        : capacityBytes
      : parseByteSize(obj['maxAllocationBytes'], `${where}maxAllocationBytes`);
  if (maxAllocationBytes < 1 || maxAllocationBytes > capacityBytes) {
    throw configError(
      `\`${where}maxAllocationBytes\` must be from 1 to capacityBytes (${capacityBytes}) (got ${maxAllocationBytes})`,
      `${where}maxAllocationBytes`,
      maxAllocationBytes,
    );
  }
  if (kind === 'memory' && maxAllocationBytes > bufferConstants.MAX_LENGTH) {
    throw configError(
      `\`${where}maxAllocationBytes\` of a memory resource must be at most ${bufferConstants.MAX_LENGTH} (got ${maxAllocationBytes})`,
      `${where}maxAllocationBytes`,
      maxAllocationBytes,
    );
  }
  let warmBytes: number | undefined;
  if (obj['warmBytes'] !== undefined) {
    if (kind === 'memory') {
      throw configError(
        `\`${where}warmBytes\` applies to disk resources only (give a path / --data); this one is "memory"`,
        `${where}warmBytes`,
        obj['warmBytes'],
      );
    }
    warmBytes = parseByteSize(obj['warmBytes'], `${where}warmBytes`);
    if (warmBytes > 64 * 1024 ** 3) {
      throw configError(
        `\`${where}warmBytes\` must be from 0 to 64 GiB (got ${warmBytes})`,
        `${where}warmBytes`,
        obj['warmBytes'],
      );
    }
  }
  const maxDurationSec =
    obj['maxDurationSec'] === undefined
      ? base.maxDurationSec
      : integerIn(obj['maxDurationSec'], `${where}maxDurationSec`, 1, 100 * 365 * 86_400);
  return Object.freeze({
    rid,
    kind,
    capacityBytes,
    maxAllocationBytes,
    maxDurationSec,
    trashGraceSec,
    path,
    fsync,
    startupCheck,
    ...(warmBytes === undefined ? {} : { warmBytes }),
  });
}

function parseLimits(value: unknown): DepotLimits {
  const limits: Record<string, number> = { ...defaultLimits() };
  if (value === undefined) return Object.freeze(limits as unknown as DepotLimits);
  const obj = asObject(value, 'limits');
  checkKeys(obj, LIMIT_KEYS, 'limits.');
  for (const [key, raw] of Object.entries(obj)) {
    const field = `limits.${key}`;
    if (key === 'maxCommandLineBytes' || key === 'readHighWaterBytes') {
      const n = parseByteSize(raw, field);
      if (n < 64 || n > 16 * 1024 * 1024) {
        throw configError(`\`${field}\` must be from 64 to 16777216 bytes (got ${n})`, field, raw);
      }
      limits[key] = n;
    } else if (key === 'closeDrainBytes') {
      const n = parseByteSize(raw, field);
      if (n > 1024 ** 3) throw configError(`\`${field}\` must be from 0 to 1073741824 bytes (got ${n})`, field, raw);
      limits[key] = n;
    } else if (key === 'minBodyBytesPerSec') {
      const n = parseByteSize(raw, field);
      if (n < 1 || n > 1024 ** 3) throw configError(`\`${field}\` must be from 1 to 1073741824 bytes (got ${n})`, field, raw);
      limits[key] = n;
    } else if (key === 'overloadRetrySec') {
      limits[key] = integerIn(raw, field, 1, 3600);
    } else if (key === 'shutdownGraceMs' || key === 'closeLingerMs') {
      limits[key] = integerIn(raw, field, 0, 3_600_000);
    } else if (key.endsWith('Ms')) {
      limits[key] = integerIn(raw, field, 1, 86_400_000);
    } else {
      limits[key] = integerIn(raw, field, 1, 1_000_000_000);
    }
  }
  if (limits['readHighWaterBytes']! < limits['maxCommandLineBytes']!) {
    throw configError(
      `\`limits.readHighWaterBytes\` (${limits['readHighWaterBytes']}) must be at least \`limits.maxCommandLineBytes\` (${limits['maxCommandLineBytes']}): a line must fit before reading pauses`,
      'limits.readHighWaterBytes',
      limits['readHighWaterBytes'],
    );
  }
  return Object.freeze(limits as unknown as DepotLimits);
}

/** Checks one allow-list entry: `*`, an IP, a CIDR, or `host:port`. */
function checkAllowEntry(entry: unknown, field: string): string {
  if (typeof entry === 'string') {
    if (entry === '*') return entry;
    const cidr = /^([^/]+)\/(\d{1,3})$/.exec(entry);
    if (cidr !== null) {
      const family = isIP(cidr[1]!);
      const bits = Number(cidr[2]);
      if (family !== 0 && bits <= (family === 4 ? 32 : 128)) return entry;
    } else if (isIP(entry) !== 0) {
      return entry;
    } else {
      const hp = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(entry);
      if (hp !== null && Number(hp[2]) >= 1 && Number(hp[2]) <= 65_535) return entry;
    }
  }
  throw configError(
    `\`${field}\` entries must be "*", an IP, a CIDR like "10.0.0.0/8", or "host:port" (got ${show(entry)})`,
    field,
    entry,
  );
}

function parseTransfer(value: unknown): TransferOptions {
  const out = {
    allow: ['*'] as readonly string[],
    connectTimeoutMs: DEFAULT_TRANSFER_CONNECT_TIMEOUT_MS,
    timeoutMs: DEFAULT_TRANSFER_TIMEOUT_MS,
  };
  if (value === undefined) return Object.freeze(out);
  const obj = asObject(value, 'transfer');
  checkKeys(obj, TRANSFER_KEYS, 'transfer.');
  if (obj['allow'] !== undefined) {
    if (!Array.isArray(obj['allow']))
      throw configError('`transfer.allow` must be a list of strings', 'transfer.allow', obj['allow']);
    out.allow = Object.freeze(obj['allow'].map((e) => checkAllowEntry(e, 'transfer.allow')));
  }
  if (obj['connectTimeoutMs'] !== undefined)
    out.connectTimeoutMs = integerIn(obj['connectTimeoutMs'], 'transfer.connectTimeoutMs', 1, 600_000);
  if (obj['timeoutMs'] !== undefined) out.timeoutMs = integerIn(obj['timeoutMs'], 'transfer.timeoutMs', 1, 86_400_000);
  return Object.freeze(out);
}

function parseNfu(value: unknown): NfuOptions {
  const out: { -readonly [K in keyof NfuOptions]: NfuOptions[K] } = {
    enable: ['*'],
    workers: 2,
    maxQueue: 16,
    timeoutMs: 30_000,
    queueTimeoutMs: 60_000,
    memoryMb: 1024,
    maxValueBytes: 1024 * 1024,
    native: true,
    bufferPoolMb: 512,
    memoryBudgetMb: defaultNfuMemoryBudgetMb(),
    admin: undefined,
  };
  if (value === undefined) return Object.freeze(out);
  const obj = asObject(value, 'nfu');
  checkKeys(obj, NFU_KEYS, 'nfu.');
  if (obj['enable'] !== undefined) {
    const e = obj['enable'];
    if (!Array.isArray(e) || e.some((x) => !(typeof x === 'string' || (typeof x === 'number' && Number.isInteger(x) && x > 0)))) {
      throw configError('`nfu.enable` must be a list of opcodes or kernel names ("*" = all)', 'nfu.enable', e);
    }
    out.enable = Object.freeze([...(e as (number | string)[])]);
  }
  if (obj['workers'] !== undefined) out.workers = integerIn(obj['workers'], 'nfu.workers', 0, 64);
  if (obj['maxQueue'] !== undefined) out.maxQueue = integerIn(obj['maxQueue'], 'nfu.maxQueue', 0, 100_000);
  if (obj['timeoutMs'] !== undefined) out.timeoutMs = integerIn(obj['timeoutMs'], 'nfu.timeoutMs', 1, 86_400_000);
  if (obj['queueTimeoutMs'] !== undefined)
    out.queueTimeoutMs = integerIn(obj['queueTimeoutMs'], 'nfu.queueTimeoutMs', 1, 86_400_000);
  if (obj['bufferPoolMb'] !== undefined) out.bufferPoolMb = integerIn(obj['bufferPoolMb'], 'nfu.bufferPoolMb', 0, 1_048_576);
  if (obj['memoryBudgetMb'] !== undefined)
    out.memoryBudgetMb = integerIn(obj['memoryBudgetMb'], 'nfu.memoryBudgetMb', 1, 1_048_576);
  if (obj['native'] !== undefined) {
    if (typeof obj['native'] !== 'boolean') throw configError('`nfu.native` must be true or false', 'nfu.native', obj['native']);
    out.native = obj['native'];
  }
  if (obj['memoryMb'] !== undefined) out.memoryMb = integerIn(obj['memoryMb'], 'nfu.memoryMb', 16, 65_536);
  if (obj['maxValueBytes'] !== undefined) {
    const n = parseByteSize(obj['maxValueBytes'], 'nfu.maxValueBytes');
    if (n < 1 || n > 256 * 1024 * 1024)
      throw configError(`\`nfu.maxValueBytes\` must be from 1 to 268435456 (got ${n})`, 'nfu.maxValueBytes', n);
    out.maxValueBytes = n;
  }
  if (obj['admin'] !== undefined) {
    const admin = asObject(obj['admin'], 'nfu.admin');
    checkKeys(admin, new Set(['secret', 'maxMemoryPages']), 'nfu.admin.');
    const secret = admin['secret'];
    if (typeof secret !== 'string' || secret.length < 16 || /\s/.test(secret)) {
      throw configError('`nfu.admin.secret` must be a string of at least 16 characters without spaces', 'nfu.admin.secret');
    }
    const maxMemoryPages =
      admin['maxMemoryPages'] === undefined ? 1024 : integerIn(admin['maxMemoryPages'], 'nfu.admin.maxMemoryPages', 1, 65_536);
    out.admin = Object.freeze({ secret, maxMemoryPages });
  }
  return Object.freeze(out);
}

/**
 * Validates a depot configuration (merged from the config file and the flags) once, applies
 * defaults, and returns a frozen {@link DepotOptions}. Throws {@link DepotError} with code
 * `DEPOT_ERR_CONFIG` and a message naming the field, the rule and the value.
 */
export function parseDepotOptions(input: DepotOptionsInput = {}): DepotOptions {
  checkKeys(input as Record<string, unknown>, TOP_KEYS, '');
  const host = input.host === undefined ? DEFAULT_HOST : nonEmptyString(input.host, 'host');
  const port = input.port === undefined ? IBP_DEFAULT_PORT : integerIn(input.port, 'port', 0, 65_535);
  const publicHost = input.publicHost === undefined ? host : nonEmptyString(input.publicHost, 'publicHost');
  if (input.publicHost === undefined && (host === '0.0.0.0' || host === '::')) {
    throw configError(
      `\`publicHost\` is required when binding the wildcard address ${host} (it is written into caps)`,
      'publicHost',
    );
  }
  if (isIP(publicHost) === 0 && !/^[A-Za-z0-9.-]+$/.test(publicHost)) {
    throw configError(`\`publicHost\` must be an IP address or a host name (got ${show(publicHost)})`, 'publicHost', publicHost);
  }
  const statusPassword =
    input.statusPassword === undefined ? DEFAULT_STATUS_PASSWORD : nonEmptyString(input.statusPassword, 'statusPassword');
  const wrmKey = input.wrmKey ?? 'ignore';
  if (wrmKey !== 'ignore' && wrmKey !== 'check') {
    throw configError(`\`wrmKey\` must be "ignore" or "check" (got ${show(wrmKey)})`, 'wrmKey', wrmKey);
  }
  const logLevel = input.logLevel ?? 'info';
  if (!LOG_LEVELS.includes(logLevel as LogLevel)) {
    throw configError(`\`logLevel\` must be one of ${LOG_LEVELS.join(', ')} (got ${show(logLevel)})`, 'logLevel', logLevel);
  }
  if (input.resource !== undefined && input.resources !== undefined) {
    throw configError('`resource` and `resources` are the same option; give only one', 'resources');
  }
  const rawResources = input.resource ?? input.resources;
  let resources: ResourceOptions[];
  if (rawResources === undefined) {
    resources = [Object.freeze(defaultResource())];
  } else {
    if (!Array.isArray(rawResources) || rawResources.length === 0) {
      throw configError('`resource` must be a non-empty list of tables ([[resource]] in TOML)', 'resource', rawResources);
    }
    resources = rawResources.map((r, i) => parseResource(r, i));
    const seen = new Set<string>();
    const paths = new Set<string>();
    for (const r of resources) {
      if (seen.has(r.rid)) throw configError(`resource id ${r.rid} is given twice`, 'resource.rid', r.rid);
      seen.add(r.rid);
      if (r.path !== undefined) {
        if (paths.has(r.path)) throw configError(`data directory ${r.path} is given to two resources`, 'resource.path', r.path);
        paths.add(r.path);
      }
    }
  }
  return Object.freeze({
    host,
    port,
    publicHost,
    statusPassword,
    wrmKey,
    logLevel: logLevel as LogLevel,
    resources: Object.freeze(resources),
    limits: parseLimits(input.limits),
    transfer: parseTransfer(input.transfer),
    nfu: parseNfu(input.nfu),
  });
}
