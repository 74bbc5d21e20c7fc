import { appendFileSync, existsSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { VirtualClock, type DepotOptionsInput } from '../../depot/index.js';
import { endRecord, recordHeader } from '../../depot/resources/disk/redo-journal.js';
import { RawSession, keyOf, startDepot, type TestDepot } from '../helpers/depot-fixture.js';
import { tempDir } from '../helpers/temp-dir.js';

const fileOf = (dir: string, id: number) => join(dir, 'data', (id % 256).toString(16).padStart(2, '0'), String(id));

describe('disk resources', () => {
  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  /** Caps name host:port, so a restarted depot must come back on the port it had. */
  const ports = new Map<string, number>();
  async function disk(
    dir: string,
    clock: VirtualClock,
    extra: Record<string, unknown> = {},
    input: DepotOptionsInput = {},
  ): Promise<TestDepot> {
    const t = await startDepot(
      { port: ports.get(dir) ?? 0, resource: [{ rid: '1', path: dir, capacityBytes: '64MiB', ...extra }], ...input },
      clock,
    );
    ports.set(dir, t.port);
    cleanups.push(() => t.close());
    return t;
  }
  function temp() {
    const d = tempDir();
    cleanups.push(d.cleanup);
    return d.path;
  }

  it('keeps data, caps, refcounts and leases across a restart; the lease keeps running while down', async () => {
    const dir = temp();
    const clock = new VirtualClock();
    let t = await disk(dir, clock);
    const a = await t.client.allocate(t, { size: 300_000, durationSec: 100 });
    const b = await t.client.allocate(t, { size: 1000, durationSec: 20 });
    const data = Buffer.alloc(200_000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
    await t.client.store(a.write, data);
    await t.client.write(a.write, 250_000, Buffer.from('tail'));
    await t.client.incr(a.manage, 'write');
    await t.client.change(a.manage, { maxSize: 400_000, durationSec: 90, reliability: 1 });
    await t.close();
    cleanups.pop();

    clock.advance(30_000);
    t = await disk(dir, clock);
    const back = await t.client.load(a.read, 0, 200_000);
    expect(back.equals(data)).toBe(true);
    expect((await t.client.load(a.read, 250_000, 4)).toString()).toBe('tail');
    expect((await t.client.load(a.read, 200_000, 50_000)).every((x) => x === 0)).toBe(true);
    expect(await t.client.probe(a.manage)).toEqual({
      readRefs: 1,
      writeRefs: 1,
      size: 250_004,
      maxSize: 400_000,
      secondsLeft: 60,
      reliability: 1,
      type: 1,
    });
    await expect(t.client.probe(b.manage)).rejects.toMatchObject({ status: -4 }); // expired while the depot was down
    // new allocations never reuse an id (the WRM token) of a restored one
    const c = await t.client.allocate(t, { size: 10, durationSec: 10 });
    expect(Number(c.read.wrmKey)).toBeGreaterThan(Number(a.read.wrmKey));
    const inq = await t.client.status(t);
    expect(inq.resources[0]).toMatchObject({ resourceType: 1, usedBytes: 400_010 + 1000 }); // b sits in the trash
  });

  /**
   * A depot on `dir` that acknowledged 100 000 bytes to an allocation, stopped; its file then cut to
   * 70 000 bytes, so that the next start-up finds it half-written and marks it damaged.
   */
  async function halfWritten(dir: string, clock: VirtualClock) {
    const t = await disk(dir, clock);
    const a = await t.client.allocate(t, { size: 100_000, durationSec: 100 });
    await t.client.store(a.write, Buffer.alloc(100_000, 1));
    await t.close();
    cleanups.pop();
    const file = fileOf(dir, Number(a.read.wrmKey));
    truncateSync(file, 70_000);
    return { a, file };
  }

  it('a half-written file found at start-up marks its allocation damaged: loads fail, never serve bytes', async () => {
    const dir = temp();
    const clock = new VirtualClock();
    const { a } = await halfWritten(dir, clock);
    const t = await disk(dir, clock);
    await expect(t.client.load(a.read, 0, 10)).rejects.toMatchObject({ code: 'IBP_E_FILE_READ', status: -15 });
    await expect(t.client.write(a.write, 0, Buffer.from('x'))).rejects.toMatchObject({ status: -16 });
    expect((await t.client.probe(a.manage)).size).toBe(100_000);
    await t.client.decr(a.manage, 'read'); // a damaged allocation can still be deleted
  });

  it("start-up's sweep of stray files spares the redo journal of a known allocation (a damaged one keeps it for a later start-up)", async () => {
    const dir = temp();
    const clock = new VirtualClock();
    const { a, file } = await halfWritten(dir, clock);
    const payload = Buffer.from('x');
    writeFileSync(`${file}.redo`, Buffer.concat([recordHeader(9, 0, [payload]), payload]));
    writeFileSync(`${file}.stray`, 'left by nobody');
    for (let start = 0; start < 2; start++) {
      const t = await disk(dir, clock);
      await expect(t.client.load(a.read, 0, 10)).rejects.toMatchObject({ status: -15 });
      expect(existsSync(`${file}.redo`)).toBe(true);
      expect(existsSync(`${file}.stray`)).toBe(false);
      await t.close();
      cleanups.pop();
    }
  });

  it('a corrupted block is found at start-up (full check) and on load (size check)', async () => {
    for (const startupCheck of ['full', 'size'] as const) {
      const dir = temp();
      const clock = new VirtualClock();
      let t = await disk(dir, clock, { startupCheck });
      const a = await t.client.allocate(t, { size: 300_000, durationSec: 100 });
      await t.client.store(a.write, Buffer.alloc(300_000, 9));
      await t.close();
      cleanups.pop();
      const file = fileOf(dir, Number(a.read.wrmKey));
      const bytes = readFileSync(file);
      bytes[150_000] ^= 0xff; // in block 2
      writeFileSync(file, bytes);
      t = await disk(dir, clock, { startupCheck });
      if (startupCheck === 'size') {
        // blocks not touched by the damage still read fine until the bad one is hit
        expect((await t.client.load(a.read, 0, 1000)).every((x) => x === 9)).toBe(true);
        await expect(t.client.load(a.read, 140_000, 20_000)).rejects.toMatchObject({ code: 'CLIENT_ERR_CONNECTION' });
      }
      await expect(t.client.load(a.read, 0, 10)).rejects.toMatchObject({ status: -15 });
    }
  });

  it('bytes past the committed size (a torn append) are cut at start-up', async () => {
    const dir = temp();
    const clock = new VirtualClock();
    let t = await disk(dir, clock);
    const a = await t.client.allocate(t, { size: 1000, durationSec: 100 });
    await t.client.store(a.write, Buffer.from('committed'));
    await t.close();
    cleanups.pop();
    const file = fileOf(dir, Number(a.read.wrmKey));
    appendFileSync(file, 'torn bytes that were never acknowledged');
    t = await disk(dir, clock);
    expect(statSync(file).size).toBe(9);
    await t.client.store(a.write, Buffer.from('+more'));
    expect((await t.client.load(a.read, 0, 14)).toString()).toBe('committed+more');
  });

  it('an overwrite goes through a redo journal that is emptied once it commits; a stale journal is never re-applied', async () => {
    const dir = temp();
    const clock = new VirtualClock();
    let t = await disk(dir, clock);
    const a = await t.client.allocate(t, { size: 300_000, durationSec: 100 });
    await t.client.store(a.write, Buffer.alloc(300_000, 1));
    await t.client.write(a.write, 100_000, Buffer.alloc(100_000, 2)); // journaled: inside the data
    const file = fileOf(dir, Number(a.read.wrmKey));
    expect(statSync(`${file}.redo`).size).toBe(0);
    // a later write changes the range again; then a journal of the first one shows up (a crash
    // before its removal reached the disk): its write is recorded as done, so it must be ignored
    await t.client.write(a.write, 100_000, Buffer.alloc(100_000, 3));
    await t.close();
    cleanups.pop();
    const payload = Buffer.alloc(100_000, 2);
    writeFileSync(`${file}.redo`, Buffer.concat([recordHeader(1, 100_000, [payload]), payload, endRecord(1)]));
    t = await disk(dir, clock);
    expect(existsSync(`${file}.redo`)).toBe(false);
    const back = await t.client.load(a.read, 0, 300_000);
    expect(back.subarray(0, 100_000).every((x) => x === 1)).toBe(true);
    expect(back.subarray(100_000, 200_000).every((x) => x === 3)).toBe(true);
    expect(back.subarray(200_000).every((x) => x === 1)).toBe(true);
  });

  it('an overwrite cut off mid-body changes nothing: the committed bytes stay, before and after a restart', async () => {
    const dir = temp();
    const clock = new VirtualClock();
    let t = await disk(dir, clock);
    const a = await t.client.allocate(t, { size: 3_000_000, durationSec: 100 });
    const data = Buffer.alloc(3_000_000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 13) & 0xff;
    await t.client.store(a.write, data);
    const s = await RawSession.open(t.port);
    s.send(`1 13 ${keyOf(capString(a.write))} 50000 2500000 10\n`);
    s.send(Buffer.alloc(1_500_000, 0xab)); // then the client goes away
    await new Promise((r) => setTimeout(r, 200));
    s.end();
    await s.closed;
    expect((await t.client.load(a.read, 0, 3_000_000)).equals(data)).toBe(true);
    await t.close();
    cleanups.pop();
    t = await disk(dir, clock);
    expect((await t.client.load(a.read, 0, 3_000_000)).equals(data)).toBe(true);
  });

  it('deleted and expired allocations wait in the trash for the grace period, counted in capacity, across restarts', async () => {
    const dir = temp();
    const clock = new VirtualClock();
    let t = await disk(dir, clock, { trashGraceSec: 60 });
    const a = await t.client.allocate(t, { size: 5000, durationSec: 100 });
    await t.client.store(a.write, Buffer.alloc(5000, 3));
    const file = fileOf(dir, Number(a.read.wrmKey));
    await t.client.decr(a.manage, 'read');
    await expect(t.client.load(a.read, 0, 1)).rejects.toMatchObject({ status: -4 });
    expect(existsSync(file)).toBe(true);
    expect((await t.client.status(t)).resources[0]!.usedBytes).toBe(5000);
    await t.close();
    cleanups.pop();
    clock.advance(59_000);
    t = await disk(dir, clock, { trashGraceSec: 60 });
    expect(existsSync(file)).toBe(true);
    expect(t.depot.core.trashCount).toBe(1);
    clock.advance(1_000);
    expect((await t.client.status(t)).resources[0]!.usedBytes).toBe(0); // the status call sweeps
    await new Promise((r) => setTimeout(r, 50));
    expect(existsSync(file)).toBe(false);
  });

  it('with trashGraceSec = 0 bytes are freed at once', async () => {
    const dir = temp();
    const t = await disk(dir, new VirtualClock(), { trashGraceSec: 0 });
    const a = await t.client.allocate(t, { size: 10, durationSec: 100 });
    await t.client.store(a.write, Buffer.from('x'));
    await t.client.decr(a.manage, 'read');
    await new Promise((r) => setTimeout(r, 50));
    expect(existsSync(fileOf(dir, Number(a.read.wrmKey)))).toBe(false);
  });

  it('refuses a data directory in use by another depot, or holding another resource id', async () => {
    const dir = temp();
    await disk(dir, new VirtualClock());
    await expect(startDepot({ resource: [{ rid: '1', path: dir }] })).rejects.toMatchObject({
      code: 'DEPOT_ERR_RESOURCE_UNAVAILABLE',
    });
    const other = temp();
    const t = await disk(other, new VirtualClock());
    await t.close();
    cleanups.pop();
    await expect(startDepot({ resource: [{ rid: '2', path: other }] })).rejects.toMatchObject({
      code: 'DEPOT_ERR_CONFIG',
      message: 'invalid config: data directory holds resource 1, but it is configured as resource 2',
    });
  });

  it('serves memory and disk resources side by side', async () => {
    const dir = temp();
    const t = await startDepot({
      resource: [
        { rid: '1', kind: 'memory', capacityBytes: 1000 },
        { rid: '2', path: dir },
      ],
    });
    cleanups.push(() => t.close());
    const m = await t.client.allocate(t, { size: 1000, durationSec: 10, rid: '1' });
    const d = await t.client.allocate(t, { size: 1000, durationSec: 10, rid: '0' }); // memory is full: goes to disk
    expect([m.read.rid, d.read.rid]).toEqual(['1', '2']);
    const inq = await t.client.status(t);
    expect(inq.resources.map((r) => [r.rid, r.resourceType])).toEqual([
      ['1', 2],
      ['2', 1],
    ]);
  });
});

function capString(cap: { host: string; port: number; rid: string; key: string; wrmKey: string; type: 1 | 2 | 3 }): string {
  return `ibp://${cap.host}:${cap.port}/${cap.rid}#${cap.key}/${cap.wrmKey}/${['', 'READ', 'WRITE', 'MANAGE'][cap.type]}`;
}
