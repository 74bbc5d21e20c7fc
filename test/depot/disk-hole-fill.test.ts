import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { formatWrite, type Capability } from '../../ibp/index.js';
import { RawSession, startDepot, type TestDepot } from '../helpers/depot-fixture.js';
import { allOf, tryWrite } from '../helpers/load-checks.js';
import { failWalSyncs } from '../helpers/metadata-faults.js';
import { tempDir } from '../helpers/temp-dir.js';
import { pattern } from '../helpers/patterns.js';

const MiB = 1024 * 1024;
const BLOCK = 64 * 1024;

/** The only allocation file of the disk resource in `dir`. */
async function onlyFile(dir: string): Promise<string> {
  const files: string[] = [];
  for (const shard of await readdir(join(dir, 'data'))) {
    for (const name of await readdir(join(dir, 'data', shard)))
      if (/^\d+$/.test(name)) files.push(join(dir, 'data', shard, name));
  }
  expect(files).toHaveLength(1);
  return files[0]!;
}

/**
 * A new allocation of `size` bytes with 1000 bytes written at `at`: every block below it is a hole.
 * `expected` is what it holds (zeros, then those bytes).
 */
async function holed(
  t: TestDepot,
  size: number,
  at: number,
): Promise<{ caps: Awaited<ReturnType<TestDepot['client']['allocate']>>; expected: Buffer }> {
  const caps = await t.client.allocate(t, { size, durationSec: 600 });
  const tail = Buffer.alloc(1000, 7);
  expect(await tryWrite(t, caps, at, tail)).toBe('ok');
  return { caps, expected: Buffer.concat([Buffer.alloc(at), tail]) };
}

