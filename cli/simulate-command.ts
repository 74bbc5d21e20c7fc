import { createWriteStream } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { Command as CliCommand, Option } from 'commander';
import {
  DatasetError,
  DatasetErrorCode,
  SENSOR_FAULTS,
  describeSensorField,
  simulateSensorField,
  streamSensorField,
  type SensorFault,
  type SensorFieldOptions,
} from '../framework/index.js';

/** Flags of the simulator, shared by `anvil simulate` and `anvil ingest --simulate`. */
export interface SimulatorFlags {
  seed?: string;
  sites?: string;
  sensors?: string;
  channels?: string;
  factors?: string;
  rows?: string;
  noise?: string;
  drift?: string;
  faults?: string;
  faultOnset?: string;
  rate?: string;
  batch?: string;
}

function bad(flag: string, rule: string, value: string): DatasetError {
  return new DatasetError(
    DatasetErrorCode.INVALID_ARGUMENT,
    `invalid argument: \`${flag}\` must be ${rule} (got ${JSON.stringify(value)})`,
  );
}

/** @internal A decimal flag value as a number (integer when asked). */
export function numberFlag(value: string, flag: string, integer: boolean): number {
  const n = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isFinite(n) || (integer && !Number.isSafeInteger(n))) throw bad(flag, integer ? 'an integer' : 'a number', value);
  return n;
}

/** Adds the simulator's flags to a command. */
export function addSimulatorFlags(cmd: CliCommand): CliCommand {
  return cmd
    .option('--seed <n>', 'seed of every random draw (default 1)')
    .option('--sites <n>', 'sites (default 3)')
    .option('--sensors <n>', 'sensors per site (default 4)')
    .option('--channels <n>', 'channels per sensor = columns (default 8)')
    .option('--factors <n>', 'latent factors (default 2)')
    .option('--rows <n>', 'time steps per sensor (default 1000; with --rate, "inf" streams until stopped)')
    .option('--noise <std>', 'noise standard deviation (default 0.1)')
    .option('--drift <std>', 'per-sensor drift of the mean over the run (default 0.05)')
    .option(
      '--faults <list>',
      `fraction of faulty sources per kind, e.g. stuck=0.1,garbage=0.05 (kinds: ${SENSOR_FAULTS.join(', ')})`,
    )
    .option('--fault-onset <step>', 'time step from which faults act (default 0)')
    .option('--rate <rows/s>', 'time steps per second of every source (default: as fast as possible)')
    .option('--batch <steps>', 'time steps per batch of the stream (default 100)');
}

/** The flag setting each simulator option (`faultRates.stuck` → `--faults stuck`). */
const FLAG_OF: Readonly<Record<string, string>> = {
  seed: '--seed',
  sites: '--sites',
  sensorsPerSite: '--sensors',
  channels: '--channels',
  factors: '--factors',
  'sites · sensorsPerSite · channels': '--sites · --sensors · --channels',
  rowsPerSensor: '--rows',
  noiseStd: '--noise',
  driftStd: '--drift',
  faultOnsetRow: '--fault-onset',
  faultRates: '--faults',
  batchRows: '--batch',
  rowsPerSecond: '--rate',
};

/**
 * A simulator's argument error re-worded with the flag that set the option (`--rows` for `rowsPerSensor`);
 * other errors as they are.
 */
export function withFlagNames(e: unknown): unknown {
  if (!(e instanceof DatasetError) || e.code !== DatasetErrorCode.INVALID_ARGUMENT) return e;
  const argument = e.details['argument'];
  if (typeof argument !== 'string') return e;
  const flag = FLAG_OF[argument] ?? (argument.startsWith('faultRates.') ? `--faults ${argument.slice(11)}` : undefined);
  if (flag === undefined) return e;
  return new DatasetError(DatasetErrorCode.INVALID_ARGUMENT, e.message.replace(`\`${argument}\``, flag), {
    cause: e,
    details: { ...e.details, argument: flag },
  });
}

/**
 * The simulator options the flags describe, checked (an invalid one is reported by its flag).
 * @throws DatasetError `DATA_E_INVALID_ARGUMENT` naming the flag, the rule and the value
 */
export function sensorOptionsFrom(f: SimulatorFlags): SensorFieldOptions {
  const o = sensorOptionsOf(f);
  try {
    describeSensorField(o);
  } catch (e) {
    throw withFlagNames(e);
  }
  return o;
}

