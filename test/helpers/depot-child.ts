import { spawn, type ChildProcess } from 'node:child_process';

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
