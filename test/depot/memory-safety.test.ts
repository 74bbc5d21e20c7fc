import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDepot, type TestDepot } from '../helpers/depot-fixture.js';

describe('no unwritten or stale bytes ever leave the depot', () => {
  let t: TestDepot;
  beforeAll(async () => {
    t = await startDepot({ resource: [{ rid: '1', capacityBytes: 1 << 20 }] });
  });
  afterAll(async () => t.close());

  it('a hole left by WRITE past the end reads as zeros', async () => {
    const c = await t.client.allocate(t, { size: 4096, durationSec: 60 });
    await t.client.write(c.write, 4000, Buffer.alloc(10, 0xab));
    const all = await t.client.load(c.read, 0, 4010);
    expect(all.subarray(0, 4000).every((b) => b === 0)).toBe(true);
    expect(all.subarray(4000).every((b) => b === 0xab)).toBe(true);
  });

  it('bytes cut by TRUNCATE do not come back when the allocation grows again', async () => {
    const c = await t.client.allocate(t, { size: 1000, durationSec: 60 });
    await t.client.store(c.write, Buffer.alloc(1000, 0xee));
    await t.client.truncate(c.manage, 10);
    await t.client.change(c.manage, { maxSize: 1000, durationSec: -1 });
    await t.client.write(c.write, 999, Buffer.from([1]));
    const all = await t.client.load(c.read, 0, 1000);
    expect([...all.subarray(0, 10)].every((b) => b === 0xee)).toBe(true);
    expect([...all.subarray(10, 999)].every((b) => b === 0)).toBe(true);
  });

  it('memory of a deleted allocation is not visible to the next one', async () => {
    for (let i = 0; i < 5; i++) {
      const c = await t.client.allocate(t, { size: 1 << 16, durationSec: 60 });
      await t.client.write(c.write, (1 << 16) - 1, Buffer.from([7]));
      const all = await t.client.load(c.read, 0, 1 << 16);
      expect(all.subarray(0, (1 << 16) - 1).every((b) => b === 0)).toBe(true);
      await t.client.write(c.write, 0, Buffer.alloc((1 << 16) - 1, 0x55));
      await t.client.decr(c.manage, 'read');
    }
  });
});
