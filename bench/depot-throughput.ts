/**
 * `npm run bench:depot`: bulk store and load throughput of one depot process on loopback, in the
 * shape of the IBP performance clients: CLIENTS concurrent connections share ALLOCATIONS
 * allocations of ALLOCATION_MB MiB, written (STORE) and then read (LOAD) in BLOCK_KB KiB blocks,
 * one command at a time per connection. Rows for a memory resource and disk resources with
 * `--fsync fast` and `--fsync safe`, each next to a single-connection raw socket baseline (a child
 * process that only sinks or sources bytes) measured in the same run; then the small-operation
 * rate. Printed as JSON. Bounded: every phase moves a fixed number of bytes, and each small-op row
 * runs ROW_SECONDS.
 *
 * The client is a minimal wire client (no pooling, no copies beyond the socket's), so the figures
 * are the depot's, not the client library's. Every phase also reports the CPU seconds the depot
 * process and this client spent on it: on a shared machine MB/s swing with the neighbours' load,
 * while the depot's CPU time per byte (and `depotCpuMBps`, the rate one whole core would give) is
 * far steadier, and shows whether the depot or the client is the bound.
 *
 * `BENCH_ANVIL_BINS` (comma-separated launchers, e.g. an older build's `bin/anvil.js`) runs every
 * row against each build in turn, alternating within each round, so two builds are compared in the
 * same window; rows then carry the launcher's path.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IbpClient, type DepotAddress } from '../framework/index.js';
import { formatLoad, formatStore, keyRefOf, parseCapability, type Capability } from '../ibp/index.js';
import { startDepotProcess, type DepotProcessHandle } from './lib/depot-process.js';

const CLIENTS = Number(process.env['BENCH_CLIENTS'] ?? 4);
const ALLOCATIONS = Number(process.env['BENCH_ALLOCATIONS'] ?? 8);
const ALLOCATION_MB = Number(process.env['BENCH_ALLOCATION_MB'] ?? 64);
const BLOCK_KB = Number(process.env['BENCH_BLOCK_KB'] ?? 1024);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 2);
const ROW_SECONDS = Number(process.env['BENCH_ROW_SECONDS'] ?? 3);
const KINDS = (process.env['BENCH_KINDS'] ?? 'memory,disk-fast,disk-safe').split(',');
const SMALL = process.env['BENCH_SMALL'] !== '0';
/** Extra node flags for the depot process (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`). */
const DEPOT_NODE_ARGS = (process.env['BENCH_DEPOT_NODE_ARGS'] ?? '').split(' ').filter((a) => a !== '');
/** Launchers to compare (default: this build's). */
const BINS = (process.env['BENCH_ANVIL_BINS'] ?? '').split(',').filter((b) => b !== '');

const BLOCK = BLOCK_KB * 1024;
const ALLOC_BYTES = ALLOCATION_MB * 1024 * 1024;

