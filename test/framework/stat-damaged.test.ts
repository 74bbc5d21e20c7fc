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

  it('calls a mapping whose allocation the depot no longer serves (-15) dead, not alive', async () => {
    const d = tempDir();
    cleanups.push(d.cleanup);
    const t = await startDepot({ resource: [{ rid: '1', path: d.path, fsync: 'fast' }] });
    cleanups.push(() => t.close());
    const client = new IbpClient({ timeoutMs: 10_000 });
    cleanups.push(() => client.close());
    const file = join(d.path, 'in.bin');
    const data = Buffer.alloc(300_000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
    writeFileSync(file, data);
    const x = await upload(client, file, { depots: [{ host: t.host, port: t.port }], blockSize: 100_000 });
    expect((await statMappings(client, x)).every((s) => s.alive)).toBe(true);
    // A byte of one block's file goes bad on disk; a download finds it and the depot marks it damaged.
    const shards = readdirSync(join(d.path, 'data')).filter((n) => /^[0-9a-f]{2}$/.test(n));
    const files = shards.flatMap((s) =>
      readdirSync(join(d.path, 'data', s))
        .filter((n) => /^\d+$/.test(n))
        .map((n) => join(d.path, 'data', s, n)),
    );
    files.sort();
    const fd = openSync(files[1]!, 'r+');
    writeSync(fd, Buffer.from([0xff ^ data[100_010]!]), 0, 1, 10);
    closeSync(fd);
    await expect(download(client, x, join(d.path, 'out.bin'))).rejects.toThrow();
    const status = await statMappings(client, x);
    const dead = status.filter((s) => !s.alive);
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({ gone: true });
    expect(dead[0]!.error).toMatch(/-15|damaged/i);
  });

  it('a download whose only replica goes bad past its first run says the block is damaged, not that the reply was cut', async () => {
    const d = tempDir();
    cleanups.push(d.cleanup);
    const t = await startDepot({ resource: [{ rid: '1', path: d.path, fsync: 'fast' }] });
    cleanups.push(() => t.close());
    const client = new IbpClient({ timeoutMs: 10_000 });
    cleanups.push(() => client.close());
    const file = join(d.path, 'in.bin');
    const data = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = (i * 13) & 0xff;
    writeFileSync(file, data);
    const x = await upload(client, file, { depots: [{ host: t.host, port: t.port }], blockSize: data.length });
    const shards = readdirSync(join(d.path, 'data')).filter((n) => /^[0-9a-f]{2}$/.test(n));
    const [only] = shards.flatMap((s) =>
      readdirSync(join(d.path, 'data', s))
        .filter((n) => /^\d+$/.test(n))
        .map((n) => join(d.path, 'data', s, n)),
    );
    // 2 MiB in: past the first 512 KiB run, so the reply has begun when the depot finds it.
    const at = 2 * 1024 * 1024 + 5;
    const fd = openSync(only!, 'r+');
    writeSync(fd, Buffer.from([0xff ^ data[at]!]), 0, 1, at);
    closeSync(fd);
    const failed = await download(client, x, join(d.path, 'out.bin')).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(failed).toBeDefined();
    expect(failed!.message).toMatch(/-15|damaged/i);
    expect(failed!.message).not.toMatch(/mid-message|closed/i);
  });
});
