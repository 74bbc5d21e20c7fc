import { beforeEach, describe, expect, it } from 'vitest';
import { MemoryData, SEGMENT_BYTES, segmentPool } from '../../depot/resources/memory-data.js';

/** An allocation as memory data sees it; `size` is what the core has committed. */
function owner(maxSize: number): { size: number; maxSize: number } {
  return { size: 0, maxSize };
}

async function store(d: MemoryData, o: { size: number }, offset: number, bytes: Buffer): Promise<void> {
  const w = await d.openWriter(offset, bytes.length);
  // In pieces, as a socket delivers them.
  for (let at = 0; at < bytes.length; at += 65536) await w.write(bytes.subarray(at, Math.min(at + 65536, bytes.length)));
  await w.finish(Math.max(o.size, offset + bytes.length));
  o.size = Math.max(o.size, offset + bytes.length);
}

async function readAll(d: MemoryData, offset: number, length: number): Promise<{ all: Buffer; chunks: Buffer[] }> {
  const chunks: Buffer[] = [];
  await d.read(offset, length, (c) => {
    chunks.push(c);
  });
  return { all: Buffer.concat(chunks), chunks };
}

/** Fills the pool with segments full of `byte`. */
async function dirtyPool(byte: number, segments: number): Promise<void> {
  const o = owner(segments * SEGMENT_BYTES);
  const d = new MemoryData(o);
  await store(d, o, 0, Buffer.alloc(segments * SEGMENT_BYTES, byte));
  await d.release();
}

describe('memory data in pooled segments', () => {
  beforeEach(() => segmentPool.clear());

  it('reuses the segments of a deleted allocation', async () => {
    await dirtyPool(0xaa, 2);
    expect(segmentPool.idleBytes).toBe(2 * SEGMENT_BYTES);
    const o = owner(2 * SEGMENT_BYTES);
    const d = new MemoryData(o);
    await store(d, o, 0, Buffer.alloc(16, 1));
    expect(segmentPool.idleBytes).toBe(SEGMENT_BYTES);
    expect(d.residentBytes).toBe(SEGMENT_BYTES);
  });

  it('a hole before a write into a reused segment reads as zeros', async () => {
    await dirtyPool(0xaa, 3);
    const o = owner(3 * SEGMENT_BYTES);
    const d = new MemoryData(o);
    const at = SEGMENT_BYTES + 12345;
    await store(d, o, at, Buffer.alloc(100, 7));
    const { all } = await readAll(d, 0, at + 100);
    expect(all.subarray(0, at).every((b) => b === 0)).toBe(true);
    expect(all.subarray(at).every((b) => b === 7)).toBe(true);
  });

  it('growing past the end of a reused segment shows zeros, not old bytes', async () => {
    await dirtyPool(0xaa, 1);
    const o = owner(2 * SEGMENT_BYTES);
    const d = new MemoryData(o);
    await store(d, o, 0, Buffer.alloc(10, 1));
    await store(d, o, 1000, Buffer.alloc(1, 2)); // grows within the same segment
    const { all } = await readAll(d, 0, 1001);
    expect(all.subarray(10, 1000).every((b) => b === 0)).toBe(true);
  });

  it('an aborted write into a reused segment leaves zeros past the committed size', async () => {
    await dirtyPool(0xaa, 1);
    const o = owner(2 * SEGMENT_BYTES);
    const d = new MemoryData(o);
    const w = await d.openWriter(0, 100_000);
    await w.write(Buffer.alloc(500, 3));
    await w.abort();
    await store(d, o, 99_999, Buffer.alloc(1, 9));
    const { all } = await readAll(d, 0, 100_000);
    expect(all.subarray(0, 99_999).every((b) => b === 0)).toBe(true);
  });

  it('what a read handed out does not change when its segments are reused', async () => {
    const o = owner(SEGMENT_BYTES);
    const d = new MemoryData(o);
    await store(d, o, 0, Buffer.alloc(SEGMENT_BYTES, 0x11));
    const { chunks } = await readAll(d, 0, SEGMENT_BYTES);
    await d.release();
    expect(segmentPool.idleBytes).toBe(0);
    const o2 = owner(SEGMENT_BYTES);
    const d2 = new MemoryData(o2);
    await store(d2, o2, 0, Buffer.alloc(SEGMENT_BYTES, 0x22));
    expect(chunks.every((c) => c.every((b) => b === 0x11))).toBe(true);
  });

  it('a writer that outlives its allocation writes nothing into reused segments', async () => {
    const o = owner(SEGMENT_BYTES);
    const d = new MemoryData(o);
    const w = await d.openWriter(0, SEGMENT_BYTES);
    await w.write(Buffer.alloc(1000, 1));
    await d.release(); // deleted during the transfer
    const o2 = owner(SEGMENT_BYTES);
    const d2 = new MemoryData(o2);
    await store(d2, o2, 0, Buffer.alloc(SEGMENT_BYTES, 0x22));
    await w.write(Buffer.alloc(SEGMENT_BYTES - 1000, 0x33));
    const { all } = await readAll(d2, 0, SEGMENT_BYTES);
    expect(all.every((b) => b === 0x22)).toBe(true);
  });

  it('TRUNCATE returns whole segments past the new max size and zeroes past the new size', async () => {
    const o = owner(3 * SEGMENT_BYTES);
    const d = new MemoryData(o);
    await store(d, o, 0, Buffer.alloc(3 * SEGMENT_BYTES, 5));
    await d.truncate(100, SEGMENT_BYTES + 1);
    o.size = 100;
    o.maxSize = SEGMENT_BYTES + 1;
    expect(d.residentBytes).toBe(2 * SEGMENT_BYTES);
    expect(segmentPool.idleBytes).toBe(SEGMENT_BYTES);
    await store(d, o, SEGMENT_BYTES, Buffer.alloc(1, 6));
    const { all } = await readAll(d, 0, SEGMENT_BYTES + 1);
    expect(all.subarray(0, 100).every((b) => b === 5)).toBe(true);
    expect(all.subarray(100, SEGMENT_BYTES).every((b) => b === 0)).toBe(true);
  });

  it('a read past what remains after a TRUNCATE fails', async () => {
    const o = owner(2 * SEGMENT_BYTES);
    const d = new MemoryData(o);
    await store(d, o, 0, Buffer.alloc(2 * SEGMENT_BYTES, 5));
    let n = 0;
    await expect(
      d.read(0, 2 * SEGMENT_BYTES, async () => {
        if (n++ === 0) {
          o.size = 10;
          await d.truncate(10, 10);
        }
      }),
    ).rejects.toMatchObject({ code: 'DEPOT_ERR_WOULD_EXCEED_LIMIT' });
  });
});