async function until(cond: () => Promise<boolean>, ms = 5_000): Promise<void> {
  for (const deadline = Date.now() + ms; !(await cond());) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * A WRITE past the end of a disk allocation leaves a hole: blocks below the size that no write has
 * filled, which read as zeros. A later WRITE of whole hole blocks (the order a perf client writes in,
 * last block first) replaces nothing, so it goes straight to the file like an append, without the
 * redo journal; its blocks read as written once it is committed, and as zeros until then, whatever
 * the file holds there.
 */
describe('disk resource: WRITEs that fill holes', () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    vi.restoreAllMocks();
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function depot(fsync: 'fast' | 'safe') {
    const dir = tempDir();
    cleanups.push(dir.cleanup);
    const resource = { rid: '1', path: dir.path, capacityBytes: '64MiB', fsync };
    let t = await startDepot({ resource: [resource] });
    cleanups.push(() => t.close());
    return {
      dir: dir.path,
      t: () => t,
      /** Stops the depot and starts it again on the same directory, checking every block. */
      async restart(): Promise<TestDepot> {
        const port = t.port;
        await t.close();
        t = await startDepot({ port, resource: [{ ...resource, startupCheck: 'full' as const }] });
        return t;
      },
    };
  }

  for (const fsync of ['fast', 'safe'] as const) {
    it(`--fsync ${fsync}: whole blocks written last first read back, before and after a restart`, async () => {
      const d = await depot(fsync);
      const caps = await d.t().client.allocate(d.t(), { size: 4 * MiB, durationSec: 600 });
      const parts = [0, 1, 2, 3].map((j) => pattern(MiB, j));
      for (let j = 3; j >= 0; j--) expect(await tryWrite(d.t(), caps, j * MiB, parts[j]!)).toBe('ok');
      const all = Buffer.concat(parts);
      // Each WRITE after the first filled holes: none went through the redo journal.
      expect(existsSync(`${await onlyFile(d.dir)}.redo`)).toBe(false);
      expect((await d.t().client.probe(caps.manage)).size).toBe(4 * MiB);
      expect(Buffer.from(await d.t().client.load(caps.read, 0, 4 * MiB)).equals(all)).toBe(true);
      const t2 = await d.restart();
      expect(Buffer.from(await t2.client.load(caps.read, 0, 4 * MiB)).equals(all)).toBe(true);
    });
  }

  for (const fsync of ['fast', 'safe'] as const) {
    it(`--fsync ${fsync}: stripes that are not whole blocks, written last first, read back before and after a restart`, async () => {
      const d = await depot(fsync);
      const t = d.t();
      const caps = await t.client.allocate(t, { size: 2 * MiB, durationSec: 600 });
      const STRIPE = 10_000;
      const total = 100 * STRIPE;
      const all = pattern(total, 3);
      for (let k = 99; k >= 0; k--) {
        expect(await tryWrite(t, caps, k * STRIPE, all.subarray(k * STRIPE, (k + 1) * STRIPE))).toBe('ok');
      }
      expect(Buffer.from(await t.client.load(caps.read, 0, total)).equals(all)).toBe(true);
      const t2 = await d.restart();
      expect(Buffer.from(await t2.client.load(caps.read, 0, total)).equals(all)).toBe(true);
    });
  }

  it('a WRITE inside holes that is not whole blocks takes no journal: the rest of its blocks reads as zeros', async () => {
    const d = await depot('safe');
    const t = d.t();
    const { caps, expected } = await holed(t, 4 * MiB, 3 * MiB);
    const bytes = pattern(100_000, 8);
    expect(await tryWrite(t, caps, 12_345, bytes)).toBe('ok');
    expect(existsSync(`${await onlyFile(d.dir)}.redo`)).toBe(false);
    bytes.copy(expected, 12_345);
    expect(Buffer.from(await t.client.load(caps.read, 0, expected.length)).equals(expected)).toBe(true);
    const t2 = await d.restart();
    expect(Buffer.from(await t2.client.load(caps.read, 0, expected.length)).equals(expected)).toBe(true);
  });

  it('bytes a hole-filling WRITE left in the file before its client went are never served: not by a LOAD, a later partial WRITE, a TRUNCATE into them or an append after that', async () => {
    const d = await depot('fast');
    const t = d.t();
    const { caps, expected } = await holed(t, 4 * MiB, 3 * MiB); // blocks below 3 MiB are holes
    const file = await onlyFile(d.dir);

    // A 2 MiB WRITE of whole hole blocks at 1 MiB: the first 1.5 MiB of its body, then the client goes.
    const s = await RawSession.open(t.port);
    s.send(formatWrite({ version: 1, cap: caps.write as Capability, offset: MiB, length: 2 * MiB, timeoutSec: 60 }));
    expect(await s.line()).toBe('1 \n');
    s.send(Buffer.alloc(1.5 * MiB, 0xee));
    // Its first MiB reaches the file (straight, not through a journal) before the client leaves.
    const fileHas = async () => {
      const b = await readFile(file).catch(() => Buffer.alloc(0));
      return b.length > MiB && b[MiB] === 0xee;
    };
    await until(fileHas);
    s.socket.destroy();
    // The allocation is free again once the aborted WRITE is over: a LOAD is served.
    await until(async () => {
      const got = await t.client.load(caps.read, 0, expected.length).catch(() => undefined);
      return got !== undefined;
    });
    expect(await fileHas()).toBe(true);
    expect(Buffer.from(await t.client.load(caps.read, 0, expected.length)).equals(expected)).toBe(true);

    // A WRITE of part of one of those blocks: the rest of the block reads as zeros.
    const small = Buffer.alloc(100, 0x11);
    expect(await tryWrite(t, caps, MiB + 10, small)).toBe('ok');
    small.copy(expected, MiB + 10);
    expect(Buffer.from(await t.client.load(caps.read, 0, expected.length)).equals(expected)).toBe(true);

    // A WRITE over that written block and into the next hole (journaled): the rest of the hole's
    // block reads as zeros.
    const across = Buffer.alloc(70_000, 0x33);
    expect(await tryWrite(t, caps, MiB + 1000, across)).toBe('ok');
    across.copy(expected, MiB + 1000);
    expect(Buffer.from(await t.client.load(caps.read, 0, expected.length)).equals(expected)).toBe(true);

    // A TRUNCATE whose new end lies in another of them, then an append: zeros up to the old end.
    const cut = MiB + 3 * BLOCK + 5_000;
    await t.client.truncate(caps.manage, cut);
    await t.client.truncate(caps.manage, 4 * MiB); // room to append again; the size stays
    expect((await t.client.probe(caps.manage)).size).toBe(cut);
    const after = MiB + 71_000; // past the last WRITE
    expect(allOf(Buffer.from(await t.client.load(caps.read, after, cut - after)), 0, cut - after)).toBe(true);
    const more = Buffer.alloc(5_000, 0x22);
    await t.client.store(caps.write, more);
    const now = Buffer.concat([expected.subarray(0, cut), more]);
    expect(Buffer.from(await t.client.load(caps.read, 0, now.length)).equals(now)).toBe(true);

    const t2 = await d.restart();
    expect(Buffer.from(await t2.client.load(caps.read, 0, now.length)).equals(now)).toBe(true);
  });

  it('--fsync safe: a hole-filling WRITE whose commit is refused (its WAL sync fails) leaves zeros there, before and after a restart', async () => {
    const d = await depot('safe');
    const t = d.t();
    const { caps, expected } = await holed(t, 2 * MiB, MiB + 500_000);

    failWalSyncs(1);
    expect(await tryWrite(t, caps, 0, Buffer.alloc(MiB, 0x33))).not.toBe('ok');
    vi.restoreAllMocks();
    expect((await t.client.probe(caps.manage)).size).toBe(expected.length);
    expect(Buffer.from(await t.client.load(caps.read, 0, expected.length)).equals(expected)).toBe(true);

    const t2 = await d.restart();
    expect(Buffer.from(await t2.client.load(caps.read, 0, expected.length)).equals(expected)).toBe(true);
    // Not damaged: the same range is taken again and served.
    const again = pattern(MiB, 9);
    expect(await tryWrite(t2, caps, 0, again)).toBe('ok');
    again.copy(expected, 0);
    expect(Buffer.from(await t2.client.load(caps.read, 0, expected.length)).equals(expected)).toBe(true);
  });
});
