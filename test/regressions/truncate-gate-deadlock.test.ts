import { afterEach, describe, expect, it } from 'vitest';
import { formatWrite, type Capability } from '../../ibp/index.js';
import { RawSession, startDepot, type TestDepot } from '../helpers/depot-fixture.js';
import { tempDir } from '../helpers/temp-dir.js';

const KiB = 1024;

describe('TRUNCATE queued between two overwrites', () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('the overwrite queued behind the TRUNCATE is answered (the gate is not held across it)', async () => {
    const d = tempDir();
    cleanups.push(d.cleanup);
    const t: TestDepot = await startDepot({ resource: [{ rid: '1', path: d.path, fsync: 'fast' }] });
    cleanups.push(() => t.close());
    const a = await t.client.allocate(t, { size: 1024 * KiB, durationSec: 60 });
    await t.client.store(a.write, Buffer.alloc(1024 * KiB, 1));
    const open = async () => {
      const s = await RawSession.open(t.port);
      cleanups.push(() => s.end());
      return s;
    };
    const w1 = await open();
    w1.send(formatWrite({ version: 1, cap: a.write as Capability, offset: 0, length: 256 * KiB, timeoutSec: 10 }));
    expect(await w1.line()).toBe('1 \n');
    w1.send(Buffer.alloc(1000, 2)); // holds the write lock
    const note = (e: unknown) => ({ failed: String((e as Error).message) });
    const tr = t.client.truncate(a.manage, 900_000).then(() => 'ok', note); // waits for the lock
    await new Promise((r) => setTimeout(r, 100));
    const w2 = t.client.write(a.write, 64 * KiB, Buffer.alloc(128 * KiB, 3)).then((n) => n, note);
    await new Promise((r) => setTimeout(r, 100));
    w1.send(Buffer.alloc(256 * KiB - 1000, 2));
    expect(await w1.line()).toBe(`1 ${256 * KiB} \n`);
    expect(await tr).toBe('ok');
    expect(await w2).toBe(128 * KiB);
    const got = Buffer.from(await t.client.load(a.read, 64 * KiB, 10));
    expect(got[0]).toBe(3);
  }, 30_000);
});
