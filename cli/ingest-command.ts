import { createReadStream, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Command as CliCommand, Option } from 'commander';
import { sizeFlag } from './flags.js';
import {
  DatasetError,
  DatasetErrorCode,
  IbpClient,
  ingest,
  parseCsvRows,
  parseDepotList,
  parseRawRows,
  readDepotFile,
  streamSensorField,
  type DepotAddress,
  type IngestResult,
  type RowBatch,
} from '../framework/index.js';
import { addSimulatorFlags, numberFlag, sensorOptionsFrom, streamOptionsFrom, type SimulatorFlags } from './simulate-command.js';

interface IngestFlags extends SimulatorFlags {
  output: string;
  force?: boolean;
  name?: string;
  cols?: string;
  dtype: 'float32' | 'float64';
  depots?: string;
  depotFile?: string;
  site: string[];
  copies: string;
  blockRows?: string;
  allocationSize?: string;
  duration?: string;
  checkpoint?: string;
  format: 'csv' | 'f32' | 'f64';
  input?: string;
  header?: boolean;
  delimiter?: string;
  sourceColumn?: boolean;
  source?: string;
  simulate?: boolean;
  json?: boolean;
}

function argError(message: string): DatasetError {
  return new DatasetError(DatasetErrorCode.INVALID_ARGUMENT, `invalid argument: ${message}`);
}

/** `--site NAME=host:port,host:port`, repeatable. */
function sitesFrom(list: readonly string[]): Record<string, DepotAddress[]> {
  const sites: Record<string, DepotAddress[]> = {};
  for (const entry of list) {
    const eq = entry.indexOf('=');
    if (eq < 1) throw argError(`\`--site\` must be NAME=host:port,… (got ${JSON.stringify(entry)})`);
    const name = entry.slice(0, eq).trim();
    if (sites[name] !== undefined) throw argError(`\`--site\` ${name} is given twice`);
    sites[name] = parseDepotList(entry.slice(eq + 1), `--site ${name}`);
  }
  return sites;
}

function describe(r: IngestResult, output: string): string {
  const s = r.stats;
  return (
    `ingested ${r.dataset.rows} rows × ${r.dataset.cols} ${r.dataset.dtype} in ${s.blocks} blocks, ` +
    `${s.allocations} allocations on ${s.depots} ${s.depots === 1 ? 'depot' : 'depots'}, ${(s.bytes / 1e6).toFixed(2)} MB stored in ${s.seconds.toFixed(2)} s: ` +
    `${Math.round(s.rowsPerSec)} rows/s, ${s.mbPerSec.toFixed(2)} MB/s → ${output}`
  );
}

/** Refuses an `-o` that is not an exNode file name or whose directory is missing, before anything is read or stored. */
function checkOutput(out: string): void {
  const refuse = (why: string) => argError(`-o ${out}: ${why}; nothing was stored`);
  if (!out.endsWith('.xnd') && !out.endsWith('.json'))
    throw refuse('an exNode file name must end in .xnd (LoRS XML) or .json (UNIS JSON)');
  const dir = dirname(resolve(out));
  const parent = statSync(dir, { throwIfNoEntry: false });
  if (parent === undefined) throw refuse(`directory ${dir} does not exist`);
  if (!parent.isDirectory()) throw refuse(`${dir} is not a directory`);
  if (statSync(out, { throwIfNoEntry: false })?.isDirectory() === true)
    throw refuse('is a directory; give a file name (e.g. a name inside it)');
}

/**
 * `anvil ingest`: appends rows (stdin or a file as CSV or raw floats, or the simulator) to depots as a
 * dataset, with per-block summaries; writes the exNode atomically and reports the throughput. An existing
 * output file is refused (it may name live allocations) unless --force. A failed
 * ingest releases what it stored and writes no exNode; an interrupted one (Ctrl-C) does the same, except that
 * with --checkpoint the last checkpoint exNode and its allocations stay (the error names them). The command
 * returns only once the releases are done.
 */
