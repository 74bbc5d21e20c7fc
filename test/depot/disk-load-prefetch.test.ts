import { randomBytes } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { prefetchStats, setPrefetchKeepMs } from '../../depot/resources/disk/disk-data.js';
import { startDepot, type TestDepot } from '../helpers/depot-fixture.js';
import { tempDir } from '../helpers/temp-dir.js';

const MiB = 1024 * 1024;

function fileOf(dir: string, id: number): string {
  return join(dir, 'data', (id % 256).toString(16).padStart(2, '0'), String(id));
}

/** What changed in the prefetch counters while `f` ran. */
async function counting(f: () => Promise<void>): Promise<{ started: number; served: number; dropped: number; bytes: number }> {
  const a = prefetchStats();
  await f();
  const b = prefetchStats();
  return {
    started: b.started - a.started,
    served: b.served - a.served,
    dropped: b.dropped - a.dropped,
    bytes: b.bytes - a.bytes,
  };
}

describe('a disk LOAD that carries on from the last one, either way, has its first run read ahead', () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  // Kept long enough that a loaded machine's pause between two LOADs never drops a run these tests
  // expect to be served (the test of dropping sets its own).
  beforeAll(() => setPrefetchKeepMs(30_000));
  afterAll(() => setPrefetchKeepMs());

  async function depot(fsync: 'fast' | 'safe' = 'fast'): Promise<{ t: TestDepot; dir: string }> {
    const d = tempDir();
    cleanups.push(d.cleanup);
    const t = await startDepot({ resource: [{ rid: '1', path: d.path, fsync, startupCheck: 'size' }] });
    cleanups.push(() => t.close());
    return { t, dir: d.path };
  }

  it('sequential LOADs are served from runs read ahead, byte for byte; small or scattered ones read nothing ahead', async () => {
    const { t } = await depot();
    const a = await t.client.allocate(t, { size: 8 * MiB, durationSec: 60 });
    const data = randomBytes(6 * MiB + 4321);
    await t.client.store(a.write, data);
    const seq = await counting(async () => {
      for (let at = 0; at < data.length; at += MiB) {
        const n = Math.min(MiB, data.length - at);
        expect(Buffer.from(await t.client.load(a.read, at, n)).equals(data.subarray(at, at + n))).toBe(true);
      }
    });
    // The first LOAD is not known to be sequential; each later one finds its run read ahead, and the
    // last, which reaches the size, reads nothing ahead.
    expect(seq.served).toBe(5);
    expect(seq.started).toBe(5);
    const scattered = await counting(async () => {
      for (const at of [3 * MiB, 0, 5 * MiB, MiB]) {
        expect(Buffer.from(await t.client.load(a.read, at, 64 * 1024)).equals(data.subarray(at, at + 64 * 1024))).toBe(true);
      }
      for (let at = 0; at < 8 * 4096; at += 4096) {
        expect(Buffer.from(await t.client.load(a.read, at, 4096)).equals(data.subarray(at, at + 4096))).toBe(true);
      }
    });
    expect(scattered.started).toBe(0);
    // A small LOAD elsewhere (another client, say) in between leaves the run read ahead to its reader.
    await t.client.load(a.read, 0, MiB);
    await t.client.load(a.read, MiB, MiB);
    const interleaved = await counting(async () => {
      await t.client.load(a.read, 5 * MiB, 4096);
      expect(Buffer.from(await t.client.load(a.read, 2 * MiB, MiB)).equals(data.subarray(2 * MiB, 3 * MiB))).toBe(true);
    });
    expect(interleaved.served).toBe(1);
  });

  it('LOADs going backwards, last block first (as ibp_perf reads), and interleaved over two allocations, are served from runs read ahead', async () => {
    const { t } = await depot();
    const a = await t.client.allocate(t, { size: 8 * MiB, durationSec: 60 });
    const b = await t.client.allocate(t, { size: 8 * MiB, durationSec: 60 });
    const dataA = randomBytes(6 * MiB + 4321);
    const dataB = randomBytes(6 * MiB);
    await t.client.store(a.write, dataA);
    await t.client.store(b.write, dataB);
    const back = await counting(async () => {
      expect(Buffer.from(await t.client.load(a.read, 6 * MiB, 4321)).equals(dataA.subarray(6 * MiB))).toBe(true);
      for (let at = 5 * MiB; at >= 0; at -= MiB) {
        expect(Buffer.from(await t.client.load(a.read, at, MiB)).equals(dataA.subarray(at, at + MiB))).toBe(true);
      }
    });
    // The tail is too short to go by; each 1 MiB LOAD after the first finds its run read ahead, and
    // the one at 0 has nothing before it.
    expect(back.started).toBe(5);
    expect(back.served).toBe(5);
    const interleaved = await counting(async () => {
      for (let at = 5 * MiB; at >= 0; at -= MiB) {
        for (const [cap, data] of [
          [a.read, dataA],
          [b.read, dataB],
        ] as const) {
          expect(Buffer.from(await t.client.load(cap, at, MiB)).equals(data.subarray(at, at + MiB))).toBe(true);
        }
      }
    });
    // For each allocation the first two LOADs here show the direction (a's follows its LOAD at 0):
    // the four after them are served, for each of the two.
    expect(interleaved.served).toBe(8);
  });

  it('LOADs shorter than a run read ahead only what the next one is expected to take, either way', async () => {
    const { t } = await depot();
    const a = await t.client.allocate(t, { size: 4 * MiB, durationSec: 60 });
    const data = randomBytes(2 * MiB);
    await t.client.store(a.write, data);
    const n = 128 * 1024;
    const load = async (at: number) =>
      expect(Buffer.from(await t.client.load(a.read, at, n)).equals(data.subarray(at, at + n))).toBe(true);
    const forwards = await counting(async () => {
      for (let at = 0; at < 8 * n; at += n) await load(at);
    });
    expect(forwards.served).toBe(6); // the first LOAD does not follow one
    expect(forwards.bytes).toBe(forwards.started * n);
    const backwards = await counting(async () => {
      for (let at = 2 * MiB - n; at >= MiB; at -= n) await load(at);
    });
    expect(backwards.served).toBe(6); // the first two LOADs show the direction
    expect(backwards.bytes).toBe(backwards.started * n);
  });

  it('going backwards, a WRITE between two LOADs: the next LOAD serves the new bytes, never the run read before', async () => {
    const { t } = await depot();
    const a = await t.client.allocate(t, { size: 8 * MiB, durationSec: 60 });
    const data = randomBytes(4 * MiB);
    await t.client.store(a.write, data);
    const load = async (at: number) => Buffer.from(await t.client.load(a.read, at, MiB));
    await load(3 * MiB);
    await load(2 * MiB); // backwards: the run at 1 MiB is read ahead
    const fresh = randomBytes(200_000);
    await t.client.write(a.write, MiB + 1000, fresh);
    fresh.copy(data, MiB + 1000);
    const c = await counting(async () => {
      expect((await load(MiB)).equals(data.subarray(MiB, 2 * MiB))).toBe(true);
    });
    expect(c.served).toBe(0);
    // Unchanged since: the run before is served.
    const c2 = await counting(async () => {
      expect((await load(0)).equals(data.subarray(0, MiB))).toBe(true);
    });
    expect(c2.served).toBe(1);
  });

  for (const fsync of ['fast', 'safe'] as const) {
    it(`a WRITE, an append or a TRUNCATE between two LOADs: the next LOAD serves the new bytes, never the run read before (${fsync})`, async () => {
      const { t } = await depot(fsync);
      const a = await t.client.allocate(t, { size: 16 * MiB, durationSec: 60 });
      const data = randomBytes(4 * MiB + 100);
      await t.client.store(a.write, data);
      const load = async (at: number, n: number) => Buffer.from(await t.client.load(a.read, at, n));

      // An overwrite of the range read ahead.
      await load(0, MiB);
      await load(MiB, MiB); // sequential: the run at 2 MiB is read ahead
      const fresh = randomBytes(300_000);
      await t.client.write(a.write, 2 * MiB + 1000, fresh);
      fresh.copy(data, 2 * MiB + 1000);
      const c1 = await counting(async () => {
        expect((await load(2 * MiB, MiB)).equals(data.subarray(2 * MiB, 3 * MiB))).toBe(true);
      });
      expect(c1.served).toBe(0);

      // An append to a last block read ahead in part.
      await load(3 * MiB, MiB); // sequential: the run at 4 MiB (100 bytes) is read ahead
      const tail = randomBytes(700_000);
      await t.client.store(a.write, tail);
      const grown = Buffer.concat([data, tail]);
      const c2 = await counting(async () => {
        expect((await load(4 * MiB, 100 + 700_000)).equals(grown.subarray(4 * MiB))).toBe(true);
      });
      expect(c2.served).toBe(0);

      // A TRUNCATE, then new bytes where the old ones were read ahead.
      await load(0, MiB);
      await load(MiB, MiB); // the run at 2 MiB is read ahead again
      await t.client.truncate(a.manage, 2 * MiB + 10);
      await t.client.change(a.manage, { maxSize: 16 * MiB, durationSec: -1 });
      const again = randomBytes(MiB);
      await t.client.store(a.write, again);
      const now = Buffer.concat([grown.subarray(0, 2 * MiB + 10), again]);
      const c3 = await counting(async () => {
        expect((await load(2 * MiB, MiB)).equals(now.subarray(2 * MiB, 3 * MiB))).toBe(true);
      });
      expect(c3.served).toBe(0);

      // Unchanged data: the run read ahead is served.
      await load(0, MiB);
      await load(MiB, MiB);
      const c4 = await counting(async () => {
        expect((await load(2 * MiB, MiB)).equals(now.subarray(2 * MiB, 3 * MiB))).toBe(true);
      });
      expect(c4.served).toBe(1);
    });
  }

  it('a run read ahead over a block gone bad is never served: the next LOAD fails and marks the allocation damaged', async () => {
    const { t, dir } = await depot();
    const a = await t.client.allocate(t, { size: 8 * MiB, durationSec: 60 });
    const data = randomBytes(4 * MiB);
    await t.client.store(a.write, data);
    const fd = openSync(fileOf(dir, Number(a.read.wrmKey)), 'r+');
    writeSync(fd, Buffer.from([data[2 * MiB + 5]! ^ 0xff]), 0, 1, 2 * MiB + 5);
    closeSync(fd);
    expect(Buffer.from(await t.client.load(a.read, 0, MiB)).equals(data.subarray(0, MiB))).toBe(true);
    expect(Buffer.from(await t.client.load(a.read, MiB, MiB)).equals(data.subarray(MiB, 2 * MiB))).toBe(true);
    // The run read ahead at 2 MiB failed its check: the LOAD takes it, reads again, and judges.
    const c = await counting(async () => {
      await expect(t.client.load(a.read, 2 * MiB, MiB)).rejects.toBeDefined();
    });
    expect(c.served).toBe(1);
    await expect(t.client.load(a.read, 0, 4096)).rejects.toMatchObject({ status: expect.any(Number) });
  });

  it('a run read ahead and never asked for is dropped after a moment', async () => {
    const { t } = await depot();
    const a = await t.client.allocate(t, { size: 4 * MiB, durationSec: 60 });
    const data = randomBytes(3 * MiB);
    await t.client.store(a.write, data);
    setPrefetchKeepMs(100);
    const c = await counting(async () => {
      await t.client.load(a.read, 0, MiB);
      await t.client.load(a.read, MiB, MiB);
      await new Promise((r) => setTimeout(r, 250));
    }).finally(() => setPrefetchKeepMs(30_000));
    expect(c.started).toBe(1);
    // (A run left by an earlier test's depot may be dropped in the same moment: the counts are the process's.)
    expect(c.dropped).toBeGreaterThanOrEqual(1);
    expect(c.served).toBe(0);
  });
});
