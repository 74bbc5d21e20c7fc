import { createServer } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { Command as CliCommand } from 'commander';
import { SingleBar, Presets } from 'cli-progress';
import { IbpClient, type DepotAddress } from '../ibp/index.js';
import {
  augment,
  blocksOf,
  DEFAULT_BLOCK_SIZE,
  DEFAULT_DURATION_SEC,
  depotKey,
  download,
  FrameworkError,
  FrameworkErrorCode,
  parseDepotList,
  parsePolicy,
  readDepotFile,
  readExnode,
  refreshLeases,
  statMappings,
  trimDead,
  trimMappings,
  uncoveredRanges,
  upload,
  Warmer,
  writeExnode,
  type Exnode,
  type Mapping,
  type RefreshMode,
  type WarmReport,
} from '../framework/index.js';
import { durationFlag, sizeFlag } from './flags.js';

/** A byte size flag (`4MiB`); a bad one is the tool's argument error, not a depot configuration error. */
function byteSize(value: unknown, flag: string): number {
  return sizeFlag(value, flag, (message) => new FrameworkError(FrameworkErrorCode.INVALID_ARGUMENT, message));
}

/** `--mapping 0,3`: mapping indexes as `anvil stat` numbers them. */
function mappingList(value: string): number[] {
  const entries = value.split(',').map((e) => e.trim());
  const bad = entries.find((e) => !/^\d{1,9}$/.test(e));
  if (bad !== undefined) {
    throw new FrameworkError(
      FrameworkErrorCode.INVALID_ARGUMENT,
      `--mapping expects comma-separated mapping indexes (0, 1, … as \`anvil stat\` numbers them), e.g. 0,3 (got "${value}")`,
    );
  }
  return entries.map(Number);
}

function positive(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1)
    throw new FrameworkError(FrameworkErrorCode.INVALID_ARGUMENT, `${flag} must be a positive integer (got ${value})`);
  return n;
}

async function depotsFrom(flags: { depots?: string; depotFile?: string }): Promise<DepotAddress[]> {
  if (flags.depots !== undefined) return parseDepotList(flags.depots);
  if (flags.depotFile !== undefined) return readDepotFile(flags.depotFile);
  throw new FrameworkError(FrameworkErrorCode.DEPOT_LIST, 'give --depots host:port,... or --depot-file FILE');
}

/**
 * A progress bar on stderr, shown on a terminal and not with --json; `ANVIL_PROGRESS=1` shows it
 * on any stderr (e.g. a log file), `ANVIL_PROGRESS=0` never.
 */
function progress(
  total: number,
  label: string,
  unit: string,
  json: boolean | undefined,
): { tick: (n: number) => void; stop: () => void } {
  const forced = process.env['ANVIL_PROGRESS'];
  const show = forced === '1' || (forced !== '0' && process.stderr.isTTY === true);
  if (json === true || !show) return { tick: () => undefined, stop: () => undefined };
  const bar = new SingleBar(
    {
      format: `${label} [{bar}] {percentage}% {value}/{total} ${unit} {duration}s`,
      stream: process.stderr,
      noTTYOutput: process.stderr.isTTY !== true,
    },
    Presets.shades_classic,
  );
  bar.start(total, 0);
  return { tick: (n) => bar.increment(n), stop: () => bar.stop() };
}

function print(json: boolean | undefined, value: unknown, text: () => string): void {
  process.stdout.write(json === true ? `${JSON.stringify(value)}\n` : `${text()}\n`);
}

/** How long the file tools wait for one request (a block, a probe, an allocation) before trying elsewhere. */
const DEFAULT_REQUEST_TIMEOUT = '30s';
const TIMEOUT_HELP = `how long one request (a block fetch, a probe) may take before the next copy is tried, e.g. 10s, 500ms, 2m`;
const PLACE_TIMEOUT_HELP = `how long one request (an allocation, a block store or copy, a probe) may take before that depot is given up on, e.g. 10s, 500ms, 2m`;

/** `--timeout 30s` in milliseconds; a bad one is the tool's argument error. */
function timeoutFlag(value: unknown): number {
  return durationFlag(value, '--timeout', (message) => new FrameworkError(FrameworkErrorCode.INVALID_ARGUMENT, message));
}

/** A client whose requests time out after `timeoutMs` (connecting: at most 5 s of it). */
function clientFor(timeoutMs: number): IbpClient {
  return new IbpClient({ timeoutMs, connectTimeoutMs: Math.min(5_000, timeoutMs) });
}

