import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { DepotAddress } from '../../ibp/index.js';
import { DatasetError, DatasetErrorCode, checkInteger } from './errors.js';

/** Options of {@link startLoopbackDepots}. */
export interface LoopbackDepotOptions {
  /** `memory` (default) or `disk` (a fresh temporary data directory per depot, removed by `stop()`). */
  readonly resource?: 'memory' | 'disk';
  /** Capacity of each depot's resource, as `anvil depot --capacity` takes it (default `256MiB`). */
  readonly capacity?: string;
  /** Longest lease in seconds (default: the depot's). */
  readonly maxDurationSec?: number;
  /** More `anvil depot` flags for every depot, e.g. `['--log-level', 'debug']`. */
  readonly extraArgs?: readonly string[];
  /** How long to wait for each depot to print `listening` (default 15 000 ms). */
  readonly startTimeoutMs?: number;
  /** The `anvil` launcher (default: the package's `bin/anvil.js`, which runs the built `dist/`). */
  readonly bin?: string;
}

/** Loopback depot processes and their controls. */
export interface LoopbackDepots {
  /** Current address of each depot (a restart keeps the port). */
  readonly depots: readonly DepotAddress[];
  /** Process id of each depot's current process. */
  pid(i: number): number;
  /** SIGKILL: the depot dies without a goodbye (its memory data is gone; disk data stays). */
  kill(i: number): Promise<void>;
  /** SIGSTOP: the depot stops answering but keeps its sockets (a hung depot). */
  pause(i: number): void;
  /** SIGCONT after {@link pause}. */
  resume(i: number): void;
  /** Stops the depot (SIGTERM, or SIGKILL after 5 s) if it runs and starts it again on the same port and data. */
  restart(i: number): Promise<DepotAddress>;
  /** Stops every depot and removes their temporary directories. Idempotent. */
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Default capacity of a loopback depot. */
export const DEFAULT_LOOPBACK_CAPACITY = '256MiB';
const STOP_GRACE_MS = 5_000;

/**
 * Children of every live {@link startLoopbackDepots}: killed when this process exits or takes SIGINT /
 * SIGTERM / SIGHUP. Each child also ends itself when its stdin closes, so even a SIGKILL of this
 * process leaves no depot behind.
 */
const live = new Set<ChildProcess>();
let hooked = false;

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const c of live) c.kill('SIGKILL');
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = () => {
      for (const c of live) c.kill('SIGKILL');
      live.clear();
      // Keep the default behaviour of the signal when nobody else handles it.
      if (process.listenerCount(sig) === 1) {
        process.removeListener(sig, onSignal);
        process.kill(process.pid, sig);
      }
    };
    process.on(sig, onSignal);
  }
}

/** The package's `bin/anvil.js`, found upwards from this module (source or dist/). */
function defaultBin(): string {
  let dir = new URL('.', import.meta.url);
  for (let up = 0; up < 6; up++) {
    const candidate = new URL('bin/anvil.js', dir);
    if (existsSync(fileURLToPath(candidate))) return fileURLToPath(candidate);
    dir = new URL('..', dir);
  }
  throw new DatasetError(DatasetErrorCode.DEPOT_START, 'cannot find bin/anvil.js above the dataset module; pass `bin`');
}

// Runs the launcher with a watchdog: the depot takes SIGTERM when its parent's end of stdin closes.
const WATCHDOG = (bin: string) =>
  `process.stdin.on('end', () => process.kill(process.pid, 'SIGTERM')); process.stdin.on('error', () => {}); process.stdin.resume(); process.stdin.unref?.();` +
  `process.argv.splice(1, 0, ${JSON.stringify(bin)}); await import(${JSON.stringify(pathToFileURL(bin).href)});`;

interface Slot {
  child: ChildProcess;
  exit: Promise<void>;
  address: DepotAddress;
  dataDir: string | undefined;
}

