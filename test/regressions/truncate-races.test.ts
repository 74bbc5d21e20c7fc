import { afterEach, describe, expect, it } from 'vitest';
import { VirtualClock } from '../../depot/index.js';
import { RawSession, keyOf, rawAllocate, startDepot, type TestDepot } from '../helpers/depot-fixture.js';
import { tempDir } from '../helpers/temp-dir.js';

/**
 * TRUNCATE racing other commands: a transfer reading the range it cuts, a write holding the lock while
 * the lease runs out, and the memory it must give back. Each once was a defect.
 */
describe('TRUNCATE racing transfers, writes and lease expiry', () => {
  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  async function depot(input: Parameters<typeof startDepot>[0], clock?: VirtualClock): Promise<TestDepot> {
    const t = await startDepot(input, clock);
    cleanups.push(() => t.close());
    return t;
  }
  async function raw(t: TestDepot): Promise<RawSession> {
    const s = await RawSession.open(t.port);
    cleanups.push(() => s.end());
    return s;
  }

  it('a transfer whose source was truncated while it waited answers -19 instead of hanging the depot', async () => {
    const d = tempDir();
    cleanups.push(d.cleanup);
    const t = await depot({ resource: [{ rid: '1', path: d.path, capacityBytes: '64MiB' }] });
    const s = await raw(t);
    const [srcR, srcW, srcM] = await rawAllocate(s, 1 << 20);
    const [, dstW] = await rawAllocate(s, 1 << 20);
    s.send(`1 2 ${keyOf(srcW)} 100000 10\n`);
    s.send(Buffer.alloc(100000, 7));
    await s.line();
    await s.line();
    const slow = await raw(t); // holds the destination's write lock
    slow.send(`1 2 ${keyOf(dstW)} 1000 10\n`);
    expect(await slow.line()).toBe('1 \n');
    slow.send(Buffer.alloc(10));
    const push = await raw(t); // checks the source range, then waits for the destination's lock
    push.send(`1 20 1 ${keyOf(srcR).split(' ')[0]} ${dstW} ${keyOf(srcR).split(' ')[1]} 0 -1 100000\n`);
    await new Promise((r) => setTimeout(r, 150));
    s.send(`1 9 ${keyOf(srcM)} 45 50000 10\n`);
    expect(await s.line()).toBe('1 \n');
    slow.send(Buffer.alloc(990));
    expect(await slow.line()).toBe('1 1000 \n');
    expect(await push.line(5_000)).toBe('-19 \n');
    s.send('1 4 3 10\n'); // the event loop is alive
    expect(await s.line()).toBe('1 1 \n');
  });

  it('TRUNCATE on a memory resource gives the RAM back', async () => {
    const t = await depot({ resource: [{ rid: '1', capacityBytes: '16MiB' }] });
    for (let i = 0; i < 4; i++) {
      const a = await t.client.allocate(t, { size: 8 << 20, durationSec: 60 });
      await t.client.store(a.write, Buffer.alloc(8 << 20, 1));
      await t.client.truncate(a.manage, 1);
      expect((await t.client.load(a.read, 0, 1))[0]).toBe(1);
    }
    const resident = [
      ...(t.depot.core as unknown as { byId: Map<number, { data: { residentBytes: number } }> }).byId.values(),
    ].reduce((sum, a) => sum + a.data.residentBytes, 0);
    expect(resident).toBeLessThanOrEqual(4);
    expect((await t.client.status(t)).resources[0]!.usedBytes).toBe(4);
  });

  it('a TRUNCATE that waited while the lease ran out answers -4 and leaves no reservation behind', async () => {
    const clock = new VirtualClock();
    const t = await depot({ resource: [{ rid: '1', capacityBytes: '16MiB' }] }, clock);
    const s = await raw(t);
    const [, w, m] = await rawAllocate(s, 1000, 10);
    const slow = await raw(t);
    slow.send(`1 2 ${keyOf(w)} 10 10\n`);
    expect(await slow.line()).toBe('1 \n');
    s.send(`1 9 ${keyOf(m)} 45 1000000 10\n`); // waits for the STORE's lock
    await new Promise((r) => setTimeout(r, 50));
    clock.advance(11_000);
    slow.send(Buffer.alloc(10));
    expect(await slow.line()).toBe('1 10 \n'); // the STORE was under way before the lease ended
    expect(await s.line()).toBe('-4 \n');
    expect((await t.client.status(t)).resources[0]!.usedBytes).toBe(0);
  });
});
