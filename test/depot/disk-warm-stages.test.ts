import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { formatStore, formatWrite, type Capability } from '../../ibp/index.js';
import { parseDepotOptions } from '../../depot/index.js';
import { directReadStats } from '../../depot/server/direct-socket.js';
import type { DiskResource } from '../../depot/resources/disk/disk-resource.js';
import { WarmPool } from '../../depot/resources/disk/warm-pool.js';
import { pino } from 'pino';
import { RawSession, startDepot, type TestDepot } from '../helpers/depot-fixture.js';
import { faultyWritevIo } from '../helpers/filesystems.js';
import { tempDir } from '../helpers/temp-dir.js';
import { pattern } from '../helpers/patterns.js';

const MiB = 1024 * 1024;

function diskOf(t: TestDepot): DiskResource {
  const core = t.depot.core as unknown as { resources: Map<string, { store: DiskResource }> };
  return core.resources.get('1')!.store;
}

/** The data file of allocation `id` of the disk resource in `dir`. */
function fileOf(dir: string, id: number): string {
  return join(dir, 'data', (id % 256).toString(16).padStart(2, '0'), String(id));
}

/** Ids of the allocations whose files are in `dir`. */
async function fileIds(dir: string): Promise<number[]> {
  const ids: number[] = [];
  for (const shard of await readdir(join(dir, 'data')).catch(() => [] as string[])) {
    for (const name of await readdir(join(dir, 'data', shard))) if (/^\d+$/.test(name)) ids.push(Number(name));
  }
  return ids.sort((a, b) => a - b);
}

/** Sends `command` then `body` in `pieces` parts, a pause after each, so the depot waits for most of it. */
async function sendInPieces(s: RawSession, command: string, body: Buffer, pieces: number): Promise<void> {
  s.send(command);
  expect(await s.line()).toBe('1 \n');
  const size = Math.ceil(body.length / pieces);
  for (let at = 0; at < body.length; at += size) {
    s.send(body.subarray(at, Math.min(body.length, at + size)));
    await new Promise((r) => setTimeout(r, 2));
  }
}

