import { afterEach, describe, expect, it } from 'vitest';
import { loadNativeKernels } from '../../depot/nfu/native-loader.js';
import { MemoryData, SEGMENT_BYTES, segmentPool } from '../../depot/resources/memory-data.js';
import { RawSession, keyOf, rawAllocate, startDepot, type TestDepot } from '../helpers/depot-fixture.js';

const native = loadNativeKernels().native as { populate?: (bytes: Uint8Array) => boolean } | undefined;
const populate = native?.populate;

describe('new memory segments are faulted in by one call where the system can', () => {
  it.skipIf(populate === undefined)('populate faults pages in without changing a byte, shared or not', () => {
    for (const bytes of [
      new Uint8Array(new SharedArrayBuffer(3 * 4096 + 123)),
      Buffer.alloc(5 * 4096 + 7),
      Buffer.from(new SharedArrayBuffer(SEGMENT_BYTES)),
    ]) {
      for (let i = 0; i < bytes.length; i += 997) bytes[i] = (i * 7) & 0xff;
      const before = Buffer.from(bytes);
      const ok = populate!(bytes);
      expect(typeof ok).toBe('boolean');
      expect(Buffer.from(bytes).equals(before)).toBe(true);
    }
    // A range holding no whole page is left alone.
    expect(populate!(new Uint8Array(new SharedArrayBuffer(100)))).toBe(false);
  });

  it.skipIf(populate === undefined)('populate refuses what is not a Uint8Array', () => {
    expect(() => populate!(new Float64Array(8) as unknown as Uint8Array)).toThrow(/Uint8Array/);
    expect(() => populate!({} as Uint8Array)).toThrow(/Uint8Array/);
  });

  it('a fresh segment from the pool is zeros, and takes and keeps what is written', async () => {
    segmentPool.clear();
    const { buf, fresh } = segmentPool.take();
    expect(fresh).toBe(true);
    expect(buf.length).toBe(SEGMENT_BYTES);
    expect(buf.every((x) => x === 0)).toBe(true);
    const owner = { size: 0, maxSize: 2 * SEGMENT_BYTES };
    const d = new MemoryData(owner);
    const w = await d.openWriter(0, SEGMENT_BYTES + 10);
    const body = Buffer.alloc(SEGMENT_BYTES + 10, 0x5a);
    await w.write(body);
    await w.finish(body.length);
    owner.size = body.length;
    const got: Buffer[] = [];
    await d.read(0, body.length, (c) => void got.push(Buffer.from(c)));
    expect(Buffer.concat(got).equals(body)).toBe(true);
  });
});

describe('segments are attached as a writer reaches them, not when it opens', () => {
  it('opening a writer for 256 MiB attaches nothing; each segment comes when the bytes reach it', async () => {
    const owner = { size: 0, maxSize: 256 * 1024 * 1024 };
    const d = new MemoryData(owner);
    const w = (await d.openWriter(0, owner.maxSize)) as Awaited<ReturnType<MemoryData['openWriter']>> & {
      span(max: number): Uint8Array | undefined;
      landed(n: number): void;
    };
    expect(d.residentBytes).toBe(0);
    w.write(Buffer.alloc(100, 1));
    expect(d.residentBytes).toBe(SEGMENT_BYTES);
    w.write(Buffer.alloc(SEGMENT_BYTES, 2)); // crosses into the second segment
    expect(d.residentBytes).toBe(2 * SEGMENT_BYTES);
    const span = w.span(1 << 30)!;
    expect(span.length).toBe(SEGMENT_BYTES - 100);
    expect(d.residentBytes).toBe(2 * SEGMENT_BYTES);
    w.landed(span.length);
    w.span(10)!.fill(3);
    expect(d.residentBytes).toBe(3 * SEGMENT_BYTES);
    w.landed(10);
    await w.abort();
  });

  it('an aborted or deleted writer attaches nothing more; a TRUNCATE below the range stops it there', async () => {
    const owner = { size: 0, maxSize: 8 * SEGMENT_BYTES };
    const d = new MemoryData(owner);
    const w = await d.openWriter(0, 8 * SEGMENT_BYTES);
    w.write(Buffer.alloc(10, 1));
    owner.maxSize = 2 * SEGMENT_BYTES;
    await d.truncate(0, owner.maxSize);
    // Past the new max size the bytes are dropped: no segment is attached for them.
    w.write(Buffer.alloc(4 * SEGMENT_BYTES, 1));
    expect(d.residentBytes).toBe(2 * SEGMENT_BYTES);
    await d.release();
    w.write(Buffer.alloc(SEGMENT_BYTES, 1));
    expect(d.residentBytes).toBe(0);
  });
});

describe('a depot commits memory for a STORE as its body arrives', () => {
  let t: TestDepot | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it('a 512 MiB STORE announced and left unsent holds at most one segment; its bytes attach the next', async () => {
    t = await startDepot({ resource: [{ rid: '1', kind: 'memory', capacityBytes: '1GiB' }] });
    const s = await RawSession.open(t.port);
    const [, write] = await rawAllocate(s, 512 * 1024 * 1024);
    const byId = (t.depot.core as unknown as { byId: Map<number, { data: { residentBytes: number } }> }).byId;
    const resident = (): number => [...byId.values()].reduce((n, a) => n + a.data.residentBytes, 0);
    s.send(`1 2 ${keyOf(write)} ${512 * 1024 * 1024} 30\n`);
    expect(await s.line()).toBe('1 \n');
    // The go-ahead is given: the writer is open, with at most the segment its first bytes go to.
    expect(resident()).toBeLessThanOrEqual(SEGMENT_BYTES);
    s.send(Buffer.alloc(SEGMENT_BYTES + 1, 7));
    for (let i = 0; i < 400 && resident() < 2 * SEGMENT_BYTES; i++) await new Promise((r) => setTimeout(r, 5));
    expect(resident()).toBe(2 * SEGMENT_BYTES);
    s.socket.destroy();
  });
});
