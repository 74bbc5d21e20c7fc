import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The `anvil` executable (it runs the built `dist/`). */
export const ANVIL_BIN = new URL('../../bin/anvil.js', import.meta.url).pathname;

/** What a spawned `anvil` gave: its exit code (null when killed) and its output. */
export interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `anvil ARGS` in a child process, killed (with `killSignal`, default SIGTERM) after `timeoutMs`. Never rejects. */
export function spawnAnvil(args: readonly string[], options: { timeoutMs: number; killSignal?: NodeJS.Signals }): Promise<Ran> {
  return run(process.execPath, [ANVIL_BIN, ...args], { timeout: options.timeoutMs, killSignal: options.killSignal }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: Ran) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}
