/**
 * NFU (12) parameter framing. After the command line `V 12 OPCODE NPARA [TIMEOUT]` come NPARA
 * parameters, each a header line `IOTYPE OFFSET LEN DATALEN` followed by DATALEN raw bytes (the cap
 * string of a REF_* parameter, the input of a VAL_IN / VAL_INOUT, nothing for a VAL_OUT), then one
 * empty line. Both sides use this module: the depot to read a call, a client to write one.
 */
import { IbpProtocolError, IbpProtocolErrorCode } from '../errors.js';
import { MAX_CAP_LENGTH } from './caps.js';
import { Status } from './commands.js';
import { NfuParamKind, type NfuParam, type NfuParamKindNumber } from './requests.js';
import type { StreamReader } from './stream-reader.js';

/** One parameter header as read from (or written to) the wire. */
export interface NfuParamHeader {
  readonly kind: NfuParamKindNumber;
  readonly offset: number;
  readonly length: number;
  /** Bytes that follow the header line. */
  readonly dataLength: number;
}

const KINDS: ReadonlySet<number> = new Set(Object.values(NfuParamKind));

/** True for the reference kinds (REF_RD, REF_WR, REF_RDWR), whose data is a capability. */
export function isNfuRefKind(kind: NfuParamKindNumber): boolean {
  return kind === NfuParamKind.REF_RD || kind === NfuParamKind.REF_WR || kind === NfuParamKind.REF_RDWR;
}

function badFormat(message: string): IbpProtocolError {
  return new IbpProtocolError(IbpProtocolErrorCode.BAD_FORMAT, message, { status: Status.BAD_FORMAT });
}

function field(tokens: readonly string[], i: number, name: string, index: number): number {
  const token = tokens[i]!;
  if (!/^\+?\d{1,15}$/.test(token)) {
    throw badFormat(
      `NFU parameter ${index}: ${name} must be a non-negative decimal integer (got ${JSON.stringify(token.slice(0, 20))})`,
    );
  }
  return Number(token);
}

/**
 * Parses a parameter header `IOTYPE OFFSET LEN DATALEN`; the caller then reads DATALEN bytes.
 * `maxValueBytes` bounds VAL_IN / VAL_INOUT data and VAL_OUT lengths before anything is buffered;
 * a reference's data is bounded by the longest capability. Throws {@link IbpProtocolError}:
 * `IBP_ERR_BAD_FORMAT` (token count, non-numeric field, unknown IOTYPE, a reference without a
 * cap) or `IBP_ERR_WOULD_EXCEED_LIMIT` (a length over its limit, a VAL_OUT carrying data).
 */
export function parseNfuParamHeader(line: string, index: number, maxValueBytes: number): NfuParamHeader {
  const t = line.split(/[ \t]+/).filter((x) => x !== '');
  if (t.length !== 4) throw badFormat(`NFU parameter ${index}: expected IOTYPE OFFSET LEN DATALEN (got ${t.length} tokens)`);
  const kindNumber = field(t, 0, 'IOTYPE', index);
  if (!KINDS.has(kindNumber)) throw badFormat(`NFU parameter ${index}: IOTYPE must be 0 to 5 (got ${kindNumber})`);
  const kind = kindNumber as NfuParamKindNumber;
  const offset = field(t, 1, 'OFFSET', index);
  const length = field(t, 2, 'LEN', index);
  const dataLength = field(t, 3, 'DATALEN', index);
  const isRef = isNfuRefKind(kind);
  const limit = isRef ? MAX_CAP_LENGTH : maxValueBytes;
  if (dataLength > limit) {
    throw new IbpProtocolError(
      IbpProtocolErrorCode.WOULD_EXCEED_LIMIT,
      `NFU parameter ${index}: ${dataLength} data bytes exceed the limit of ${limit}`,
    );
  }
  if (kind === NfuParamKind.VAL_OUT && (dataLength !== 0 || length > maxValueBytes)) {
    throw new IbpProtocolError(
      IbpProtocolErrorCode.WOULD_EXCEED_LIMIT,
      `NFU parameter ${index}: a VAL_OUT carries no data and at most ${maxValueBytes} bytes back`,
    );
  }
  if (isRef && dataLength === 0) throw badFormat(`NFU parameter ${index}: a reference parameter needs a capability`);
  return { kind, offset, length, dataLength };
}

/** The header line of one parameter, newline included (the inverse of {@link parseNfuParamHeader}). */
export function formatNfuParamHeader(h: NfuParamHeader): string {
  return `${h.kind} ${h.offset} ${h.length} ${h.dataLength}\n`;
}

/** The limits an NFU call's parameters are read under. */
export interface NfuFramingLimits {
  /** Longest header line, newline included. */
  readonly maxLineBytes: number;
  /** Each header line (and the closing empty line) must arrive within this. */
  readonly lineTimeoutMs: number;
  /** A parameter's data must make progress at least this often. */
  readonly progressTimeoutMs: number;
  /** Largest VAL_IN / VAL_INOUT data and VAL_OUT length. */
  readonly maxValueBytes: number;
  /** When a parameter's data of `length` bytes, starting now, must be complete (a `Date.now()` value). */
  readonly dataDeadline?: (length: number) => number;
}

/**
 * Reads `count` parameters (header line + data each) and the closing empty line from `reader`.
 * Data is copied out of the reader's buffers, so the parameters own their bytes. Throws
 * {@link IbpProtocolError} for a malformed header or a missing empty line, and
 * {@link ReadError} when the peer is too slow or leaves.
 */
export async function readNfuParams(reader: StreamReader, count: number, limits: NfuFramingLimits): Promise<NfuParam[]> {
  const params: NfuParam[] = [];
  for (let i = 0; i < count; i++) {
    const line = await reader.readLine(limits.maxLineBytes, limits.lineTimeoutMs, limits.lineTimeoutMs);
    const h = parseNfuParamHeader(line, i, limits.maxValueBytes);
    const data = Buffer.allocUnsafe(h.dataLength);
    let at = 0;
    await reader.readBytes(
      h.dataLength,
      limits.progressTimeoutMs,
      (chunk) => {
        chunk.copy(data, at);
        at += chunk.length;
      },
      limits.dataDeadline?.(h.dataLength),
    );
    params.push({ kind: h.kind, offset: h.offset, length: h.length, data });
  }
  const end = await reader.readLine(limits.maxLineBytes, limits.lineTimeoutMs, limits.lineTimeoutMs);
  if (end.trim() !== '') throw badFormat('NFU parameters must end with an empty line');
  return params;
}

/** The bytes of one parameter as a client sends them: header line, then its data. */
export function encodeNfuParam(h: Omit<NfuParamHeader, 'dataLength'>, data: Uint8Array): [string, Uint8Array] {
  return [formatNfuParamHeader({ ...h, dataLength: data.length }), data];
}
