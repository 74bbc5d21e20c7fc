import { beforeEach, expect, it } from 'vitest';
import { MemoryData, SEGMENT_BYTES, segmentPool } from '../../depot/resources/memory-data.js';

/** Leaves dirty segments in the pool: a deleted allocation that held `segments` segments of 0xab. */
async function dirtyPool(segments: number): Promise<void> {
  const owner = { size: 0, maxSize: 4 * SEGMENT_BYTES };
  const d = new MemoryData(owner);
  const w = await d.openWriter(0, segments * SEGMENT_BYTES);
  w.write(Buffer.alloc(segments * SEGMENT_BYTES, 0xab));
  await w.finish(segments * SEGMENT_BYTES);
  owner.size = segments * SEGMENT_BYTES;
  await d.release();
}

/** A large allocation whose first three segments are a hole inside its size. */
async function withHole(): Promise<{ owner: { size: number; maxSize: number }; data: MemoryData }> {
  const owner = { size: 0, maxSize: 4 * SEGMENT_BYTES };
  const data = new MemoryData(owner);
  const w = await data.openWriter(3 * SEGMENT_BYTES, 1);
  w.write(Buffer.from([1]));
  await w.finish(3 * SEGMENT_BYTES + 1);
  owner.size = 3 * SEGMENT_BYTES + 1;
  return { owner, data };
}

async function readAll(data: MemoryData, offset: number, length: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  await data.read(offset, length, (c) => void parts.push(Buffer.from(c)));
  return Buffer.concat(parts);
}

const zeros = (b: Uint8Array): boolean => b.every((x) => x === 0);

beforeEach(() => segmentPool.clear());

it('a LOAD of a hole while a WRITE into it is in progress reads zeros, not a deleted allocation', async () => {
  await dirtyPool(2);
  const { data } = await withHole();
  const w = await data.openWriter(0, 1000);
  expect(zeros(await readAll(data, 0, 1000))).toBe(true);
  // The whole of the attached segment, inside the range or not.
  expect(zeros(await readAll(data, 0, 2 * SEGMENT_BYTES))).toBe(true);
  await w.abort();
});

it('an aborted WRITE into a hole leaves zeros where it wrote nothing', async () => {
  await dirtyPool(2);
  const { data } = await withHole();
  const w = await data.openWriter(SEGMENT_BYTES - 500, 1000);
  w.write(Buffer.alloc(10, 7));
  await w.abort();
  const got = await readAll(data, 0, 2 * SEGMENT_BYTES);
  // A WRITE into a hole fills a segment of its own, attached only when it is complete: an aborted
  // one leaves the hole as it was, zeros, even where it wrote.
  expect(zeros(got)).toBe(true);
});

it('an NFU pin of a hole while a WRITE into it is in progress sees zeros', async () => {
  await dirtyPool(2);
  const { data } = await withHole();
  const w = await data.openWriter(100, 1000);
  const pinned = data.pin(0, 4096);
  try {
    for (const p of pinned.pieces) expect(zeros(p.bytes)).toBe(true);
  } finally {
    pinned.release();
  }
  await w.abort();
});

it('a recycled segment a WRITE beyond the size attaches is zeros once a later WRITE brings the size past it', async () => {
  await dirtyPool(2);
  const owner = { size: 0, maxSize: 4 * SEGMENT_BYTES };
  const data = new MemoryData(owner);
  const a = await data.openWriter(0, 1000);
  // Another WRITE further on completes first: the range of the first now lies inside the size.
  const b = await data.openWriter(3 * SEGMENT_BYTES, 1);
  b.write(Buffer.from([1]));
  await b.finish(3 * SEGMENT_BYTES + 1);
  owner.size = 3 * SEGMENT_BYTES + 1;
  expect(zeros(await readAll(data, 0, 1000))).toBe(true);
  await a.abort();
  expect(zeros(await readAll(data, 0, 3 * SEGMENT_BYTES))).toBe(true);
});
