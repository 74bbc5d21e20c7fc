import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SpaceReserve } from '../../depot/resources/disk/space-reserve.js';
import { canMountTmpfs } from '../helpers/filesystems.js';
import { tempDir } from '../helpers/temp-dir.js';

describe('SpaceReserve on a full filesystem', () => {
  const cleanups: (() => void)[] = [];
  afterEach(() => {
    for (const c of cleanups.splice(0).reverse()) c();
  });

  it.runIf(canMountTmpfs())('asks `onShort` to free room when it cannot be made whole, and is whole again if it did', () => {
    const d = tempDir();
    cleanups.push(d.cleanup);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', d.path]);
    cleanups.push(() => execFileSync('umount', ['-l', d.path]));
    const reserve = SpaceReserve.open(d.path, join(d.path, 'reserve'));
    expect(reserve.ensure()).toBe(true);
    expect(reserve.release()).toBe(true);
    // Fill the filesystem to the last byte.
    const blocker = join(d.path, 'blocker');
    try {
      writeFileSync(blocker, Buffer.alloc(2 * 1024 * 1024, 1));
    } catch {
      // full: what fitted stays
    }
    expect(reserve.ensure()).toBe(false);
    let asked = 0;
    reserve.onShort = () => {
      asked++;
      rmSync(blocker);
      return true;
    };
    expect(reserve.ensure()).toBe(true);
    expect(asked).toBe(1);
    expect(reserve.whole).toBe(true);
  });
});
