import { execFileSync } from 'node:child_process';
import { closeSync, openSync, statfsSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { DiskResource } from '../../depot/resources/disk/disk-resource.js';
import { startDepot, type TestDepot } from '../helpers/depot-fixture.js';
import { canMountTmpfs } from '../helpers/filesystems.js';
import { tempDir } from '../helpers/temp-dir.js';

const MiB = 1024 * 1024;

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

describe('warm files and a filesystem that runs short', () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  for (const fsync of ['fast', 'safe'] as const) {
    it.runIf(canMountTmpfs())(
      `warm files and the unused tails of files that started warm take no room; a STORE that does not fit is refused and the next that fits is taken (${fsync})`,
      async () => {
        const d = tempDir();
        cleanups.push(d.cleanup);
        execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=96m', 'tmpfs', d.path]);
        cleanups.push(() => execFileSync('umount', ['-l', d.path]));
        const t = await startDepot({
          resource: [{ rid: '1', path: d.path, capacityBytes: '1GiB', fsync, warmBytes: '32MiB', trashGraceSec: 0 }],
        });
        cleanups.push(() => t.close());
        const disk = diskOf(t);
        const before = freeBytes(d.path);
        // Twelve leases of 16 MiB each store 1000 bytes; the pool warms meanwhile.
        const leases = [];
        for (let i = 0; i < 12; i++) {
          const a = await t.client.allocate(t, { size: 16 * MiB, durationSec: 60 });
          await t.client.store(a.write, Buffer.alloc(1000, i + 1));
          await disk.warmed();
          leases.push(a);
        }
        expect(disk.warmStats.taken).toBeGreaterThan(0);
        expect(before - freeBytes(d.path)).toBeLessThan(4 * MiB);
        // Something else fills the filesystem to 6 MiB free.
        fillUntil(join(d.path, 'blocker'), d.path, 6 * MiB);
        const big = await t.client.allocate(t, { size: 16 * MiB, durationSec: 60 });
        await expect(t.client.store(big.write, Buffer.alloc(10 * MiB, 9))).rejects.toMatchObject({ status: -23 });
        expect((await t.client.probe(big.manage)).size).toBe(0);
        const fits = Buffer.alloc(3 * MiB, 8);
        expect(await t.client.store(big.write, fits)).toBe(fits.length);
        expect(Buffer.from(await t.client.load(big.read, 0, fits.length)).equals(fits)).toBe(true);
        for (const [i, a] of leases.entries()) {
          expect(Buffer.from(await t.client.load(a.read, 0, 1000)).equals(Buffer.alloc(1000, i + 1))).toBe(true);
        }
      },
      60_000,
    );
  }
});
