import { afterEach, describe, expect, it } from 'vitest';
import { formatCapability } from '../../ibp/index.js';
import { RawSession, keyOf, startDepot } from '../helpers/depot-fixture.js';
import { tempDir } from '../helpers/temp-dir.js';

/**
 * A LOAD of a disk allocation while an in-place WRITE of the same range is streaming: the bytes can
 * reach the file before their block checksums are recorded, which once made the LOAD see a checksum
 * mismatch and mark a healthy allocation damaged.
 */
describe('a LOAD during an in-place WRITE on a disk resource', () => {
  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('a LOAD racing an in-place WRITE never marks a healthy disk allocation damaged', async () => {
    const d = tempDir();
    cleanups.push(d.cleanup);
    const t = await startDepot({ resource: [{ rid: '1', path: d.path, capacityBytes: '64MiB' }] });
    cleanups.push(() => t.close());
    const a = await t.client.allocate(t, { size: 4 << 20, durationSec: 60 });
    await t.client.store(a.write, Buffer.alloc(2 << 20, 9));
    const w = await RawSession.open(t.port);
    cleanups.push(() => w.end());
    w.send(`1 13 ${keyOf(formatCapability(a.write))} 0 ${2 << 20} 10\n`);
    expect(await w.line()).toBe('1 \n');
    w.send(Buffer.alloc(1536 * 1024, 3)); // bytes reach the file before their checksums are recorded
    await new Promise((r) => setTimeout(r, 100));
    const loading = t.client.load(a.read, 0, 65536);
    await new Promise((r) => setTimeout(r, 100));
    w.send(Buffer.alloc(512 * 1024, 3));
    expect(await w.line()).toBe(`1 ${2 << 20} \n`);
    const first = await loading;
    expect(first.every((x) => x === 3)).toBe(true); // it waited for the write, then verified
    expect((await t.client.load(a.read, 0, 16)).every((x) => x === 3)).toBe(true);
  });
});
