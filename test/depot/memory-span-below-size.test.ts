import { beforeEach, describe, expect, it } from 'vitest';
import { MemoryData, SEGMENT_BYTES, segmentPool } from '../../depot/resources/memory-data.js';
import type { DirectTarget } from '../../ibp/index.js';
import type { RangeWriter } from '../../depot/core/allocation.js';
import { filledMemory } from '../helpers/memory-data.js';
import { pattern } from '../helpers/patterns.js';

/** A memory writer into segments: it also offers spans. */
type SpanWriter = RangeWriter & DirectTarget;

async function readAll(d: MemoryData, offset: number, length: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  await d.read(offset, length, (c) => void parts.push(Buffer.from(c)), { sinkReleases: true });
  return Buffer.concat(parts);
}

/** A sink that holds each chunk (as a socket queues a reply behind a slow reader) until `let`. */
function held(): { hold(c: Buffer): Promise<void>; bytes(): Buffer; let(): void } {
  const chunks: Buffer[] = [];
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  return {
    hold: (c) => {
      chunks.push(c);
      return gate;
    },
    bytes: () => Buffer.concat(chunks),
    let: () => open(),
  };
}

/**
 * What a LOAD (its reply held behind a slow socket) and an NFU pin of `[0, n)`, both taken now, still
 * hold once `act` has run; both are let go before this resolves.
 */
async function keptAcross(d: MemoryData, n: number, act: () => Promise<void>): Promise<{ load: Buffer; pin: Buffer }> {
  const slow = held();
  const load = d.read(0, n, (c) => slow.hold(c), { sinkReleases: true });
  const pinned = d.pin(0, n);
  try {
    await act();
    return { load: slow.bytes(), pin: Buffer.from(pinned.pieces[0]!.bytes) };
  } finally {
    slow.let();
    await load;
    pinned.release();
  }
}

/**
 * A WRITE below a memory allocation's size is read straight into its segment (a span): a DELETE,
 * a short read or an abort meanwhile leave the allocation and the pool as a write through copies would.
 */
describe('memory spans below the size', () => {
  beforeEach(() => segmentPool.clear());

  it('a reader that comes while a span is out gets the bytes of its moment, not a view the read may change', async () => {
    const { d } = await filledMemory(4096, 1);
    const w = (await d.openWriter(0, 4096)) as SpanWriter;
    const span = w.span(4096)!;
    const kept = await keptAcross(d, 4096, async () => {
      span.fill(2); // the socket read lands
      w.landed(4096);
      await w.finish(4096);
    });
    expect(kept.load.equals(Buffer.alloc(4096, 1))).toBe(true);
    expect(kept.pin.equals(Buffer.alloc(4096, 1))).toBe(true);
    expect((await readAll(d, 0, 4096)).equals(Buffer.alloc(4096, 2))).toBe(true);
    expect(segmentPool.pinnedCount).toBe(0);
  });

  it('a TRUNCATE while a span is out: readers of the segment that replaced it keep their bytes when the read lands', async () => {
    const { d, owner } = await filledMemory(8192, 1);
    const w = (await d.openWriter(0, 8192)) as SpanWriter;
    const span = w.span(8192)!;
    // The span's pin makes the TRUNCATE's zeroing copy the segment: readers now find the copy.
    await d.truncate(4096, 2 * SEGMENT_BYTES);
    owner.size = 4096;
    const kept = await keptAcross(d, 4096, async () => {
      span.fill(2);
      w.landed(8192);
    });
    await w.finish(8192);
    expect(kept.pin.equals(Buffer.alloc(4096, 1))).toBe(true);
    expect(kept.load.equals(Buffer.alloc(4096, 1))).toBe(true);
    owner.size = 8192;
    expect((await readAll(d, 0, 8192)).equals(Buffer.alloc(8192, 2))).toBe(true);
    expect(segmentPool.pinnedCount).toBe(0);
  });

  it('a span over a segment a reader holds pinned goes to a copy: the reader keeps its bytes', async () => {
    const { d } = await filledMemory(4096, 1);
    const pinned = d.pin(0, 4096);
    const w = (await d.openWriter(0, 4096)) as SpanWriter;
    const span = w.span(4096)!;
    span.fill(3);
    w.landed(4096);
    await w.finish(4096);
    expect(Buffer.from(pinned.pieces[0]!.bytes).equals(Buffer.alloc(4096, 1))).toBe(true);
    pinned.release();
    expect((await readAll(d, 0, 4096)).equals(Buffer.alloc(4096, 3))).toBe(true);
  });

  it('a DELETE while a span below the size is out: the segment is pooled only once the read lands, nothing stays pinned', async () => {
    const { d } = await filledMemory(4096, 1);
    const w = (await d.openWriter(0, 4096)) as SpanWriter;
    const span = w.span(4096)!;
    await d.release();
    const { d: d2 } = await filledMemory(10, 7);
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
    const { d, owner } = await filledMemory(4096, 1);
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
