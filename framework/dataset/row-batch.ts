import type { Dtype } from '../exnode/exnode.js';
import { DatasetError, DatasetErrorCode } from './errors.js';

/** Consecutive rows of one source, row-major, in the dataset's dtype. */
export interface RowBatch {
  /** The source (sensor) the rows come from; omitted = the ingest's default source. */
  readonly source?: string;
  readonly rows: number;
  readonly data: Float64Array | Float32Array;
}

/** Rows per batch the parsers yield by default. */
export const DEFAULT_BATCH_ROWS = 1024;
/** Largest finite float32. */
export const FLOAT32_MAX = 3.4028234663852886e38;

/** @internal A typed array of the dtype. */
export function arrayOf(dtype: Dtype, length: number): Float64Array | Float32Array {
  return dtype === 'float32' ? new Float32Array(length) : new Float64Array(length);
}

/** @internal Why `v` cannot be stored as `dtype`, or undefined when it can. */
export function unstorable(v: number, dtype: Dtype): string | undefined {
  if (!Number.isFinite(v)) return `${v} is not a finite number`;
  if (dtype === 'float32' && Math.abs(v) > FLOAT32_MAX) return `${v} is out of the float32 range`;
  return undefined;
}

/** @internal `DATA_E_PARSE` with where it happened. */
export function parseError(where: string, what: string, details: Record<string, unknown>): DatasetError {
  return new DatasetError(DatasetErrorCode.PARSE, `${where}: ${what}`, { details });
}

/** @internal The bytes of a stream chunk (strings as UTF-8). */
export function bytesOf(chunk: string | Uint8Array): Uint8Array {
  return typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
}
