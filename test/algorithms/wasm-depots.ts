import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { IbpClient } from '../../ibp/index.js';
import { startLoopbackDepots, type LoopbackDepots } from '../../framework/index.js';
import { tempDir } from '../helpers/temp-dir.js';

/**
 * Three loopback depots on the WebAssembly kernels (as the in-process runner: BLAS would sum in another order)
 * and a client, started before the enclosing `describe`'s tests and stopped after them.
 */
export function wasmLoopbackDepots(prefix: string): { readonly depots: LoopbackDepots; readonly client: IbpClient } {
  const dir = tempDir(prefix);
  const env = {} as { depots: LoopbackDepots; client: IbpClient };
  beforeAll(async () => {
    const config = join(dir.path, 'wasm.toml');
    writeFileSync(config, '[nfu]\nnative = false\n');
    env.depots = await startLoopbackDepots(3, { capacity: '32MiB', extraArgs: ['--config', config] });
    env.client = new IbpClient({ timeoutMs: 10_000 });
  }, 30_000);
  afterAll(async () => {
    env.client?.close();
    await env.depots?.stop();
    dir.cleanup();
  });
  return env;
}
