import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { Command as CliCommand } from 'commander';
import { requireRows } from '../algorithms/index.js';
import { formatProbability, formatValue } from './format-value.js';
import { lastValueFrom, tap } from 'rxjs';
import {
  Coordinator,
  CoordinatorError,
  CoordinatorErrorCode,
  columnStatsJob,
  covarianceJob,
  gramJob,
  openDataset,
  projectionJob,
  sketchJob,
  summaryFromJson,
  type CoordinatorDataset,
  type DepotAddress,
  type Estimate,
  type Job,
  type JobRunOptions,
  type SketchKind,
} from '../framework/index.js';

function bad(field: string, rule: string, value: unknown): CoordinatorError {
  return new CoordinatorError(
    CoordinatorErrorCode.INVALID_ARGUMENT,
    `invalid job file: \`${field}\` must be ${rule} (got ${JSON.stringify(value) ?? String(value)})`,
    { details: { argument: field, value } },
  );
}

function address(text: unknown, field: string): DepotAddress {
  const m = typeof text === 'string' ? /^([^:\s]+):(\d{1,5})$/.exec(text) : null;
  if (m === null) throw bad(field, 'a "host:port" string', text);
  return { host: m[1]!, port: Number(m[2]) };
}

function num(o: Record<string, unknown>, key: string, check: (n: number) => boolean, rule: string): number | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !check(v)) throw bad(key, rule, v);
  return v;
}

/** Parses the dataset part of a job file (see docs/coordinator.md). */
export function parseDatasetJson(raw: unknown): CoordinatorDataset {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw bad('dataset', 'an exNode path string ("data.xnd"), { "exnode": "data.xnd" } or an inline dataset object', raw);
  const d = raw as Record<string, unknown>;
  if (d['dtype'] !== 'float32' && d['dtype'] !== 'float64') throw bad('dataset.dtype', '"float32" or "float64"', d['dtype']);
  const cols = d['cols'];
  if (!Number.isInteger(cols) || (cols as number) < 1) throw bad('dataset.cols', 'a positive integer', cols);
  if (!Array.isArray(d['blocks']) || d['blocks'].length === 0) throw bad('dataset.blocks', 'a non-empty array', d['blocks']);
  let rows = 0;
  const blocks = (d['blocks'] as unknown[]).map((b, index) => {
    const o = (typeof b === 'object' && b !== null ? b : {}) as Record<string, unknown>;
    const where = `dataset.blocks[${index}]`;
    if (!Array.isArray(o['replicas']) || o['replicas'].length === 0)
      throw bad(`${where}.replicas`, 'a non-empty array', o['replicas']);
    const summary = summaryFromJson(o['summary'], `${where}.summary`);
    const elementBytes = d['dtype'] === 'float32' ? 4 : 8;
    const bytes = summary.rows * (cols as number) * elementBytes;
    const replicas = (o['replicas'] as unknown[]).map((r, i) => {
      const ro = (typeof r === 'object' && r !== null ? r : {}) as Record<string, unknown>;
      if (typeof ro['read'] !== 'string') throw bad(`${where}.replicas[${i}].read`, 'a read capability', ro['read']);
      const m = /^ibp:\/\/([^:/]+):(\d+)\//.exec(ro['read']);
      if (m === null) throw bad(`${where}.replicas[${i}].read`, 'an ibp://host:port/… capability', ro['read']);
      const allocOffset = ro['allocOffset'] ?? 0;
      if (!Number.isSafeInteger(allocOffset) || (allocOffset as number) < 0) {
        throw bad(`${where}.replicas[${i}].allocOffset`, 'a non-negative integer', allocOffset);
      }
      return { depot: { host: m[1]!, port: Number(m[2]) }, read: ro['read'], allocOffset: allocOffset as number, length: bytes };
    });
    const block = {
      index,
      rowStart: rows,
      rows: summary.rows,
      bytes,
      replicas,
      summary,
      ...(typeof o['source'] === 'string' ? { source: o['source'] } : {}),
    };
    rows += summary.rows;
    return block;
  });
  return { name: typeof d['name'] === 'string' ? d['name'] : 'dataset', dtype: d['dtype'], rows, cols: cols as number, blocks };
}

