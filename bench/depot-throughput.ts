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
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IbpClient, type DepotAddress } from '../framework/index.js';
import { formatLoad, formatStore, formatWrite, keyRefOf, parseCapability, type Capability } from '../ibp/index.js';
import { mulberry } from './lib/calibration-data.js';
import { killChildren, startDepotProcess, tracked, type DepotProcessHandle } from './lib/depot-process.js';

/** Stops the bench before anything runs: a bad setting named, no stack trace. */
function refuse(message: string): never {
  process.stderr.write(`bench:depot: ${message}\n`);
  process.exit(2);
}

/** A whole number from `BENCH_<name>` (or `fallback`), at least `min`; anything else stops the bench. */
function whole(name: string, fallback: number, min: number): number {
  const text = process.env[`BENCH_${name}`];
  if (text === undefined || text.trim() === '') return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) refuse(`BENCH_${name} must be a whole number of at least ${min} (got "${text}")`);
  return n;
}

const CLIENTS = whole('CLIENTS', 4, 1);
const ALLOCATIONS = whole('ALLOCATIONS', 8, 1);
const ALLOCATION_MB = whole('ALLOCATION_MB', 64, 1);
const BLOCK_KB = whole('BLOCK_KB', 1024, 1);
const ROUNDS = whole('ROUNDS', 3, 1);
const ROW_SECONDS = whole('ROW_SECONDS', 3, 1);
/**
 * The names listed in `BENCH_<name>` (comma-separated, each once, in order), each one of `known`;
 * all of `known` when it is unset or empty. `what` names one in messages.
 */
function names(name: string, known: readonly string[], what: string): string[] {
  const text = process.env[`BENCH_${name}`]?.trim() || known.join(',');
  const listed = [...new Set(text.split(',').map((k) => k.trim()))].filter((k) => k !== '');
  for (const k of listed) if (!known.includes(k)) refuse(`BENCH_${name}: unknown ${what} "${k}" (use ${known.join(', ')})`);
  if (listed.length === 0) refuse(`BENCH_${name} names no ${what} (use ${known.join(', ')})`);
  return listed;
}

/** One of `options` from `BENCH_<name>` (the first when unset or empty); anything else stops the bench. */
function choice(name: string, options: readonly string[]): string {
  const value = process.env[`BENCH_${name}`]?.trim() || options[0]!;
  if (!options.includes(value)) refuse(`BENCH_${name} must be one of ${options.join(', ')} (got "${value}")`);
  return value;
}

const KNOWN_KINDS = ['memory', 'disk-fast', 'disk-safe'];
const KINDS = names('KINDS', KNOWN_KINDS, 'kind');
if ((ALLOCATION_MB * 1024) % BLOCK_KB !== 0)
  refuse(
    `BENCH_BLOCK_KB (${BLOCK_KB}) must divide the allocation (BENCH_ALLOCATION_MB ${ALLOCATION_MB} = ${ALLOCATION_MB * 1024} KiB)`,
  );
const SMALL_SETTING = (process.env['BENCH_SMALL'] ?? '').trim();
if (!['', '0', '1'].includes(SMALL_SETTING)) refuse(`BENCH_SMALL must be 0 or 1 (got "${SMALL_SETTING}")`);
const SMALL = SMALL_SETTING !== '0';
/**
 * How the bulk phase writes: `append` (default) STOREs each allocation's blocks in order; `reverse`
 * WRITEs them at their offsets, last block first, as the peer's own perf client (ibp_perf) does: its
 * first write leaves a hole that every later one fills.
 */
const WRITE_ORDER = choice('WRITE_ORDER', ['append', 'reverse']);
/**
 * How the read phase goes through each allocation: `ascending` (default) or `descending`, last block
 * first, as ibp_perf reads (a depot that reads ahead only for ascending LOADs gets nothing from it).
 */
const READ_ORDER = choice('READ_ORDER', ['ascending', 'descending']);
/**
 * Read passes over the same data in each round (default 1). The first pass is `readMBps`; later ones
 * go to `rereads`, and show how the depot's cost per byte falls as its process warms up (its code is
 * compiled while it runs: a fresh depot spends about twice the CPU per byte on its first passes).
 */
const READ_PASSES = whole('READ_PASSES', 1, 1);
/**
 * Small random I/O after each round's bulk phases, as the IBP perf clients run it: this many WRITEs,
 * then as many LOADs, then as many of both mixed ("Small Random R/W", see SMALL_READ_FRACTION), of
 * 1–4 KiB (log-uniform) at random offsets of random allocations of the round, shared among the
 * connections (default 2000; 0 skips them). The same seeded commands for every client and round.
 */
const SMALL_IO = whole('SMALL_IO', 2000, 0);
const SMALL_IO_MIN_BYTES = 1024;
const SMALL_IO_MAX_BYTES = 4096;
const SMALL_IO_SEED = 20_240_601;
/** The share of LOADs among the mixed small commands, from 0 to 1 (default 0.5). */
const SMALL_READ_FRACTION = (() => {
  const text = process.env['BENCH_SMALL_READ_FRACTION'];
  if (text === undefined || text.trim() === '') return 0.5;
  const f = Number(text);
  if (!Number.isFinite(f) || f < 0 || f > 1) refuse(`BENCH_SMALL_READ_FRACTION must be a number from 0 to 1 (got "${text}")`);
  return f;
})();
/**
 * Idle milliseconds before each round (default 0: back to back). A depot uses idle time to warm the
 * files of new disk allocations (see depot/resources/disk/warm-pool.ts); with a pause the rows show
 * a depot whose bursts of writes are apart, without one a depot written without a break.
 */
