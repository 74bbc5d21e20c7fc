const BRAND = Symbol.for('anvil.kernel-error');

/** Stable codes of {@link KernelError} (documented in docs/errors.md). */
export const KernelErrorCode = {
  /** Kernel attributes are missing, mistyped or out of range; the message names the field. */
  BAD_ATTRIBUTES: 'NFU_ERR_BAD_ATTRIBUTES',
  /** An input's byte length does not match the declared shape and dtype. */
  SHAPE_MISMATCH: 'NFU_ERR_SHAPE_MISMATCH',
  /** The op was given the wrong number or kinds of parameters. */
  BAD_PARAMETERS: 'NFU_ERR_BAD_PARAMETERS',
  /** No kernel with that opcode or name is registered. */
  UNIMPLEMENTED: 'NFU_ERR_UNIMPLEMENTED',
  /** A kernel with that opcode or name is registered already. */
  DUPLICATE: 'NFU_ERR_DUPLICATE',
} as const;
export type KernelErrorCodeValue = (typeof KernelErrorCode)[keyof typeof KernelErrorCode];

/** Base error of the numeric kernels. Match on `code`. */
export class KernelError extends Error {
  readonly code: KernelErrorCodeValue;
  constructor(code: KernelErrorCodeValue, message: string) {
    super(message);
    this.name = 'KernelError';
    this.code = code;
  }
  get [BRAND](): true {
    return true;
  }
  static is(value: unknown): value is KernelError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }
}
