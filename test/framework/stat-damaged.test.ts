import { closeSync, openSync, readdirSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { IbpClient, download, statMappings, upload } from '../../framework/index.js';
import { startDepot } from '../helpers/depot-fixture.js';
import { tempDir } from '../helpers/temp-dir.js';

describe('anvil stat and a damaged allocation', () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  /**
   * A disk depot holding `size` patterned bytes uploaded in blocks of `blockSize`: the exNode, the data,
   * the allocation files (sorted) and a helper that flips one byte of a file on disk.
   */
  async function uploaded(size: number, blockSize: number) {
    const d = tempDir();
    cleanups.push(d.cleanup);
    const t = await startDepot({ resource: [{ rid: '1', path: d.path, fsync: 'fast' }] });
    cleanups.push(() => t.close());
    const client = new IbpClient({ timeoutMs: 10_000 });
    cleanups.push(() => client.close());
    const file = join(d.path, 'in.bin');
    const data = Buffer.alloc(size);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
    writeFileSync(file, data);
    const x = await upload(client, file, { depots: [{ host: t.host, port: t.port }], blockSize });
    const shards = readdirSync(join(d.path, 'data')).filter((n) => /^[0-9a-f]{2}$/.test(n));
    const files = shards.flatMap((s) =>
      readdirSync(join(d.path, 'data', s))
        .filter((n) => /^\d+$/.test(n))
        .map((n) => join(d.path, 'data', s, n)),
    );
    files.sort();
    const flip = (path: string, at: number, was: number) => {
      const fd = openSync(path, 'r+');
      writeSync(fd, Buffer.from([0xff ^ was]), 0, 1, at);
      closeSync(fd);
    };
    return { client, x, data, files, flip, out: join(d.path, 'out.bin') };
  }

  it('calls a mapping whose allocation the depot no longer serves (-15) dead, not alive', async () => {
    const { client, x, data, files, flip, out } = await uploaded(300_000, 100_000);
    expect((await statMappings(client, x)).every((s) => s.alive)).toBe(true);
    // A byte of one block's file goes bad on disk; a download finds it and the depot marks it damaged.
    flip(files[1]!, 10, data[100_010]!);
    await expect(download(client, x, out)).rejects.toThrow();
    const status = await statMappings(client, x);
    const dead = status.filter((s) => !s.alive);
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({ gone: true });
    expect(dead[0]!.error).toMatch(/-15|damaged/i);
  });

  it('a download whose only replica goes bad past its first run says the block is damaged, not that the reply was cut', async () => {
    const size = 3 * 1024 * 1024;
    const { client, x, data, files, flip, out } = await uploaded(size, size);
    // 2 MiB in: past the first 1 MiB run, so the reply has begun when the depot finds it.
    const at = 2 * 1024 * 1024 + 5;
    flip(files[0]!, at, data[at]!);
    const failed = await download(client, x, out).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(failed).toBeDefined();
    expect(failed!.message).toMatch(/-15|damaged/i);
    expect(failed!.message).not.toMatch(/mid-message|closed/i);
  });
});