/** Runs `fn` with a client whose requests time out after `timeoutMs`, closed afterwards. */
function withClient<T>(fn: (client: IbpClient) => Promise<T>, timeoutMs: number): Promise<T> {
  const client = clientFor(timeoutMs);
  return fn(client).finally(() => client.close());
}

type RefreshFailure = Awaited<ReturnType<typeof refreshLeases>>['failures'][number];

/** Groups refresh failures that share a depot and a message: `N mappings (i, j, …) on host:port: message`. */
function failureSummary(failures: readonly RefreshFailure[]): string[] {
  const groups = new Map<string, number[]>();
  for (const f of failures) {
    const key = `${f.depot}: ${f.message}`;
    const list = groups.get(key) ?? [];
    list.push(f.index);
    groups.set(key, list);
  }
  return [...groups].map(([key, indexes]) => {
    const shown = indexes.slice(0, 8).join(', ') + (indexes.length > 8 ? `, … ${indexes.length - 8} more` : '');
    return `  ${indexes.length} ${indexes.length === 1 ? 'mapping' : 'mappings'} (${shown}) on ${key}`;
  });
}

const JSON_HELP = 'print a JSON summary on stdout instead of text (no progress bar)';

/**
 * The ranges that `removed` covered and `kept` no longer does, as "rows A to B" (dataset blocks) or
 * "bytes A to B", in exNode order.
 */
/**
 * Warns (stderr) about the bytes of `x` no mapping covers and returns whether there are any: `stat` and
 * `augment` then exit 1, since the file cannot be read whole and no copy can restore them.
 */
function warnUncovered(x: Exnode, what: string): boolean {
  const holes = uncoveredRanges(x);
  if (holes.length === 0) return false;
  const list = holes.map((h) => `bytes ${h.start} to ${h.end - 1}`).join(', ');
  process.stderr.write(`anvil: warning: ${list} have no mapping: ${what}\n`);
  return true;
}

function leftUncovered(removed: readonly Mapping[], kept: readonly Mapping[]): string[] {
  const out: string[] = [];
  const byOffset = (a: Mapping, b: Mapping) => a.exnodeOffset - b.exnodeOffset;
  const keptInOrder = [...kept].sort(byOffset);
  for (const m of [...removed].sort(byOffset)) {
    const end = m.exnodeOffset + m.logicalLength;
    // Walk the kept mappings that overlap m, in offset order, and find the first byte none of them covers.
    let at = m.exnodeOffset;
    for (const k of keptInOrder) {
      if (k.exnodeOffset <= at && k.exnodeOffset + k.logicalLength > at) at = k.exnodeOffset + k.logicalLength;
    }
    if (at >= end) continue;
    const what =
      m.rows !== undefined
        ? `rows ${m.rows.start} to ${m.rows.start + m.rows.count - 1}`
        : `bytes ${m.exnodeOffset} to ${end - 1}`;
    if (!out.includes(what)) out.push(what);
  }
  return out;
}