const PAUSE_MS = whole('PAUSE_MS', 0, 0);
/** Extra node flags for the depot process (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`). */
const DEPOT_NODE_ARGS = (process.env['BENCH_DEPOT_NODE_ARGS'] ?? '').split(' ').filter((a) => a !== '');
/** Launchers to compare (default: this build's). */
const BINS = (process.env['BENCH_ANVIL_BINS'] ?? '')
  .split(',')
  .map((b) => b.trim())
  .filter((b) => b !== '');
for (const bin of BINS) if (!existsSync(bin)) refuse(`BENCH_ANVIL_BINS: no launcher at ${bin}`);
/**
 * The bulk clients, each against depots of its own: `compiled` (bench/native/ibp-bulk-client.cc,
 * built here with the system's C++ compiler: threads and blocking sockets, the shape and CPU cost of
 * the C performance clients other depots are measured with) and `node` (the TypeScript wire client
 * below, what an Anvil pipeline pays). Default both; without a compiler, `node` alone (said on
 * standard error and in `shape.clientNote`).
 */
const KNOWN_CLIENTS = ['compiled', 'node'];
/** BENCH_CLIENT as given, or undefined when unset or empty (the default). */
const CLIENT_SETTING = process.env['BENCH_CLIENT']?.trim() || undefined;
const CLIENT_KINDS = names('CLIENT', KNOWN_CLIENTS, 'client');

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

/** Bytes each client socket reads into, reused for every read (no buffer per chunk, no garbage). */
const READ_BUFFER_BYTES = 1024 * 1024;

/**
 * What a client waits for: a reply line; `onLine` returns how many body bytes follow it (0: none),
 * which go to `onBody` as views of the read buffer, valid only during the call.
 */
interface Expectation {
  onLine(line: string): number;
  onBody(view: Buffer): void;
  done(error?: Error): void;
}

/**
 * One connection speaking just STORE and LOAD, a command at a time. Replies are parsed as they
 * are read, straight out of one reusable buffer (`onread`): the client spends as little CPU per
 * byte as it can, so that on a small machine it leaves the cores to the depot.
 */
class WireClient {
  private readonly expectations: Expectation[] = [];
  /** Pieces (copies) of a reply line split across reads. */
  private linePieces: Buffer[] = [];
  /** Body bytes still to come for the expectation at the front. */
  private bodyLeft = 0;
  private failure: Error | undefined;

  private constructor(private readonly socket: Socket) {
    socket.on('close', () => this.fail(new Error('depot closed the connection')));
    socket.on('error', (e) => this.fail(e));
  }

  static async open(addr: DepotAddress): Promise<WireClient> {
    const holder: { client?: WireClient } = {};
    const socket = connect({
      host: addr.host,
      port: addr.port,
      noDelay: true,
      onread: {
        buffer: Buffer.allocUnsafe(READ_BUFFER_BYTES),
        callback: (n, buf) => {
          holder.client?.received(buf, n);
          return true;
        },
      },
    });
    const client = new WireClient(socket);
    holder.client = client;
    await once(socket, 'connect');
    return client;
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const x of this.expectations.splice(0)) x.done(this.failure);
  }

  /** Feeds the bytes of one read to the expectations in order. */
  private received(buf: Uint8Array, n: number): void {
    const bytes = Buffer.from(buf.buffer, buf.byteOffset, n);
    let at = 0;
    while (at < n) {
      const x = this.expectations[0];
      if (x === undefined) return this.fail(new Error('the depot sent bytes nobody asked for'));
      if (this.bodyLeft > 0) {
        const k = Math.min(this.bodyLeft, n - at);
        x.onBody(bytes.subarray(at, at + k));
        this.bodyLeft -= k;
        at += k;
        if (this.bodyLeft === 0) this.expectations.shift()!.done();
        continue;
      }
      const nl = bytes.indexOf(0x0a, at);
      if (nl < 0) {
        this.linePieces.push(Buffer.from(bytes.subarray(at, n)));
        return;
      }
      const line = Buffer.concat([...this.linePieces, bytes.subarray(at, nl)]).toString('latin1');
      this.linePieces = [];
      at = nl + 1;
      this.bodyLeft = x.onLine(line);
      if (this.bodyLeft === 0) this.expectations.shift()!.done();
    }
  }

  /** Waits for one reply line starting with `1`, then for `body(tokens)` body bytes (to `onBody`). */
  private expect(
    what: string,
    body: (tokens: string[]) => number = () => 0,
    onBody: (view: Buffer) => void = () => undefined,
  ): Promise<string[]> {
    return new Promise<string[]>((resolve, reject) => {
      if (this.failure !== undefined) return reject(this.failure);
      let tokens: string[] = [];
      this.expectations.push({
        onLine: (line) => {
          tokens = line.trim().split(/\s+/);
          return tokens[0] === '1' ? body(tokens) : 0;
        },
        onBody,
        done: (error) => {
          if (error !== undefined) reject(error);
          else if (tokens[0] !== '1') reject(new Error(`${what} refused: ${tokens.join(' ')}`));
          else resolve(tokens);
        },
      });
    });
  }

  async store(cap: Capability, data: Buffer): Promise<void> {
    const goAhead = this.expect('STORE go-ahead');
    this.socket.write(formatStore({ version: 1, cap: keyRefOf(cap), length: data.length, timeoutSec: 600 }), 'latin1');
    await goAhead;
    const ack = this.expect('STORE');
    this.socket.write(data);
    const t = await ack;
    if (Number(t[1]) !== data.length) throw new Error(`STORE acknowledged ${t[1]} bytes`);
  }

  /** WRITE of `data` at `offset` (the IBP command that writes at a place, not at the end). */
  async write(cap: Capability, offset: number, data: Buffer): Promise<void> {
    const goAhead = this.expect('WRITE go-ahead');
    this.socket.write(formatWrite({ version: 1, cap: keyRefOf(cap), offset, length: data.length, timeoutSec: 600 }), 'latin1');
    await goAhead;
    const ack = this.expect('WRITE');
    this.socket.write(data);
    const t = await ack;
    if (Number(t[1]) !== data.length) throw new Error(`WRITE acknowledged ${t[1]} bytes`);
  }

  /** LOAD, checking the block's stamp (its first 8 bytes) without assembling the block. */
  async load(cap: Capability, offset: number, length: number): Promise<number> {
    const head = Buffer.alloc(8);
    let got = 0;
    const reply = this.expect(
      'LOAD',
      (t) => {
        if (Number(t[1]) !== length) throw new Error(`LOAD announced ${t[1]} bytes`);
        return length;
      },
      (view) => {
        if (got < 8) got += view.copy(head, got, 0, Math.min(view.length, 8 - got));
      },
    );
    this.socket.write(formatLoad({ version: 1, cap: keyRefOf(cap), offset, length, timeoutSec: 600 }), 'latin1');
    await reply;
    return got === 8 ? head.readDoubleLE(0) : -1;
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
  /** Of which in the kernel (system time: socket copies, page faults). */
  depotSysS: number | undefined;
  /** CPU seconds of this process (the clients) during the phase. */
  clientCpuS: number;
  /** Minor page faults of the depot process during the phase (fresh memory touched). */
  depotMinorFaults: number | undefined;
}

