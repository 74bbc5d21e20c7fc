import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { DiskResource } from '../../depot/resources/disk/disk-resource.js';
import type { WarmPool } from '../../depot/resources/disk/warm-pool.js';
import { startDepot, type TestDepot } from '../helpers/depot-fixture.js';
import { tempDir } from '../helpers/temp-dir.js';

const MiB = 1024 * 1024;

function diskOf(t: TestDepot): DiskResource {
  const core = t.depot.core as unknown as { resources: Map<string, { store: DiskResource }> };
  return core.resources.get('1')!.store;
}

describe('closing a depot leaves no warm files and no warming thread behind', () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('once depot.close() resolves, pool/ is gone and the warming thread is stopped (fsync = safe)', async () => {
    const d = tempDir();
    cleanups.push(d.cleanup);
    const t = await startDepot({
      resource: [{ rid: '1', path: d.path, capacityBytes: '256MiB', fsync: 'safe', warmBytes: '32MiB' }],
    });
    const disk = diskOf(t);
    const a = await t.client.allocate(t, { size: 16 * MiB, durationSec: 60 });
    await t.client.store(a.write, Buffer.alloc(1000, 7));
    await disk.warmed();
    expect((await readdir(join(d.path, 'pool'))).length).toBeGreaterThan(0);
    const pool = (disk as unknown as { warm: WarmPool }).warm;
    const worker = (pool as unknown as { worker?: { threadId: number } }).worker;
    expect(worker).toBeDefined();
    await t.close();
    // Nothing of the pool may outlive a clean close: a process that exits right after it leaves
    // warmBytes of written zeros on the disk until the next start-up.
    const left = await readdir(join(d.path, 'pool')).catch(() => [] as string[]);
    expect(left).toEqual([]);
    expect((worker as unknown as { threadId: number }).threadId).toBe(-1); // a terminated worker's id is -1
  });
});
