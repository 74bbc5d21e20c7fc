import { randomBytes } from 'node:crypto';
import { openSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { formatLoad, type Capability } from '../../ibp/index.js';
import { RawSession, startDepot, type TestDepot } from '../helpers/depot-fixture.js';
import { tempDir } from '../helpers/temp-dir.js';

const MiB = 1024 * 1024;

function fileOf(dir: string, id: number): string {
  return join(dir, 'data', (id % 256).toString(16).padStart(2, '0'), String(id));
}

describe('disk LOADs read the next run while the current one is sent', () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function depot(): Promise<{ t: TestDepot; dir: string }> {
    const d = tempDir();
    cleanups.push(d.cleanup);
    const t = await startDepot({ resource: [{ rid: '1', path: d.path, fsync: 'fast', startupCheck: 'size' }] });
    cleanups.push(() => t.close());
    return { t, dir: d.path };
  }

  it('a client that goes away mid-LOAD leaves the depot serving every byte exactly', async () => {
    const { t } = await depot();
    const a = await t.client.allocate(t, { size: 8 * MiB, durationSec: 60 });
    const data = randomBytes(6 * MiB + 333);
    await t.client.store(a.write, data);
    for (let i = 0; i < 5; i++) {
      const s = await RawSession.open(t.port);
      s.send(formatLoad({ version: 1, cap: a.read as Capability, offset: 0, length: data.length, timeoutSec: 30 }));
      // Gone after the first bytes, with runs read ahead.
      await s.line();
      s.socket.destroy();
    }
    for (const [from, len] of [
      [0, data.length],
      [100_000, 3 * MiB],
      [data.length - 700_000, 700_000],
    ] as const) {
      expect(Buffer.from(await t.client.load(a.read, from, len)).equals(data.subarray(from, from + len))).toBe(true);
    }
  });

  it('a block gone bad in a later run fails the LOAD and marks the allocation damaged; the runs before it were verified', async () => {
    const { t, dir } = await depot();
    const a = await t.client.allocate(t, { size: 8 * MiB, durationSec: 60 });
    const data = randomBytes(4 * MiB);
    await t.client.store(a.write, data);
    const fd = openSync(fileOf(dir, Number(a.read.wrmKey)), 'r+');
    writeSync(fd, Buffer.from([data[3 * MiB + 5]! ^ 0xff]), 0, 1, 3 * MiB + 5);
    closeSync(fd);
    // Before the bad block: served.
    expect(Buffer.from(await t.client.load(a.read, 0, 2 * MiB)).equals(data.subarray(0, 2 * MiB))).toBe(true);
    await expect(t.client.load(a.read, 0, data.length)).rejects.toMatchObject({ code: 'CLIENT_ERR_CONNECTION' });
    await expect(t.client.load(a.read, 0, 10)).rejects.toMatchObject({ status: -15 });
  });
});