interface DepotBulkFigures extends BulkFigures {
  write: PhaseCpu;
  read: PhaseCpu;
  /** Read passes after the first (see READ_PASSES): MB/s and the depot's CPU seconds. */
  rereads: { MBps: number; depotCpuS: number | undefined }[];
  /** The small random WRITEs, LOADs and both mixed (see SMALL_IO): commands per second and the depot's CPU. */
  small?: {
    writeOpsPerSec: number;
    readOpsPerSec: number;
    mixOpsPerSec: number;
    /** How many of the mixed commands were LOADs, and the digest of the commands drawn. */
    mixLoads: number;
    mixDigest: number;
    write: PhaseCpu;
    read: PhaseCpu;
    mix: PhaseCpu;
  };
}

/**
 * What a phase's runner measured itself (the compiled client times its own span), if it did, and
 * for a mixed phase how many LOADs it sent and the digest of the commands it drew (see
 * {@link smallDigest}; each client computes its own: equal ones show they sent the same commands).
 */
interface OwnFigures {
  seconds?: number;
  clientCpuS?: number;
  loads?: number;
  digest?: number;
}

/**
 * Runs one phase against `depot` and takes the depot's CPU, system time and page faults around it;
 * the seconds and client CPU are the runner's own figures when it gives them, else this process's.
 */
async function measured(
  depot: DepotProcessHandle,
  run: () => Promise<OwnFigures | undefined>,
): Promise<{ seconds: number; cpu: PhaseCpu; loads: number | undefined; digest: number | undefined }> {
  const depot0 = depot.cpuSeconds();
  const faults0 = depot.minorFaults();
  const sys0 = systemSeconds(depot.pid);
  const client0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const own = await run();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const depot1 = depot.cpuSeconds();
  const faults1 = depot.minorFaults();
  const sys1 = systemSeconds(depot.pid);
  const client = process.cpuUsage(client0);
  return {
    seconds: own?.seconds ?? seconds,
    loads: own?.loads,
    digest: own?.digest,
    cpu: {
      depotCpuS: depot0 === undefined || depot1 === undefined ? undefined : round2(depot1 - depot0),
      depotSysS: sys0 === undefined || sys1 === undefined ? undefined : round2(sys1 - sys0),
      clientCpuS: round2(own?.clientCpuS ?? (client.user + client.system) / 1e6),
      depotMinorFaults: faults0 === undefined || faults1 === undefined ? undefined : faults1 - faults0,
    },
  };
}

/** The compiled client's executable, built once per run (see {@link buildCompiled}). */
let compiledClient: string | undefined;
/** The least depot's executable (bench/native/raw-file-depot.cc), built with the compiled client. */
let rawFileDepot: string | undefined;

/**
 * Builds bench/native/`name`.cc into `dir` with the system's C++ compiler: `CXX` when set (a command
 * with its own options, such as `ccache g++`, and nothing else), else c++ or g++. The failure's text
 * when none builds it.
 */
