import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startDepot, type TestDepot } from '../helpers/depot-fixture.js';
import { tempDir } from '../helpers/temp-dir.js';

function canLoopMount(): boolean {
  if (process.getuid?.() !== 0) return false;
  const d = tempDir();
  try {
    const img = join(d.path, 'img');
    execFileSync('truncate', ['-s', '8M', img]);
    execFileSync('mkfs.ext4', ['-q', '-F', img], { stdio: 'ignore' });
    mkdirSync(join(d.path, 'm'));
    execFileSync('mount', ['-o', 'loop', img, join(d.path, 'm')], { stdio: 'ignore' });
    execFileSync('umount', [join(d.path, 'm')], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    d.cleanup();
  }
}

/** Fills the filesystem of `dir` to the last block. */
function fillUp(dir: string): void {
  const fd = openSync(join(dir, 'filler'), 'w');
  const chunk = Buffer.alloc(4096, 0xee);
  try {
    for (let i = 0; i < 1 << 20; i++) writeSync(fd, chunk);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    closeSync(fd);
  }
}

describe('a disk resource on a full filesystem starts (ext4)', () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  for (const warmBytes of [0, '16MiB'] as const) {
    it.runIf(canLoopMount())(
      `and serves its data (warmBytes = ${warmBytes})`,
      async () => {
        const d = tempDir();
        cleanups.push(d.cleanup);
        const img = join(d.path, 'img');
        const mnt = join(d.path, 'm');
        execFileSync('truncate', ['-s', '48M', img]);
        execFileSync('mkfs.ext4', ['-q', '-F', img], { stdio: 'ignore' });
        mkdirSync(mnt);
        execFileSync('mount', ['-o', 'loop', img, mnt]);
        cleanups.push(() => execFileSync('umount', ['-l', mnt]));
        const dir = join(mnt, 'depot');
        const opts = { rid: '1', path: dir, capacityBytes: '32MiB', fsync: 'fast', warmBytes, trashGraceSec: 0 } as const;
        let t: TestDepot = await startDepot({ resource: [opts] });
        const a = await t.client.allocate(t, { size: 2 * 1024 * 1024, durationSec: 600 });
        const body = Buffer.alloc(100_000, 0x5a);
        await t.client.store(a.write, body);
        const port = t.port;
        await t.close();
        // Bounded wait for whatever the close left running.
        for (let i = 0; i < 100 && existsSync(join(dir, 'pool')); i++) await new Promise((r) => setTimeout(r, 10));
        fillUp(mnt);
        let started = 'ok';
        try {
          t = await startDepot({ port, resource: [opts] });
        } catch (e) {
          started = (e as Error).message;
        }
        expect(started).toBe('ok');
        cleanups.push(() => t.close());
        expect(Buffer.from(await t.client.load(a.read, 0, body.length)).equals(body)).toBe(true);
        rmSync(join(mnt, 'filler'), { force: true });
      },
      60_000,
    );
  }
});