function round(x: number): number {
  return Math.round(x * 10) / 10;
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

/** MB/s that `cpuS` CPU seconds per `bytes` come to (one whole core's worth), if known. */
function perCore(bytes: number, cpuS: number | undefined): number | undefined {
  return cpuS === undefined || cpuS <= 0 ? undefined : round(bytes / 1e6 / cpuS);
}

/** One connection speaking just STORE and LOAD, a command at a time. */
class WireClient {
  private readonly chunks: Buffer[] = [];
  private held = 0;
  private wake: (() => void) | undefined;
  private ended = false;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (c: Buffer) => {
      this.chunks.push(c);
      this.held += c.length;
      this.wake?.();
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake?.();
    });
    socket.on('error', () => undefined);
  }

  static async open(addr: DepotAddress): Promise<WireClient> {
    const socket = connect({ host: addr.host, port: addr.port, noDelay: true });
    await once(socket, 'connect');
    return new WireClient(socket);
  }

  private async need(n: number): Promise<void> {
    while (this.held < n) {
      if (this.ended) throw new Error('depot closed the connection');
      await new Promise<void>((r) => (this.wake = r));
      this.wake = undefined;
    }
  }

  private async line(): Promise<string> {
    for (;;) {
      let seen = 0;
      for (let i = 0; i < this.chunks.length; i++) {
        const nl = this.chunks[i]!.indexOf(0x0a);
        if (nl >= 0) {
          const all = Buffer.concat(this.chunks.slice(0, i + 1));
          const text = all.toString('latin1', 0, seen + nl);
          this.drop(seen + nl + 1);
          return text;
        }
        seen += this.chunks[i]!.length;
      }
      await this.need(this.held + 1);
    }
  }

  /** Drops `n` bytes from the front; with `sink`, hands them over first (as views). */
  private drop(n: number, sink?: (b: Buffer) => void): void {
    this.held -= n;
    while (n > 0) {
      const c = this.chunks[0]!;
      if (c.length <= n) {
        sink?.(c);
        this.chunks.shift();
        n -= c.length;
      } else {
        sink?.(c.subarray(0, n));
        this.chunks[0] = c.subarray(n);
        n = 0;
      }
    }
  }

  private async ok(what: string): Promise<string[]> {
    const t = (await this.line()).trim().split(/\s+/);
    if (t[0] !== '1') throw new Error(`${what} refused: ${t.join(' ')}`);
    return t;
  }

  async store(cap: Capability, data: Buffer): Promise<void> {
    this.socket.write(formatStore({ version: 1, cap: keyRefOf(cap), length: data.length, timeoutSec: 600 }), 'latin1');
    await this.ok('STORE go-ahead');
    this.socket.write(data);
    const t = await this.ok('STORE');
    if (Number(t[1]) !== data.length) throw new Error(`STORE acknowledged ${t[1]} bytes`);
  }

  /** LOAD, checking the block's stamp (its first 8 bytes) without assembling the block. */
  async load(cap: Capability, offset: number, length: number): Promise<number> {
    this.socket.write(formatLoad({ version: 1, cap: keyRefOf(cap), offset, length, timeoutSec: 600 }), 'latin1');
    const t = await this.ok('LOAD');
    if (Number(t[1]) !== length) throw new Error(`LOAD announced ${t[1]} bytes`);
    let stamp: number | undefined;
    for (let left = length; left > 0;) {
      await this.need(1);
      const n = Math.min(left, this.held);
      this.drop(n, (b) => {
        if (stamp === undefined && b.length >= 8) stamp = b.readDoubleLE(0);
      });
      left -= n;
    }
    return stamp ?? -1;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Block `i` of every allocation: a stamp (its index) then a pattern, built once. */
function blocks(count: number): Buffer[] {
  return Array.from({ length: count }, (_, i) => {
    const b = Buffer.alloc(BLOCK, (i * 37) & 0xff);
    b.writeDoubleLE(i, 0);
    return b;
  });
}

interface BulkFigures {
  writeMBps: number;
  readMBps: number;
}

interface PhaseCpu {
  /** CPU seconds of the depot process (all threads) during the phase. */
  depotCpuS: number | undefined;
  /** CPU seconds of this process (the clients) during the phase. */
  clientCpuS: number;
}

interface DepotBulkFigures extends BulkFigures {
  write: PhaseCpu;
  read: PhaseCpu;
}

/** The bulk shape against one depot: allocate, write all, read all; MB/s and CPU of each phase. */
async function bulk(depot: DepotProcessHandle, data: Buffer[]): Promise<DepotBulkFigures> {
  const addr = depot.addr;
  const admin = new IbpClient({ timeoutMs: 120_000 });
  const caps: { read: Capability; write: Capability; manage: Capability }[] = [];
  try {
    for (let i = 0; i < ALLOCATIONS; i++) {
      const c = await admin.allocate(addr, { size: ALLOC_BYTES, durationSec: 3600 });
      caps.push({ read: parseCap(c.read), write: parseCap(c.write), manage: parseCap(c.manage) });
    }
    const clients = await Promise.all(Array.from({ length: CLIENTS }, () => WireClient.open(addr)));
    const perAlloc = ALLOC_BYTES / BLOCK;
    // Client i writes (then reads) allocations i, i + CLIENTS, …, block after block.
    const phase = async (
      work: (c: WireClient, alloc: number, block: number) => Promise<void>,
    ): Promise<{ seconds: number; cpu: PhaseCpu }> => {
      const depot0 = depot.cpuSeconds();
      const client0 = process.cpuUsage();
      const t0 = process.hrtime.bigint();
      await Promise.all(
        clients.map(async (c, ci) => {
          for (let a = ci; a < ALLOCATIONS; a += CLIENTS) for (let b = 0; b < perAlloc; b++) await work(c, a, b);
        }),
      );
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const depot1 = depot.cpuSeconds();
      const client = process.cpuUsage(client0);
      return {
        seconds,
        cpu: {
          depotCpuS: depot0 === undefined || depot1 === undefined ? undefined : round2(depot1 - depot0),
          clientCpuS: round2((client.user + client.system) / 1e6),
        },
      };
    };
    const total = ALLOCATIONS * ALLOC_BYTES;
    const write = await phase((c, a, b) => c.store(caps[a]!.write, data[b]!));
    const read = await phase(async (c, a, b) => {
      const stamp = await c.load(caps[a]!.read, b * BLOCK, BLOCK);
      if (stamp !== b) throw new Error(`allocation ${a} block ${b}: read back stamp ${stamp}`);
    });
    for (const c of clients) c.close();
    return {
      writeMBps: round(total / 1e6 / write.seconds),
      readMBps: round(total / 1e6 / read.seconds),
      write: write.cpu,
      read: read.cpu,
    };
  } finally {
    for (const c of caps) await admin.decr(c.manage, 'read').catch(() => undefined);
    admin.close();
  }
}

function parseCap(c: Capability | string): Capability {
  if (typeof c !== 'string') return c;
  const cap = parseCapability(c);
  if (cap === undefined) throw new Error(`the depot returned a malformed capability: ${c}`);
  return cap;
}

/**
 * Single-connection raw socket baseline: a child process that sinks (or sources) `bytes` bytes;
 * MB/s of moving them over loopback in BLOCK-sized writes.
 */
async function rawSocket(bytes: number, block: Buffer): Promise<BulkFigures> {
  const script = `
    const net = require('node:net');
    const src = Buffer.alloc(${BLOCK}, 5);
    const server = net.createServer((s) => {
      s.once('data', (first) => {
        if (first[0] === 0x52) { // 'R': send ${bytes} bytes
          let left = ${bytes};
          const pump = () => { while (left > 0) { left -= src.length; if (!s.write(src)) return s.once('drain', pump); } s.end(); };
          pump();
        } else {
          let got = first.length - 1;
          s.on('data', (c) => { got += c.length; if (got >= ${bytes}) s.end('done'); });
        }
      });
    });
    server.listen(0, '127.0.0.1', () => process.stdout.write(String(server.address().port) + '\\n'));
  `;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [portLine] = (await once(child.stdout, 'data')) as [Buffer];
  const port = Number(portLine.toString().trim());
  try {
    const write = await new Promise<number>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port, noDelay: true });
      let t0 = 0n;
      s.on('error', reject);
      s.on('connect', () => {
        t0 = process.hrtime.bigint();
        s.write('W');
        let left = bytes;
        const pump = () => {
          while (left > 0) {
            left -= block.length;
            if (!s.write(block)) return void s.once('drain', pump);
          }
        };
        pump();
      });
      s.on('data', () => {
        resolve(Number(process.hrtime.bigint() - t0) / 1e9);
        s.destroy();
      });
    });
    const read = await new Promise<number>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port, noDelay: true });
      let t0 = 0n;
      let got = 0;
      s.on('error', reject);
      s.on('connect', () => {
        t0 = process.hrtime.bigint();
        s.write('R');
      });
      s.on('data', (c: Buffer) => {
        got += c.length;
        if (got >= bytes) {
          resolve(Number(process.hrtime.bigint() - t0) / 1e9);
          s.destroy();
        }
      });
    });
    return { writeMBps: round(bytes / 1e6 / write), readMBps: round(bytes / 1e6 / read) };
  } finally {
    child.kill('SIGTERM');
    await once(child, 'exit');
  }
}