function buildCompiled(dir: string, name: string): string | { failure: string } {
  const source = fileURLToPath(new URL(`../../bench/native/${name}.cc`, import.meta.url));
  const out = join(dir, name);
  const cxx = process.env['CXX']?.trim();
  const compilers = cxx ? [cxx.split(/\s+/)] : [['c++'], ['g++']];
  let failure = 'no C++ compiler (set CXX, or install g++)';
  for (const [command, ...options] of compilers) {
    const r = spawnSync(command!, [...options, '-O2', '-pthread', '-o', out, source], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    if (r.status === 0) return out;
    const code = (r.error as NodeJS.ErrnoException | undefined)?.code;
    const named = cxx ? `CXX (${cxx}): ${command}` : command!;
    if (code === 'ETIMEDOUT') failure = `${named} took longer than 120 s`;
    else if (code === 'ENOENT' && cxx) failure = `${named} is not there`;
    else if (r.error === undefined) {
      const said = (r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ');
      const how = r.status === null ? `signal ${String(r.signal)}` : `exit ${r.status}`;
      failure = `${named} failed (${how})${said ? `: ${said}` : ''}`;
    }
  }
  return { failure };
}

/**
 * One phase through the compiled client: `mode` over the allocations whose key tokens are `keys`
 * (one line each, as a command line carries them), CLIENTS threads.
 */
async function compiledPhase(
  addr: DepotAddress,
  mode: 'store' | 'reverse' | 'load' | 'load-reverse' | 'small-write' | 'small-read' | 'small-mix',
  keys: string[],
): Promise<OwnFigures> {
  const args = [addr.host, String(addr.port), mode, String(CLIENTS), String(BLOCK), String(ALLOC_BYTES)];
  if (mode.startsWith('small-'))
    args.push(String(SMALL_IO), String(SMALL_IO_MIN_BYTES), String(SMALL_IO_MAX_BYTES), String(SMALL_IO_SEED));
  if (mode === 'small-mix') args.push(String(SMALL_READ_FRACTION));
  const child = tracked(spawn(compiledClient!, args, { stdio: ['pipe', 'pipe', 'pipe'] }));
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  // A client that stopped before reading its keys says why on stderr: the broken pipe is not the news.
  child.stdin.on('error', () => undefined);
  child.stdin.end(`${keys.join('\n')}\n`);
  // 'close', not 'exit': its output is complete only once its pipes are.
  const [code] = (await once(child, 'close')) as [number | null];
  if (code !== 0) throw new Error(`compiled client (${mode}) failed: ${err.trim() || `exit ${String(code)}`}`);
  const r = JSON.parse(out) as { seconds: number; userS: number; sysS: number; loads: number; digest: number };
  return {
    seconds: r.seconds,
    clientCpuS: r.userS + r.sysS,
    ...(mode === 'small-mix' ? { loads: r.loads, digest: r.digest } : {}),
  };
}

/**
 * The small random commands of connection `ci` (see SMALL_IO): its share of them, each a random
 * allocation, a size of SMALL_IO_MIN_BYTES to SMALL_IO_MAX_BYTES (log-uniform) and a random offset,
 * drawn exactly as the compiled client draws them. With `mix`, one more draw per command makes it
 * a LOAD when it falls below SMALL_READ_FRACTION (`read` is false otherwise).
 */
function* smallCommands(ci: number, mix: boolean): Generator<{ slot: number; size: number; offset: number; read: boolean }> {
  const ops = Math.floor(SMALL_IO / CLIENTS) + (ci < SMALL_IO % CLIENTS ? 1 : 0);
  const next = mulberry((SMALL_IO_SEED ^ Math.imul(ci + 1, 0x9e3779b1)) >>> 0);
  const lmin = Math.log(SMALL_IO_MIN_BYTES);
  const lmax = Math.log(SMALL_IO_MAX_BYTES);
  for (let i = 0; i < ops; i++) {
    const slot = Math.min(ALLOCATIONS - 1, Math.floor(next() * ALLOCATIONS));
    const drawn = Math.floor(Math.exp(lmin + (lmax - lmin) * next()));
    const size = Math.min(SMALL_IO_MAX_BYTES, Math.max(SMALL_IO_MIN_BYTES, drawn));
    const offset = Math.floor((ALLOC_BYTES - size) * next());
    yield { slot, size, offset, read: mix && next() < SMALL_READ_FRACTION };
  }
}

/**
 * FNV-1a over 32-bit words of one connection's small commands (slot, size, offset's low and high
 * halves, 1 for a LOAD), as the compiled client computes it; the connections' digests are XORed.
 */
function smallDigest(commands: readonly { slot: number; size: number; offset: number; read: boolean }[]): number {
  let h = 2166136261;
  const mixIn = (w: number) => (h = Math.imul((h ^ w) >>> 0, 16777619) >>> 0);
  for (const c of commands) {
    mixIn(c.slot);
    mixIn(c.size);
    mixIn(c.offset % 2 ** 32);
    mixIn(Math.floor(c.offset / 2 ** 32));
    mixIn(c.read ? 1 : 0);
  }
  return h;
}

/** The key tokens of `cap` as a command line carries them (`RID#KEY WRMKEY`), from the encoder itself. */
function keyTokensOf(cap: Capability): string {
  return formatLoad({ version: 1, cap: keyRefOf(cap), offset: 0, length: 1, timeoutSec: 600 })
    .trim()
    .split(' ')
    .slice(2, 4)
    .join(' ');
}

/**
 * The bulk shape against one depot with one kind of client: allocate, write all, read all; MB/s
 * and CPU of each phase.
 */
async function bulk(depot: DepotProcessHandle, data: Buffer[], client: string): Promise<DepotBulkFigures> {
  const addr = depot.addr;
  const admin = new IbpClient({ timeoutMs: 120_000 });
  const caps: { read: Capability; write: Capability; manage: Capability }[] = [];
  const clients: WireClient[] = [];
  try {
    for (let i = 0; i < ALLOCATIONS; i++) {
      const c = await admin.allocate(addr, { size: ALLOC_BYTES, durationSec: 3600 });
      caps.push({ read: parseCap(c.read), write: parseCap(c.write), manage: parseCap(c.manage) });
    }
    const perAlloc = ALLOC_BYTES / BLOCK;
    let writeAll: () => Promise<OwnFigures | undefined>;
    let readAll: () => Promise<OwnFigures | undefined>;
    let smallWrites: () => Promise<OwnFigures | undefined>;
    let smallReads: () => Promise<OwnFigures | undefined>;
    let smallMix: () => Promise<OwnFigures | undefined>;
    if (client === 'compiled') {
      const writeKeys = caps.map((c) => keyTokensOf(c.write));
      const readKeys = caps.map((c) => keyTokensOf(c.read));
      writeAll = () => compiledPhase(addr, WRITE_ORDER === 'append' ? 'store' : 'reverse', writeKeys);
      readAll = () => compiledPhase(addr, READ_ORDER === 'ascending' ? 'load' : 'load-reverse', readKeys);
      smallWrites = () => compiledPhase(addr, 'small-write', writeKeys);
      smallReads = () => compiledPhase(addr, 'small-read', readKeys);
      // Both capabilities of each allocation: the compiled client takes the one its command needs.
      smallMix = () =>
        compiledPhase(
          addr,
          'small-mix',
          writeKeys.map((w, i) => `${w}\t${readKeys[i]!}`),
        );
    } else {
      clients.push(...(await Promise.all(Array.from({ length: CLIENTS }, () => WireClient.open(addr)))));
      // Client i writes (then reads) allocations i, i + CLIENTS, …, block after block.
      const each = async (work: (c: WireClient, alloc: number, block: number) => Promise<void>) => {
        await Promise.all(
          clients.map(async (c, ci) => {
            for (let a = ci; a < ALLOCATIONS; a += CLIENTS) for (let b = 0; b < perAlloc; b++) await work(c, a, b);
          }),
        );
        return undefined;
      };
      writeAll = () =>
        each((c, a, b) =>
          WRITE_ORDER === 'append'
            ? c.store(caps[a]!.write, data[b]!)
            : c.write(caps[a]!.write, (perAlloc - 1 - b) * BLOCK, data[perAlloc - 1 - b]!),
        );
      readAll = () =>
        each(async (c, a, i) => {
          const b = READ_ORDER === 'ascending' ? i : perAlloc - 1 - i;
          const stamp = await c.load(caps[a]!.read, b * BLOCK, BLOCK);
          if (stamp !== b) throw new Error(`allocation ${a} block ${b}: read back stamp ${stamp}`);
        });
      const small = (kind: 'write' | 'read' | 'mix') => async () => {
        const bytes = Buffer.alloc(SMALL_IO_MAX_BYTES, 'w');
        let loads = 0;
        let digest = 0;
        await Promise.all(
          clients.map(async (c, ci) => {
            const commands = [...smallCommands(ci, kind === 'mix')];
            if (kind === 'mix') digest = (digest ^ smallDigest(commands)) >>> 0;
            for (const op of commands) {
              if (kind === 'read' || op.read) {
                loads++;
                await c.load(caps[op.slot]!.read, op.offset, op.size);
              } else await c.write(caps[op.slot]!.write, op.offset, bytes.subarray(0, op.size));
            }
          }),
        );
        return kind === 'mix' ? { loads, digest } : undefined;
      };
      smallWrites = small('write');
      smallReads = small('read');
      smallMix = small('mix');
    }
    const total = ALLOCATIONS * ALLOC_BYTES;
    const write = await measured(depot, writeAll);
    const read = await measured(depot, readAll);
    const rereads: DepotBulkFigures['rereads'] = [];
    for (let pass = 1; pass < READ_PASSES; pass++) {
      const again = await measured(depot, readAll);
      rereads.push({ MBps: round(total / 1e6 / again.seconds), depotCpuS: again.cpu.depotCpuS });
    }
    let small: DepotBulkFigures['small'];
    if (SMALL_IO > 0) {
      const w = await measured(depot, smallWrites);
      const r = await measured(depot, smallReads);
      const m = await measured(depot, smallMix);
      small = {
        writeOpsPerSec: round(SMALL_IO / w.seconds),
        readOpsPerSec: round(SMALL_IO / r.seconds),
        mixOpsPerSec: round(SMALL_IO / m.seconds),
        mixLoads: m.loads ?? 0,
        mixDigest: m.digest ?? 0,
        write: w.cpu,
        read: r.cpu,
        mix: m.cpu,
      };
    }
    return {
      writeMBps: round(total / 1e6 / write.seconds),
      readMBps: round(total / 1e6 / read.seconds),
      write: write.cpu,
      read: read.cpu,
      rereads,
      ...(small === undefined ? {} : { small }),
    };
  } finally {
    for (const c of clients) c.close();
    for (const c of caps) await admin.decr(c.manage, 'read').catch(() => undefined);
    admin.close();
  }
}

/** System (kernel) CPU seconds of process `pid` so far, from /proc; undefined elsewhere. */
function systemSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // Fields after the command name (which may hold spaces) start after its closing parenthesis.
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[12]) / 100; // stime, USER_HZ 100
  } catch {
    return undefined;
  }
}

