const BRAND = Symbol.for('anvil.dataset-error');

/** Stable codes of {@link DatasetError} (documented in docs/errors.md). */
export const DatasetErrorCode = {
  /** A dataset call or command was given an invalid argument; the message names it, the rule and the value. */
  INVALID_ARGUMENT: 'DATA_E_INVALID_ARGUMENT',
  /** Input rows (CSV or raw floats) are malformed; the message names the line and column or the byte offset. */
  PARSE: 'DATA_E_PARSE',
  /** An exNode does not describe a dataset (no dtype/shape, rows that do not tile the matrix, …); the message says why. */
  NOT_A_DATASET: 'DATA_E_NOT_A_DATASET',
  /** An ingest's input had no rows (an empty file or stdin, a header-only CSV); nothing was stored and no exNode was written. */
  EMPTY_INPUT: 'DATA_E_EMPTY_INPUT',
  /** An ingest could not store a block on enough depots; everything it had stored was released. */
  INGEST_FAILED: 'DATA_E_INGEST_FAILED',
  /**
   * An ingest was aborted by its signal; everything it had stored was released, except the last checkpoint
   * exNode written (`checkpointBlocks`) and the allocations it names, which the message then names.
   */
  ABORTED: 'DATA_E_ABORTED',
  /** Loopback depot processes did not start (or a restart failed); the message carries their stderr. */
  DEPOT_START: 'DATA_E_DEPOT_START',
} as const;
export type DatasetErrorCodeValue = (typeof DatasetErrorCode)[keyof typeof DatasetErrorCode];

/** Error of the data-in-place layer (datasets, ingest, simulator, loopback depots). Match on `code`. */
export class DatasetError extends Error {
  readonly code: DatasetErrorCodeValue;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    code: DatasetErrorCodeValue,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DatasetError';
    this.code = code;
    this.details = options.details ?? {};
  }

  get [BRAND](): true {
    return true;
  }
}

/** @internal `DATA_E_INVALID_ARGUMENT` naming the argument, the rule and the value. */
export function invalidArgument(name: string, rule: string, value: unknown): DatasetError {
  return new DatasetError(
    DatasetErrorCode.INVALID_ARGUMENT,
    `invalid argument: \`${name}\` must be ${rule} (got ${show(value)})`,
    {
      details: { argument: name, value },
    },
  );
}

/** @internal Checks an integer in `[min, max]`. */
export function checkInteger(name: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw invalidArgument(
      name,
      max === Number.MAX_SAFE_INTEGER ? `an integer ≥ ${min}` : `an integer from ${min} to ${max}`,
      value,
    );
  }
  return value;
}

/** @internal Checks a finite number in `[min, max]`. */
export function checkNumber(name: string, value: unknown, min: number, max = Infinity): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw invalidArgument(name, max === Infinity ? `a finite number ≥ ${min}` : `a number from ${min} to ${max}`, value);
  }
  return value;
}

function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null || value === undefined) return String(value);
  try {
    return (JSON.stringify(value) ?? String(value)).slice(0, 120);
  } catch {
    return String(value);
  }
}
