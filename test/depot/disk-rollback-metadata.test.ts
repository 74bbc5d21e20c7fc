import { afterEach, describe, expect, it, vi } from 'vitest';
import { startDepot, type TestDepot } from '../helpers/depot-fixture.js';
import { loadAll, allOf, tryStore, tryWrite } from '../helpers/load-checks.js';
import { failSetBlocks, failWalSyncs } from '../helpers/metadata-faults.js';
import { tempDir } from '../helpers/temp-dir.js';

const OLD = 1;
const NEW = 2;

describe('disk: a refused overwrite whose undo the metadata store fails to record', () => {
  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    vi.restoreAllMocks();
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  /** A `safe` depot on a fresh directory; `restart` reopens the same directory (full start-up check). */
  async function depot() {
    const dir = tempDir();
    cleanups.push(dir.cleanup);
    const resource = [{ rid: '1', path: dir.path, capacityBytes: '64MiB', fsync: 'safe' as const }];
    const t = await startDepot({ resource });
    let isOpen = true;
    cleanups.push(() => (isOpen ? t.close() : undefined));
    return {
      t,
      async restart(): Promise<TestDepot> {
        isOpen = false;
        await t.close();
        const t2 = await startDepot({ port: t.port, resource: [{ ...resource[0]!, startupCheck: 'full' as const }] });
        cleanups.push(() => t2.close());
        return t2;
      },
    };
  }

  /**
   * {@link depot} with an allocation holding 200 000 acknowledged bytes, then the next WAL sync and
   * the next `setBlocks` failures (the write's commit, then as many attempts to record its undo).
   */
  async function failingCommits(setBlocksFailures: number) {
    const { t, restart } = await depot();
    const caps = await t.client.allocate(t, { size: 1 << 20, durationSec: 600 });
    await t.client.store(caps.write, Buffer.alloc(200_000, OLD));
    failWalSyncs(1);
    failSetBlocks(setBlocksFailures);
    return { t, restart, caps };
  }

  it('a later acknowledged append records the undo first: every acknowledged byte loads after a restart', async () => {
    const { t, restart, caps } = await failingCommits(1);
    expect(await tryWrite(t, caps, 100, Buffer.alloc(150_000, NEW))).not.toBe('ok');
    expect(allOf(await loadAll(t, caps, 200_000), OLD, 200_000)).toBe(true);
    vi.restoreAllMocks();
    await t.client.store(caps.write, Buffer.alloc(10, OLD));
    expect(allOf(await loadAll(t, caps, 200_010), OLD, 200_010)).toBe(true);
    const t2 = await restart();
    expect((await t2.client.probe(caps.manage)).size).toBe(200_010);
    expect(allOf(await loadAll(t2, caps, 200_010), OLD, 200_010)).toBe(true);
  });

  it('a later acknowledged overwrite elsewhere records the undo first: every acknowledged byte loads after a restart', async () => {
    const { t, restart, caps } = await failingCommits(1);
    expect(await tryWrite(t, caps, 100, Buffer.alloc(50_000, NEW))).not.toBe('ok');
    vi.restoreAllMocks();
    // Its own journal would replace the one that holds the refused write's rollback.
    expect(await tryWrite(t, caps, 150_000, Buffer.alloc(10, OLD))).toBe('ok');
    expect(allOf(await loadAll(t, caps, 200_000), OLD, 200_000)).toBe(true);
    const t2 = await restart();
    expect(allOf(await loadAll(t2, caps, 200_000), OLD, 200_000)).toBe(true);
  });

  it('a later write is refused while the undo still cannot be recorded, and taken once it can', async () => {
    const { t, restart, caps } = await failingCommits(2);
    expect(await tryWrite(t, caps, 100, Buffer.alloc(50_000, NEW))).not.toBe('ok');
    // The undo is tried again first, and fails again: this write changes nothing.
    expect(await tryWrite(t, caps, 150_000, Buffer.alloc(10, NEW))).not.toBe('ok');
    expect(allOf(await loadAll(t, caps, 200_000), OLD, 200_000)).toBe(true);
    expect(await tryWrite(t, caps, 150_000, Buffer.alloc(10, OLD))).toBe('ok');
    expect((await t.client.probe(caps.manage)).size).toBe(200_000);
    const t2 = await restart();
    expect(allOf(await loadAll(t2, caps, 200_000), OLD, 200_000)).toBe(true);
  });

  it('an overwrite that grows the allocation: the acknowledged size and bytes stay, before and after a restart', async () => {
    const { t, restart, caps } = await failingCommits(1);
    expect(await tryWrite(t, caps, 150_000, Buffer.alloc(100_000, NEW))).not.toBe('ok');
    expect((await t.client.probe(caps.manage)).size).toBe(200_000);
    expect(allOf(await loadAll(t, caps, 200_000), OLD, 200_000)).toBe(true);
    vi.restoreAllMocks();
    const t2 = await restart();
    expect((await t2.client.probe(caps.manage)).size).toBe(200_000);
    expect(allOf(await loadAll(t2, caps, 200_000), OLD, 200_000)).toBe(true);
  });

  it('a refused append whose undo cannot be recorded either: the acknowledged size and bytes stay after a restart', async () => {
    const { t, restart, caps } = await failingCommits(1);
    expect(await tryStore(t, caps, Buffer.alloc(100_000, NEW))).not.toBe('ok');
    expect((await t.client.probe(caps.manage)).size).toBe(200_000);
    expect(allOf(await loadAll(t, caps, 200_000), OLD, 200_000)).toBe(true);
    vi.restoreAllMocks();
    // No later write records the undo: the store still holds the refused append when the depot stops.
    const t2 = await restart();
    expect((await t2.client.probe(caps.manage)).size).toBe(200_000);
    expect(allOf(await loadAll(t2, caps, 200_000), OLD, 200_000)).toBe(true);
    await t2.client.store(caps.write, Buffer.alloc(10, OLD));
    expect(allOf(await loadAll(t2, caps, 200_010), OLD, 200_010)).toBe(true);
  });

  it('a refused append of an allocation of unaligned size: the acknowledged size and bytes stay after a restart', async () => {
    const { t, restart } = await depot();
    const caps = await t.client.allocate(t, { size: 1 << 20, durationSec: 600 });
    await t.client.store(caps.write, Buffer.alloc(200_000, OLD));
    failWalSyncs(1);
    expect(await tryStore(t, caps, Buffer.alloc(100_000, NEW))).not.toBe('ok');
    expect((await t.client.probe(caps.manage)).size).toBe(200_000);
    vi.restoreAllMocks();
    const t2 = await restart();
    expect((await t2.client.probe(caps.manage)).size).toBe(200_000);
    expect(allOf(await loadAll(t2, caps, 200_000), OLD, 200_000)).toBe(true);
  });
});