function parseCap(c: Capability | string): Capability {
  if (typeof c !== 'string') return c;
  const cap = parseCapability(c);
  if (cap === undefined) throw new Error(`the depot returned a malformed capability: ${c}`);
  return cap;
}

/** A row's fields for a reference depot of the same round: its write and read MB/s, and the row's divided by them. */
const LEAST_FIELDS = ['leastDepotWriteMBps', 'leastDepotReadMBps', 'writeOfLeast', 'readOfLeast'] as const;
const MD5_FIELDS = ['md5DepotWriteMBps', 'md5DepotReadMBps', 'writeOfMd5Depot', 'readOfMd5Depot'] as const;

/** The fields `names` for the reference `ref` beside the row's figures `f` (none without it). */
function beside(
  names: readonly [string, string, string, string],
  f: { writeMBps: number; readMBps: number },
  ref: BulkFigures | undefined,
): Record<string, number> {
  if (ref === undefined) return {};
  const [write, read, writeOf, readOf] = names;
  return {
    [write]: ref.writeMBps,
    [read]: ref.readMBps,
    [writeOf]: round2(f.writeMBps / ref.writeMBps),
    [readOf]: round2(f.readMBps / ref.readMBps),
  };
}

/**
 * The least depot (bench/native/raw-file-depot.cc) in this round's window: the compiled client's
 * write and read phases, in the bench's orders, against plain files under `dir` (removed after),
 * each STORE or WRITE fdatasynced before its reply when `sync`. No metadata: the plain work of a C
 * depot, done in the same window as the row it stands next to. Without `md5` it keeps no checksums;
 * with it, it digests every 64 KiB block it writes and checks every block it reads by MD5, the
 * checksum work of the ACCRE depot's disk resource (its defaults), so that a row can be set against
 * the least a C depot doing that work reaches in the same window. (Not a ceiling for writes: its
 * files are new, and every page it writes is fresh.)
 */
