import type { Dtype } from '../exnode/exnode.js';
import { checkInteger, invalidArgument } from './errors.js';
import { DEFAULT_BATCH_ROWS, arrayOf, parseError, unstorable, type RowBatch } from './row-batch.js';

/** Options of {@link parseCsvRows}. */
export interface CsvRowsOptions {
  /** Values per row; default: the field count of the first row. */
  readonly cols?: number;
  /** dtype of the batches (default float64); values out of its range are errors. */
  readonly dtype?: Dtype;
  /** The first line names the columns and is skipped (default false). */
  readonly header?: boolean;
  /** Field separator, one character (default `,`). */
  readonly delimiter?: string;
  /** The first field of every row is the source id, not a value (default false). */
  readonly sourceColumn?: boolean;
  /** Rows per batch at most (default {@link DEFAULT_BATCH_ROWS}); a batch also ends where the source changes. */
  readonly batchRows?: number;
  /** Name of the input in error messages (default `input`). */
  readonly name?: string;
}

/** Longest CSV line accepted, in characters. */
export const MAX_CSV_LINE_CHARS = 1 << 20;
const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/**
 * Parses numeric CSV (one row per line, blank lines skipped, `\n` or `\r\n`) into row batches.
 *
 * @throws DatasetError `DATA_E_PARSE` naming the line and column: a field that is not a finite decimal
 *   number (or is out of the dtype's range), a row with the wrong field count, a line over
 *   {@link MAX_CSV_LINE_CHARS}; `DATA_E_INVALID_ARGUMENT` for bad options
 * @example
 * for await (const b of parseCsvRows(process.stdin, { header: true })) console.log(b.rows);
 */
export async function* parseCsvRows(
  input: AsyncIterable<string | Uint8Array> | Iterable<string | Uint8Array>,
  options: CsvRowsOptions = {},
): AsyncGenerator<RowBatch, void, undefined> {
  const dtype = options.dtype ?? 'float64';
  const delimiter = options.delimiter ?? ',';
  if (delimiter.length !== 1 || /[\d.eE+\-\r\n]/.test(delimiter)) {
    throw invalidArgument('delimiter', 'one character that cannot occur in a number', delimiter);
  }
  const batchRows = checkInteger('batchRows', options.batchRows ?? DEFAULT_BATCH_ROWS, 1, 1 << 24);
  let cols = options.cols === undefined ? undefined : checkInteger('cols', options.cols, 1);
  const withSource = options.sourceColumn === true;
  const name = options.name ?? 'input';
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let lineNo = 0;
  let pending = '';
  let skipHeader = options.header === true;
  let data: Float64Array | Float32Array | undefined;
  let filled = 0;
  let source: string | undefined;

  function* flush(): Generator<RowBatch> {
    if (filled === 0 || data === undefined) return;
    const rows = filled;
    const out = data.slice(0, rows * cols!);
    filled = 0;
    yield source === undefined ? { rows, data: out } : { source, rows, data: out };
  }

  function* line(text: string): Generator<RowBatch> {
    lineNo++;
    if (text.endsWith('\r')) text = text.slice(0, -1);
    if (text.trim() === '') return;
    if (skipHeader) {
      skipHeader = false;
      return;
    }
    const fields = text.split(delimiter);
    let rowSource: string | undefined;
    if (withSource) {
      rowSource = fields.shift()!.trim();
      if (rowSource === '')
        throw parseError(`${name}: line ${lineNo}, column 1`, 'the source id is empty', { line: lineNo, column: 1 });
    }
    const offset = withSource ? 2 : 1;
    if (cols === undefined) cols = fields.length;
    if (fields.length !== cols) {
      throw parseError(`${name}: line ${lineNo}`, `${fields.length} values, expected ${cols}`, {
        line: lineNo,
        expected: cols,
        actual: fields.length,
      });
    }
    if (rowSource !== source || data === undefined || filled === batchRows) {
      yield* flush();
      source = rowSource;
      data ??= arrayOf(dtype, batchRows * cols);
    }
    const base = filled * cols;
    for (let j = 0; j < cols; j++) {
      const field = fields[j]!.trim();
      const v = NUMBER.test(field) ? Number(field) : NaN;
      const why = NUMBER.test(field) ? unstorable(v, dtype) : `${JSON.stringify(field.slice(0, 40))} is not a number`;
      if (why !== undefined) {
        throw parseError(`${name}: line ${lineNo}, column ${j + offset}`, why, { line: lineNo, column: j + offset, field });
      }
      data[base + j] = v;
    }
    filled++;
  }

  try {
    for await (const chunk of input) {
      pending += typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
      let start = 0;
      for (let nl = pending.indexOf('\n'); nl !== -1; nl = pending.indexOf('\n', start)) {
        if (nl - start > MAX_CSV_LINE_CHARS) throw tooLong(name, lineNo + 1);
        yield* line(pending.slice(start, nl));
        start = nl + 1;
      }
      pending = pending.slice(start);
      if (pending.length > MAX_CSV_LINE_CHARS) throw tooLong(name, lineNo + 1);
    }
    pending += decoder.decode();
  } catch (e) {
    if (e instanceof TypeError && (e as { code?: string }).code === 'ERR_ENCODING_INVALID_ENCODED_DATA') {
      throw parseError(`${name}: line ${lineNo + 1}`, 'the input is not valid UTF-8', { line: lineNo + 1 });
    }
    throw e;
  }
  if (pending !== '') yield* line(pending);
  yield* flush();
}

function tooLong(name: string, line: number) {
  return parseError(`${name}: line ${line}`, `the line is longer than ${MAX_CSV_LINE_CHARS} characters`, { line });
}
