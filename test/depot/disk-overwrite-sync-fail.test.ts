import { afterEach, describe, expect, it, vi } from 'vitest';
import { MetadataDb } from '../../depot/resources/disk/metadata-db.js';
import { startDepot } from '../helpers/depot-fixture.js';
import { tempDir } from '../helpers/temp-dir.js';

/** What a LOAD of the first 200 000 bytes gives: four sample bytes, or the error's message. */
async function sample(load: () => Promise<Buffer>): Promise<number[] | string> {
  const bytes = await load().catch((e: Error) => e.message);
  return typeof bytes === 'string' ? bytes : [bytes[0]!, bytes[100]!, bytes[150_099]!, bytes[150_100]!];
}

describe('disk: an overwrite whose metadata (WAL) sync fails under --fsync safe', () => {
  afterEach(() => vi.restoreAllMocks());

  it('is refused, and its bytes are never served as valid, before or after a restart', async () => {
    const dir = tempDir();
    const res = [{ rid: '1', path: dir.path, capacityBytes: '64MiB', fsync: 'safe' as const }];
    const t = await startDepot({ resource: res });
    let port = t.port;
    try {
      const caps = await t.client.allocate({ host: t.host, port: t.port }, { size: 1 << 20, durationSec: 600 });
      await t.client.store(caps.write, Buffer.alloc(200_000, 1));
      let fail = true;
      const realSync = MetadataDb.prototype.syncWal;
      vi.spyOn(MetadataDb.prototype, 'syncWal').mockImplementation(async function (this: MetadataDb) {
        if (fail) {
          fail = false;
          throw new Error('EIO (injected)');
        }
        return realSync.call(this);
      });
      const reply = await t.client.write(caps.write, 100, Buffer.alloc(150_000, 2)).then(
        () => 'ok',
        (e: Error) => e.message,
      );
      expect(reply).not.toBe('ok');
      expect((await t.client.probe(caps.manage)).size).toBe(200_000);
      // The old bytes were overwritten in place: they cannot be served, and neither can the new ones.
      const seen = await sample(() => t.client.load(caps.read, 0, 200_000));
      expect(seen).not.toEqual([1, 2, 2, 1]);
      expect(seen, String(seen)).toMatch(/-15\b/);
      // Later writes to it are refused too.
      const again = await t.client.write(caps.write, 0, Buffer.alloc(10, 3)).then(
        () => 'ok',
        (e: Error) => e.message,
      );
      expect(again).not.toBe('ok');
      vi.restoreAllMocks();
      port = t.port;
      await t.close();

      const t2 = await startDepot({ port, resource: res });
      try {
        const after = await sample(() => t2.client.load(caps.read, 0, 200_000));
        expect(after).not.toEqual([1, 2, 2, 1]);
        expect(after, String(after)).toMatch(/-15\b/);
      } finally {
        await t2.close();
      }
    } finally {
      vi.restoreAllMocks();
      dir.cleanup();
    }
  });
});
