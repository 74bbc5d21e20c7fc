import { open, type FileHandle, cp } from 'node:fs/promises';
import { basename, join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { DiskIo } from '../../depot/resources/disk/disk-data.js';
import { DiskResource } from '../../depot/resources/disk/disk-resource.js';
import { formatWrite, type Capability } from '../../ibp/index.js';
import { RawSession, keyOf, startDepot, type TestDepot } from '../helpers/depot-fixture.js';
import { tryWrite } from '../helpers/load-checks.js';
import { failSetBlocks, failWalSyncs } from '../helpers/metadata-faults.js';
import { tempDir } from '../helpers/temp-dir.js';

const MiB = 1024 * 1024;
const BLOCK = 64 * 1024;

/* Faults around WRITEs into holes (see disk-hole-fill.test.ts): a refused fill whose undo cannot be
 * recorded at once, a delete while holes are being turned into zero blocks, and a disk BUFFER whose
 * start-up recovery reads parts straight from the file. */

describe('disk: a refused WRITE whose undo cannot be recorded at once (its WAL sync and then one checksum update fail)', () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    vi.restoreAllMocks();
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  for (const kind of ['hole', 'overwrite'] as const) {
    it(`${kind === 'hole' ? 'filling holes' : 'over written bytes'}: the acknowledged bytes are served before and after a restart, nothing is damaged`, async () => {
      const dir = tempDir();
      cleanups.push(dir.cleanup);
      const resource = { rid: '1', path: dir.path, capacityBytes: '64MiB', fsync: 'safe' as const };
      let t = await startDepot({ resource: [resource] });
      let open = true;
      cleanups.push(() => (open ? t.close() : undefined));
      const caps = await t.client.allocate(t, { size: 2 * MiB, durationSec: 600 });
      if (kind === 'overwrite') expect(await tryWrite(t, caps, 0, Buffer.alloc(MiB, 0))).toBe('ok');
      const tail = Buffer.alloc(1000, 7);
      expect(await tryWrite(t, caps, MiB + 500_000, tail)).toBe('ok');
      const expected = Buffer.concat([Buffer.alloc(MiB + 500_000), tail]);
      failWalSyncs(1);
      failSetBlocks(1);
      expect(await tryWrite(t, caps, 0, Buffer.alloc(MiB, 0x33))).not.toBe('ok');
      vi.restoreAllMocks();
      const before = await t.client.load(caps.read, 0, expected.length).then(
        (b) => Buffer.from(b).equals(expected),
        (e: Error) => e.message,
      );
      const port = t.port;
      open = false;
      await t.close();
      t = await startDepot({ port, resource: [{ ...resource, startupCheck: 'full' as const }] });
      open = true;
      const after = await t.client.load(caps.read, 0, expected.length).then(
        (b) => Buffer.from(b).equals(expected),
        (e: Error) => e.message,
      );
      expect(before).toBe(true);
      expect(after).toBe(true);
    });
  }
});

describe('disk: an allocation deleted while a WRITE turns its holes into zero blocks', () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('leaves no block rows of the deleted allocation behind', async () => {
    let armed = false;
    let hit: () => void = () => undefined;
    const hitP = new Promise<void>((r) => (hit = r));
    let release: () => void = () => undefined;
    const releaseP = new Promise<void>((r) => (release = r));
    const io: DiskIo = {
      open: async (path: string, flags: number): Promise<FileHandle> => {
        const fh = await open(path, flags, 0o600);
        if (!/^\d+$/.test(basename(path))) return fh;
        return new Proxy(fh, {
          get(target, prop, receiver) {
            if (prop === 'datasync')
              return async () => {
                if (armed) {
                  armed = false;
                  hit();
                  await releaseP;
                }
                return target.datasync();
              };
            const v = Reflect.get(target, prop, receiver) as unknown;
            return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
          },
        });
      },
    };
    const dir = tempDir();
    cleanups.push(dir.cleanup);
    const resource = [{ rid: '1', path: dir.path, capacityBytes: '64MiB', fsync: 'safe' as const, trashGraceSec: 0 }];
    const t = await startDepot({ resource }, undefined, { diskIo: io });
    let up = true;
    cleanups.push(() => (up ? t.close() : undefined));
    const caps = await t.client.allocate(t, { size: 1 << 20, durationSec: 600 });
    expect(await tryWrite(t, caps, 5 * BLOCK + 100, Buffer.alloc(1000, 7))).toBe('ok'); // blocks 0..4 holes
    armed = true;
    const s = await RawSession.open(t.port);
    cleanups.push(() => s.socket.destroy());
    // A WRITE across hole block 4 and written block 5: the hole becomes a zero block first (zeros,
    // datasync, then its row), then the WRITE goes through the journal.
    s.send(formatWrite({ version: 1, cap: caps.write as Capability, offset: 5 * BLOCK - 50, length: 100, timeoutSec: 60 }));
    s.send(Buffer.alloc(100, 0x44));
    await hitP; // held in the zero blocks' datasync
    await t.client.decr(caps.manage, 'read'); // deleted now
    release();
    await s.line().catch(() => undefined);
    await s.line().catch(() => undefined);
    await new Promise((r) => setTimeout(r, 200));
    up = false;
    await t.close();
    const db = new Database(join(dir.path, 'anvil.sqlite'), { readonly: true });
    const allocs = db.prepare('SELECT id, state FROM allocations').all();
    const rows = db.prepare('SELECT alloc_id, idx, crc FROM blocks').all();
    db.close();
    expect(allocs).toEqual([]);
    expect(rows).toEqual([]);
  });
});

