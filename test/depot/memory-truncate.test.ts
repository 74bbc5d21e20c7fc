import { beforeEach, describe, expect, it } from 'vitest';
import { MemoryData, SEGMENT_BYTES, segmentPool } from '../../depot/resources/memory-data.js';

async function store(d: MemoryData, o: { size: number }, offset: number, bytes: Buffer): Promise<void> {
  const w = await d.openWriter(offset, bytes.length);
  for (let at = 0; at < bytes.length; at += 65536) await w.write(bytes.subarray(at, Math.min(at + 65536, bytes.length)));
  await w.finish(Math.max(o.size, offset + bytes.length));
  o.size = Math.max(o.size, offset + bytes.length);
}

async function readAll(d: MemoryData, offset: number, length: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await d.read(offset, length, (c) => {
    chunks.push(Buffer.from(c));
  });
  return Buffer.concat(chunks);
}

describe('TRUNCATE of segmented memory data below one segment', () => {
  beforeEach(() => segmentPool.clear());

  it('keeps the bytes in one buffer of their length and gives every segment back', async () => {
    const o = { size: 0, maxSize: 3 * SEGMENT_BYTES };
    const d = new MemoryData(o);
    const bytes = Buffer.alloc(3 * SEGMENT_BYTES);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7) & 0xff;
    await store(d, o, 0, bytes);
    await d.truncate(1000, 5000);
    o.size = 1000;
    o.maxSize = 5000;
    expect(d.residentBytes).toBe(1000);
    expect(segmentPool.idleBytes).toBe(3 * SEGMENT_BYTES);
    expect((await readAll(d, 0, 1000)).equals(bytes.subarray(0, 1000))).toBe(true);
    await expect(readAll(d, 0, 1001)).rejects.toMatchObject({ code: 'DEPOT_ERR_WOULD_EXCEED_LIMIT' });
  });

  it('grows again as a small allocation: a hole reads as zeros and nothing of the pool shows', async () => {
    const o = { size: 0, maxSize: 2 * SEGMENT_BYTES };
    const d = new MemoryData(o);
    await store(d, o, 0, Buffer.alloc(2 * SEGMENT_BYTES, 0xaa));
    await d.truncate(10, 4096);
    o.size = 10;
    o.maxSize = 4096;
    await store(d, o, 3000, Buffer.alloc(1000, 0xbb));
    const all = await readAll(d, 0, 4000);
    expect(all.subarray(0, 10).every((x) => x === 0xaa)).toBe(true);
    expect(all.subarray(10, 3000).every((x) => x === 0)).toBe(true);
    expect(all.subarray(3000).every((x) => x === 0xbb)).toBe(true);
    expect(d.residentBytes).toBeLessThanOrEqual(4096);
  });

  it('a writer opened before the TRUNCATE writes nothing into the segments it gave back', async () => {
    const o = { size: 0, maxSize: 2 * SEGMENT_BYTES };
    const d = new MemoryData(o);
    await store(d, o, 0, Buffer.alloc(SEGMENT_BYTES, 1));
    const w = await d.openWriter(SEGMENT_BYTES, 100);
    await d.truncate(5, 5);
    // Another allocation takes both segments back from the pool before the old writer goes on.
    const o2 = { size: 0, maxSize: 2 * SEGMENT_BYTES };
    const d2 = new MemoryData(o2);
    await store(d2, o2, 0, Buffer.alloc(2 * SEGMENT_BYTES, 2));
    expect(segmentPool.idleBytes).toBe(0);
    await w.write(Buffer.alloc(100, 9));
    expect((await readAll(d2, 0, 2 * SEGMENT_BYTES)).every((x) => x === 2)).toBe(true);
  });
});

describe('a segment writer aborted after a TRUNCATE below one segment', () => {
  beforeEach(() => segmentPool.clear());

  it('aborts cleanly and leaves the small allocation as the TRUNCATE left it', async () => {
    const o = { size: 0, maxSize: 3 * SEGMENT_BYTES };
    const d = new MemoryData(o);
    await store(d, o, 0, Buffer.alloc(1000, 0x11));
    const w = await d.openWriter(1000, SEGMENT_BYTES);
    await w.write(Buffer.alloc(4096, 0x22));
    await d.truncate(1000, 5000);
    o.maxSize = 5000;
    await expect(w.abort()).resolves.toBeUndefined();
    expect((await readAll(d, 0, 1000)).equals(Buffer.alloc(1000, 0x11))).toBe(true);
  });
});
