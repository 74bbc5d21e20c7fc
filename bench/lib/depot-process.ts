import { spawn } from 'node:child_process';
import { once } from 'node:events';
import type { DepotAddress } from '../../framework/index.js';

const BIN = new URL('../../../bin/anvil.js', import.meta.url).pathname;

/** Starts `anvil depot` as a child process (2 GiB capacity, port chosen by the OS); `nodeArgs` go to node. */
export async function startDepotProcess(
  extra: readonly string[] = [],
  nodeArgs: readonly string[] = [],
): Promise<{ addr: DepotAddress; stop: () => Promise<void> }> {
  const child = spawn(
    process.execPath,
    [...nodeArgs, BIN, 'depot', '--port', '0', '--capacity', '2GiB', '--log-level', 'warn', ...extra],
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