async function leastDepot(dir: string, sync: boolean, md5 = false): Promise<BulkFigures> {
  mkdirSync(dir, { recursive: true });
  const args = [dir, sync ? 'sync' : 'fast', ...(md5 ? ['md5'] : [])];
  const child = tracked(spawn(rawFileDepot!, args, { stdio: ['ignore', 'pipe', 'inherit'] }));
  try {
    const addr = { host: '127.0.0.1', port: await portOf(child, 'the least depot') };
    const keys = Array.from({ length: ALLOCATIONS }, (_, i) => `0#least${i} 0`);
    const w = await compiledPhase(addr, WRITE_ORDER === 'append' ? 'store' : 'reverse', keys);
    const r = await compiledPhase(addr, READ_ORDER === 'ascending' ? 'load' : 'load-reverse', keys);
    const bytes = ALLOCATIONS * ALLOC_BYTES;
    return { writeMBps: round(bytes / 1e6 / w.seconds!), readMBps: round(bytes / 1e6 / r.seconds!) };
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The port a helper process prints on its first line of standard output; throws, naming `what`, if
 * it exits first (its standard error, inherited, says why).
 */
async function portOf(child: ChildProcess, what: string): Promise<number> {
  const exited = once(child, 'exit').then(([code, signal]) => {
    throw new Error(`${what} exited before it listened (${signal === null ? `exit ${String(code)}` : String(signal)})`);
  });
  // Its exit after the port is printed (when it is stopped) is no failure.
  exited.catch(() => undefined);
  const [first] = (await Promise.race([once(child.stdout!, 'data'), exited])) as [Buffer];
  const port = Number(first.toString().trim().split('\n')[0]);
  if (!Number.isInteger(port) || port <= 0) throw new Error(`${what} printed no port: ${first.toString().trim()}`);
  return port;
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
  const child = tracked(spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] }));
  const port = await portOf(child, 'the raw socket baseline');
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
      let t0 = 0n;
      let got = 0;
      // Read the way the bench's clients read: into one reusable buffer.
      const s = connect({
        host: '127.0.0.1',
        port,
        noDelay: true,
        onread: {
          buffer: Buffer.allocUnsafe(READ_BUFFER_BYTES),
          callback: (n) => {
            got += n;
            if (got >= bytes) {
              resolve(Number(process.hrtime.bigint() - t0) / 1e9);
              s.destroy();
            }
            return true;
          },
        },
      });
      s.on('error', reject);
      s.on('connect', () => {
        t0 = process.hrtime.bigint();
        s.write('R');
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

/**
 * Capacity of a disk resource: deleted allocations stay in its trash (still counted) for the grace
 * period, so it must hold every round's allocations and the small-op rows' (the last flag wins).
 */
const DISK_CAPACITY = ['--capacity', `${Math.ceil(((ROUNDS + 1) * ALLOCATIONS * ALLOCATION_MB) / 1024) + 1}GiB`];
const DEPOT_ARGS: Record<string, (dir: string) => string[]> = {
  memory: () => [],
  'disk-fast': (dir) => ['--data', join(dir, 'fast'), '--fsync', 'fast', ...DISK_CAPACITY],
  'disk-safe': (dir) => ['--data', join(dir, 'safe'), '--fsync', 'safe', ...DISK_CAPACITY],
};

/**
 * Between kinds: the data of the kind just measured is removed and the filesystem synced, so that
 * the next kind does not share the disk with the write-back of the last one's unsynced bytes (the
 * `fast` rows leave gigabytes dirty; `safe` rows after them measured half their speed).
 */
function settle(): void {
  for (const entry of readdirSync(dataDir)) rmSync(join(dataDir, entry), { recursive: true, force: true });
  spawnSync('sync', { stdio: 'ignore', timeout: 120_000 });
}

/** The clients that run: those asked for, less `compiled` when it cannot be built and was not asked for by name. */
const clientKinds: string[] = [];
let clientNote: string | undefined;
// The compiled client is built before anything else exists: a refusal leaves nothing behind.
const toolDir = mkdtempSync(join(tmpdir(), 'anvil-bench-client-'));
if (CLIENT_KINDS.includes('compiled')) {
  // The client, and the least depot it measures the machine with (see `leastDepot`).
  let built = buildCompiled(toolDir, 'ibp-bulk-client');
  if (typeof built === 'string') {
    const least = buildCompiled(toolDir, 'raw-file-depot');
    if (typeof least === 'string') rawFileDepot = least;
    else built = least;
  }
  if (typeof built === 'string') compiledClient = built;
  else if (CLIENT_SETTING !== undefined) {
    rmSync(toolDir, { recursive: true, force: true });
    refuse(`BENCH_CLIENT names compiled, which does not build: ${built.failure}`);
  } else {
    clientNote = `compiled client left out: ${built.failure}`;
    process.stderr.write(`bench:depot: ${clientNote}\n`);
  }
}
clientKinds.push(...CLIENT_KINDS.filter((c) => c !== 'compiled' || compiledClient !== undefined));
const dataDir = mkdtempSync(join(tmpdir(), 'anvil-bench-'));
// Interrupted (Ctrl-C, a kill), the bench stops its depots and helpers and removes what it made.
for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
] as const) {
  process.once(signal, () => {
    killChildren();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(toolDir, { recursive: true, force: true });
    process.stderr.write(`bench:depot: stopped by ${signal}\n`);
    process.exit(code);
  });
}
const data = blocks(ALLOC_BYTES / BLOCK);
const rows: Record<string, unknown>[] = [];
const bins: (string | undefined)[] = BINS.length > 0 ? BINS : [undefined];
const total = ALLOCATIONS * ALLOC_BYTES;
try {
  settle();
  for (const kind of KINDS) {
    const args = DEPOT_ARGS[kind];
    if (args === undefined) throw new Error(`unknown kind ${kind}`);
    // Each client gets depots of its own, started fresh: neither measures a depot the other warmed.
    for (const [ci, client] of clientKinds.entries()) {
      const depots: DepotProcessHandle[] = [];
      try {
        for (const [i, bin] of bins.entries())
          depots.push(await startDepotProcess(args(join(dataDir, String(i))), DEPOT_NODE_ARGS, bin));
        for (let round = 0; round < ROUNDS; round++) {
          if (PAUSE_MS > 0) await new Promise((r) => setTimeout(r, PAUSE_MS));
          const raw = await rawSocket(total, data[0]!);
          // On disk, the least depot in the same window (not for memory: its bound is the socket's).
          const least =
            rawFileDepot === undefined || kind === 'memory'
              ? undefined
              : await leastDepot(join(dataDir, 'least'), kind === 'disk-safe');
          // And with the checksum work of the ACCRE depot (for every kind: the issue sets memory and disk
          // rows alike against that depot's disk figures).
          const md5 =
            rawFileDepot === undefined ? undefined : await leastDepot(join(dataDir, 'least'), kind === 'disk-safe', true);
          // The build that runs first in a round has the machine's memory at its freshest: the order turns
          // with each round, so no build is always first.
          const order = depots.map((_, i) => (i + round) % depots.length);
          for (const i of order) {
            const depot = depots[i]!;
            const f = await bulk(depot, data, client);
            rows.push({
              name: `bulk:${kind}`,
              client,
              ...(bins[i] === undefined ? {} : { bin: bins[i] }),
              round,
              pauseMs: PAUSE_MS,
              clients: CLIENTS,
              allocations: ALLOCATIONS,
              allocationMiB: ALLOCATION_MB,
              blockKiB: BLOCK_KB,
              writeOrder: WRITE_ORDER,
              readOrder: READ_ORDER,
              readPasses: READ_PASSES,
              writeMBps: f.writeMBps,
              readMBps: f.readMBps,
              ...(f.rereads.length === 0 ? {} : { rereads: f.rereads }),
              rawSocket1ConnWriteMBps: raw.writeMBps,
              rawSocket1ConnReadMBps: raw.readMBps,
              ...beside(LEAST_FIELDS, f, least),
              ...beside(MD5_FIELDS, f, md5),
              writeDepotCpuS: f.write.depotCpuS,
              readDepotCpuS: f.read.depotCpuS,
              writeDepotSysS: f.write.depotSysS,
              readDepotSysS: f.read.depotSysS,
              writeClientCpuS: f.write.clientCpuS,
              readClientCpuS: f.read.clientCpuS,
              writeDepotMinorFaults: f.write.depotMinorFaults,
              readDepotMinorFaults: f.read.depotMinorFaults,
              writeDepotCpuMBps: perCore(total, f.write.depotCpuS),
              readDepotCpuMBps: perCore(total, f.read.depotCpuS),
              ...(f.small === undefined
                ? {}
                : {
                    smallWriteOpsPerSec: f.small.writeOpsPerSec,
                    smallReadOpsPerSec: f.small.readOpsPerSec,
                    smallMixOpsPerSec: f.small.mixOpsPerSec,
                    smallMixLoads: f.small.mixLoads,
                    smallMixDigest: f.small.mixDigest,
                    smallWriteDepotCpuS: f.small.write.depotCpuS,
                    smallReadDepotCpuS: f.small.read.depotCpuS,
                    smallMixDepotCpuS: f.small.mix.depotCpuS,
                  }),
            });
            process.stderr.write(`${JSON.stringify(rows[rows.length - 1])}\n`);
          }
        }
        // The small-operation rows once per kind, on the last client's depots.
        if (SMALL && ci === clientKinds.length - 1) {
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
        settle();
      }
    }
  }
} finally {
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(toolDir, { recursive: true, force: true });
}
function median(xs: number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : round((s[m - 1]! + s[m]!) / 2);
}

/** MB/s of a row's last read pass (see READ_PASSES). */
function lastReread(row: Record<string, unknown>): number {
  const rereads = row['rereads'] as { MBps: number }[];
  return rereads[rereads.length - 1]!.MBps;
}

/** Medians over the rounds of each bulk row (per client, and per build when several are compared), and safe/fast. */
function summary(): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const client of clientKinds) {
    for (const bin of bins) {
      const of = (kind: string) => rows.filter((r) => r['name'] === `bulk:${kind}` && r['client'] === client && r['bin'] === bin);
      const med = (kind: string, key: string) => median(of(kind).map((r) => r[key] as number));
      for (const kind of KINDS) {
        if (of(kind).length === 0) continue;
        out.push({
          kind,
          client,
          ...(bin === undefined ? {} : { bin }),
          rounds: of(kind).length,
          writeMBps: med(kind, 'writeMBps'),
          readMBps: med(kind, 'readMBps'),
          rawSocket1ConnWriteMBps: med(kind, 'rawSocket1ConnWriteMBps'),
          rawSocket1ConnReadMBps: med(kind, 'rawSocket1ConnReadMBps'),
          ...Object.fromEntries(
            [...LEAST_FIELDS, ...MD5_FIELDS]
              .filter((key) => of(kind).some((r) => r[key] !== undefined))
              .map((key) => [key, med(kind, key)]),
          ),
          writeDepotCpuS: med(kind, 'writeDepotCpuS'),
          readDepotCpuS: med(kind, 'readDepotCpuS'),
          writeClientCpuS: med(kind, 'writeClientCpuS'),
          readClientCpuS: med(kind, 'readClientCpuS'),
          ...(READ_PASSES > 1 ? { lastRereadMBps: median(of(kind).map((r) => lastReread(r))) } : {}),
          ...(SMALL_IO > 0
            ? {
                smallWriteOpsPerSec: med(kind, 'smallWriteOpsPerSec'),
                smallReadOpsPerSec: med(kind, 'smallReadOpsPerSec'),
                smallMixOpsPerSec: med(kind, 'smallMixOpsPerSec'),
              }
            : {}),
        });
      }
      const fast = med('disk-fast', 'writeMBps');
      const safe = med('disk-safe', 'writeMBps');
      if (fast !== undefined && safe !== undefined && safe > 0) {
        out.push({
          kind: 'disk-safe/fast',
          client,
          ...(bin === undefined ? {} : { bin }),
          writeSlowdown: round2(fast / safe),
        });
      }
    }
  }
  return out;
}

process.stdout.write(
  `${JSON.stringify(
    {
      bench: 'depot',
      node: process.version,
      when: new Date().toISOString(),
      shape: {
        clients: CLIENTS,
        allocations: ALLOCATIONS,
        allocationMiB: ALLOCATION_MB,
        blockKiB: BLOCK_KB,
        readPasses: READ_PASSES,
        writeOrder: WRITE_ORDER,
        readOrder: READ_ORDER,
        smallIo:
          SMALL_IO === 0
            ? 0
            : {
                commands: SMALL_IO,
                minBytes: SMALL_IO_MIN_BYTES,
                maxBytes: SMALL_IO_MAX_BYTES,
                seed: SMALL_IO_SEED,
                mixReadFraction: SMALL_READ_FRACTION,
              },
        bulkClients: clientKinds,
        ...(clientNote === undefined ? {} : { clientNote }),
      },
      summary: summary(),
      rows,
    },
    null,
    2,
  )}\n`,
);
