import { beforeEach, describe, expect, it } from 'vitest';
import { MemoryData, SEGMENT_BYTES, pinStats, segmentPool } from '../../depot/resources/memory-data.js';

/**
 * The NFU admits an op against its memory budget counting what its pinned inputs may cost: while a
 * range is pinned, a racing writer copies every buffer it changes whole (copy on write), so the
 * charge must cover whole segments, not just the range's length.
 */
async function stored(maxSize: number, size: number): Promise<{ d: MemoryData; o: { size: number; maxSize: number } }> {
  const o = { size: 0, maxSize };
  const d = new MemoryData(o);
  const w = await d.openWriter(0, size);
  await w.write(Buffer.alloc(size, 1));
  await w.finish(size);
  o.size = size;
  return { d, o };
}

async function overwrite(d: MemoryData, o: { size: number }, offset: number, length: number): Promise<void> {
  const w = await d.openWriter(offset, length);
  await w.write(Buffer.alloc(length, 2));
  await w.finish(Math.max(o.size, offset + length));
}

describe('the memory budget charge of a pinned range', () => {
  beforeEach(() => segmentPool.clear());

  it('covers what copy on write copies when a small range straddles two segments', async () => {
    const { d, o } = await stored(4 * SEGMENT_BYTES, 4 * SEGMENT_BYTES);
    const offset = SEGMENT_BYTES - 5;
    const length = 10;
    const pin = d.pin(offset, length);
    const charge = d.pinCharge(offset, length);
    const before = pinStats.copiedOnWriteBytes;
    // A writer changes both pinned segments while the op holds them.
    await overwrite(d, o, SEGMENT_BYTES - 100, 200);
    const copied = pinStats.copiedOnWriteBytes - before;
    pin.release();
    expect(copied).toBe(2 * SEGMENT_BYTES);
    expect(charge).toBeGreaterThanOrEqual(copied);
    expect(charge).toBe(2 * SEGMENT_BYTES);
  });

  it('counts a range inside one segment as that segment, and nothing for an empty range', async () => {
    const { d } = await stored(4 * SEGMENT_BYTES, 3 * SEGMENT_BYTES);
    expect(d.pinCharge(SEGMENT_BYTES + 10, 100)).toBe(SEGMENT_BYTES);
    expect(d.pinCharge(0, 3 * SEGMENT_BYTES)).toBe(3 * SEGMENT_BYTES);
    expect(d.pinCharge(5, 0)).toBe(0);
  });

  it('counts a small allocation as its one buffer', async () => {
    const { d, o } = await stored(64 * 1024, 64 * 1024);
    const pin = d.pin(100, 10);
    const charge = d.pinCharge(100, 10);
    const before = pinStats.copiedOnWriteBytes;
    await overwrite(d, o, 0, 16);
    const copied = pinStats.copiedOnWriteBytes - before;
    pin.release();
    expect(copied).toBeGreaterThan(10);
    expect(charge).toBeGreaterThanOrEqual(copied);
  });
});
