const BRAND = Symbol.for('anvil.coordinator-error');

/** Stable codes of {@link CoordinatorError} (documented in docs/errors.md). */
export const CoordinatorErrorCode = {
  /** Answered mass / total mass fell below the job's minimum coverage; details name both. */
  COVERAGE: 'COORD_E_COVERAGE',
  /** An estimator or store was given an invalid argument; the message names it, the rule and the value. */
  INVALID_ARGUMENT: 'COORD_E_INVALID_ARGUMENT',
  /** The persisted reliability state is unreadable or malformed; nothing was loaded. */
  RELIABILITY_STATE: 'COORD_E_RELIABILITY_STATE',
} as const;
export type CoordinatorErrorCodeValue = (typeof CoordinatorErrorCode)[keyof typeof CoordinatorErrorCode];

/** Error of the coordinator and its estimators. Match on `code`. */
export class CoordinatorError extends Error {
  readonly code: CoordinatorErrorCodeValue;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    code: CoordinatorErrorCodeValue,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CoordinatorError';
    this.code = code;
    this.details = options.details ?? {};
  }

  get [BRAND](): true {
    return true;
  }
}

/** @internal `COORD_E_INVALID_ARGUMENT` naming the argument, the rule and the value. */
export function invalidArgument(name: string, rule: string, value: unknown): CoordinatorError {
  return new CoordinatorError(
    CoordinatorErrorCode.INVALID_ARGUMENT,
    `invalid argument: \`${name}\` must be ${rule} (got ${formatValue(value)})`,
    { details: { argument: name, value } },
  );
}

function formatValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null || value === undefined) return String(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** @internal Checks a probability-like argument in the open interval (0, 1). */
export function checkOpenUnit(name: string, value: number): void {
  if (!(typeof value === 'number' && value > 0 && value < 1)) throw invalidArgument(name, 'a number in (0, 1)', value);
}

/** @internal Checks an argument in the closed interval [0, 1]. */
export function checkClosedUnit(name: string, value: number): void {
  if (!(typeof value === 'number' && value >= 0 && value <= 1)) throw invalidArgument(name, 'a number in [0, 1]', value);
}

/** @internal Checks a positive finite number. */
export function checkPositive(name: string, value: number): void {
  if (!(typeof value === 'number' && Number.isFinite(value) && value > 0)) {
    throw invalidArgument(name, 'a positive finite number', value);
  }
}