/**
 * The dataset of a job file: inline (see {@link parseDatasetJson}), or an exNode path — `"dataset": "PATH"`
 * or `"dataset": { "exnode": "PATH" }`, relative to the job file's directory — read with `openDataset`.
 * @throws DatasetError `DATA_E_NOT_A_DATASET` / FrameworkError `FW_ERR_EXNODE_INVALID` for an exNode that is not a dataset
 */
export async function datasetOfJob(raw: unknown, jobFile: string): Promise<CoordinatorDataset> {
  const path =
    typeof raw === 'string'
      ? raw
      : typeof raw === 'object' && raw !== null && 'exnode' in raw
        ? (raw as Record<string, unknown>)['exnode']
        : undefined;
  if (path === undefined) return parseDatasetJson(raw);
  if (typeof path !== 'string' || path.length === 0) throw bad('dataset.exnode', 'an exNode file path', path);
  const full = resolve(dirname(jobFile), path);
  try {
    return await openDataset(full);
  } catch (e) {
    // Typed errors (not a dataset, a malformed exNode) say what is wrong; a file that cannot be read is the job's argument.
    if (typeof (e as { code?: unknown }).code === 'string' && /^(DATA_E|FW_ERR)_/.test((e as { code: string }).code)) throw e;
    throw new CoordinatorError(
      CoordinatorErrorCode.INVALID_ARGUMENT,
      `cannot read the dataset exNode ${full}: ${(e as Error).message}`,
      {
        cause: e,
        details: { argument: 'dataset', value: path },
      },
    );
  }
}

/** The job a job file names. */
export function jobFromJson(raw: unknown, dataset: CoordinatorDataset): Job<Float64Array> {
  const o = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
  switch (o['kind']) {
    case 'column-sums':
      return columnStatsJob(dataset, 'sums');
    case 'column-means':
      return columnStatsJob(dataset, 'means');
    case 'column-variances':
      return columnStatsJob(dataset, 'variances');
    case 'gram':
      return gramJob(dataset);
    case 'covariance':
      return covarianceJob(dataset);
    case 'sketch': {
      const k = o['k'];
      if (!Number.isInteger(k)) throw bad('job.k', 'a positive integer', k);
      const kind = (o['sketch'] ?? 'gaussian') as SketchKind;
      return sketchJob(dataset, {
        kind,
        k: k as number,
        ...(typeof o['seed'] === 'number' ? { seed: o['seed'] } : {}),
        ...(typeof o['s'] === 'number' ? { s: o['s'] } : {}),
      });
    }
    case 'projection': {
      const x = o['x'];
      if (
        !Array.isArray(x) ||
        x.length !== dataset.cols ||
        !x.every((row) => Array.isArray(row) && row.length === (x[0] as unknown[]).length)
      ) {
        throw bad('job.x', `a ${dataset.cols}-row matrix (array of equal-length rows)`, x);
      }
      const k = (x[0] as unknown[]).length;
      return projectionJob(dataset, Float64Array.from((x as number[][]).flat()), k);
    }
    default:
      throw bad('job.kind', 'column-sums, column-means, column-variances, gram, covariance, sketch or projection', o['kind']);
  }
}

function runOptions(o: Record<string, unknown>): JobRunOptions {
  const pos = (n: number) => Number.isFinite(n) && n > 0;
  const int = (n: number) => Number.isInteger(n) && n > 0;
  const out: Record<string, number> = {};
  for (const [key, check, rule] of [
    ['deadlineMs', pos, 'a positive number'],
    ['opTimeoutMs', pos, 'a positive number'],
    ['delta', (n: number) => n > 0 && n < 1, 'a number in (0, 1)'],
    ['minCoverage', (n: number) => n >= 0 && n <= 1, 'a number in [0, 1]'],
    ['minAnsweredBlocks', (n: number) => Number.isInteger(n) && n >= 0, 'a non-negative integer'],
    ['concurrency', int, 'a positive integer'],
  ] as const) {
    const v = num(o, key, check, rule);
    if (v !== undefined) out[key] = v;
  }
  return out;
}