describe('disk BUFFER: a crash while a STORE over holes waits for its commit', () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    vi.restoreAllMocks();
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('after a restart the buffer is its old or its new self, never the new size with zeros', async () => {
    const dir = tempDir();
    cleanups.push(dir.cleanup);
    const copy = tempDir();
    cleanups.push(copy.cleanup);
    const res = { rid: '1', capacityBytes: '64MiB', fsync: 'safe' as const };
    const t: TestDepot = await startDepot({ resource: [{ ...res, path: dir.path }] });
    cleanups.push(() => t.close());
    const s = await RawSession.open(t.port);
    cleanups.push(() => s.socket.destroy());
    s.send(`1 1 1 2 2 600 ${512 * 1024} 10\n`);
    const [, r, w, m] = (await s.line()).trim().split(' ');
    // WRITE 1000 bytes at 3 blocks: blocks 0..2 are holes.
    s.send(Buffer.concat([Buffer.from(`1 13 ${keyOf(w!)} ${3 * BLOCK} 1000 10\n`), Buffer.alloc(1000, 7)]));
    expect(await s.line()).toBe('1 \n');
    expect(await s.line()).toBe('1 1000 \n');
    s.send(`1 9 ${keyOf(m!)} 40 3 0 0 0 10 \n`);
    expect(await s.line()).toMatch(/^1 /);
    // The next commit hangs (the process "crashes" while it waits).
    let fail!: (e: Error) => void;
    const real = DiskResource.prototype.commitWrite;
    let armed = true;
    vi.spyOn(DiskResource.prototype, 'commitWrite').mockImplementation(function (this: DiskResource, ...args) {
      if (!armed) return real.apply(this, args);
      armed = false;
      return new Promise<void>((_, rej) => (fail = rej));
    });
    // STORE 2 blocks (at 0: whole hole blocks, below the physical size).
    s.send(Buffer.concat([Buffer.from(`1 2 ${keyOf(w!)} ${2 * BLOCK} 10\n`), Buffer.alloc(2 * BLOCK, 0x5a)]));
    expect(await s.line()).toBe('1 \n');
    for (let i = 0; i < 100 && armed; i++) await new Promise((res2) => setTimeout(res2, 20));
    expect(armed).toBe(false);
    await cp(dir.path, copy.path, { recursive: true }); // the crash image
    fail(new Error('injected'));
    await s.line().catch(() => undefined);
    vi.restoreAllMocks();

    const t2 = await startDepot({ resource: [{ ...res, path: copy.path, startupCheck: 'full' as const }] });
    cleanups.push(() => t2.close());
    const s2 = await RawSession.open(t2.port);
    cleanups.push(() => s2.socket.destroy());
    s2.send(`1 9 ${keyOf(m!)} 40 3 0 0 0 10 \n`);
    const p = await s2.line();
    s2.send(`1 8 ${keyOf(r!)} 0 ${2 * BLOCK} 10\n`);
    const head = (await s2.line()).trim().split(' ');
    const body = head[0] === '1' ? await s2.bytes(Number(head[1])) : Buffer.alloc(0);
    const written = Number(p.split(' ')[3]);
    if (written === 2 * BLOCK) expect(body.every((x) => x === 0x5a)).toBe(true);
    else expect(written).toBe(3 * BLOCK + 1000);
  });
});
