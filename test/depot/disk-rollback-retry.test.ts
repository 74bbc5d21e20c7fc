import { constants as fsConstants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { basename } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { DiskIo } from '../../depot/resources/disk/disk-data.js';
import { startDepot, type TestDepot } from '../helpers/depot-fixture.js';
import { allOf, loadAll, tryWrite } from '../helpers/load-checks.js';
import { tempDir } from '../helpers/temp-dir.js';

const OLD = 1;
const NEW = 2;

/**
 * A refused overwrite is rolled back from the undo image saved in its journal: a rollback record
 * goes after the image, the journal is synced, then the image is written back. If that sync fails,
 * the kernel may have dropped the journal's dirty pages unwritten: the image as well as the record.
 * A retry that rewrote only the record would leave a durable rollback record after an image that
 * never reached the disk, which start-up cannot use (it would finish the refused write instead).
 * So every retry writes the image again before its record.
 */
describe('disk: a rollback whose journal sync fails is retried with its undo image rewritten', () => {
  const dir = tempDir('anvil-rollback-retry-');
  let t: TestDepot | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
    dir.cleanup();
  });

  it('--fsync safe: the retry writes the image and the record again; refused, old bytes served, before and after a restart', async () => {
    const eio = (what: string) => Object.assign(new Error(`EIO: injected ${what} fault`), { code: 'EIO' });
    const faults = { data: 0, journal: 0 };
    /** The writes through each descriptor of the journal opened for a rollback (O_RDWR, no O_CREAT). */
    const rollbackWrites: { position: number; bytes: number }[][] = [];
    const diskIo: DiskIo = {
      open: async (path: string, flags: number): Promise<FileHandle> => {
        const fh = await open(path, flags, 0o600);
        const name = basename(path);
        const journal = name.endsWith('.redo');
        const rollback = journal && (flags & fsConstants.O_CREAT) === 0;
        if (!/^\d+$/.test(name) && !rollback) return fh;
        const writes: { position: number; bytes: number }[] = [];
        if (rollback) rollbackWrites.push(writes);
        return new Proxy(fh, {
          get(target, prop, receiver) {
            if (prop === 'datasync') {
              return async () => {
                if (journal ? faults.journal > 0 : faults.data > 0) {
                  if (journal) faults.journal--;
                  else faults.data--;
                  throw eio(`${journal ? 'journal' : 'data'} datasync`);
                }
                return target.datasync();
              };
            }
            if (rollback && (prop === 'write' || prop === 'writev')) {
              const real = (target[prop] as (...a: unknown[]) => Promise<{ bytesWritten: number }>).bind(target);
              return async (...args: unknown[]) => {
                const r = await real(...args);
                const position = (prop === 'writev' ? args[1] : args[3]) as number;
                writes.push({ position, bytes: r.bytesWritten });
                return r;
              };
            }
            const v = Reflect.get(target, prop, receiver) as unknown;
            return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
          },
        });
      },
    };
    const resource = [{ rid: '1', path: dir.path, capacityBytes: '64MiB', fsync: 'safe' as const }];
    t = await startDepot({ resource }, undefined, { diskIo });
    const caps = await t.client.allocate(t, { size: 1 << 20, durationSec: 600 });
    await t.client.store(caps.write, Buffer.alloc(300_000, OLD));
    // The overwrite's data sync fails after its copy in place: it is refused and rolled back; the
    // rollback's first journal sync fails too.
    faults.data = 1;
    faults.journal = 1;
    expect(await tryWrite(t, caps, 1_000, Buffer.alloc(200_000, NEW))).not.toBe('ok');
    expect(faults).toEqual({ data: 0, journal: 0 });
    expect(rollbackWrites.length).toBe(2);
    const [first, retry] = rollbackWrites as [{ position: number; bytes: number }[], { position: number; bytes: number }[]];
    // The first attempt wrote its record after the image; the retry wrote the image again, then the
    // record at the same place.
    expect(first.length).toBe(1);
    const record = first[0]!.position;
    expect(retry[retry.length - 1]!.position).toBe(record);
    const image = retry.slice(0, -1);
    expect(image.length).toBeGreaterThan(0);
    expect(Math.min(...image.map((w) => w.position))).toBeLessThan(record);
    // The image holds the 200 000 bytes replaced, with its records' headers.
    expect(image.reduce((n, w) => n + w.bytes, 0)).toBeGreaterThan(200_000);
    // Refused, so nothing changed: before and after a restart.
    expect(allOf(await loadAll(t, caps, 300_000), OLD, 300_000)).toBe(true);
    await t.close();
    t = await startDepot({ port: t.port, resource: [{ ...resource[0]!, startupCheck: 'full' as const }] });
    expect(allOf(await loadAll(t, caps, 300_000), OLD, 300_000)).toBe(true);
  });
});
