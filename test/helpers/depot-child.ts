import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { IbpClient } from '../../ibp/index.js';
import { DepotProcess } from './depot-process.js';
import { tempDir } from './temp-dir.js';

/** A deterministic byte pattern of `len` bytes, distinct per `salt`. */
export function pattern(len: number, salt: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = (salt + i * 31 + (i >> 9)) & 0xff;
  return b;
}

/** A depot child process started by {@link startDepotChild}. */
export interface DepotChild {
  readonly child: ChildProcess;
  /** Resolves to the signal or exit code it ended with. */
  readonly exit: Promise<NodeJS.Signals | number | null>;
  readonly port: number;
}

/**
 * Runs `script` with `args` (and `env` added to the environment) and waits, for at most 15 s, for
 * it to print `listening on ibp://host:port`. A child that does not is killed and the start fails.
 */
export async function startDepotChild(script: string, args: string[], env: Record<string, string>): Promise<DepotChild> {
  const child = spawn(process.execPath, [script, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exit = new Promise<NodeJS.Signals | number | null>((resolve) => child.on('exit', (code, sig) => resolve(sig ?? code)));
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const m = /listening on ibp:\/\/[^:]+:(\d+)/.exec(out);
    if (m) return { child, exit, port: Number(m[1]) };
    if (child.exitCode !== null) break;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  child.kill('SIGKILL');
  throw new Error(`depot child did not start: ${err}`);
}

/** A depot child over a directory of its own (see {@link crashingDepot}), and a client of it. */
export interface CrashingDepot {
  readonly child: DepotChild;
  readonly client: IbpClient;
  /** The depot's data directory, for {@link restartDepot}. */
  readonly data: string;
  readonly addr: { readonly host: string; readonly port: number };
}

/**
 * Writes `source` (a depot child script that runs the build in `dist/`) into a new temporary
 * directory and starts it with the arguments `args(dataDir)` and `env`, then opens a client;
 * `cleanups` undo them (kill, close, remove).
 */
export async function crashingDepot(
  cleanups: Array<() => unknown>,
  source: string,
  dist: URL,
  args: (data: string) => string[],
  env: Record<string, string>,
): Promise<CrashingDepot> {
  if (!existsSync(dist)) throw new Error('dist/ is missing: run `npx tsc -p tsconfig.build.json`');
  const dir = tempDir('anvil-crash-');
  cleanups.push(dir.cleanup);
  const script = join(dir.path, 'child.mjs');
  writeFileSync(script, source);
  const data = join(dir.path, 'depot');
  const client = new IbpClient({ timeoutMs: 10_000, connectTimeoutMs: 2_000 });
  cleanups.push(() => client.close());
  const child = await startDepotChild(script, args(data), env);
  cleanups.push(() => child.child.kill('SIGKILL'));
  return { child, client, data, addr: { host: '127.0.0.1', port: child.port } };
}

/** The depot started again over `data` on `port` (a plain depot process), and a new client. */
export async function restartDepot(
  cleanups: Array<() => unknown>,
  data: string,
  port: number,
): Promise<{ again: Awaited<ReturnType<typeof DepotProcess.start>>; client: IbpClient }> {
  const again = await DepotProcess.start(['--data', data, '--port', String(port), '--log-level', 'warn']);
  cleanups.push(() => again.proc.kill('SIGKILL'));
  const client = new IbpClient({ timeoutMs: 10_000, connectTimeoutMs: 2_000 });
  cleanups.push(() => client.close());
  return { again, client };
}
