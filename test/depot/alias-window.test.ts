import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { formatCapability } from '../../ibp/index.js';
import { directReadStats } from '../../depot/server/direct-socket.js';
import { MemoryData, SEGMENT_BYTES } from '../../depot/resources/memory-data.js';
import { DepotError, DepotErrorCode } from '../../depot/errors.js';
import { RawSession, keyOf, startDepot, type TestDepot } from '../helpers/depot-fixture.js';

const MiB = 1 << 20;

describe('an alias window ends where its master does, after a TRUNCATE too', () => {
  let t: TestDepot | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('on a disk resource too: a STORE past the truncated master gets no go-ahead, a WRITE up to its end does', async () => {
    dir = await mkdtemp(join(tmpdir(), 'anvil-alias-window-'));
    t = await startDepot({ resource: [{ rid: '1', capacityBytes: '64MiB', path: dir }] });
    const addr = { host: t.host, port: t.port };
    const m = await t.client.allocate(addr, { size: 16 * MiB, durationSec: 600 });
    const al = await t.client.aliasAllocate(m.manage, { offset: 4 * MiB, length: 12 * MiB });
    await t.client.truncate(m.manage, 5 * MiB);
    const s = await RawSession.open(t.port);
    s.send(`1 2 ${keyOf(formatCapability(al.write))} ${MiB + 1} 30\n`);
    // Refused at once (would exceed the limit), not after the body has been read.
    expect(await s.line()).toMatch(/^-\d+ /);
    s.end();
    await t.client.write(al.write, MiB - 3, Buffer.from('end'));
    expect((await t.client.probe(m.manage)).size).toBe(5 * MiB);
  });

  it('a STORE through an alias past the truncated master is refused before its body, and attaches nothing', async () => {
    t = await startDepot({ resource: [{ rid: '1', kind: 'memory', capacityBytes: '64MiB' }] });
    const addr = { host: t.host, port: t.port };
    const m = await t.client.allocate(addr, { size: 16 * MiB, durationSec: 600 });
    const al = await t.client.aliasAllocate(m.manage, { offset: 4 * MiB, length: 12 * MiB });
    await t.client.truncate(m.manage, 5 * MiB);
    const landed0 = directReadStats.landedBytes;
    const copied0 = directReadStats.copiedBytes;
    await expect(t.client.store(al.write, Buffer.alloc(12 * MiB, 0x66))).rejects.toThrow();
    expect(directReadStats.landedBytes - landed0 + directReadStats.copiedBytes - copied0).toBe(0);
    const byId = (t.depot.core as unknown as { byId: Map<number, { data: { residentBytes: number } }> }).byId;
    for (const a of byId.values()) expect(a.data.residentBytes).toBeLessThanOrEqual(5 * MiB + SEGMENT_BYTES);
    // The alias shows the window that is left; within it a STORE still works.
    await t.client.store(al.write, Buffer.alloc(MiB, 0x11));
    expect((await t.client.probe(m.manage)).size).toBe(5 * MiB);
    expect((await t.client.load(al.read, 0, MiB)).equals(Buffer.alloc(MiB, 0x11))).toBe(true);
  });

  it('memory data refuses a writer that would pass the max size of its allocation', async () => {
    const d = new MemoryData({ size: 0, maxSize: 5 * MiB });
    const e = await d.openWriter(4 * MiB, 2 * MiB).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(DepotError);
    expect((e as DepotError).code).toBe(DepotErrorCode.WOULD_EXCEED_LIMIT);
    expect(d.residentBytes).toBe(0);
  });
});
