import { KernelError, KernelErrorCode } from './errors.js';
import type { FloatArray } from './native.js';

/**
 * A row-major matrix view on a typed array, as BLAS addresses one: element (i, j) is
 * `data[offset + i·ld + j]`, with the row stride `ld ≥ cols` (BLAS `lda`). A sub-block of a larger
 * matrix is a view with the same `data` and `ld` and another offset: no copy.
 */
export interface Matrix<T extends FloatArray = FloatArray> {
  readonly data: T;
  readonly offset: number;
  readonly rows: number;
  readonly cols: number;
  readonly ld: number;
}

function badView(message: string): KernelError {
  return new KernelError(KernelErrorCode.SHAPE_MISMATCH, `invalid matrix view: ${message}`);
}

/** Elements spanned by a `rows × cols` view with row stride `ld` (0 when empty). */
export function span(rows: number, cols: number, ld: number): number {
  return rows === 0 || cols === 0 ? 0 : (rows - 1) * ld + cols;
}

/**
 * A view of `rows × cols` elements of `data` starting at `offset` with row stride `ld` (default:
 * `cols`, a dense block). Throws NFU_ERR_SHAPE_MISMATCH when the view leaves the array.
 */
export function matrix<T extends FloatArray>(
  data: T,
  rows: number,
  cols: number,
  options: { readonly offset?: number; readonly ld?: number } = {},
): Matrix<T> {
  const offset = options.offset ?? 0;
  const ld = options.ld ?? cols;
  for (const [name, v] of [
    ['rows', rows],
    ['cols', cols],
    ['offset', offset],
    ['ld', ld],
  ] as const)
    if (!Number.isSafeInteger(v) || v < 0) throw badView(`\`${name}\` must be a non-negative integer (got ${v})`);
  if (ld < cols) throw badView(`the row stride ${ld} is less than the ${cols} columns`);
  if (offset + span(rows, cols, ld) > data.length)
    throw badView(
      `${rows}×${cols} at offset ${offset} with stride ${ld} needs ${offset + span(rows, cols, ld)} elements; the array has ${data.length}`,
    );
  return { data, offset, rows, cols, ld };
}

/** The block of `rows × cols` at (`r0`, `c0`) of `m`: same array and stride, no copy. */
export function subMatrix<T extends FloatArray>(m: Matrix<T>, r0: number, c0: number, rows: number, cols: number): Matrix<T> {
  if (r0 < 0 || c0 < 0 || rows < 0 || cols < 0 || r0 + rows > m.rows || c0 + cols > m.cols)
    throw badView(`block ${rows}×${cols} at (${r0}, ${c0}) is outside the ${m.rows}×${m.cols} matrix`);
  return { data: m.data, offset: m.offset + r0 * m.ld + c0, rows, cols, ld: m.ld };
}

/** A dense typed array taken as `rows × cols`, or a view as it is (its shape checked). */
export function asMatrix<T extends FloatArray>(A: T | Matrix<T>, rows: number, cols: number): Matrix<T> {
  if (ArrayBuffer.isView(A)) return matrix(A, rows, cols);
  if (A.rows !== rows || A.cols !== cols)
    throw new KernelError(
      KernelErrorCode.SHAPE_MISMATCH,
      `the matrix view is ${A.rows}×${A.cols}; the attributes say ${rows}×${cols}`,
    );
  return A;
}

/** True when the rows of `m` lie end to end (`ld = cols`), so a row range is one contiguous run. */
export function isDense(m: Matrix): boolean {
  return m.ld === m.cols || m.rows <= 1;
}

/**
 * Rows `r0 … r0+n−1` of `m` as an array starting at element (r0, 0), for a BLAS call with
 * `lda = m.ld` (its length covers exactly the span of those rows).
 */
export function rowsFrom<T extends FloatArray>(m: Matrix<T>, r0: number, n: number): T {
  const from = m.offset + r0 * m.ld;
  return m.data.subarray(from, from + span(n, m.cols, m.ld)) as T;
}

/** Copies rows `r0 … r0+n−1` of `m` densely (`n × cols`) into `dst` at element `at`. */
export function copyRows(m: Matrix, r0: number, n: number, dst: FloatArray, at: number): void {
  const { cols, ld } = m;
  if (ld === cols || n <= 1) {
    const from = m.offset + r0 * ld;
    dst.set(m.data.subarray(from, from + n * cols), at);
    return;
  }
  for (let i = 0; i < n; i++) {
    const from = m.offset + (r0 + i) * ld;
    dst.set(m.data.subarray(from, from + cols), at + i * cols);
  }
}

/** Rows `r0 … r0+n−1` of `m` as a dense `n × cols` array: a view when they are contiguous, else a copy. */
export function denseRows<T extends FloatArray>(m: Matrix<T>, r0: number, n: number): T {
  if (isDense(m) || n <= 1) {
    const from = m.offset + r0 * m.ld;
    return m.data.subarray(from, from + n * m.cols) as T;
  }
  const out = (m.data instanceof Float64Array ? new Float64Array(n * m.cols) : new Float32Array(n * m.cols)) as T;
  copyRows(m, r0, n, out, 0);
  return out;
}

/** Element (i, j). */
export function at(m: Matrix, i: number, j: number): number {
  return m.data[m.offset + i * m.ld + j]!;
}
