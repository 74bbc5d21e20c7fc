import type { IbpClient } from '../../ibp/index.js';
import { DatasetWriter, type IngestResult } from './dataset-writer.js';
import { DatasetError, DatasetErrorCode, checkInteger } from './errors.js';
import type { IngestOptions } from './ingest-options.js';
import type { RowBatch } from './row-batch.js';
import type { SensorField } from './simulate-sensor-field.js';

/**
 * Ingests row batches (from a parser, the simulator or any source) into a dataset: see
 * {@link DatasetWriter} for placement, blocks, summaries and leases. If the input throws (a parse error)
 * or the ingest fails, everything stored is released and no exNode is left; the error is rethrown. If it is
 * aborted (`options.signal`, or an input that throws `DATA_E_ABORTED`), the last checkpoint exNode written
 * (with `checkpointBlocks`) stays with its allocations, the rest is released, and the `DATA_E_ABORTED` error
 * names what was kept.
 *
 * @returns the exNode, the dataset and the throughput (`rowsPerSec`, `mbPerSec`)
 * @throws DatasetError `DATA_E_INVALID_ARGUMENT`, `DATA_E_EMPTY_INPUT` (no rows), `DATA_E_INGEST_FAILED`, `DATA_E_ABORTED`, or the input's own error
 * @example
 * const { stats } = await ingest(client, parseCsvRows(process.stdin), { name: 'x', cols: 4, depots, path: 'x.xnd' });
 */
export async function ingest(
  client: IbpClient,
  input: AsyncIterable<RowBatch> | Iterable<RowBatch>,
  options: IngestOptions,
): Promise<IngestResult> {
  const w = new DatasetWriter(client, options);
  try {
    for await (const b of input) await w.append(b.source, b.data, b.rows);
  } catch (e) {
    // An aborted input (Ctrl-C) keeps the last checkpoint exNode and its allocations; any other input error
    // releases everything. Either way the release is over before this returns (the caller may close the client).
    const aborted = e instanceof DatasetError && e.code === DatasetErrorCode.ABORTED;
    await w.abort(e, { keepCheckpoint: aborted });
    throw aborted ? (w.error ?? e) : e;
  }
  return w.finish();
}

/**
 * The rows of a simulated field as batches in time order: `batchRows` steps of every source in turn,
 * the way they would arrive from the field (default 256 steps).
 */
export function* sensorFieldBatches(field: SensorField, batchRows = 256): Generator<RowBatch> {
  checkInteger('batchRows', batchRows, 1);
  const d = field.options.channels;
  const cursor = field.rows.map(() => 0);
  for (let t = 0; t < field.options.rowsPerSensor; t += batchRows) {
    for (let i = 0; i < field.rows.length; i++) {
      const r = field.rows[i]!;
      let end = cursor[i]!;
      while (end < r.rows && r.times[end]! < t + batchRows) end++;
      if (end > cursor[i]!) yield { source: r.source, rows: end - cursor[i]!, data: r.data.subarray(cursor[i]! * d, end * d) };
      cursor[i] = end;
    }
  }
}
