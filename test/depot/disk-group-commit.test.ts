import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { GroupCommit } from '../../depot/resources/disk/group-commit.js';
import { MetadataDb } from '../../depot/resources/disk/metadata-db.js';
import { IbpClient, type AllocationCaps } from '../../framework/index.js';
import { startDepot } from '../helpers/depot-fixture.js';
import { tempDir } from '../helpers/temp-dir.js';

/** Polls `cond` every 10 ms, at most `timeoutMs`. */
async function until(cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !cond();) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('disk writes under --fsync safe (group commit)', () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    vi.restoreAllMocks();
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('a write is acknowledged, and its bytes readable, only once its metadata sync is done; writes during a sync share the next one', async () => {
    // Holds every WAL sync until the test lets it go.
    const held: (() => void)[] = [];
    const realSync = MetadataDb.prototype.syncWal;
    const sync = vi.spyOn(MetadataDb.prototype, 'syncWal').mockImplementation(async function (this: MetadataDb) {
      await new Promise<void>((r) => held.push(r));
      return realSync.call(this);
    });
    const submit = vi.spyOn(GroupCommit.prototype, 'submit');
    const dir = tempDir();
    cleanups.push(dir.cleanup);
    const t = await startDepot({ resource: [{ rid: '1', path: dir.path, capacityBytes: '64MiB', fsync: 'safe' }] });
    cleanups.push(() => t.close());
    const addr = { host: t.host, port: t.port };
    const allocs: AllocationCaps[] = [];
    for (let i = 0; i < 4; i++) allocs.push(await t.client.allocate(addr, { size: 1 << 20, durationSec: 600 }));

    let acked = false;
    const first = t.client.store(allocs[0]!.write, Buffer.alloc(1000, 1)).then(() => (acked = true));
    await until(() => held.length === 1);
    // Its data is on disk and its metadata recorded, not yet durable: not acknowledged, not visible.
    await new Promise((r) => setTimeout(r, 50));
    expect(acked).toBe(false);
    expect((await t.client.probe(allocs[0]!.manage)).size).toBe(0);
    await expect(t.client.load(allocs[0]!.read, 0, 1000)).rejects.toMatchObject({ status: expect.any(Number) as number });

    // Three more writers finish while that sync runs: they wait for it, then share one.
    const others = [new IbpClient(), new IbpClient(), new IbpClient()];
    cleanups.push(() => others.forEach((c) => c.close()));
    const rest = others.map((c, i) => c.store(allocs[i + 1]!.write, Buffer.alloc(2000, i + 2)));
    await until(() => submit.mock.calls.length === 4);
    expect(held.length).toBe(1);
    held.shift()!();
    await first;
    expect(acked).toBe(true);
    expect((await t.client.load(allocs[0]!.read, 0, 1000)).every((b) => b === 1)).toBe(true);

    await until(() => held.length === 1);
    held.shift()!();
    await Promise.all(rest);
    expect(sync).toHaveBeenCalledTimes(2);
    for (let i = 1; i < 4; i++) {
      expect((await t.client.probe(allocs[i]!.manage)).size).toBe(2000);
      expect((await t.client.load(allocs[i]!.read, 0, 2000)).every((b) => b === i + 1)).toBe(true);
    }
  });

  it('a write whose allocation is deleted while it waits for its group is refused and leaves no rows behind', async () => {
    // Holds the first WAL sync until the test lets it go; later ones pass.
    const held: (() => void)[] = [];
    let holding = true;
    const realSync = MetadataDb.prototype.syncWal;
    vi.spyOn(MetadataDb.prototype, 'syncWal').mockImplementation(async function (this: MetadataDb) {
      if (holding) await new Promise<void>((r) => held.push(r));
      return realSync.call(this);
    });
    const submit = vi.spyOn(GroupCommit.prototype, 'submit');
    const dir = tempDir();
    cleanups.push(dir.cleanup);
    const t = await startDepot({ resource: [{ rid: '1', path: dir.path, capacityBytes: '64MiB', fsync: 'safe' }] });
    let closed = false;
    cleanups.push(() => (closed ? undefined : t.close()));
    const addr = { host: t.host, port: t.port };
    const kept = await t.client.allocate(addr, { size: 1 << 20, durationSec: 600 });
    const doomed = await t.client.allocate(addr, { size: 1 << 20, durationSec: 600 });

    const first = t.client.store(kept.write, Buffer.alloc(100, 1));
    await until(() => held.length === 1);
    const other = new IbpClient();
    cleanups.push(() => other.close());
    const late = other.store(doomed.write, Buffer.alloc(3 * 65_536, 2)).then(
      () => 'acknowledged',
      (e: unknown) => e,
    );
    await until(() => submit.mock.calls.length === 2);
    await t.client.decr(doomed.manage, 'read'); // its last reference: deleted and purged now
    holding = false;
    held.shift()!();
    await first;
    expect(await late).toMatchObject({ status: expect.any(Number) as number });
    expect((await t.client.probe(kept.manage)).size).toBe(100);
    await t.close();
    closed = true;

    const raw = new Database(join(dir.path, 'anvil.sqlite'), { readonly: true });
    try {
      // The deleted one (in the trash, or gone) recorded nothing of the refused write.
      const rows = raw
        .prepare<[], { id: number; size: number; state: string }>('SELECT id, size, state FROM allocations ORDER BY id')
        .all();
      expect(rows.filter((r) => r.state === 'ok').map((r) => r.size)).toEqual([100]);
      expect(rows.filter((r) => r.state !== 'ok').every((r) => r.size === 0)).toBe(true);
      const stray = raw
        .prepare<[], { n: number }>(
          "SELECT COUNT(*) AS n FROM blocks WHERE alloc_id NOT IN (SELECT id FROM allocations WHERE state = 'ok')",
        )
        .get();
      expect(stray?.n).toBe(0);
    } finally {
      raw.close();
    }
  });
});
