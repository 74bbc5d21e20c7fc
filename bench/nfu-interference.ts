/**
 * `node dist/bench/nfu-interference.js`: does NFU work disturb the data path? Measures the latency
 * of a plain allocate + store (64 KiB) + load on a depot process, first unloaded, then while
 * several clients keep NFU Gaussian sketches of one large input running (the NFU saturated), and
 * prints p50/p99 of both, the NFU ops completed and refused (-66, the memory budget), and the
 * depot's peak RSS, as JSON. The two phases alternate BENCH_ROUNDS times (3) in one run, so both
 * see the same background load; the figures pool each kind's samples, and the median of the
 * rounds' p99 ratios is given too. Bounded: each phase runs at most PHASE_SECONDS and MAX_SAMPLES.
 * BENCH_DEPOT_NODE_ARGS (split on spaces) is given to node for the depot, e.g. `--cpu-prof`
 * (the profile is written in the working directory when the depot exits).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IbpClient, type DepotAddress } from '../framework/index.js';
import { encodeAttrs } from '../nfu-kernels/index.js';

const PHASE_SECONDS = Number(process.env['BENCH_PHASE_SECONDS'] ?? 8);
const MAX_SAMPLES = 2000;
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
const INPUT_MB = Number(process.env['BENCH_INPUT_MB'] ?? 128);
const NFU_CLIENTS = Number(process.env['BENCH_NFU_CLIENTS'] ?? 8);
const COLS = 256;
const DEPOT_NODE_ARGS = (process.env['BENCH_DEPOT_NODE_ARGS'] ?? '').split(' ').filter((a) => a !== '');

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** allocate + store + load latencies (ms) until `stop()` says so, and the seconds it took. */
async function dataPath(client: IbpClient, addr: DepotAddress, stop: () => boolean): Promise<Phase> {
  const data = Buffer.alloc(64 * 1024, 7);
  const ms: number[] = [];
  const started = Date.now();
  while (!stop() && ms.length < MAX_SAMPLES) {
    const t = process.hrtime.bigint();
    const caps = await client.allocate(addr, { size: data.length, durationSec: 60 });
    await client.store(caps.write, data);
    await client.load(caps.read, 0, data.length);
    ms.push(Number(process.hrtime.bigint() - t) / 1e6);
    await client.decr(caps.manage, 'read');
  }
  return { ms, seconds: (Date.now() - started) / 1000 };
}

interface Phase {
  readonly ms: number[];
  readonly seconds: number;
}

