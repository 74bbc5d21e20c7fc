import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
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
  upload,
  Warmer,
  writeExnode,
  type WarmReport,
} from '../framework/index.js';
import { parseByteSize } from '../depot/index.js';

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

/** A progress bar on stderr, shown only on a terminal and not with --json. */
function progress(total: number, label: string, json: boolean | undefined): { tick: (n: number) => void; stop: () => void } {
  if (json === true || process.stderr.isTTY !== true) return { tick: () => undefined, stop: () => undefined };
  const bar = new SingleBar(
    { format: `${label} [{bar}] {percentage}% {value}/{total} bytes {duration}s`, stream: process.stderr },
    Presets.shades_classic,
  );
  bar.start(total, 0);
  return { tick: (n) => bar.increment(n), stop: () => bar.stop() };
}

function print(json: boolean | undefined, value: unknown, text: () => string): void {
  process.stdout.write(json === true ? `${JSON.stringify(value)}\n` : `${text()}\n`);
}

function withClient<T>(fn: (client: IbpClient) => Promise<T>): Promise<T> {
  const client = new IbpClient({ timeoutMs: 120_000 });
  return fn(client).finally(() => client.close());
}

export function lorsCommands(): CliCommand[] {
  const up = new CliCommand('upload')
    .description('store a file as blocks striped and replicated over depots; writes an exNode')
    .argument('<file>')
    .option('--depots <list>', 'comma-separated host:port')
    .option('--depot-file <file>', 'file with one host:port per line')
    .option('--block-size <bytes>', 'block size, e.g. 4MiB', String(DEFAULT_BLOCK_SIZE))
    .option('--copies <n>', 'replicas per block, on distinct depots', '1')
    .option('--threads <n>', 'blocks in flight', '4')
    .option('--duration <sec>', 'lease of each allocation', String(DEFAULT_DURATION_SEC))
    .requiredOption('-o, --output <exnode>', 'exNode to write (.xnd = LoRS XML, .json = UNIS JSON)')
    .option('--json', 'print a JSON summary')
    .action(async (file: string, f: Record<string, string | boolean | undefined>) => {
      const depots = await depotsFrom(f as { depots?: string; depotFile?: string });
      const size = (await import('node:fs/promises').then((m) => m.stat(file))).size;
      const copies = positive(String(f['copies']), '--copies');
      const bar = progress(size * copies, 'upload', f['json'] as boolean);
      const started = Date.now();
      const x = await withClient((client) =>
        upload(client, file, {
          depots,
          blockSize: parseByteSize(f['blockSize'], '--block-size'),
          copies,
          threads: positive(String(f['threads']), '--threads'),
          durationSec: positive(String(f['duration']), '--duration'),
          onProgress: bar.tick,
        }),
      ).finally(bar.stop);
      await writeExnode(String(f['output']), x);
      const seconds = (Date.now() - started) / 1000;
      print(
        f['json'] as boolean,
        { exnode: f['output'], bytes: x.size, mappings: x.mappings.length, seconds },
        () => `uploaded ${x.size} bytes as ${x.mappings.length} mappings in ${seconds.toFixed(2)} s → ${String(f['output'])}`,
      );
    });

  const down = new CliCommand('download')
    .description('fetch the file an exNode describes (parallel, replica fail-over, resumable, checksummed)')
    .argument('<exnode>')
    .requiredOption('-o, --output <file>')
    .option('--threads <n>', 'blocks in flight', '4')
    .option('--no-resume', 'start over instead of resuming a partial download')
    .option('--json', 'print a JSON summary')
    .action(async (exnode: string, f: Record<string, string | boolean | undefined>) => {
      const x = await readExnode(exnode);
      const bar = progress(x.size, 'download', f['json'] as boolean);
      const started = Date.now();
      const r = await withClient((client) =>
        download(client, x, String(f['output']), {
          threads: positive(String(f['threads']), '--threads'),
          resume: f['resume'] !== false,
          onProgress: bar.tick,
        }),
      ).finally(bar.stop);
      const seconds = (Date.now() - started) / 1000;
      print(
        f['json'] as boolean,
        { ...r, seconds },
        () =>
          `downloaded ${r.bytes} bytes (${r.blocksFetched} blocks fetched, ${r.blocksResumed} resumed) in ${seconds.toFixed(2)} s`,
      );
    });

  const ls = new CliCommand('ls')
    .description('list an exNode: file, blocks, replicas')
    .argument('<exnode>')
    .option('--json')
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

  const stat = new CliCommand('stat')
    .description('probe every mapping: alive, size, time left')
    .argument('<exnode>')
    .option('--json')
    .action(async (exnode: string, f: { json?: boolean }) => {
      const x = await readExnode(exnode);
      const s = await withClient((client) => statMappings(client, x));
      print(f.json, s, () =>
        s
          .map(
            (m) =>
              `#${m.index} ${m.depot} @${m.exnodeOffset} ${m.alive ? `alive ${m.size ?? ''}/${m.maxSize ?? ''} ${m.secondsLeft ?? ''}s` : `DEAD ${m.error ?? ''}`}`,
          )
          .join('\n'),
      );
    });

  const aug = new CliCommand('augment')
    .description('add replicas (depot-to-depot copies) until every block has --copies live ones')
    .argument('<exnode>')
    .requiredOption('--copies <n>')
    .option('--depots <list>')
    .option('--depot-file <file>')
    .option('--duration <sec>', 'lease of new allocations', String(DEFAULT_DURATION_SEC))
    .option('--json')
    .action(async (exnode: string, f: Record<string, string | boolean | undefined>) => {
      const x = await readExnode(exnode);
      const depots = await depotsFrom(f as { depots?: string; depotFile?: string });
      const r = await withClient((client) =>
        augment(client, x, {
          copies: positive(String(f['copies']), '--copies'),
          depots,
          durationSec: positive(String(f['duration']), '--duration'),
        }),
      );
      if (r.added > 0) await writeExnode(exnode, x);
      print(f['json'] as boolean, r, () => `added ${r.added} replicas; ${r.short} blocks still short`);
      if (r.short > 0) process.exitCode = 1;
    });

  const trim = new CliCommand('trim')
    .description('remove dead mappings (--dead) or given ones (--mapping 0,3)')
    .argument('<exnode>')
    .option('--dead', 'drop mappings whose probe fails')
    .option('--mapping <list>', 'drop these mapping indexes')
    .option('--decrement', 'with --mapping: also release the allocations (DECR)')
    .option('--json')
    .action(async (exnode: string, f: { dead?: boolean; mapping?: string; decrement?: boolean; json?: boolean }) => {
      if ((f.dead === true) === (f.mapping !== undefined))
        throw new FrameworkError(FrameworkErrorCode.INVALID_ARGUMENT, 'give exactly one of --dead and --mapping');
      const x = await readExnode(exnode);
      const removed = await withClient((client) =>
        f.dead === true ? trimDead(client, x) : trimMappings(client, x, f.mapping!.split(',').map(Number), f.decrement === true),
      );
      if (removed > 0) await writeExnode(exnode, x);
      print(f.json, { removed }, () => `removed ${removed} mappings`);
    });

  const refresh = new CliCommand('refresh')
    .description('extend the leases of every mapping')
    .argument('<exnode>')
    .option('--extend-by <sec>')
    .option('--extend-to <iso-time>')
    .option('--max', "the depot's maximum lease")
    .option('--json')
    .action(async (exnode: string, f: { extendBy?: string; extendTo?: string; max?: boolean; json?: boolean }) => {
      const modes = [f.extendBy, f.extendTo, f.max].filter((v) => v !== undefined).length;
      if (modes !== 1)
        throw new FrameworkError(FrameworkErrorCode.INVALID_ARGUMENT, 'give exactly one of --extend-by, --extend-to and --max');
      const x = await readExnode(exnode);
      const mode =
        f.extendBy !== undefined
          ? { extendBySec: positive(f.extendBy, '--extend-by') }
          : f.extendTo !== undefined
            ? { extendToMs: Date.parse(f.extendTo) }
            : { max: true as const };
      if ('extendToMs' in mode && !Number.isFinite(mode.extendToMs))
        throw new FrameworkError(FrameworkErrorCode.INVALID_ARGUMENT, `--extend-to is not a date (got ${f.extendTo})`);
      const r = await withClient((client) => refreshLeases(client, x, mode));
      if (r.refreshed > 0) await writeExnode(exnode, x);
      print(f.json, r, () => [`refreshed ${r.refreshed} leases, ${r.failed} failed`, ...r.errors].join('\n'));
      if (r.failed > 0) process.exitCode = 1;
    });

  const warm = new CliCommand('warm')
    .description('keep exNodes alive by policy: copies per site, lease renewal, trimming (daemon or --once)')
    .requiredOption('--policy <file>', 'policy JSON')
    .requiredOption('--exnodes <dir>', 'directory of exNodes')
    .option('--once', 'one pass, then exit')
    .option('--metrics-port <port>', 'serve Prometheus metrics on 127.0.0.1:PORT/metrics (0: any free port, printed on stderr)')
    .option('--json')
    .action(async (f: { policy: string; exnodes: string; once?: boolean; metricsPort?: string; json?: boolean }) => {
      const policy = parsePolicy(
        await readFile(f.policy, 'utf8').catch((e: Error) => {
          throw new FrameworkError(FrameworkErrorCode.POLICY_INVALID, `cannot read policy ${f.policy}: ${e.message}`);
        }),
      );
      const client = new IbpClient({ timeoutMs: 120_000 });
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
    });

  return [up, down, ls, stat, aug, trim, refresh, warm];
}
