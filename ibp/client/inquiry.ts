import { ClientError, ClientErrorCode } from './client-error.js';

/** One resource section (`RID:… RE`) of a v1 ST_INQ body. Sizes in bytes. */
export interface ResourceInquiry {
  readonly rid: string;
  /** 1 disk, 2 memory. */
  readonly resourceType: number;
  readonly totalBytes: number;
  readonly usedBytes: number;
  readonly allocatableBytes: number;
  readonly maxDurationSec: number;
  /** Every key:value of the section as sent, for fields not modelled here. */
  readonly fields: Readonly<Record<string, string>>;
}

/** A parsed v1 ST_INQ reply. */
export interface DepotInquiry {
  /** Value of `VS`, e.g. `1.4:1.0`. */
  readonly version: string;
  /** NFU opcodes advertised (`NFU:1:2`), empty when none. */
  readonly nfuOps: readonly number[];
  readonly resources: readonly ResourceInquiry[];
}

/** A parsed v0 ST_INQ reply. */
export interface DepotInquiryV0 {
  readonly hardMb: number;
  readonly hardUsedMb: number;
  readonly softMb: number;
  readonly softUsedMb: number;
  readonly maxDurationSec: number;
}

function num(fields: Record<string, string>, key: string): number {
  const n = Number(fields[key]);
  return Number.isFinite(n) ? n : 0;
}

/**
 * Parses `VS:1.4:x DT:1 [NFU:…] RID:r … RE [RID:… RE]…`; unknown keys are kept, not rejected.
 *
 * @throws {ClientError} `CLIENT_ERR_PROTOCOL` when the body has no `VS` field.
 */
export function parseInquiryV1(body: string): DepotInquiry {
  const tokens = body.trim().split(/\s+/);
  let version = '';
  let nfuOps: number[] = [];
  const resources: ResourceInquiry[] = [];
  let current: Record<string, string> | undefined;
  const finish = () => {
    if (current === undefined) return;
    resources.push({
      rid: current['RID'] ?? '',
      resourceType: num(current, 'RT'),
      totalBytes: num(current, 'CT'),
      usedBytes: num(current, 'UT'),
      allocatableBytes: num(current, 'AT'),
      maxDurationSec: num(current, 'DR'),
      fields: current,
    });
    current = undefined;
  };
  for (const token of tokens) {
    if (token === 'RE') {
      finish();
      continue;
    }
    const colon = token.indexOf(':');
    if (colon < 0) continue;
    const key = token.slice(0, colon);
    const value = token.slice(colon + 1);
    if (key === 'VS') version = value;
    else if (key === 'NFU')
      nfuOps = value
        .split(':')
        .filter((v) => v !== '')
        .map(Number);
    else if (key === 'RID') {
      finish();
      current = { RID: value };
    } else if (current !== undefined) current[key] = value;
  }
  finish();
  if (version === '') throw new ClientError(ClientErrorCode.PROTOCOL, 'ST_INQ body has no VS field');
  return { version, nfuOps, resources };
}

/**
 * Parses the v0 ST_INQ reply `HARD_MB HARD_USED_MB SOFT_MB SOFT_USED_MB MAX_DURATION`.
 *
 * @throws {ClientError} `CLIENT_ERR_PROTOCOL` unless it holds five numbers.
 */
export function parseInquiryV0(tokens: readonly string[]): DepotInquiryV0 {
  const n = tokens.slice(0, 5).map(Number);
  if (n.length !== 5 || n.some((x) => !Number.isFinite(x))) {
    throw new ClientError(ClientErrorCode.PROTOCOL, `v0 ST_INQ reply must hold five numbers (got ${tokens.join(' ')})`);
  }
  const [hardMb, hardUsedMb, softMb, softUsedMb, maxDurationSec] = n as [number, number, number, number, number];
  return { hardMb, hardUsedMb, softMb, softUsedMb, maxDurationSec };
}
