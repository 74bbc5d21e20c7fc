const BRAND = Symbol.for('anvil.framework-error');

/** Stable codes of {@link FrameworkError} (documented in docs/errors.md). */
export const FrameworkErrorCode = {
  /** An exNode document (XML or JSON) is malformed; the message names the field. */
  EXNODE_INVALID: 'FW_ERR_EXNODE_INVALID',
  /** A depot list (flag or file) is malformed or empty. */
  DEPOT_LIST: 'FW_ERR_DEPOT_LIST',
  /** A warmer policy is invalid; the message names the field. */
  POLICY_INVALID: 'FW_ERR_POLICY_INVALID',
  /** An upload could not place a block on enough depots. */
  UPLOAD_FAILED: 'FW_ERR_UPLOAD_FAILED',
  /** A download found no live, intact replica for a byte range. */
  DOWNLOAD_FAILED: 'FW_ERR_DOWNLOAD_FAILED',
  /** A tool was given invalid arguments. */
  INVALID_ARGUMENT: 'FW_ERR_INVALID_ARGUMENT',
  /** A bounded work queue already holds `maxQueued` waiting tasks. */
  QUEUE_FULL: 'FW_ERR_QUEUE_FULL',
} as const;
export type FrameworkErrorCodeValue = (typeof FrameworkErrorCode)[keyof typeof FrameworkErrorCode];

/** Base error of the framework layer (exNodes, tools, warmer). Match on `code`. */
export class FrameworkError extends Error {
  readonly code: FrameworkErrorCodeValue;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    code: FrameworkErrorCodeValue,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FrameworkError';
    this.code = code;
    this.details = options.details ?? {};
  }

  get [BRAND](): true {
    return true;
  }
}