async function smallOps(addr: DepotAddress, concurrency: number, kind: string): Promise<Record<string, unknown>> {
  const data = Buffer.alloc(4096, 1);
  const clients = Array.from({ length: concurrency }, () => new IbpClient());
  let iterations = 0;
  const started = Date.now();
  await Promise.all(
    clients.map(async (client) => {
      while (Date.now() - started < ROW_SECONDS * 1000) {
        const caps = await client.allocate(addr, { size: 4096, durationSec: 600 });
        await client.store(caps.write, data);
        await client.load(caps.read, 0, 4096);
        await client.decr(caps.manage, 'read');
        iterations++;
      }
    }),
  );
  for (const c of clients) c.close();
  const seconds = (Date.now() - started) / 1000;
  return { name: `small-ops:allocate+store4k+load:${kind}:clients=${concurrency}`, opsPerSec: round(iterations / seconds) };
}

const DEPOT_ARGS: Record<string, (dir: string) => string[]> = {
  memory: () => [],
  'disk-fast': (dir) => ['--data', join(dir, 'fast'), '--fsync', 'fast'],
  'disk-safe': (dir) => ['--data', join(dir, 'safe'), '--fsync', 'safe'],
};

const dataDir = mkdtempSync(join(tmpdir(), 'anvil-bench-'));
const data = blocks(ALLOC_BYTES / BLOCK);
const rows: Record<string, unknown>[] = [];
const bins: (string | undefined)[] = BINS.length > 0 ? BINS : [undefined];
const total = ALLOCATIONS * ALLOC_BYTES;
try {
  for (const kind of KINDS) {
    const args = DEPOT_ARGS[kind];
    if (args === undefined) throw new Error(`unknown kind ${kind}`);
    const depots: DepotProcessHandle[] = [];
    try {
      for (const [i, bin] of bins.entries())
        depots.push(await startDepotProcess(args(join(dataDir, String(i))), DEPOT_NODE_ARGS, bin));
      for (let round = 0; round < ROUNDS; round++) {
        const raw = await rawSocket(total, data[0]!);
        for (const [i, depot] of depots.entries()) {
          const f = await bulk(depot, data);
          rows.push({
            name: `bulk:${kind}`,
            ...(bins[i] === undefined ? {} : { bin: bins[i] }),
            round,
            clients: CLIENTS,
            allocations: ALLOCATIONS,
            allocationMiB: ALLOCATION_MB,
            blockKiB: BLOCK_KB,
            writeMBps: f.writeMBps,
            readMBps: f.readMBps,
            rawSocket1ConnWriteMBps: raw.writeMBps,
            rawSocket1ConnReadMBps: raw.readMBps,
            writeDepotCpuS: f.write.depotCpuS,
            readDepotCpuS: f.read.depotCpuS,
            writeClientCpuS: f.write.clientCpuS,
            readClientCpuS: f.read.clientCpuS,
            writeDepotCpuMBps: perCore(total, f.write.depotCpuS),
            readDepotCpuMBps: perCore(total, f.read.depotCpuS),
          });
          process.stderr.write(`${JSON.stringify(rows[rows.length - 1])}\n`);
        }
      }
      if (SMALL) {
        for (const [i, depot] of depots.entries()) {
          for (const concurrency of [1, 8]) {
            const row = await smallOps(depot.addr, concurrency, kind);
            rows.push(bins[i] === undefined ? row : { ...row, bin: bins[i] });
            process.stderr.write(`${JSON.stringify(rows[rows.length - 1])}\n`);
          }
        }
      }
    } finally {
      for (const depot of depots) await depot.stop();
    }
  }
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}
process.stdout.write(
  `${JSON.stringify(
    {
      bench: 'depot',
      node: process.version,
      when: new Date().toISOString(),
      shape: { clients: CLIENTS, allocations: ALLOCATIONS, allocationMiB: ALLOCATION_MB, blockKiB: BLOCK_KB },
      rows,
    },
    null,
    2,
  )}\n`,
);
