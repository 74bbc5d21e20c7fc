import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readdirSync, statfsSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { DiskResource } from '../../depot/resources/disk/disk-resource.js';
import { startDepot, type TestDepot } from '../helpers/depot-fixture.js';
import { tempDir } from '../helpers/temp-dir.js';

const MiB = 1024 * 1024;

function canMountTmpfs(): boolean {
  if (process.getuid?.() !== 0) return false;
  const d = tempDir();
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', d.path], { stdio: 'ignore' });
    execFileSync('umount', [d.path], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    d.cleanup();
  }
}

function diskOf(t: TestDepot): DiskResource {
  const core = t.depot.core as unknown as { resources: Map<string, { store: DiskResource }> };
  return core.resources.get('1')!.store;
}

function freeBytes(dir: string): number {
  const fs = statfsSync(dir);
  return fs.bavail * fs.bsize;
}

/** Fills the filesystem of `dir` until `leave` bytes are free (a file of ones). */
function fillUntil(file: string, dir: string, leave: number): void {
  const chunk = Buffer.alloc(MiB, 1);
  const fd = openSync(file, 'w');
  try {
    for (let i = 0; i < 1024 && freeBytes(dir) - MiB >= leave; i++) writeSync(fd, chunk);
  } finally {
    closeSync(fd);
  }
}

describe('written warm files (fsync = safe) and a filesystem that runs short', () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it.runIf(canMountTmpfs())(
    'a STORE refused for lack of room while the pool holds written zeros: the pool is shed and the retry fits',
    async () => {
      const d = tempDir();
      cleanups.push(d.cleanup);
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=96m', 'tmpfs', d.path]);
      cleanups.push(() => execFileSync('umount', ['-l', d.path]));
      const t = await startDepot({
        resource: [{ rid: '1', path: d.path, capacityBytes: '64MiB', fsync: 'safe', warmBytes: '16MiB', trashGraceSec: 0 }],
      });
      cleanups.push(() => t.close());
      const disk = diskOf(t);
      const a = await t.client.allocate(t, { size: 16 * MiB, durationSec: 60 });
      await t.client.store(a.write, Buffer.alloc(1000, 3));
      await disk.warmed();
      // One written warm file of 16 MiB now holds 16 MiB of the filesystem.
      expect(readdirSync(join(d.path, 'pool'))).toHaveLength(1);
      expect(disk.warmStats.readyBytes).toBe(16 * MiB);
      // Something else (other allocations, another tenant of the disk) fills it to 6 MiB free.
      fillUntil(join(d.path, 'blocker'), d.path, 6 * MiB);
      const body = Buffer.alloc(10 * MiB, 5);
      // The data of a lease within its granted size needs 10 MiB; 16 MiB of them hold zeros
      // nobody owns. Whether the first attempt is refused or not, the depot must not keep
      // refusing data while it holds warm files it could shed.
      const first = await t.client.store(a.write, body).then(
        () => 'ok',
        (e: unknown) => String((e as { status?: number }).status),
      );
      const second =
        first === 'ok'
          ? 'ok'
          : await t.client.store(a.write, body).then(
              () => 'ok',
              (e: unknown) => String((e as { status?: number }).status),
            );
      expect({ first, second, poolReadyBytes: disk.warmStats.readyBytes }).toMatchObject({ second: 'ok', poolReadyBytes: 0 });
    },
    30_000,
  );
  it.runIf(canMountTmpfs())(
    'the unused tails of files that started warm (written zeros) are never given back: a filesystem of zeros refuses data',
    async () => {
      const d = tempDir();
      cleanups.push(d.cleanup);
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256m', 'tmpfs', d.path]);
      cleanups.push(() => execFileSync('umount', ['-l', d.path]));
      // Capacity counts granted max sizes; like many depots it is larger than the filesystem,
      // since leases seldom fill what they ask for.
      const t = await startDepot({
        resource: [{ rid: '1', path: d.path, capacityBytes: '2GiB', fsync: 'safe', warmBytes: '32MiB', trashGraceSec: 0 }],
      });
      cleanups.push(() => t.close());
      const disk = diskOf(t);
      const before = freeBytes(d.path);
      // Twelve leases of 32 MiB each store 1000 bytes: 12 000 bytes of data.
      for (let i = 0; i < 12; i++) {
        const a = await t.client.allocate(t, { size: 32 * MiB, durationSec: 60 });
        await t.client.store(a.write, Buffer.alloc(1000, i + 1));
        await disk.warmed();
      }
      // A lease that then stores 100 MiB of real data (the filesystem had room for it before): the
      // write that runs out of room frees the idle tails and the pool, and goes on.
      const big = await t.client.allocate(t, { size: 100 * MiB, durationSec: 60 });
      const result = await t.client.store(big.write, Buffer.alloc(100 * MiB, 9)).then(
        () => 'ok',
        (e: unknown) => String((e as { status?: number }).status),
      );
      expect(result).toBe('ok');
      // What is left of the warm files' zeros once the resource reclaims them: nothing but data.
      disk.reclaim();
      const used = before - freeBytes(d.path);
      expect(used).toBeLessThan(100 * MiB + 8 * MiB);
    },
    60_000,
  );
});