export function lorsCommands(): CliCommand[] {
  const up = new CliCommand('upload')
    .description('store a file as blocks striped and replicated over depots; writes an exNode')
    .argument('<file>', 'the file to store')
    .option('--depots <list>', 'comma-separated host:port of the depots to use')
    .option('--depot-file <file>', 'file with one host:port per line (# comments)')
    .option('--block-size <bytes>', 'block size, e.g. 4MiB', String(DEFAULT_BLOCK_SIZE))
    .option('--copies <n>', 'replicas per block, on distinct depots', '1')
    .option('--threads <n>', 'blocks in flight', '4')
    .option('--duration <sec>', 'lease of each allocation in seconds', String(DEFAULT_DURATION_SEC))
    .option('--timeout <duration>', PLACE_TIMEOUT_HELP, DEFAULT_REQUEST_TIMEOUT)
    .requiredOption(
      '-o, --output <exnode>',
      'exNode to write (.xnd = LoRS XML, .json = UNIS JSON); checked before storing, an existing file is refused',
    )
    .option(
      '--force',
      'overwrite an existing output exNode; the allocations the old one names are then no longer referenced by it (they stay until their leases end)',
    )
    .option('--json', JSON_HELP)
    .action(async (file: string, f: Record<string, string | boolean | undefined>) => {
      const out = String(f['output']);
      if (!out.endsWith('.xnd') && !out.endsWith('.json'))
        throw new FrameworkError(
          FrameworkErrorCode.INVALID_ARGUMENT,
          `-o ${out}: an exNode file name must end in .xnd (LoRS XML) or .json (UNIS JSON); nothing was uploaded`,
        );
      const timeoutMs = timeoutFlag(f['timeout']);
      const depots = await depotsFrom(f as { depots?: string; depotFile?: string });
      const blockSize = byteSize(f['blockSize'], '--block-size');
      const copies = positive(String(f['copies']), '--copies');
      const threads = positive(String(f['threads']), '--threads');
      const durationSec = positive(String(f['duration']), '--duration');
      const size = (await stat(file)).size;
      const bar = progress(size, 'upload', 'bytes', f['json'] as boolean);
      const started = Date.now();
      // Ctrl-C stops the upload and releases what it stored (nothing is left without an exNode).
      const stop = new AbortController();
      const onSignal = () =>
        stop.abort(new FrameworkError(FrameworkErrorCode.UPLOAD_FAILED, 'interrupted; every stored block was released'));
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      const output = String(f['output']);
      const x = await withClient(
        (client) =>
          upload(client, file, {
            depots,
            blockSize,
            copies,
            threads,
            durationSec,
            output,
            overwrite: f['force'] === true,
            signal: stop.signal,
            onBlockStored: bar.tick,
          }),
        timeoutMs,
      ).finally(() => {
        bar.stop();
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      });
      const seconds = (Date.now() - started) / 1000;
      print(
        f['json'] as boolean,
        { exnode: output, bytes: x.size, copies, storedBytes: x.size * copies, mappings: x.mappings.length, seconds },
        () =>
          `uploaded ${x.size} bytes (${copies} ${copies === 1 ? 'copy' : 'copies'}, ${x.mappings.length} mappings) in ${seconds.toFixed(2)} s → ${output}`,
      );
    });

  const down = new CliCommand('download')
    .description('fetch the file an exNode describes (parallel, replica fail-over, resumable, checksummed)')
    .argument('<exnode>', 'the exNode (.xnd or .json)')
    .requiredOption(
      '-o, --output <file>',
      'the file to write (not a directory); an existing file is refused; OUTPUT.partial holds an unfinished download',
    )
    .option('--force', 'overwrite an existing output file (it is replaced only once the download is complete)')
    .option('--threads <n>', 'blocks in flight', '4')
    .option('--timeout <duration>', TIMEOUT_HELP, DEFAULT_REQUEST_TIMEOUT)
    .option('--no-resume', 'start over instead of resuming a partial download')
    .option('--json', JSON_HELP)
    .action(async (exnode: string, f: Record<string, string | boolean | undefined>) => {
      const threads = positive(String(f['threads']), '--threads');
      const timeoutMs = timeoutFlag(f['timeout']);
      const x = await readExnode(exnode);
      const bar = progress(x.size, 'download', 'bytes', f['json'] as boolean);
      const started = Date.now();
      const r = await withClient(
        (client) =>
          download(client, x, String(f['output']), {
            threads,
            resume: f['resume'] !== false,
            overwrite: f['force'] === true,
            onProgress: bar.tick,
          }),
        timeoutMs,
      ).finally(bar.stop);
      const seconds = (Date.now() - started) / 1000;
      print(
        f['json'] as boolean,
        { ...r, seconds },
        () =>
          `downloaded ${r.bytes} bytes (${r.blocksFetched} blocks fetched, ${r.blocksResumed} resumed` +
          `${r.failovers > 0 ? `, ${r.failovers} replica ${r.failovers === 1 ? 'read' : 'reads'} failed over to another` : ''}) in ${seconds.toFixed(2)} s`,
      );
    });

  const ls = new CliCommand('ls')
    .description('list an exNode: file, blocks, replicas (reads the file only; no depot is contacted)')
    .argument('<exnode>', 'the exNode (.xnd or .json)')
    .option('--json', JSON_HELP)
    .action(async (exnode: string, f: { json?: boolean }) => {
      const x = await readExnode(exnode);
      const blocks = blocksOf(x);
      print(
        f.json,
        {
          name: x.name,
          size: x.size,
          blocks: blocks.map((b) => ({ offset: b.offset, length: b.length, depots: b.replicas.map(depotKey) })),
        },
        () =>
          [
            `${x.name}  ${x.size} bytes  ${blocks.length} blocks  ${x.mappings.length} mappings`,
            ...blocks.map((b) => `  ${b.offset}+${b.length}  ${b.replicas.map(depotKey).join(' ')}`),
          ].join('\n'),
      );
    });

  const statCmd = new CliCommand('stat')
    .description(
      'probe every mapping: alive (size, time left), DEAD (the depot says the bytes are gone or damaged: what trim --dead drops) or ' +
        'UNREACHABLE (no answer or another error: trim --dead keeps it, --unreachable drops it); exits 1 unless all are alive',
    )
    .argument('<exnode>', 'the exNode (.xnd or .json)')
    .option('--timeout <duration>', TIMEOUT_HELP, DEFAULT_REQUEST_TIMEOUT)
    .option('--json', JSON_HELP)
    .action(async (exnode: string, f: { json?: boolean; timeout: string }) => {
      const timeoutMs = timeoutFlag(f.timeout);
      const x = await readExnode(exnode);
      const bar = progress(x.mappings.length, 'stat', 'mappings', f.json);
      const s = await withClient((client) => statMappings(client, x, 8, { onProgress: bar.tick }), timeoutMs).finally(bar.stop);
      const dead = s.filter((m) => m.gone).length;
      const unreachable = s.filter((m) => !m.alive && !m.gone).length;
      const state = (m: (typeof s)[number]) =>
        m.alive
          ? `alive ${m.size ?? ''}/${m.maxSize ?? ''} ${m.secondsLeft ?? ''}s`
          : `${m.gone ? 'DEAD' : 'UNREACHABLE'} ${m.error ?? ''}`;
      print(f.json, s, () =>
        [
          ...s.map((m) => `#${m.index} ${m.depot} @${m.exnodeOffset} ${state(m)}`),
          `${s.length - dead - unreachable} alive, ${dead} dead, ${unreachable} unreachable`,
        ].join('\n'),
      );
      const holes = warnUncovered(x, 'the file cannot be read whole (upload it again to restore them)');
      if (dead + unreachable > 0 || holes) process.exitCode = 1;
    });

  const aug = new CliCommand('augment')
    .description('add replicas (depot-to-depot copies) until every block has --copies live ones')
    .argument('<exnode>', 'the exNode (.xnd or .json); rewritten when replicas are added')
    .requiredOption('--copies <n>', 'live replicas wanted per block, on distinct depots')
    .option('--depots <list>', 'comma-separated host:port of depots that may receive new replicas')
    .option('--depot-file <file>', 'file with one host:port per line (# comments)')
    .option('--duration <sec>', 'lease of new allocations in seconds', String(DEFAULT_DURATION_SEC))
    .option('--timeout <duration>', PLACE_TIMEOUT_HELP, DEFAULT_REQUEST_TIMEOUT)
    .option('--json', JSON_HELP)
    .action(async (exnode: string, f: Record<string, string | boolean | undefined>) => {
      const copies = positive(String(f['copies']), '--copies');
      const durationSec = positive(String(f['duration']), '--duration');
      const timeoutMs = timeoutFlag(f['timeout']);
      const depots = await depotsFrom(f as { depots?: string; depotFile?: string });
      const x = await readExnode(exnode);
      const bar = progress(x.mappings.length + blocksOf(x).length, 'augment', 'mappings probed + blocks', f['json'] as boolean);
      const r = await withClient(
        (client) => augment(client, x, { copies, depots, durationSec, onProgress: bar.tick }),
        timeoutMs,
      ).finally(bar.stop);
      if (r.added > 0) await writeExnode(exnode, x);
      print(f['json'] as boolean, r, () => `added ${r.added} replicas; ${r.short} blocks still short`);
      const holes = warnUncovered(x, 'augment copies existing replicas and cannot restore them (upload the file again)');
      if (r.short > 0 || holes) process.exitCode = 1;
    });

  const trim = new CliCommand('trim')
    .description('remove mappings from an exNode: dead ones (--dead) or given ones (--mapping 0,3)')
    .argument('<exnode>', 'the exNode (.xnd or .json); rewritten when mappings are removed')
    .option(
      '--dead',
      'drop mappings whose depot answers that the bytes are gone (no such allocation, -4, or too short, -19: DEAD in anvil stat); a depot that does not answer keeps its mappings (UNREACHABLE)',
    )
    .option(
      '--unreachable',
      'with --dead: also drop mappings whose depot does not answer or fails otherwise; refused if that would leave a range with no replica (it may come back) unless --force',
    )
    .option('--force', 'with --unreachable: drop them even when a range is left with no replica')
    .option('--mapping <list>', 'drop these mappings: comma-separated indexes as `anvil stat` shows them, e.g. 0,3')
    .option('--decrement', 'with --mapping: also release the allocations (DECR of the read count)')
    .option('--timeout <duration>', 'with --dead: how long one probe may take, e.g. 10s, 500ms, 2m', DEFAULT_REQUEST_TIMEOUT)
    .option('--json', JSON_HELP)
    .action(
      async (
        exnode: string,
        f: {
          dead?: boolean;
          unreachable?: boolean;
          force?: boolean;
          mapping?: string;
          decrement?: boolean;
          json?: boolean;
          timeout: string;
        },
      ) => {
        const timeoutMs = timeoutFlag(f.timeout);
        if ((f.dead === true) === (f.mapping !== undefined))
          throw new FrameworkError(FrameworkErrorCode.INVALID_ARGUMENT, 'give exactly one of --dead and --mapping');
        if (f.unreachable === true && f.dead !== true)
          throw new FrameworkError(FrameworkErrorCode.INVALID_ARGUMENT, '--unreachable goes with --dead');
        if (f.decrement === true && f.mapping === undefined)
          throw new FrameworkError(FrameworkErrorCode.INVALID_ARGUMENT, '--decrement goes with --mapping');
        if (f.force === true && f.unreachable !== true)
          throw new FrameworkError(FrameworkErrorCode.INVALID_ARGUMENT, '--force goes with --unreachable');
        const indexes = f.mapping === undefined ? [] : mappingList(f.mapping);
        const x = await readExnode(exnode);
        const original = x.mappings;
        const bar = f.dead === true ? progress(x.mappings.length, 'trim', 'mappings', f.json) : undefined;
        const removed = await withClient(
          (client) =>
            f.dead === true
              ? trimDead(client, x, f.unreachable === true, undefined, { onProgress: bar!.tick })
              : trimMappings(client, x, indexes, f.decrement === true),
          timeoutMs,
        ).finally(() => bar?.stop());
        // Ranges left with no replica: a dataset then no longer opens (`anvil run` refuses it), a file no
        // longer downloads. Dead bytes are gone anyway; an unreachable depot may come back, so that is refused.
        const uncovered =
          removed > 0
            ? leftUncovered(
                original.filter((m) => !x.mappings.includes(m)),
                x.mappings,
              )
            : [];
        if (uncovered.length > 0 && f.unreachable === true && f.force !== true) {
          throw new FrameworkError(
            FrameworkErrorCode.INVALID_ARGUMENT,
            `trim would leave ${uncovered.join(', ')} with no mapping (their only replicas are unreachable or dead; ` +
              'an unreachable depot may come back); nothing was changed; give --force to drop them anyway',
          );
        }
        if (removed > 0) await writeExnode(exnode, x);
        if (uncovered.length > 0) process.stderr.write(`anvil: warning: ${uncovered.join(', ')} now have no mapping\n`);
        print(f.json, { removed }, () => `removed ${removed} mappings`);
      },
    );

  const refresh = new CliCommand('refresh')
    .description('extend the leases of every mapping; a lease that already ends later is kept unless --allow-shorten')
    .argument('<exnode>', 'the exNode (.xnd or .json); rewritten with the new lease ends')
    .option('--extend-by <sec>', 'add this many seconds to each lease')
    .option('--extend-to <iso-time>', 'make each lease end at this time, e.g. 2030-01-01T00:00:00Z')
    .option('--max', "make each lease the depot's maximum lease, from now")
    .option('--allow-shorten', 'with --extend-to or --max: also shorten leases that end later')
    .option(
      '--timeout <duration>',
      'how long one request (a probe, a lease change) may take, e.g. 10s, 500ms, 2m',
      DEFAULT_REQUEST_TIMEOUT,
    )
    .option('--json', JSON_HELP)
    .action(
      async (
        exnode: string,
        f: { extendBy?: string; extendTo?: string; max?: boolean; allowShorten?: boolean; json?: boolean; timeout: string },
      ) => {
        const timeoutMs = timeoutFlag(f.timeout);
        const modes = [f.extendBy, f.extendTo, f.max].filter((v) => v !== undefined).length;
        if (modes !== 1)
          throw new FrameworkError(FrameworkErrorCode.INVALID_ARGUMENT, 'give exactly one of --extend-by, --extend-to and --max');
        if (f.allowShorten === true && f.extendBy !== undefined)
          throw new FrameworkError(FrameworkErrorCode.INVALID_ARGUMENT, '--allow-shorten goes with --extend-to or --max');
        const allowShorten = f.allowShorten === true;
        let mode: RefreshMode;
        if (f.extendBy !== undefined) mode = { extendBySec: positive(f.extendBy, '--extend-by') };
        else if (f.extendTo !== undefined) {
          const extendToMs = Date.parse(f.extendTo);
          if (!Number.isFinite(extendToMs))
            throw new FrameworkError(
              FrameworkErrorCode.INVALID_ARGUMENT,
              `--extend-to expects an ISO 8601 time such as 2030-01-01T00:00:00Z (got ${f.extendTo})`,
            );
          if (extendToMs <= Date.now())
            throw new FrameworkError(FrameworkErrorCode.INVALID_ARGUMENT, `--extend-to ${f.extendTo} is not in the future`);
          mode = { extendToMs, allowShorten };
        } else mode = { max: true, allowShorten };
        const x = await readExnode(exnode);
        const bar = progress(x.mappings.length, 'refresh', 'mappings', f.json);
        const r = await withClient(
          (client) => refreshLeases(client, x, mode, undefined, { onProgress: bar.tick }),
          timeoutMs,
        ).finally(bar.stop);
        if (r.refreshed > 0) await writeExnode(exnode, x);
        print(f.json, r, () =>
          [
            `refreshed ${r.refreshed} leases, ${r.kept} kept (they end later), ${r.failed} failed`,
            ...failureSummary(r.failures),
          ].join('\n'),
        );
        if (r.failed > 0) process.exitCode = 1;
      },
    );

  const warm = new CliCommand('warm')
    .description('keep exNodes alive by policy: copies per site, lease renewal, trimming (daemon or --once)')
    .requiredOption(
      '--policy <file>',
      'policy JSON (sites, copiesPerSite, leaseAheadSec, leaseDurationSec, trimDead, intervalSec)',
    )
    .requiredOption('--exnodes <dir>', 'directory of exNodes (.xnd, .json) to keep alive; each is rewritten when changed')
    .option('--once', 'one pass, then exit (1 if anything failed or stayed short)')
    .option('--metrics-port <port>', 'serve Prometheus metrics on 127.0.0.1:PORT/metrics (0: any free port, printed on stderr)')
    .option(
      '--timeout <duration>',
      'how long one request to a depot (a probe, a lease change, a copy) may take, e.g. 10s, 500ms, 2m',
      DEFAULT_REQUEST_TIMEOUT,
    )
    .option('--json', 'print each pass report as JSON on stdout instead of text')
    .action(
      async (f: { policy: string; exnodes: string; once?: boolean; metricsPort?: string; json?: boolean; timeout: string }) => {
        const timeoutMs = timeoutFlag(f.timeout);
        const policy = parsePolicy(
          await readFile(f.policy, 'utf8').catch((e: Error) => {
            throw new FrameworkError(FrameworkErrorCode.POLICY_INVALID, `cannot read policy ${f.policy}: ${e.message}`);
          }),
        );
        const client = clientFor(timeoutMs);
        const warmer = new Warmer(client, policy);
        const server =
          f.metricsPort === undefined
            ? undefined
            : createServer((req, res) => {
                if (req.url !== '/metrics') {
                  res.writeHead(404).end();
                  return;
                }
                void warmer.metrics.registry
                  .metrics()
                  .then((text) => res.writeHead(200, { 'content-type': warmer.metrics.registry.contentType }).end(text));
              });
        if (server !== undefined) {
          const port = f.metricsPort === '0' ? 0 : positive(String(f.metricsPort), '--metrics-port');
          await new Promise<void>((resolve, reject) => {
            server.once('error', reject);
            server.listen(port, '127.0.0.1', () => resolve());
          });
          const bound = (server.address() as { port: number }).port;
          process.stderr.write(`metrics on http://127.0.0.1:${bound}/metrics\n`);
        }
        const stop = new AbortController();
        const onSignal = () => stop.abort();
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
        const report = (r: WarmReport) =>
          print(
            f.json,
            r,
            () =>
              `warmed ${r.exnodes} exNodes: ${r.refreshed} refreshed, ${r.replicated} replicated, ${r.trimmed} trimmed, ${r.failures} failures, ${r.underReplicated} blocks short`,
          );
        try {
          if (f.once === true) {
            const r = await warmer.pass(f.exnodes);
            if (r.failures > 0 || r.underReplicated > 0) process.exitCode = 1;
            report(r);
          } else {
            await warmer.run(f.exnodes, { signal: stop.signal, onPass: report });
          }
        } finally {
          client.close();
          server?.close();
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
        }
      },
    );

  return [up, down, ls, statCmd, aug, trim, refresh, warm];
}
