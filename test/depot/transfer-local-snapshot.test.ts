import { afterEach, describe, expect, it } from 'vitest';
import { startDepot, type TestDepot } from '../helpers/depot-fixture.js';
import { interceptedIo } from '../helpers/filesystems.js';
import { tempDir } from '../helpers/temp-dir.js';

const MiB = 1024 * 1024;

/**
 * A SEND whose destination is on the same depot copies locally: the source's bytes go to the
 * destination's writer, which gathers them into batches before writing. An overwrite of the source
 * while a batch waits to be written must not reach into it: the destination would store bytes that
 * its recorded checksums (taken as the chunks arrived) do not match, and read as damaged.
 */
describe('a local copy keeps the bytes of its time when its source is overwritten', () => {
  const dir = tempDir('anvil-local-copy-');
  let t: TestDepot | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
    dir.cleanup();
  });

  it('memory → disk: the destination holds the source as each chunk was taken, and verifies', async () => {
    // The destination's first batch waits to be written until the source has been overwritten.
    let armed = false;
    let reached!: () => void;
    const writeWaits = new Promise<void>((r) => (reached = r));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const diskIo = interceptedIo((target) => ({
      writev: async (buffers: Buffer[], position: number) => {
        if (armed) {
          armed = false;
          reached();
          await gate;
        }
        return target.writev(buffers, position);
      },
    }));
    t = await startDepot(
      {
        resource: [
          { rid: '1', capacityBytes: '64MiB' },
          { rid: '2', path: dir.path, capacityBytes: '64MiB' },
        ],
      },
      undefined,
      { diskIo },
    );
    const at = { host: '127.0.0.1', port: t.port };
    const size = 4 * MiB;
    const src = await t.client.allocate(at, { size, durationSec: 600, rid: '1' });
    await t.client.store(src.write, Buffer.alloc(size, 0x11));
    const dest = await t.client.allocate(at, { size, durationSec: 600, rid: '2' });
    armed = true;
    const copying = t.client.copy(src.read, dest.write, { length: size });
    await Promise.race([
      writeWaits,
      copying.then(() => {
        throw new Error('the copy ended before its first batch was written');
      }),
    ]);
    // Acknowledged while the copy's first batch waits.
    await t.client.write(src.write, 0, Buffer.alloc(size, 0x22));
    release();
    expect(await copying).toBe(size);
    const back = await t.client.load(dest.read, 0, size);
    // Whole 2 MiB chunks (the source's segments) of one moment or the other, never a mix.
    for (let chunk = 0; chunk < size; chunk += 2 * MiB) {
      const part = back.subarray(chunk, chunk + 2 * MiB);
      expect(
        part.every((b) => b === part[0]),
        `bytes ${chunk} to ${chunk + 2 * MiB}`,
      ).toBe(true);
    }
    expect(back[0]).toBe(0x11);
  });
});
