import { describe, expect, it } from 'vitest';
import { startDepot } from '../helpers/depot-fixture.js';
import { tempDir } from '../helpers/temp-dir.js';
import { pattern } from '../helpers/patterns.js';

const MiB = 1024 * 1024;

describe('disk resource: a WRITE past the end leaves a hole that reads as zeros', () => {
  // A hole starting on a block boundary (an empty allocation, or a size that is a whole number of
  // blocks) once got no checksum for its first block: the next LOAD over it marked the allocation
  // damaged and every acknowledged byte of it was refused from then on.
  for (const [size, at] of [
    [0, 200_000],
    [65_536, 300_000],
    [65_536, 131_072],
    [100, 70_000],
  ] as const) {
    it(`size ${size}, WRITE at ${at}`, async () => {
      const d = tempDir();
      let t = await startDepot({ resource: [{ rid: '1', path: d.path, fsync: 'fast' }] });
      try {
        const a = await t.client.allocate(t, { size: 4 * MiB, durationSec: 60 });
        const head = pattern(size, 10);
        if (size > 0) await t.client.store(a.write, head);
        const tail = pattern(1000, 11);
        await t.client.write(a.write, at, tail);
        const expected = Buffer.concat([head, Buffer.alloc(at - size), tail]);
        expect(Buffer.from(await t.client.load(a.read, 0, expected.length)).equals(expected)).toBe(true);
        const port = t.port;
        await t.close();
        t = await startDepot({ port, resource: [{ rid: '1', path: d.path, fsync: 'fast', startupCheck: 'full' }] });
        expect(Buffer.from(await t.client.load(a.read, 0, expected.length)).equals(expected)).toBe(true);
      } finally {
        await t.close();
        d.cleanup();
      }
    });
  }
});