async function launch(bin: string, args: readonly string[], timeoutMs: number): Promise<Omit<Slot, 'dataDir'>> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', WATCHDOG(bin), 'depot', ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  live.add(child);
  const exit = new Promise<void>((resolve) =>
    child.once('exit', () => {
      live.delete(child);
      resolve();
    }),
  );
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && child.exitCode === null && child.signalCode === null) {
    const m = /^listening on ibp:\/\/([^:\s]+):(\d+)$/m.exec(out);
    if (m !== null) {
      child.stdout!.removeAllListeners('data').resume();
      return { child, exit, address: { host: m[1]!, port: Number(m[2]) } };
    }
    await sleep(10);
  }
  child.kill('SIGKILL');
  await exit;
  throw new DatasetError(
    DatasetErrorCode.DEPOT_START,
    `loopback depot did not start within ${timeoutMs} ms (anvil depot ${args.join(' ')}): ${err.trim() || 'no output'}`,
    { details: { args, stderr: err } },
  );
}

/**
 * Starts `n` `anvil depot` processes on 127.0.0.1 with free ports and memory (or disk) resources, and
 * waits until each listens. For examples, tests, benchmarks and the demo; every child is killed when this
 * process exits.
 *
 * @param n - number of depots (1 … 256)
 * @returns their addresses and controls (kill, pause, resume, restart, stop)
 * @throws DatasetError `DATA_E_DEPOT_START` (with the depot's stderr) when one does not start; the others are stopped
 * @example
 * const loop = await startLoopbackDepots(4);
 * try { await ingest(client, rows, { name: 'a', cols: 8, depots: loop.depots }); } finally { await loop.stop(); }
 */
export async function startLoopbackDepots(n: number, options: LoopbackDepotOptions = {}): Promise<LoopbackDepots> {
  checkInteger('n', n, 1, 256);
  const timeoutMs = checkInteger('startTimeoutMs', options.startTimeoutMs ?? 15_000, 1);
  const bin = options.bin ?? defaultBin();
  const base = ['--host', '127.0.0.1', '--log-level', 'warn', '--capacity', options.capacity ?? DEFAULT_LOOPBACK_CAPACITY];
  if (options.maxDurationSec !== undefined)
    base.push('--max-duration', String(checkInteger('maxDurationSec', options.maxDurationSec, 1)));
  base.push(...(options.extraArgs ?? []));
  hookExit();
  const tmp = options.resource === 'disk' ? await mkdtemp(join(tmpdir(), 'anvil-loopback-')) : undefined;
  const slots: Slot[] = [];
  const argsOf = (port: number, dataDir: string | undefined) => [
    ...base,
    '--port',
    String(port),
    ...(dataDir === undefined ? [] : ['--data', dataDir]),
  ];
  let stopped = false;
  const stopSlot = async (s: Slot) => {
    if (s.child.exitCode !== null || s.child.signalCode !== null) return;
    s.child.kill('SIGTERM');
    s.child.kill('SIGCONT'); // a paused depot must run to handle SIGTERM
    const timer = setTimeout(() => s.child.kill('SIGKILL'), STOP_GRACE_MS);
    await s.exit;
    clearTimeout(timer);
  };
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await Promise.all(slots.map(stopSlot));
    if (tmp !== undefined) await rm(tmp, { recursive: true, force: true });
  };
  try {
    const started = await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const dataDir = tmp === undefined ? undefined : join(tmp, `depot-${i}`);
        const s = { ...(await launch(bin, argsOf(0, dataDir), timeoutMs)), dataDir };
        slots[i] = s;
        return s;
      }),
    );
    void started;
  } catch (e) {
    await stop();
    throw e;
  }
  const depots: DepotAddress[] = slots.map((s) => s.address);
  const slot = (i: number): Slot => {
    checkInteger('i', i, 0, n - 1);
    return slots[i]!;
  };
  return {
    depots,
    pid: (i) => slot(i).child.pid!,
    kill: async (i) => {
      const s = slot(i);
      s.child.kill('SIGKILL');
      await s.exit;
    },
    pause: (i) => void slot(i).child.kill('SIGSTOP'),
    resume: (i) => void slot(i).child.kill('SIGCONT'),
    restart: async (i) => {
      const s = slot(i);
      await stopSlot(s);
      // The port was just released; another process may grab it in between, so retry briefly.
      let last: unknown;
      for (let attempt = 0; attempt < 20; attempt++) {
        try {
          const next = await launch(bin, argsOf(s.address.port, s.dataDir), timeoutMs);
          slots[i] = { ...next, dataDir: s.dataDir };
          depots[i] = next.address;
          return next.address;
        } catch (e) {
          last = e;
          await sleep(100);
        }
      }
      throw last;
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