/** p50/p99/max of the phases' samples taken together. */
function summary(phases: readonly Phase[]): Record<string, number> {
  const ms = phases.flatMap((p) => p.ms).sort((a, b) => a - b);
  return {
    samples: ms.length,
    seconds: phases.reduce((s, p) => s + p.seconds, 0),
    p50Ms: quantile(ms, 0.5),
    p99Ms: quantile(ms, 0.99),
    maxMs: ms[ms.length - 1]!,
  };
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** The depot's resident set (MiB), read from /proc. */
function rssMb(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** `anvil depot` as a child process (its pid for the RSS), port chosen by the OS. */
async function startDepot(config: string): Promise<{ addr: DepotAddress; pid: number | undefined; stop: () => Promise<void> }> {
  const bin = new URL('../../bin/anvil.js', import.meta.url).pathname;
  const child = spawn(
    process.execPath,
    [
      ...DEPOT_NODE_ARGS,
      bin,
      'depot',
      '--port',
      '0',
      '--capacity',
      '2GiB',
      '--log-level',
      'warn',
      '--config',
      config,
      ...RESOURCE_ARGS,
    ],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  for (const deadline = Date.now() + 10_000; ;) {
    const m = /listening on ibp:\/\/([^:]+):(\d+)/.exec(out);
    if (m) {
      return {
        addr: { host: m[1]!, port: Number(m[2]) },
        pid: child.pid,
        stop: async () => {
          child.kill('SIGTERM');
          await once(child, 'exit');
        },
      };
    }
    if (Date.now() > deadline || child.exitCode !== null) throw new Error('depot did not start');
    await new Promise((r) => setTimeout(r, 20));
  }
}

const dir = mkdtempSync(join(tmpdir(), 'anvil-bench-'));
/** BENCH_RESOURCE=disk: a disk resource (fsync fast) in the run's temporary directory; memory otherwise. */
const RESOURCE = process.env['BENCH_RESOURCE'] === 'disk' ? 'disk' : 'memory';
const RESOURCE_ARGS = RESOURCE === 'disk' ? ['--data', join(dir, 'data'), '--fsync', 'fast'] : [];
const budgetMb = process.env['BENCH_BUDGET_MB'];
const config = join(dir, 'depot.toml');
const workers = Number(process.env['BENCH_NFU_WORKERS'] ?? 2);
writeFileSync(config, `[nfu]\nworkers = ${workers}\n${budgetMb ? `memoryBudgetMb = ${Number(budgetMb)}\n` : ''}`);
const depot = await startDepot(config);
const client = new IbpClient({ timeoutMs: 120_000 });
try {
  const addr = depot.addr;
  // One large input, sketched over and over by NFU_CLIENTS clients at once.
  const rows = Math.floor((INPUT_MB * 1024 * 1024) / (COLS * 8));
  const A = await client.allocate(addr, { size: rows * COLS * 8, durationSec: 600 });
  const block = Buffer.alloc(rows * COLS * 8);
  for (let i = 0; i < block.length; i += 8) block.writeDoubleLE(((i / 8) % 97) - 48, i);
  await client.store(A.write, block);
  let done = 0;
  let refused = 0;
  let failed = 0;
  let peakRss = 0;
  const pid = depot.pid;
  const rssTimer = setInterval(() => (peakRss = Math.max(peakRss, rssMb(pid) ?? 0)), 100);
  /** NFU_CLIENTS clients running sketches until the returned stop is called (it waits for them). */
  const saturate = (): (() => Promise<void>) => {
    let stopped = false;
    const clients = Array.from({ length: NFU_CLIENTS }, async () => {
      const own = new IbpClient({ timeoutMs: 120_000 });
      try {
        while (!stopped) {
          try {
            await own.nfu(addr, 33, [
              { kind: 3, data: encodeAttrs({ rows, cols: COLS, k: 32, seed: 1 }) },
              { kind: 0, cap: A.read },
              { kind: 4, length: 32 * COLS * 8 },
            ]);
            done++;
          } catch (e) {
            if ((e as { status?: number }).status === -66) {
              refused++;
              await new Promise((r) => setTimeout(r, 50));
            } else failed++;
          }
        }
      } finally {
        own.close();
      }
    });
    return async () => {
      stopped = true;
      await Promise.all(clients);
    };
  };
  const phase = (): Promise<Phase> => {
    const until = Date.now() + PHASE_SECONDS * 1000;
    return dataPath(client, addr, () => Date.now() > until);
  };
  // Unloaded and saturated phases alternate, so both see the same background load of the machine.
  const unloaded: Phase[] = [];
  const loaded: Phase[] = [];
  let loadedOps = 0;
  for (let round = 0; round < ROUNDS; round++) {
    unloaded.push(await phase());
    const stop = saturate();
    await new Promise((r) => setTimeout(r, 500)); // let the NFU fill up
    const before = done;
    loaded.push(await phase());
    loadedOps += done - before;
    await stop();
  }
  clearInterval(rssTimer);
  const u = summary(unloaded);
  const l = summary(loaded);
  process.stdout.write(
    `${JSON.stringify(
      {
        bench: 'nfu-interference',
        node: process.version,
        when: new Date().toISOString(),
        rounds: ROUNDS,
        resource: RESOURCE,
        nfu: {
          workers,
          clients: NFU_CLIENTS,
          inputMb: INPUT_MB,
          op: 'gaussian-sketch-left k=32',
          budgetMb: budgetMb ?? 'default',
        },
        unloaded: u,
        nfuSaturated: l,
        p99Ratio: l['p99Ms']! / u['p99Ms']!,
        roundP99Ms: loaded.map((p, i) => ({ unloaded: summary([unloaded[i]!])['p99Ms'], nfuSaturated: summary([p])['p99Ms'] })),
        roundP99Ratios: loaded.map((p, i) => summary([p])['p99Ms']! / summary([unloaded[i]!])['p99Ms']!),
        medianRoundP99Ratio: median(loaded.map((p, i) => summary([p])['p99Ms']! / summary([unloaded[i]!])['p99Ms']!)),
        nfuOps: {
          done,
          refused66: refused,
          failed,
          perSecondWhileMeasured: loadedOps / l['seconds']!,
        },
        depotPeakRssMb: peakRss || null,
      },
      null,
      2,
    )}\n`,
  );
} finally {
  client.close();
  await depot.stop();
  rmSync(dir, { recursive: true, force: true });
}
