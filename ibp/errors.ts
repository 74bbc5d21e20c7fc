import { Status, statusName } from './protocol/commands.js';

const BRAND = Symbol.for('anvil.ibp-protocol-error');

/**
 * Stable codes of {@link IbpProtocolError}: a command line or NFU parameter header that the wire codec
 * refuses. Documented in docs/errors.md. The depot answers each with the IBP status the error carries.
 */
export const IbpProtocolErrorCode = {
  /** A line is malformed (wrong token count, non-numeric field, bad capability…). */
  BAD_FORMAT: 'IBP_ERR_BAD_FORMAT',
  /** The line names an unknown command or sub-command. */
  UNKNOWN_COMMAND: 'IBP_ERR_UNKNOWN_COMMAND',
  /** The protocol version token is neither 0 nor 1. */
  PROTOCOL_VERSION: 'IBP_ERR_PROTOCOL_VERSION',
  /** A field is syntactically valid but outside its range. */
  INVALID_PARAMETER: 'IBP_ERR_INVALID_PARAMETER',
  /** A declared length exceeds what the protocol or the limits allow. */
  WOULD_EXCEED_LIMIT: 'IBP_ERR_WOULD_EXCEED_LIMIT',
  /** The allocation type is not one this codec knows. */
  TYPE_NOT_SUPPORTED: 'IBP_ERR_TYPE_NOT_SUPPORTED',
} as const;
export type IbpProtocolErrorCodeValue = (typeof IbpProtocolErrorCode)[keyof typeof IbpProtocolErrorCode];

const WIRE_STATUS: Readonly<Record<IbpProtocolErrorCodeValue, number>> = {
  IBP_ERR_BAD_FORMAT: Status.BAD_FORMAT,
  IBP_ERR_UNKNOWN_COMMAND: Status.UNKNOWN_FUNCTION,
  IBP_ERR_PROTOCOL_VERSION: Status.PROT_VERS,
  IBP_ERR_INVALID_PARAMETER: Status.INVALID_PARAMETER,
  IBP_ERR_WOULD_EXCEED_LIMIT: Status.WOULD_EXCEED_LIMIT,
  IBP_ERR_TYPE_NOT_SUPPORTED: Status.TYPE_NOT_SUPPORTED,
};

/**
 * A line refused by the IBP codec. `code` is stable; `status` is the IBP status a depot answers with.
 * Messages name the field, the rule and the value, and never contain capability keys.
 */
export class IbpProtocolError extends Error {
  readonly code: IbpProtocolErrorCodeValue;
  readonly status: number;

  constructor(code: IbpProtocolErrorCodeValue, message: string, options: { status?: number } = {}) {
    super(message);
    this.name = 'IbpProtocolError';
    this.code = code;
    this.status = options.status ?? WIRE_STATUS[code];
  }

  get [BRAND](): true {
    return true;
  }

  /** True for any codec error, even from another copy of the package. */
  static isIbpProtocolError(value: unknown): value is IbpProtocolError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }

  override toString(): string {
    return `${this.name} [${this.code}, IBP ${this.status} ${statusName(this.status)}]: ${this.message}`;
  }
}