function sensorOptionsOf(f: SimulatorFlags): SensorFieldOptions {
  const o: Record<string, unknown> = {};
  const int = (v: string | undefined, flag: string, key: string) => {
    if (v !== undefined) o[key] = numberFlag(v, flag, true);
  };
  int(f.seed, '--seed', 'seed');
  int(f.sites, '--sites', 'sites');
  int(f.sensors, '--sensors', 'sensorsPerSite');
  int(f.channels, '--channels', 'channels');
  int(f.factors, '--factors', 'factors');
  if (f.rows !== undefined) o['rowsPerSensor'] = f.rows === 'inf' ? Infinity : numberFlag(f.rows, '--rows', true);
  if (f.noise !== undefined) o['noiseStd'] = numberFlag(f.noise, '--noise', false);
  if (f.drift !== undefined) o['driftStd'] = numberFlag(f.drift, '--drift', false);
  int(f.faultOnset, '--fault-onset', 'faultOnsetRow');
  if (f.faults !== undefined) {
    const rates: Partial<Record<SensorFault, number>> = {};
    for (const part of f.faults.split(',').filter((p) => p.trim() !== '')) {
      const m = /^\s*([a-z]+)\s*=\s*(\S+)\s*$/.exec(part);
      if (m === null) throw bad('--faults', 'a list of kind=rate', part);
      if (!SENSOR_FAULTS.includes(m[1] as SensorFault)) throw bad('--faults', `a list of ${SENSOR_FAULTS.join('|')}=rate`, m[1]!);
      rates[m[1] as SensorFault] = numberFlag(m[2]!, `--faults ${m[1]}`, false);
    }
    o['faultRates'] = rates;
  }
  return o as SensorFieldOptions;
}

/** The stream flags (`--rate`, `--batch`). */
export function streamOptionsFrom(f: SimulatorFlags): { batchRows?: number; rowsPerSecond?: number } {
  return {
    ...(f.batch === undefined ? {} : { batchRows: numberFlag(f.batch, '--batch', true) }),
    ...(f.rate === undefined ? {} : { rowsPerSecond: numberFlag(f.rate, '--rate', false) }),
  };
}

/** Ground truth as JSON (typed arrays as lists, Infinity as null). */
function truthJson(options: SensorFieldOptions): string {
  const desc = describeSensorField(options);
  const bounded = Number.isFinite(desc.options.rowsPerSensor);
  const clean = bounded ? simulateSensorField(options).truth.clean : undefined;
  return JSON.stringify(
    { options: desc.options, sites: desc.sites, sources: desc.sources, model: desc.model, faulty: desc.faulty, clean },
    (_, v: unknown) => (ArrayBuffer.isView(v) ? Array.from(v as Float64Array) : v === Infinity ? null : v),
    2,
  );
}

async function write(out: Writable, chunk: string | Uint8Array): Promise<void> {
  if (!out.write(chunk)) await once(out, 'drain');
}

/** `anvil simulate`: writes a seeded sensor field's rows (CSV or raw floats) and optionally its ground truth. */
export function simulateCommand(): CliCommand {
  const cmd = new CliCommand('simulate').description(
    'write the rows of a seeded sensor field (sites, sensors, latent factors, drift, faulty sources) as CSV or raw floats',
  );
  addSimulatorFlags(cmd)
    .addOption(
      new Option('--format <format>', 'csv, or raw little-endian f32 / f64').choices(['csv', 'f32', 'f64']).default('csv'),
    )
    .option('--with-source', 'CSV: the first field of each row is its source id (site-i/sensor-j)')
    .option('-o, --output <file>', 'write the rows to this file (default stdout)')
    .option('--truth <file>', 'write the ground truth (model, faulty sources, clean statistics) as JSON')
    .action(
      async (f: SimulatorFlags & { format: 'csv' | 'f32' | 'f64'; withSource?: boolean; output?: string; truth?: string }) => {
        const options = sensorOptionsFrom(f);
        const stream = streamOptionsFrom(f);
        // The stream checks its flags on its first step: take it (and drop it) before any file is written.
        const probe = streamSensorField(options, stream);
        try {
          await probe.next();
        } catch (e) {
          throw withFlagNames(e);
        } finally {
          await probe.return(undefined);
        }
        if (f.truth !== undefined) await writeFile(f.truth, truthJson(options));
        const out: Writable = f.output === undefined ? process.stdout : createWriteStream(f.output);
        const ac = new AbortController();
        const stop = () => ac.abort();
        process.once('SIGINT', stop);
        let rows = 0;
        try {
          for await (const b of streamSensorField(options, { ...stream, signal: ac.signal })) {
            const d = b.data.length / b.rows;
            if (f.format === 'csv') {
              const lines: string[] = [];
              for (let i = 0; i < b.rows; i++) {
                const values = Array.from(b.data.subarray(i * d, (i + 1) * d), String).join(',');
                lines.push(f.withSource === true ? `${b.source},${values}\n` : `${values}\n`);
              }
              await write(out, lines.join(''));
            } else {
              const raw = f.format === 'f32' ? Float32Array.from(b.data) : b.data;
              await write(out, new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength));
            }
            rows += b.rows;
          }
        } catch (e) {
          if (!(e instanceof DatasetError && e.code === DatasetErrorCode.ABORTED)) throw e;
        } finally {
          process.removeListener('SIGINT', stop);
          if (out !== process.stdout) {
            out.end();
            await once(out, 'close');
          }
        }
        process.stderr.write(`simulate: ${rows} rows\n`);
      },
    );
  return cmd;
}
