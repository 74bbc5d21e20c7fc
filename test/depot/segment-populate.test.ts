import { describe, expect, it } from 'vitest';
import { loadNativeKernels } from '../../depot/nfu/native-loader.js';
import { MemoryData, SEGMENT_BYTES, segmentPool } from '../../depot/resources/memory-data.js';

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
