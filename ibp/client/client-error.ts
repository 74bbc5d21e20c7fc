import { statusName } from '../protocol/commands.js';

const BRAND = Symbol.for('anvil.client-error');

/** Stable codes of client-side failures (documented in docs/errors.md). */
export const ClientErrorCode = {
  /** The depot answered a negative IBP status; `status` holds it and `code` is `IBP_E_<NAME>`. */
  STATUS: 'IBP_E_*',
  /** No reply within the request timeout. */
  TIMEOUT: 'CLIENT_ERR_TIMEOUT',
  /** Could not connect, or the connection broke mid-request. */
  CONNECTION: 'CLIENT_ERR_CONNECTION',
  /** The depot's reply did not have the expected shape. */
  PROTOCOL: 'CLIENT_ERR_PROTOCOL',
  /** An argument given to the client is invalid (nothing was sent). */
  INVALID_ARGUMENT: 'CLIENT_ERR_INVALID_ARGUMENT',
  /** The client was closed. */
  CLOSED: 'CLIENT_ERR_CLOSED',
} as const;

export interface ClientErrorOptions {
  readonly status?: number;
  readonly retryAfterSec?: number;
  readonly depot?: string;
  readonly cause?: unknown;
}

/**
 * Base error of the framework's IBP client. Match on `code`: `IBP_E_CAP_NOT_FOUND` and the like
 * for a depot's refusal (with the wire `status`), `CLIENT_ERR_*` for local failures.
 */
export class ClientError extends Error {
  readonly code: string;
  /** The IBP status the depot answered, when the error is a refusal. */
  readonly status: number | undefined;
  /** Seconds the depot asked to wait before retrying (`-66 <seconds>`). */
  readonly retryAfterSec: number | undefined;
  /** `host:port` of the depot involved. */
  readonly depot: string | undefined;

  constructor(code: string, message: string, options: ClientErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ClientError';
    this.code = code;
    this.status = options.status;
    this.retryAfterSec = options.retryAfterSec;
    this.depot = options.depot;
  }

  get [BRAND](): true {
    return true;
  }

  /** The error for a depot's negative status reply. */
  static fromStatus(status: number, depot: string, what: string, retryAfterSec?: number): ClientError {
    const name = statusName(status);
    return new ClientError(`IBP_E_${name}`, `${what} refused by ${depot}: IBP status ${status} (${name})`, {
      status,
      depot,
      ...(retryAfterSec === undefined ? {} : { retryAfterSec }),
    });
  }
}
