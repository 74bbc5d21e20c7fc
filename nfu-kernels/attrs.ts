import { KernelError, KernelErrorCode } from './errors.js';

export type Dtype = 'float32' | 'float64';

/**
 * Kernel attributes, sent as one small JSON VAL_IN parameter: the matrix block's dtype and shape,
 * and the op's scalars. `rowOffset` is the global index of the block's first row, so sketches of
 * different row blocks (at different depots) compose into one sketch of the whole matrix.
 */
export interface Attrs {
  readonly dtype: Dtype;
  readonly rows: number;
  readonly cols: number;
  readonly k: number;
  readonly seed: number;
  readonly rowOffset: number;
  /** Non-zeros per row for the sparse sign embedding. */
  readonly s: number;
  /** Identifies the block for block-local sketches (SRHT). */
  readonly blockId: number;
}

/** Largest attribute document accepted (bytes). */
export const MAX_ATTRS_BYTES = 4096;
/** Largest dimension accepted in attributes. */
export const MAX_DIM = 2 ** 31 - 1;

const KEYS = new Set(['dtype', 'rows', 'cols', 'k', 'seed', 'rowOffset', 's', 'blockId']);

function bad(message: string): KernelError {
  return new KernelError(KernelErrorCode.BAD_ATTRIBUTES, `invalid kernel attributes: ${message}`);
}

function int(obj: Record<string, unknown>, key: string, min: number, max: number, fallback?: number): number {
  const v = obj[key];
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    throw bad(`\`${key}\` must be an integer from ${min} to ${max} (got ${JSON.stringify(v)})`);
  }
  return v;
}

/** Parses and checks the attribute JSON (UTF-8 bytes). */
export function parseAttrs(bytes: Uint8Array): Attrs {
  if (bytes.byteLength > MAX_ATTRS_BYTES) throw bad(`the document is ${bytes.byteLength} bytes; at most ${MAX_ATTRS_BYTES}`);
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    throw bad(`not UTF-8 JSON (${(e as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('must be a JSON object');
  const obj = raw as Record<string, unknown>;
  for (const key of Object.keys(obj)) if (!KEYS.has(key)) throw bad(`unknown attribute \`${key}\``);
  const dtype = obj['dtype'] ?? 'float64';
  if (dtype !== 'float32' && dtype !== 'float64')
    throw bad(`\`dtype\` must be "float32" or "float64" (got ${JSON.stringify(dtype)})`);
  const rows = int(obj, 'rows', 0, MAX_DIM);
  const rowOffset = int(obj, 'rowOffset', 0, Number.MAX_SAFE_INTEGER, 0);
  if (rowOffset + rows > Number.MAX_SAFE_INTEGER)
    throw bad(`\`rowOffset\` + \`rows\` must be at most ${Number.MAX_SAFE_INTEGER} (got ${rowOffset} + ${rows})`);
  return {
    dtype,
    rows,
    cols: int(obj, 'cols', 1, MAX_DIM),
    k: int(obj, 'k', 1, 1 << 20, 1),
    seed: int(obj, 'seed', 0, Number.MAX_SAFE_INTEGER, 0),
    rowOffset,
    s: int(obj, 's', 1, 64, 8),
    blockId: int(obj, 'blockId', 0, 2 ** 32 - 1, 0),
  };
}

export function encodeAttrs(a: Partial<Attrs> & { rows: number; cols: number }): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(a));
}

export function bytesPer(dtype: Dtype): number {
  return dtype === 'float32' ? 4 : 8;
}

/** A typed view of a row-major `rows × cols` block, after checking its byte length. */
export function matrixView(bytes: Uint8Array, a: Attrs, rows = a.rows, cols = a.cols, what = 'A'): Float32Array | Float64Array {
  const need = rows * cols * bytesPer(a.dtype);
  if (bytes.byteLength !== need) {
    throw new KernelError(
      KernelErrorCode.SHAPE_MISMATCH,
      `input ${what} has ${bytes.byteLength} bytes; ${rows}×${cols} ${a.dtype} needs ${need}`,
    );
  }
  // Copy when unaligned: typed views need their element alignment.
  const aligned = bytes.byteOffset % bytesPer(a.dtype) === 0 ? bytes : bytes.slice();
  return a.dtype === 'float32'
    ? new Float32Array(aligned.buffer, aligned.byteOffset, rows * cols)
    : new Float64Array(aligned.buffer, aligned.byteOffset, rows * cols);
}

/** Little-endian bytes of a float64 result. */
export function f64Bytes(v: Float64Array): Uint8Array {
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

/**
 * The result array of a kernel: a float64 view of the caller's output bytes when they fit exactly
 * (the depot hands kernels reused shared buffers, so a large result costs no fresh pages), else a
 * new array.
 */
export function f64Out(out: Uint8Array | undefined, n: number): Float64Array {
  if (out !== undefined && out.byteLength === n * 8 && out.byteOffset % 8 === 0)
    return new Float64Array(out.buffer, out.byteOffset, n);
  return new Float64Array(n);
}