function formatProgress(e: Estimate<unknown>): string {
  const total = e.blocksUsed + e.blocksMissing;
  return (
    `${e.final ? 'final' : 'running'}: blocks ${e.blocksUsed}/${total} answered, ${e.final ? `${e.blocksMissing} missing` : `${e.blocksMissing} pending or missing`}` +
    ` | ε ${e.epsilon.toPrecision(3)} (${e.norm}) δ ${formatProbability(e.delta)} | coverage ${(100 * e.coverage).toFixed(1)}% | ${e.bytesMoved} B moved`
  );
}

function toJson(e: Estimate<Float64Array>): Record<string, unknown> {
  return {
    ...e,
    value: Array.from(e.value),
    ...(e.epsilonPerCoordinate === undefined ? {} : { epsilonPerCoordinate: Array.from(e.epsilonPerCoordinate) }),
  };
}

/**
 * Reads a job file: its JSON object, the dataset it names (inline or an exNode path, relative to the file)
 * and the job. Throws `COORD_E_INVALID_ARGUMENT` for a file that cannot be read or parsed.
 */
export async function readJobFile(
  file: string,
): Promise<{ o: Record<string, unknown>; dataset: CoordinatorDataset; job: Job<Float64Array> }> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new CoordinatorError(CoordinatorErrorCode.INVALID_ARGUMENT, `cannot read job file ${file}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    const got = Array.isArray(raw) ? 'an array' : raw === null ? 'null' : `a ${typeof raw}`;
    throw new CoordinatorError(
      CoordinatorErrorCode.INVALID_ARGUMENT,
      `invalid job file ${file}: it must hold a JSON object ({ "dataset": …, "job": { "kind": … } }, see docs/coordinator.md), not ${got}`,
      { details: { argument: 'job file', value: got } },
    );
  }
  const o = raw as Record<string, unknown>;
  const dataset = await datasetOfJob(o['dataset'], file);
  // An exNode of an empty input (0 rows): nothing to plan; say so rather than let the job find no blocks.
  requireRows(dataset);
  return { o, dataset, job: jobFromJson(o['job'], dataset) };
}

/** `anvil run JOB.json`: runs a coordinator job with a live one-line progress view, or `--json`. */
export function runCommand(): CliCommand {
  return new CliCommand('run')
    .description('run a coordinator job (JOB.json, see docs/coordinator.md) and print its estimate')
    .argument('<job>', 'job file (JSON)')
    .option('--json', 'print the final estimate as one JSON object, no progress line')
    .option('--reliability <file>', 'reliability history file (default: the user state directory)')
    .action(async (file: string, flags: { json?: boolean; reliability?: string }) => {
      const { o, dataset, job } = await readJobFile(file);
      const options = runOptions(o);
      if (o['helpers'] !== undefined && !Array.isArray(o['helpers']))
        throw bad('helpers', 'an array of "host:port"', o['helpers']);
      const helpers =
        o['helpers'] === undefined ? undefined : (o['helpers'] as unknown[]).map((h, i) => address(h, `helpers[${i}]`));
      const coordinator = await Coordinator.open({
        ...(helpers === undefined ? {} : { helpers }),
        ...(flags.reliability === undefined ? {} : { reliabilityPath: flags.reliability }),
      });
      const live = flags.json !== true && process.stderr.isTTY === true;
      try {
        const final = await lastValueFrom(
          coordinator.run(job, options).pipe(
            tap((e) => {
              if (flags.json === true) return;
              if (live) process.stderr.write(`\r\x1b[2K${formatProgress(e)}`);
              else if (e.final) process.stderr.write(`${formatProgress(e)}`);
            }),
          ),
        );
        if (flags.json === true) process.stdout.write(`${JSON.stringify(toJson(final))}\n`);
        else {
          process.stderr.write('\n');
          process.stdout.write(`${job.name} (${final.method})\n${formatValue(final.value, dataset.cols)}`);
        }
      } finally {
        await coordinator.close();
      }
    });
}
