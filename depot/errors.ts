import { IbpProtocolError, Status, statusName } from '../ibp/index.js';

const BRAND = Symbol.for('anvil.depot-error');

/** Stable codes of {@link DepotError}; match on these, never on messages. Documented in docs/errors.md. */
export const DepotErrorCode = {
  /** The depot configuration (file or flags) is invalid. */
  CONFIG: 'DEPOT_ERR_CONFIG',
  /** A request line is malformed (wrong token count, non-numeric field…). */
  BAD_FORMAT: 'DEPOT_ERR_BAD_FORMAT',
  /** A request names an unknown command or sub-command. */
  UNKNOWN_COMMAND: 'DEPOT_ERR_UNKNOWN_COMMAND',
  /** The protocol version token is neither 0 nor 1. */
  PROTOCOL_VERSION: 'DEPOT_ERR_PROTOCOL_VERSION',
  /** A command line exceeded `maxCommandLineBytes`. */
  LINE_TOO_LONG: 'DEPOT_ERR_LINE_TOO_LONG',
  /** No capability with that key exists (never existed, deleted or expired). */
  CAP_NOT_FOUND: 'DEPOT_ERR_CAP_NOT_FOUND',
  /** The capability exists but is not of the type the command needs. */
  WRONG_CAP_TYPE: 'DEPOT_ERR_WRONG_CAP_TYPE',
  /** The WRM key did not match (only when `wrmKey = "check"`). */
  WRM_KEY_MISMATCH: 'DEPOT_ERR_WRM_KEY_MISMATCH',
  /** The resource id names no resource of this depot. */
  INVALID_RID: 'DEPOT_ERR_INVALID_RID',
  /** A parameter is out of its valid range. */
  INVALID_PARAMETER: 'DEPOT_ERR_INVALID_PARAMETER',
  /** The allocation type is not served (only BYTEARRAY is). */
  TYPE_NOT_SUPPORTED: 'DEPOT_ERR_TYPE_NOT_SUPPORTED',
  /** The requested lease is longer than the resource allows. */
  LONG_DURATION: 'DEPOT_ERR_LONG_DURATION',
  /** A CHNG would extend a lease beyond the resource's policy. */
  WOULD_EXCEED_POLICY: 'DEPOT_ERR_WOULD_EXCEED_POLICY',
  /** A write or read would go past the allocation's bounds. */
  WOULD_EXCEED_LIMIT: 'DEPOT_ERR_WOULD_EXCEED_LIMIT',
  /** A change would cut off stored data. */
  WOULD_DAMAGE_DATA: 'DEPOT_ERR_WOULD_DAMAGE_DATA',
  /** The resource has no room for the allocation (capacity or allocation count). */
  ALLOC_FAILED: 'DEPOT_ERR_ALLOC_FAILED',
  /** The status password was wrong. */
  WRONG_PASSWORD: 'DEPOT_ERR_WRONG_PASSWORD',
  /** The client was too slow to send a line or its data. */
  CLIENT_TIMEOUT: 'DEPOT_ERR_CLIENT_TIMEOUT',
  /** The depot is at its connection limit; retry after the given delay. */
  OVERLOADED: 'DEPOT_ERR_OVERLOADED',
  /** The allocation's stored bytes failed verification (short file, checksum mismatch); they are never served. */
  DAMAGED: 'DEPOT_ERR_DAMAGED',
  /** The resource's filesystem is full; the write was not acknowledged. */
  NO_SPACE: 'DEPOT_ERR_NO_SPACE',
  /** A read or write of a resource's storage failed; the write was not acknowledged. */
  IO: 'DEPOT_ERR_IO',
  /** A disk resource cannot be opened (locked by another depot, wrong resource id, unreadable). */
  RESOURCE_UNAVAILABLE: 'DEPOT_ERR_RESOURCE_UNAVAILABLE',
  /** A transfer's remote depot could not be reached, is not allowed, or broke off (deliberately generic). */
  REMOTE_UNREACHABLE: 'DEPOT_ERR_REMOTE_UNREACHABLE',
  /** The remote depot of a transfer refused it; `status` is the remote depot's. */
  REMOTE_REFUSED: 'DEPOT_ERR_REMOTE_REFUSED',
  /** An NFU opcode this depot does not serve. */
  NFU_UNKNOWN: 'DEPOT_ERR_NFU_UNKNOWN',
  /** An NFU call names the same allocation twice with the same parameter kind. */
  NFU_DUP_PARAM: 'DEPOT_ERR_NFU_DUP_PARAM',
  /** An NFU op ran past its deadline; its worker was stopped and nothing was written. */
  NFU_TIMEOUT: 'DEPOT_ERR_NFU_TIMEOUT',
  /** An NFU op's worker failed (crash, out of memory); nothing was written. */
  NFU_FAILED: 'DEPOT_ERR_NFU_FAILED',
  /** A FIFO/CIRQ command waited for data or room past its timeout; nothing changed. */
  RING_WAIT_TIMEOUT: 'DEPOT_ERR_RING_WAIT_TIMEOUT',
  /** The queue window asked for is no longer held (overwritten by newer bytes). */
  RING_OVERWRITTEN: 'DEPOT_ERR_RING_OVERWRITTEN',
  /** An unexpected internal failure; the request changed nothing. */
  INTERNAL: 'DEPOT_ERR_INTERNAL',
} as const;
export type DepotErrorCodeValue = (typeof DepotErrorCode)[keyof typeof DepotErrorCode];

