import { beforeEach, describe, expect, it } from 'vitest';
import { MemoryData, SEGMENT_BYTES, segmentPool } from '../../depot/resources/memory-data.js';
import type { DirectTarget } from '../../ibp/index.js';
import type { RangeWriter } from '../../depot/core/allocation.js';
import { pattern } from '../helpers/patterns.js';

/** A memory writer into segments: it also offers spans. */
type SpanWriter = RangeWriter & DirectTarget;

async function readAll(d: MemoryData, offset: number, length: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  await d.read(offset, length, (c) => void parts.push(Buffer.from(c)), { sinkReleases: true });
  return Buffer.concat(parts);
}

/** A large allocation holding `size` bytes of `fill` in its first segment. */
async function filled(size: number, fill: number): Promise<{ d: MemoryData; owner: { size: number; maxSize: number } }> {
  const owner = { size: 0, maxSize: 2 * SEGMENT_BYTES };
  const d = new MemoryData(owner);
  const w = await d.openWriter(0, size);
  w.write(Buffer.alloc(size, fill));
  await w.finish(size);
  owner.size = size;
  return { d, owner };
}

/**
 * A WRITE below a memory allocation's size is read straight into its segment (a span): a DELETE,
 * a short read or an abort meanwhile leave the allocation and the pool as a write through copies would.
 */
describe('memory spans below the size', () => {
  beforeEach(() => segmentPool.clear());

  it('a DELETE while a span below the size is out: the segment is pooled only once the read lands, nothing stays pinned', async () => {
    const { d } = await filled(4096, 1);
    const w = (await d.openWriter(0, 4096)) as SpanWriter;
    const span = w.span(4096)!;
    await d.release();
    const other = { size: 0, maxSize: 2 * SEGMENT_BYTES };
    const d2 = new MemoryData(other);
    const w2 = await d2.openWriter(0, 10);
    w2.write(Buffer.alloc(10, 7));
    await w2.finish(10);
    other.size = 10;
    span.fill(0xee);
    w.landed(4096);
    expect((await readAll(d2, 0, 10)).equals(Buffer.alloc(10, 7))).toBe(true);
    expect(segmentPool.pinnedCount).toBe(0);
    expect(w.span(10)).toBeUndefined(); // the rest of the body is dropped
  });

  it('a hole segment from the pool, filled partly in place and partly by write, reads back zeros around the write', async () => {
    const gone = new MemoryData({ size: 0, maxSize: 2 * SEGMENT_BYTES });
    const g = await gone.openWriter(0, 2 * SEGMENT_BYTES);
    g.write(Buffer.alloc(2 * SEGMENT_BYTES, 0xee));
    await g.finish(2 * SEGMENT_BYTES);
    await gone.release();
    const owner = { size: 0, maxSize: 2 * SEGMENT_BYTES };
    const d = new MemoryData(owner);
    const far = await d.openWriter(SEGMENT_BYTES + 10, 10);
    far.write(pattern(10, 1));
    await far.finish(10);
    owner.size = SEGMENT_BYTES + 20;
    const w = (await d.openWriter(1000, 3000)) as SpanWriter;
    w.span(3000)!.set(pattern(100, 2));
    w.landed(100); // a short read
    w.span(2900);
    w.cancel(); // bytes were queued meanwhile: they come through write
    w.write(pattern(2900, 3));
    await w.finish(3000);
    const want = Buffer.alloc(owner.size);
    pattern(100, 2).copy(want, 1000);
    pattern(2900, 3).copy(want, 1100);
    pattern(10, 1).copy(want, SEGMENT_BYTES + 10);
    expect((await readAll(d, 0, owner.size)).equals(want)).toBe(true);
  });

  it('a WRITE across the size into an attached segment, aborted: an earlier pin keeps its bytes, zeros past the size', async () => {
    const { d, owner } = await filled(4096, 1);
    const pinned = d.pin(0, 4096);
    const w = (await d.openWriter(2048, 4096)) as SpanWriter;
    w.span(4096)!.fill(9);
    w.landed(4096);
    await w.abort();
    expect(Buffer.from(pinned.pieces[0]!.bytes).equals(Buffer.alloc(4096, 1))).toBe(true);
    pinned.release();
    owner.size = 8192;
    const want = Buffer.alloc(8192);
    want.fill(1, 0, 2048);
    want.fill(9, 2048, 4096);
    expect((await readAll(d, 0, 8192)).equals(want)).toBe(true);
    expect(segmentPool.pinnedCount).toBe(0);
  });
});
