import { afterEach, describe, expect, it, vi } from 'vitest';
import { MetadataDb } from '../../depot/resources/disk/metadata-db.js';
import { IbpClient } from '../../framework/index.js';
import { startDepot } from '../helpers/depot-fixture.js';
import { tempDir } from '../helpers/temp-dir.js';

/** Polls `cond` every 10 ms, for at most `timeoutMs`. */
async function until(cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !cond();) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

// Under `--fsync safe` a write's grouped commit records its new size before the WAL sync; the
// allocation in memory has it only once the sync is done. A metadata change in that window must not
// record the old size again: the write would be acknowledged, then cut off at the next start-up.
describe('disk group commit: a metadata change while a write waits for its WAL sync', () => {
  afterEach(() => vi.restoreAllMocks());

  const cases = [
    { op: 'incr', type: 'bytearray' },
    { op: 'change', type: 'bytearray' },
    { op: 'incr', type: 'cirq' },
    { op: 'change', type: 'cirq' },
  ] as const;
  for (const { op, type } of cases) {
    it(`${type}: an acknowledged STORE survives a restart when a ${op} ran during its sync`, async () => {
      const held: (() => void)[] = [];
      const realSync = MetadataDb.prototype.syncWal;
      vi.spyOn(MetadataDb.prototype, 'syncWal').mockImplementation(async function (this: MetadataDb) {
        await new Promise<void>((r) => held.push(r));
        return realSync.call(this);
      });
      const dir = tempDir();
      const res = [{ rid: '1', path: dir.path, capacityBytes: '64MiB', fsync: 'safe' as const }];
      const t = await startDepot({ resource: res });
      const other = new IbpClient();
      let running = true;
      try {
        const caps = await t.client.allocate({ host: t.host, port: t.port }, { size: 1 << 16, durationSec: 600, type });
        const stored = t.client.store(caps.write, Buffer.alloc(5000, 7));
        await until(() => held.length === 1);
        if (op === 'incr') await other.incr(caps.manage, 'read');
        else await other.change(caps.manage, { maxSize: 1 << 16, durationSec: 900 });
        held.shift()!();
        expect(await stored).toBe(5000);
        expect((await t.client.probe(caps.manage)).size).toBe(5000);
        vi.restoreAllMocks();
        running = false;
        await t.close();
        const t2 = await startDepot({ port: t.port, resource: res });
        try {
          expect((await t2.client.probe(caps.manage)).size).toBe(5000);
          expect(await t2.client.load(caps.read, 0, 5000)).toEqual(Buffer.alloc(5000, 7));
        } finally {
          await t2.close();
        }
      } finally {
        other.close();
        if (running) await t.close();
        dir.cleanup();
      }
    });
  }

  it('STOREs raced by INCRs with real syncs: none is lost after a restart (60 rounds)', async () => {
    const dir = tempDir();
    const res = [{ rid: '1', path: dir.path, capacityBytes: '256MiB', fsync: 'safe' as const }];
    const t = await startDepot({ resource: res });
    const other = new IbpClient();
    const caps = [];
    try {
      for (let i = 0; i < 60; i++) {
        const c = await t.client.allocate({ host: t.host, port: t.port }, { size: 1 << 20, durationSec: 600 });
        caps.push(c);
        const s = t.client.store(c.write, Buffer.alloc(300_000, 7));
        // The INCR goes a little after the STORE, so that it often lands while the STORE's group syncs.
        await new Promise((r) => setTimeout(r, i % 10));
        await Promise.all([s, other.incr(c.manage, 'read')]);
      }
    } finally {
      other.close();
      await t.close();
    }
    const t2 = await startDepot({ port: t.port, resource: res });
    const sizes: number[] = [];
    try {
      for (const c of caps) sizes.push((await t2.client.probe(c.manage)).size);
    } finally {
      await t2.close();
      dir.cleanup();
    }
    expect(sizes.filter((s) => s !== 300_000)).toEqual([]);
  }, 60_000);
});