export function ingestCommand(): CliCommand {
  const cmd = new CliCommand('ingest')
    .description(
      'store rows (stdin/file as CSV or raw floats, or the simulator) in depots as a dataset with block summaries; writes its exNode',
    )
    .requiredOption(
      '-o, --output <exnode>',
      'exNode to write (.xnd = LoRS XML, .json = UNIS JSON); an existing file is refused before any depot is contacted',
    )
    .option(
      '--force',
      'overwrite an existing output exNode; the allocations the old one names are then no longer referenced by it (they stay until their leases end)',
    )
    .option('--name <name>', 'dataset name recorded in the exNode (default: the output file name)')
    .option('--cols <n>', 'values per row (default: from the first CSV row, or the simulator channels)')
    .addOption(new Option('--dtype <dtype>', 'element type stored').choices(['float32', 'float64']).default('float64'))
    .option('--depots <list>', "comma-separated host:port, for sources without a --site; each source's blocks rotate over them")
    .option('--depot-file <file>', 'file with one host:port per line')
    .option(
      '--site <name=depots>',
      'depots of a site, e.g. site-0=127.0.0.1:6714,127.0.0.1:6715 (repeatable)',
      (v: string, acc: string[]) => [...acc, v],
      [],
    )
    .option('--copies <n>', 'replicas per block on distinct depots of its site', '1')
    .option('--block-rows <n>', 'rows per block (default 4096)')
    .option(
      '--allocation-size <bytes>',
      'bytes per allocation before rolling to a new one, e.g. 4MiB (default: 4MiB per source, split over the depots its blocks rotate on)',
    )
    .option('--duration <sec>', 'lease of each allocation in seconds (default 86400)')
    .option(
      '--checkpoint <blocks>',
      'rewrite the exNode every N stored blocks so jobs can follow the growing dataset; Ctrl-C keeps the last one and its allocations',
    )
    .addOption(
      new Option('--format <format>', 'input format: csv, raw little-endian f32 or f64')
        .choices(['csv', 'f32', 'f64'])
        .default('csv'),
    )
    .option('--input <file>', 'read rows from this file (default stdin)')
    .option('--header', 'CSV: skip the first line (column names)')
    .option('--delimiter <char>', 'CSV field separator (default ,)')
    .option('--source-column', 'CSV: the first field of each row is its source id (site/sensor)')
    .option('--source <id>', 'source id of rows read from stdin or a file (default "stdin" or the file name)')
    .option('--simulate', 'ingest the sensor-field simulator (its flags below) instead of stdin or a file')
    .option('--json', 'print the result as one JSON object');
  addSimulatorFlags(cmd).action(async (f: IngestFlags) => {
    checkOutput(f.output);
    const sites = sitesFrom(f.site);
    const depots =
      f.depots !== undefined
        ? parseDepotList(f.depots)
        : f.depotFile !== undefined
          ? await readDepotFile(f.depotFile)
          : undefined;
    if (depots === undefined && Object.keys(sites).length === 0) throw argError('give --depots, --depot-file or --site');
    // Checked before any input is read, so a bad flag is reported as such rather than as an input error.
    const copies = numberFlag(f.copies, '--copies', true);
    for (const [name, list] of [
      ...Object.entries(sites).map(([k, v]) => [`--site ${k}`, v] as const),
      ['--depots', depots] as const,
    ]) {
      if (list !== undefined && list.length < copies)
        throw argError(`\`${name}\` has ${list.length} depots, fewer than --copies ${copies}`);
    }
    const simOptions = f.simulate === true ? sensorOptionsFrom(f) : undefined;
    const inputName = f.input ?? 'stdin';
    const elt = f.format === 'f32' ? 'float32' : 'float64';
    let cols = f.cols === undefined ? undefined : numberFlag(f.cols, '--cols', true);
    let rows: AsyncIterable<RowBatch>;
    const ac = new AbortController();
    if (simOptions !== undefined) {
      cols ??= simOptions.channels ?? 8;
      rows = streamSensorField(simOptions, { ...streamOptionsFrom(f), signal: ac.signal });
    } else {
      const input = f.input === undefined ? process.stdin : createReadStream(f.input);
      const source = f.source ?? inputName;
      const tag = async function* (batches: AsyncIterable<RowBatch>) {
        for await (const b of batches) yield b.source === undefined ? { ...b, source } : b;
      };
      if (f.format === 'csv') {
        if (cols === undefined) {
          // The CSV parser learns the width from the first row; the ingest needs it upfront, so peek.
          const it = parseCsvRows(input, {
            dtype: f.dtype,
            header: f.header === true,
            ...(f.delimiter === undefined ? {} : { delimiter: f.delimiter }),
            sourceColumn: f.sourceColumn === true,
            name: inputName,
          })[Symbol.asyncIterator]();
          const first = await it.next();
          cols = first.done === true ? 1 : first.value.data.length / first.value.rows;
          rows = tag(
            (async function* () {
              if (first.done !== true) yield first.value;
              for (let r = await it.next(); r.done !== true; r = await it.next()) yield r.value;
            })(),
          );
        } else {
          rows = tag(
            parseCsvRows(input, {
              cols,
              dtype: f.dtype,
              header: f.header === true,
              ...(f.delimiter === undefined ? {} : { delimiter: f.delimiter }),
              sourceColumn: f.sourceColumn === true,
              name: inputName,
            }),
          );
        }
      } else {
        if (cols === undefined) throw argError('raw input (--format f32/f64) needs --cols');
        rows = tag(parseRawRows(input, { cols, inputDtype: elt, dtype: f.dtype, name: inputName }));
      }
    }
    const client = new IbpClient({ timeoutMs: 60_000 });
    const stop = () => ac.abort();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    try {
      const result = await ingest(client, rows, {
        name: f.name ?? f.output.replace(/^.*\//, '').replace(/\.(xnd|json)$/, ''),
        cols,
        dtype: f.dtype,
        sites,
        ...(depots === undefined ? {} : { depots }),
        copies,
        ...(f.blockRows === undefined ? {} : { blockRows: numberFlag(f.blockRows, '--block-rows', true) }),
        ...(f.allocationSize === undefined ? {} : { allocationBytes: sizeFlag(f.allocationSize, '--allocation-size', argError) }),
        ...(f.duration === undefined ? {} : { durationSec: numberFlag(f.duration, '--duration', true) }),
        ...(f.checkpoint === undefined ? {} : { checkpointBlocks: numberFlag(f.checkpoint, '--checkpoint', true) }),
        path: f.output,
        overwrite: f.force === true,
        signal: ac.signal,
      }).catch((e: unknown) => {
        // The library's message does not know where the rows came from: name the input.
        if (e instanceof DatasetError && e.code === DatasetErrorCode.EMPTY_INPUT && simOptions === undefined)
          throw new DatasetError(e.code, `${inputName}: ${e.message}`, { details: { input: inputName } });
        throw e;
      });
      const s = result.stats;
      process.stdout.write(
        f.json === true
          ? `${JSON.stringify({ output: f.output, name: result.dataset.name, dtype: result.dataset.dtype, cols: result.dataset.cols, ...s })}\n`
          : `${describe(result, f.output)}\n`,
      );
    } finally {
      process.removeListener('SIGINT', stop);
      process.removeListener('SIGTERM', stop);
      client.close();
    }
  });
  return cmd;
}
