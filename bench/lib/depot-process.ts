import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { appendFileSync, readFileSync } from 'node:fs';
import type { DepotAddress } from '../../framework/index.js';

const BIN = new URL('../../../bin/anvil.js', import.meta.url).pathname;

/** Child processes of the bench still running (depots, helpers), for {@link killChildren}. */
const children = new Set<ChildProcess>();

/** Counts `child` among the bench's children until it exits; returns it. */
export function tracked<C extends ChildProcess>(child: C): C {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Kills every child still running at once (the bench was interrupted): none outlives it. */
export function killChildren(): void {
  for (const c of children) c.kill('SIGKILL');
  children.clear();
}

/** A depot child process: its address, its pid, and how to stop it. */
export interface DepotProcessHandle {
  readonly addr: DepotAddress;
  readonly pid: number;
  /** CPU seconds (user + system) the process has used so far; undefined where /proc is missing. */
  cpuSeconds(): number | undefined;
  /** Minor page faults of the process so far (first touches of fresh memory); undefined without /proc. */
  minorFaults(): number | undefined;
  stop(): Promise<void>;
}

/**
 * Starts `anvil depot` as a child process (2 GiB capacity, port chosen by the OS); `nodeArgs` go to
 * node; `bin` is the launcher to run (another build's `bin/anvil.js`, to compare two builds).
 */
export async function startDepotProcess(
  extra: readonly string[] = [],
  nodeArgs: readonly string[] = [],
  bin: string = BIN,
): Promise<DepotProcessHandle> {
  const child = tracked(
    spawn(process.execPath, [...nodeArgs, bin, 'depot', '--port', '0', '--capacity', '2GiB', '--log-level', 'warn', ...extra], {
      stdio: ['ignore', 'pipe', 'inherit'],
    }),
  );
  let out = '';
  // BENCH_DEPOT_STDOUT: a file that also gets the depot's standard output (e.g. with `--trace-gc`).
  const copy = process.env['BENCH_DEPOT_STDOUT'];
  child.stdout.on('data', (d: Buffer) => {
    // Only the tail is kept: with verbose node flags (`--trace-opt`) the listening line may come late.
    out = (out + d.toString()).slice(-4096);
    if (copy !== undefined) appendFileSync(copy, d);
  });
  for (const deadline = Date.now() + 10_000; ;) {
    const m = /listening on ibp:\/\/([^:]+):(\d+)/.exec(out);
    if (m) {
      const pid = child.pid!;
      return {
        addr: { host: m[1]!, port: Number(m[2]) },
        pid,
        cpuSeconds: () => processCpuSeconds(pid),
        minorFaults: () => procStat(pid)?.minorFaults,
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

/** User + system CPU seconds of process `pid` (all its threads), from /proc; undefined elsewhere. */
export function processCpuSeconds(pid: number): number | undefined {
  return procStat(pid)?.cpuSeconds;
}

function procStat(pid: number): { cpuSeconds: number; minorFaults: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // Fields after the command name (which may hold spaces) start after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime
    return { cpuSeconds: ticks / 100, minorFaults: Number(fields[7]) }; // USER_HZ is 100 on Linux
  } catch {
    return undefined;
  }
}
