import { setTimeout as sleep } from 'node:timers/promises';
import { DatasetError, DatasetErrorCode, checkInteger, checkNumber } from './errors.js';
import { SensorFieldGenerator } from './sensor-field-generator.js';
import { resolveSensorFieldOptions, type SensorFieldOptions } from './sensor-field-options.js';

/** Rows of one source over one batch of time steps. */
export interface SensorBatch {
  readonly source: string;
  readonly site: string;
  /** First time step of the batch. */
  readonly timeStart: number;
  readonly rows: number;
  readonly times: Float64Array;
  /** rows × channels, row-major. */
  readonly data: Float64Array;
}

/** Pacing of {@link streamSensorField}. */
export interface SensorStreamOptions {
  /** Time steps per batch (default 100). */
  readonly batchRows?: number;
  /** Time steps per second of every source; omitted = as fast as the consumer reads. */
  readonly rowsPerSecond?: number;
  /** Ends the stream (the iterator rejects with `DATA_E_ABORTED`). */
  readonly signal?: AbortSignal;
}

/**
 * The sensor field as a stream: batches of `batchRows` time steps, one {@link SensorBatch} per source
 * that emitted rows in the batch, paced at `rowsPerSecond`. With the same options it yields exactly the
 * rows of {@link simulateSensorField}; `rowsPerSensor: Infinity` streams until the consumer stops or the
 * signal aborts. Wrap it with rxjs `from(...)` for an Observable.
 *
 * @throws DatasetError `DATA_E_INVALID_ARGUMENT` for a bad option, `DATA_E_ABORTED` when the signal aborts
 * @example
 * for await (const b of streamSensorField({ seed: 3 }, { batchRows: 50, rowsPerSecond: 1000 })) use(b.source, b.data);
 */
export async function* streamSensorField(
  options: SensorFieldOptions = {},
  stream: SensorStreamOptions = {},
): AsyncGenerator<SensorBatch, void, undefined> {
  const gen = new SensorFieldGenerator(resolveSensorFieldOptions(options, true));
  const batchRows = checkInteger('batchRows', stream.batchRows ?? 100, 1, 1_000_000);
  const rate =
    stream.rowsPerSecond === undefined ? undefined : checkNumber('rowsPerSecond', stream.rowsPerSecond, Number.MIN_VALUE);
  const signal = stream.signal;
  const total = gen.options.rowsPerSensor;
  const started = performance.now();
  const aborted = () => new DatasetError(DatasetErrorCode.ABORTED, 'the sensor stream was aborted', { cause: signal?.reason });
  while (gen.step < total) {
    if (signal?.aborted === true) throw aborted();
    const timeStart = gen.step;
    const chunks = gen.steps(Math.min(batchRows, total - timeStart));
    for (let i = 0; i < chunks.length; i++) {
      const c = chunks[i]!;
      if (c.times.length === 0) continue;
      const s = gen.sources[i]!;
      yield { source: s.id, site: s.site, timeStart, rows: c.times.length, times: c.times, data: c.data };
    }
    if (rate !== undefined) {
      const due = started + (gen.step / rate) * 1000 - performance.now();
      if (due > 0) {
        try {
          await sleep(due, undefined, signal === undefined ? {} : { signal });
        } catch {
          throw aborted();
        }
      }
    }
  }
}
