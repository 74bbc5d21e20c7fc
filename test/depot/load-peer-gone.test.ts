import { connect } from 'node:net';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { capTokens } from '../../ibp/index.js';
import { startDepot, type TestDepot } from '../helpers/depot-fixture.js';
import { interceptedIo } from '../helpers/filesystems.js';
import { tempDir } from '../helpers/temp-dir.js';

const MiB = 1024 * 1024;

/**
 * A client that leaves in the middle of a large reply: the depot stops reading the allocation for
 * it, rather than reading (and checking) the rest of the range for nobody.
 */
describe('a reply whose reader has gone stops reading the allocation', () => {
  const dir = tempDir('anvil-peer-gone-');
  let t: TestDepot | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
    dir.cleanup();
  });

  for (const command of ['LOAD', 'VEC_READ'] as const) {
    it(`${command} of 48 MiB on disk, its client gone after the first bytes`, async () => {
      // Counts the bytes the depot reads from allocation files (reads go through `diskIo` here).
      let bytesRead = 0;
      const diskIo = interceptedIo((target) => ({
        read: async (buf: Buffer, offset: number, length: number, position: number) => {
          const r = await target.read(buf, offset, length, position);
          bytesRead += r.bytesRead;
          return r;
        },
      }));
      t = await startDepot({ resource: [{ rid: '1', path: dir.path, capacityBytes: '128MiB' }] }, undefined, { diskIo });
      const size = 48 * MiB;
      const caps = await t.client.allocate({ host: '127.0.0.1', port: t.port }, { size, durationSec: 600 });
      await t.client.store(caps.write, Buffer.alloc(size, 0x5a));
      bytesRead = 0;
      const key = capTokens(caps.read).join(' ');
      const s = connect({ host: '127.0.0.1', port: t.port, noDelay: true });
      s.on('error', () => undefined);
      await once(s, 'connect');
      s.write(command === 'LOAD' ? `1 8 ${key} 0 ${size} 30\n` : `1 35 ${key} 1 0 ${size} 30\n`, 'latin1');
      await once(s, 'data'); // the reply has begun
      s.destroy();
      // The depot finds out on its next writes; give it time to read the rest if it were to.
      for (const until = Date.now() + 3_000; Date.now() < until;) await new Promise((r) => setTimeout(r, 50));
      expect(bytesRead).toBeGreaterThan(0);
      expect(bytesRead).toBeLessThan(size / 2);
      // The depot still serves others.
      expect((await t.client.load(caps.read, size - 4, 4)).every((b) => b === 0x5a)).toBe(true);
    });
  }
});