describe('a chunk a LOAD holds does not change under an overwrite', () => {
  beforeEach(() => segmentPool.clear());

  // A socket that cannot take a reply at once keeps the chunk queued; a WRITE acknowledged
  // meanwhile must not reach into it (the reply would mix old and new bytes).
  for (const [what, maxSize] of [
    ['a small allocation (one buffer)', 256 * 1024],
    ['an allocation in segments', 2 * SEGMENT_BYTES],
  ] as const) {
    it(`${what}: the chunk keeps the bytes of its time, later reads see the write`, async () => {
      const o = owner(maxSize);
      const d = new MemoryData(o);
      await store(d, o, 0, Buffer.alloc(maxSize, 0x11));
      let held: Buffer | undefined;
      let letGo!: () => void;
      const sinkDone = new Promise<void>((r) => (letGo = r));
      let firstChunk = true;
      const reading = d.read(
        0,
        maxSize,
        (chunk) => {
          if (!firstChunk) return;
          firstChunk = false;
          held = chunk;
          return sinkDone;
        },
        { sinkReleases: true },
      );
      await new Promise((r) => setImmediate(r));
      expect(held).toBeDefined();
      // The overwrite lands while the sink still holds its view.
      await store(d, o, 0, Buffer.alloc(4096, 0x22));
      expect(held!.subarray(0, 4096).every((b) => b === 0x11)).toBe(true);
      letGo();
      await reading;
      const { all } = await readAll(d, 0, 4096);
      expect(all.every((b) => b === 0x22)).toBe(true);
    });
  }
});
