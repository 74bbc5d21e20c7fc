import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { gatherInto } from '../../depot/nfu/input-source.js';
import { tempDir } from '../helpers/temp-dir.js';

const BLOCK = 64 * 1024;

describe('NFU file input: a block without a checksum is a hole', () => {
  it('reads as zeros whatever the file holds there; the blocks around it are read and checked', () => {
    const d = tempDir();
    try {
      const blocks = [Buffer.alloc(BLOCK, 1), Buffer.alloc(BLOCK, 0xee), Buffer.alloc(1000, 3)];
      const file = join(d.path, 'data');
      writeFileSync(file, Buffer.concat(blocks));
      const size = 2 * BLOCK + 1000;
      const range = { file, size, blockBytes: BLOCK, firstBlock: 0, crcs: [crc32(blocks[0]!), undefined, crc32(blocks[2]!)] };
      const whole = new Uint8Array(size);
      expect(gatherInto(whole, { length: size, pieces: [], file: { ...range, offset: 0, available: size } })).toBe(true);
      expect(Buffer.from(whole).equals(Buffer.concat([blocks[0]!, Buffer.alloc(BLOCK), blocks[2]!]))).toBe(true);
      // A part starting inside the hole and ending inside the next block.
      const part = new Uint8Array(BLOCK);
      const from = BLOCK + 100;
      const source = { length: BLOCK, pieces: [], file: { ...range, offset: from, available: BLOCK } };
      expect(gatherInto(part, source)).toBe(true);
      expect(Buffer.from(part).equals(Buffer.concat([Buffer.alloc(BLOCK - 100), blocks[2]!.subarray(0, 100)]))).toBe(true);
      // A block with a checksum that no longer matches is still refused.
      const bad = { ...range, crcs: [crc32(blocks[0]!), undefined, crc32(blocks[0]!)] };
      expect(gatherInto(new Uint8Array(size), { length: size, pieces: [], file: { ...bad, offset: 0, available: size } })).toBe(
        false,
      );
    } finally {
      d.cleanup();
    }
  });
});
