import type { Dtype } from '../exnode/exnode.js';
import { checkInteger } from './errors.js';
import { DEFAULT_BATCH_ROWS, arrayOf, bytesOf, parseError, unstorable, type RowBatch } from './row-batch.js';

/** Options of {@link parseRawRows}. */
export interface RawRowsOptions {
  /** Values per row (required: raw floats carry no row boundaries). */
  readonly cols: number;
  /** Element type of the input bytes, little-endian (default: `dtype`). */
  readonly inputDtype?: Dtype;
  /** dtype of the batches (default float64). */
  readonly dtype?: Dtype;
  /** Rows per batch at most (default {@link DEFAULT_BATCH_ROWS}). */
  readonly batchRows?: number;
  /** Name of the input in error messages (default `input`). */
  readonly name?: string;
}

/**
 * Parses raw little-endian float32 or float64 values, `cols` per row, into row batches.
 *
 * @throws DatasetError `DATA_E_PARSE` naming the row, column and byte offset of a value that is not
 *   finite (or out of the dtype's range), or the row the input ends inside
 * @example
 * for await (const b of parseRawRows(process.stdin, { cols: 8, inputDtype: 'float32' })) console.log(b.rows);
 */
export async function* parseRawRows(
  input: AsyncIterable<string | Uint8Array> | Iterable<string | Uint8Array>,
  options: RawRowsOptions,
): AsyncGenerator<RowBatch, void, undefined> {
  const cols = checkInteger('cols', options.cols, 1);
  const dtype = options.dtype ?? 'float64';
  const inputDtype = options.inputDtype ?? dtype;
  const batchRows = checkInteger('batchRows', options.batchRows ?? DEFAULT_BATCH_ROWS, 1, 1 << 24);
  const name = options.name ?? 'input';
  const elt = inputDtype === 'float32' ? 4 : 8;
  const rowBytes = cols * elt;
  const staging = Buffer.alloc(batchRows * rowBytes);
  const view = new DataView(staging.buffer, staging.byteOffset, staging.byteLength);
  let have = 0;
  let rowsBefore = 0;

  const batch = (rows: number): RowBatch => {
    const out = arrayOf(dtype, rows * cols);
    for (let i = 0; i < rows * cols; i++) {
      const v = elt === 4 ? view.getFloat32(i * 4, true) : view.getFloat64(i * 8, true);
      const why = unstorable(v, dtype);
      if (why !== undefined) {
        const row = rowsBefore + Math.floor(i / cols) + 1;
        const column = (i % cols) + 1;
        const at = (rowsBefore * cols + i) * elt;
        throw parseError(`${name}: row ${row}, column ${column} (byte ${at})`, why, { row, column, byteOffset: at });
      }
      out[i] = v;
    }
    rowsBefore += rows;
    return { rows, data: out };
  };

  for await (const chunk of input) {
    const bytes = bytesOf(chunk);
    let at = 0;
    while (at < bytes.length) {
      const n = Math.min(bytes.length - at, staging.length - have);
      staging.set(bytes.subarray(at, at + n), have);
      have += n;
      at += n;
      if (have === staging.length) {
        yield batch(batchRows);
        have = 0;
      }
    }
  }
  const rows = Math.floor(have / rowBytes);
  if (rows > 0) {
    const tail = have - rows * rowBytes;
    if (tail === 0) yield batch(rows);
    else {
      const row = rowsBefore + rows + 1;
      throw parseError(
        `${name}: row ${row}`,
        `the input ends inside the row (${tail} of ${rowBytes} bytes; ${cols} × ${inputDtype})`,
        {
          row,
          byteOffset: (rowsBefore + rows) * rowBytes,
        },
      );
    }
  } else if (have > 0) {
    const row = rowsBefore + 1;
    throw parseError(
      `${name}: row ${row}`,
      `the input ends inside the row (${have} of ${rowBytes} bytes; ${cols} × ${inputDtype})`,
      {
        row,
        byteOffset: rowsBefore * rowBytes,
      },
    );
  }
}