describe('disk resource: new files start warm, and bodies land in stage buffers', () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function depotOn(dir: string, extra: Record<string, unknown> = {}, diskIo?: unknown, port = 0): Promise<TestDepot> {
    const t = await startDepot(
      { port, resource: [{ rid: '1', path: dir, capacityBytes: '256MiB', trashGraceSec: 0, ...extra }] },
      undefined,
      diskIo === undefined ? {} : { diskIo: diskIo as never },
    );
    let closed = false;
    const close = async () => {
      if (closed) return;
      closed = true;
      await t.close();
    };
    cleanups.push(close);
    return { ...t, close };
  }

  it('a new allocation takes a warm (sparse, zero) file: bytes round-trip, a hole reads as zeros, a restart cuts the unused tail', async () => {
    const d = tempDir();
    cleanups.push(d.cleanup);
    let t = await depotOn(d.path, { fsync: 'fast', warmBytes: '64MiB' });
    const disk = diskOf(t);
    // Nothing is warmed before a new allocation asks: an idle depot holds no warm files.
    expect(disk.warmStats.readyBytes).toBe(0);
    const first = await t.client.allocate(t, { size: 8 * MiB, durationSec: 60 });
    await t.client.store(first.write, pattern(MiB, 1));
    expect(disk.warmStats).toMatchObject({ taken: 0, missed: 1 });
    await disk.warmed();
    expect(disk.warmStats.readyBytes).toBe(8 * MiB);
    const pool = await readdir(join(d.path, 'pool'));
    expect(pool).toHaveLength(1);
    const warm = await stat(join(d.path, 'pool', pool[0]!));
    expect(warm.size).toBe(8 * MiB);
    expect(warm.blocks).toBe(0); // sparse: it takes no disk space

    const second = await t.client.allocate(t, { size: 6 * MiB, durationSec: 60 });
    const body = pattern(MiB, 2);
    await t.client.write(second.write, 2 * MiB, body);
    expect(disk.warmStats).toMatchObject({ taken: 1, missed: 1 });
    const ids = await fileIds(d.path);
    expect(ids).toHaveLength(2);
    // Cut to the allocation's max size: it never holds more disk than it was granted.
    expect((await stat(fileOf(d.path, ids[1]!))).size).toBe(6 * MiB);
    const got = await t.client.load(second.read, 0, 3 * MiB);
    expect(got.subarray(0, 2 * MiB).every((x) => x === 0)).toBe(true);
    expect(Buffer.from(got.subarray(2 * MiB)).equals(body)).toBe(true);
    expect((await t.client.probe(second.manage)).size).toBe(3 * MiB);
    await expect(t.client.load(second.read, 0, 3 * MiB + 1)).rejects.toMatchObject({ status: -19 });

    await t.close();
    t = await depotOn(d.path, { fsync: 'fast', warmBytes: '64MiB', startupCheck: 'full' }, undefined, t.port);
    // Warm files do not outlive the depot that made them; the committed size is what counts.
    expect(await readdir(join(d.path, 'pool'))).toHaveLength(0);
    expect((await stat(fileOf(d.path, ids[1]!))).size).toBe(3 * MiB);
    const again = await t.client.load(second.read, 0, 3 * MiB);
    expect(Buffer.from(again).equals(Buffer.from(got))).toBe(true);
    expect(Buffer.from(await t.client.load(first.read, 0, MiB)).equals(pattern(MiB, 1))).toBe(true);
  });

  it('small allocations and `warmBytes = 0` create their files as before; memory resources refuse the key', async () => {
    const d = tempDir();
    cleanups.push(d.cleanup);
    const t = await depotOn(d.path, { fsync: 'fast', warmBytes: 0 });
    const a = await t.client.allocate(t, { size: 8 * MiB, durationSec: 60 });
    await t.client.store(a.write, pattern(MiB, 3));
    expect(diskOf(t).warmStats).toMatchObject({ taken: 0, missed: 0, readyBytes: 0 });
    await expect(readdir(join(d.path, 'pool'))).rejects.toMatchObject({ code: 'ENOENT' });

    const d2 = tempDir();
    cleanups.push(d2.cleanup);
    const t2 = await depotOn(d2.path, { fsync: 'fast', warmBytes: '16MiB' });
    const small = await t2.client.allocate(t2, { size: 512 * 1024, durationSec: 60 });
    await t2.client.store(small.write, pattern(1000, 4));
    expect(diskOf(t2).warmStats).toMatchObject({ taken: 0, missed: 0 });

    expect(() => parseDepotOptions({ resource: [{ kind: 'memory', warmBytes: '1MiB' }] })).toThrow(
      /warmBytes.*disk resources only/,
    );
    expect(() => parseDepotOptions({ resource: [{ path: d.path, warmBytes: -1 }] })).toThrow(/warmBytes/);
    expect(parseDepotOptions({ resource: [{ path: d.path, warmBytes: '2GiB' }] }).resources[0]!.warmBytes).toBe(2 * 1024 * MiB);
  });

  for (const fsync of ['fast', 'safe'] as const) {
    it(`a body sent in pieces lands in stage buffers: STORE and an overwriting WRITE are exact, before and after a restart (${fsync})`, async () => {
      const d = tempDir();
      cleanups.push(d.cleanup);
      let t = await depotOn(d.path, { fsync });
      const a = await t.client.allocate(t, { size: 16 * MiB, durationSec: 60 });
      const s = await RawSession.open(t.port);
      cleanups.push(() => s.end());
      const stored = pattern(5 * MiB + 12_345, 5);
      const landedBefore = directReadStats.landedBytes;
      await sendInPieces(
        s,
        formatStore({ version: 1, cap: a.write as Capability, length: stored.length, timeoutSec: 30 }),
        stored,
        40,
      );
      expect(await s.line(10_000)).toBe(`1 ${stored.length} \n`);
      // Most of the body went straight from the socket into the stages.
      if (directReadStats.offReason === undefined)
        expect(directReadStats.landedBytes - landedBefore).toBeGreaterThan(stored.length / 2);

      // A WRITE that replaces committed bytes (through the redo journal) and goes on past the size (stages).
      const written = pattern(3 * MiB, 6);
      const at = 4 * MiB;
      await sendInPieces(
        s,
        formatWrite({ version: 1, cap: a.write as Capability, offset: at, length: written.length, timeoutSec: 30 }),
        written,
        25,
      );
      expect(await s.line(10_000)).toBe(`1 ${written.length} \n`);
      const expected = Buffer.concat([stored.subarray(0, at), written]);
      expect(Buffer.from(await t.client.load(a.read, 0, expected.length)).equals(expected)).toBe(true);

      await t.close();
      t = await depotOn(d.path, { fsync, startupCheck: 'full' }, undefined, t.port);
      expect((await t.client.probe(a.manage)).size).toBe(expected.length);
      expect(Buffer.from(await t.client.load(a.read, 0, expected.length)).equals(expected)).toBe(true);
    });
  }

  it('a disk failure while stages are put refuses the write; the committed bytes stay and the connection stays in step', async () => {
    const d = tempDir();
    cleanups.push(d.cleanup);
    const state = { budget: Number.POSITIVE_INFINITY, code: 'EIO' };
    const io = faultyWritevIo(state);
    const t = await depotOn(d.path, { fsync: 'fast' }, io);
    const a = await t.client.allocate(t, { size: 16 * MiB, durationSec: 60 });
    const kept = pattern(100_000, 7);
    await t.client.store(a.write, kept);
    state.budget = 2 * MiB;
    const s = await RawSession.open(t.port);
    cleanups.push(() => s.end());
    const body = pattern(6 * MiB, 8);
    await sendInPieces(s, formatStore({ version: 1, cap: a.write as Capability, length: body.length, timeoutSec: 30 }), body, 30);
    expect(await s.line(10_000)).toBe('-16 \n');
    state.budget = Number.POSITIVE_INFINITY;
    expect((await t.client.probe(a.manage)).size).toBe(kept.length);
    expect(Buffer.from(await t.client.load(a.read, 0, kept.length)).equals(kept)).toBe(true);
    // Same connection, next command: in step.
    const more = pattern(2 * MiB, 9);
    await sendInPieces(s, formatStore({ version: 1, cap: a.write as Capability, length: more.length, timeoutSec: 30 }), more, 10);
    expect(await s.line(10_000)).toBe(`1 ${more.length} \n`);
    expect(Buffer.from(await t.client.load(a.read, kept.length, more.length)).equals(more)).toBe(true);
  });

  it('the warmer keeps off while a read or write is in progress, and closing removes its files', async () => {
    const d = tempDir();
    cleanups.push(d.cleanup);
    const pool = await WarmPool.open(d.path, 64 * MiB, pino({ level: 'silent' }));
    cleanups.push(() => pool.close());
    const done = pool.busy();
    // A miss: the pool aims to hold what was asked for, but waits for the transfer to end.
    expect(await pool.take(join(d.path, 'x'), 8 * MiB)).toBe(false);
    await new Promise((r) => setTimeout(r, 300));
    expect(pool.stats.readyBytes).toBe(0);
    done();
    await pool.settled();
    expect(pool.stats.readyBytes).toBe(8 * MiB);
    expect(await pool.take(join(d.path, 'y'), 5 * MiB)).toBe(true);
    const y = await stat(join(d.path, 'y'));
    expect([y.size, y.blocks]).toEqual([5 * MiB, 0]);
    await pool.close();
    await expect(readdir(join(d.path, 'pool'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('under fsync = "safe" warm files are sparse too (no blocks taken), and shedding removes them', async () => {
    const d = tempDir();
    cleanups.push(d.cleanup);
    const t = await depotOn(d.path, { fsync: 'safe', warmBytes: '32MiB' });
    const disk = diskOf(t);
    const a = await t.client.allocate(t, { size: 4 * MiB, durationSec: 60 });
    await t.client.store(a.write, pattern(100_000, 12));
    await disk.warmed();
    const pool = await readdir(join(d.path, 'pool'));
    expect(pool).toHaveLength(1);
    const warm = await stat(join(d.path, 'pool', pool[0]!));
    expect(warm.size).toBe(4 * MiB);
    expect(warm.blocks).toBe(0);
    const b = await t.client.allocate(t, { size: 4 * MiB, durationSec: 60 });
    const body = pattern(3 * MiB, 13);
    await t.client.store(b.write, body);
    expect(disk.warmStats.taken).toBe(1);
    expect(Buffer.from(await t.client.load(b.read, 0, body.length)).equals(body)).toBe(true);
    // Whatever the next warm files are, shedding removes them at once.
    await disk.warmed();
    const warmPool = (disk as unknown as { warm: WarmPool }).warm;
    warmPool.shed();
    expect(warmPool.stats.readyBytes).toBe(0);
    expect(await readdir(join(d.path, 'pool'))).toHaveLength(0);
  });

  it('an idle pool gives its files back once the asks that made them leave the ten-minute window', async () => {
    const d = tempDir();
    cleanups.push(d.cleanup);
    let now = 1_000_000;
    const pool = await WarmPool.open(d.path, 64 * MiB, pino({ level: 'silent' }), { now: () => now });
    cleanups.push(() => pool.close());
    expect(await pool.take(join(d.path, 'x'), 8 * MiB)).toBe(false);
    await pool.settled();
    expect(pool.stats.readyBytes).toBe(8 * MiB);
    now += 5 * 60_000;
    pool.trim();
    expect(pool.stats.readyBytes).toBe(8 * MiB);
    now += 6 * 60_000;
    pool.trim();
    expect(pool.stats.readyBytes).toBe(0);
    expect(await readdir(join(d.path, 'pool'))).toHaveLength(0);
  });
});
