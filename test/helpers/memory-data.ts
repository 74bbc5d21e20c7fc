import { MemoryData, SEGMENT_BYTES } from '../../depot/resources/memory-data.js';

/** A memory allocation of two segments' max size holding `size` bytes of `fill` (written, committed). */
export async function filledMemory(
  size: number,
  fill: number,
): Promise<{ d: MemoryData; owner: { size: number; maxSize: number } }> {
  const owner = { size: 0, maxSize: 2 * SEGMENT_BYTES };
  const d = new MemoryData(owner);
  const w = await d.openWriter(0, size);
  w.write(Buffer.alloc(size, fill));
  await w.finish(size);
  owner.size = size;
  return { d, owner };
}
