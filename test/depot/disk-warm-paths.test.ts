import { afterEach, describe, expect, it } from 'vitest';
import { startDepot, type TestDepot } from '../helpers/depot-fixture.js';
import { tempDir } from '../helpers/temp-dir.js';

const MiB = 1024 * 1024;

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = ((i * 131 + seed * 7 + (i >> 12)) & 0xff) | 1;
  return b;
}

describe('files that start warm under TRUNCATE, aliases, split/merge and rings', () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  for (const fsync of ['fast', 'safe'] as const) {
    it(`only written bytes or zeros are ever served, before and after a restart (${fsync})`, async () => {
      const d = tempDir();
      cleanups.push(d.cleanup);
      const opts = { rid: '1', path: d.path, capacityBytes: '512MiB', fsync, warmBytes: '64MiB', trashGraceSec: 0 };
      let t: TestDepot = await startDepot({ resource: [opts] });
      let closed = false;
      cleanups.push(() => (closed ? undefined : t.close()));
      const disk = (t.depot.core as unknown as { resources: Map<string, { store: { warmed(): Promise<void> } }> }).resources.get(
        '1',
      )!.store;
      // Prime the pool.
      const p = await t.client.allocate(t, { size: 8 * MiB, durationSec: 60 });
      await t.client.store(p.write, pattern(10, 1));
      await disk.warmed();

      // TRUNCATE after a warm take, then a WRITE past the end with a hole.
      const a = await t.client.allocate(t, { size: 8 * MiB, durationSec: 60 });
      const a1 = pattern(3 * MiB + 5, 2);
      await t.client.store(a.write, a1);
      await t.client.truncate(a.manage, MiB + 7);
      await t.client.change(a.manage, { maxSize: 8 * MiB, durationSec: -1 });
      const aTail = pattern(1000, 3);
      await t.client.write(a.write, 200_000 + MiB, aTail);
      const aWant = Buffer.concat([a1.subarray(0, MiB + 7), Buffer.alloc(200_000 - 7), aTail]);
      expect(Buffer.from(await t.client.load(a.read, 0, aWant.length)).equals(aWant)).toBe(true);

      // An alias writes the master's first bytes past a hole.
      await disk.warmed();
      const m = await t.client.allocate(t, { size: 8 * MiB, durationSec: 60 });
      const al = await t.client.aliasAllocate(m.manage, { offset: MiB, length: 2 * MiB });
      const alBody = pattern(300_000, 4);
      await t.client.write(al.write, 65_536, alBody);
      const mWant = Buffer.concat([Buffer.alloc(MiB + 65_536), alBody]);
      expect(Buffer.from(await t.client.load(m.read, 0, mWant.length)).equals(mWant)).toBe(true);

      // A circular queue on disk.
      await disk.warmed();
      const q = await t.client.allocate(t, { size: 2 * MiB, durationSec: 60, type: 'cirq' });
      const q1 = pattern(1_500_000, 5);
      await t.client.store(q.write, q1);
      const q2 = pattern(1_000_000, 6);
      await t.client.store(q.write, q2);

      const port = t.port;
      await t.close();
      closed = true;
      t = await startDepot({ port, resource: [{ ...opts, startupCheck: 'full' }] });
      closed = false;
      expect(Buffer.from(await t.client.load(a.read, 0, aWant.length)).equals(aWant)).toBe(true);
      expect(Buffer.from(await t.client.load(m.read, 0, mWant.length)).equals(mWant)).toBe(true);
      expect((await t.client.probe(q.manage)).size).toBeGreaterThan(0);
    }, 60_000);
  }
});