/** Wire status sent for each code. */
const WIRE_STATUS: Readonly<Record<DepotErrorCodeValue, number>> = {
  DEPOT_ERR_CONFIG: Status.INVALID_PARAMETER,
  DEPOT_ERR_BAD_FORMAT: Status.BAD_FORMAT,
  DEPOT_ERR_UNKNOWN_COMMAND: Status.UNKNOWN_FUNCTION,
  DEPOT_ERR_PROTOCOL_VERSION: Status.PROT_VERS,
  DEPOT_ERR_LINE_TOO_LONG: Status.BAD_FORMAT,
  DEPOT_ERR_CAP_NOT_FOUND: Status.CAP_NOT_FOUND,
  DEPOT_ERR_WRONG_CAP_TYPE: Status.CAP_NOT_FOUND,
  DEPOT_ERR_WRM_KEY_MISMATCH: Status.INVALID_READ_CAP,
  DEPOT_ERR_INVALID_RID: Status.INVALID_RID,
  DEPOT_ERR_INVALID_PARAMETER: Status.INVALID_PARAMETER,
  DEPOT_ERR_TYPE_NOT_SUPPORTED: Status.TYPE_NOT_SUPPORTED,
  DEPOT_ERR_LONG_DURATION: Status.LONG_DURATION,
  DEPOT_ERR_WOULD_EXCEED_POLICY: Status.WOULD_EXCEED_POLICY,
  DEPOT_ERR_WOULD_EXCEED_LIMIT: Status.WOULD_EXCEED_LIMIT,
  DEPOT_ERR_WOULD_DAMAGE_DATA: Status.WOULD_DAMAGE_DATA,
  DEPOT_ERR_ALLOC_FAILED: Status.ALLOC_FAILED,
  DEPOT_ERR_WRONG_PASSWORD: Status.WRONG_PASSWD,
  DEPOT_ERR_CLIENT_TIMEOUT: Status.CLIENT_TIMEOUT,
  DEPOT_ERR_OVERLOADED: Status.OUT_OF_SOCKETS,
  DEPOT_ERR_DAMAGED: Status.FILE_READ,
  DEPOT_ERR_NO_SPACE: Status.RSRC_UNAVAIL,
  DEPOT_ERR_IO: Status.FILE_WRITE,
  DEPOT_ERR_RESOURCE_UNAVAILABLE: Status.RSRC_UNAVAIL,
  DEPOT_ERR_REMOTE_UNREACHABLE: Status.CONNECTION,
  DEPOT_ERR_REMOTE_REFUSED: Status.GENERIC,
  DEPOT_ERR_NFU_UNKNOWN: Status.NFU_UNKNOWN,
  DEPOT_ERR_NFU_DUP_PARAM: Status.NFU_DUP_PARA,
  DEPOT_ERR_NFU_TIMEOUT: Status.SERVER_TIMEOUT,
  DEPOT_ERR_NFU_FAILED: Status.INTERNAL,
  DEPOT_ERR_RING_WAIT_TIMEOUT: Status.SERVER_TIMEOUT,
  DEPOT_ERR_RING_OVERWRITTEN: Status.WOULD_EXCEED_LIMIT,
  DEPOT_ERR_INTERNAL: Status.INTERNAL,
};

export interface DepotErrorOptions {
  /** Wire status to send instead of the code's default one. */
  readonly status?: number;
  readonly cause?: unknown;
  /** Structured context (limit, actual value, field…); never contains key material. */
  readonly details?: Readonly<Record<string, unknown>>;
}

/**
 * Base error of the depot. `code` is stable; `status` is the IBP wire status sent for it.
 * Messages name the thing, the rule and the actual value, and never contain capability keys.
 */
export class DepotError extends Error {
  readonly code: DepotErrorCodeValue;
  readonly status: number;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: DepotErrorCodeValue, message: string, options: DepotErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DepotError';
    this.code = code;
    this.status = options.status ?? WIRE_STATUS[code];
    this.details = options.details ?? {};
  }

  get [BRAND](): true {
    return true;
  }

  /** True for any Anvil depot error, even from another copy of the package. */
  static isDepotError(value: unknown): value is DepotError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }

  override toString(): string {
    return `${this.name} [${this.code}, IBP ${this.status} ${statusName(this.status)}]: ${this.message}`;
  }

  /**
   * The depot's view of a line its codec refused: same message and wire status, the depot code of the
   * same name (`IBP_ERR_BAD_FORMAT` → `DEPOT_ERR_BAD_FORMAT`). Anything else is returned unchanged.
   */
  static fromCodec(e: unknown): unknown {
    if (!IbpProtocolError.isIbpProtocolError(e)) return e;
    const code = e.code.replace(/^IBP_ERR_/, 'DEPOT_ERR_') as DepotErrorCodeValue;
    return new DepotError(code, e.message, { status: e.status, cause: e });
  }
}

/** Maps a filesystem or SQLite failure to a depot error (disk full, or I/O). */
export function storageError(e: unknown, what: string, status: number = Status.FILE_WRITE): DepotError {
  if (DepotError.isDepotError(e)) return e;
  const code = (e as { code?: unknown }).code;
  if (code === 'ENOSPC' || code === 'SQLITE_FULL' || code === 'EDQUOT') {
    return new DepotError(DepotErrorCode.NO_SPACE, `${what}: no space left on the resource's filesystem`, { cause: e });
  }
  return new DepotError(DepotErrorCode.IO, `${what}: ${(e as Error).message ?? String(e)}`, { cause: e, status });
}
