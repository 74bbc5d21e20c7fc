import { closeSync, constants as fsConstants, fstatSync, openSync, writeSync } from 'node:fs';
import { basename } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RECORD_HEADER_BYTES } from '../../depot/resources/disk/redo-journal.js';
import { startDepot, type TestDepot } from '../helpers/depot-fixture.js';
import { interceptedIo } from '../helpers/filesystems.js';
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

  /**
   * A depot under `safe` whose next data fdatasync and next rollback journal fdatasync fail once
   * (`arm`); `rollbackWrites` lists the writes through each descriptor a rollback opens on the
   * journal (O_RDWR, no O_CREAT), and `onJournalSyncFault` runs when the journal's fault fires.
   */
  async function depot(onJournalSyncFault?: (path: string) => void) {
    const eio = (what: string) => Object.assign(new Error(`EIO: injected ${what} fault`), { code: 'EIO' });
    const faults = { data: 0, journal: 0 };
    const rollbackWrites: { position: number; bytes: number }[][] = [];
    const diskIo = interceptedIo((target, path, flags) => {
      const name = basename(path);
      const journal = name.endsWith('.redo');
      const rollback = journal && (flags & fsConstants.O_CREAT) === 0;
      if (!/^\d+$/.test(name) && !rollback) return undefined;
      const writes: { position: number; bytes: number }[] = [];
      if (rollback) rollbackWrites.push(writes);
      /** Records each write through a rollback's descriptor: where, and how many bytes. */
      const recorded =
        (prop: 'write' | 'writev', positionArg: number) =>
        async (...args: unknown[]) => {
          const r = await (target[prop] as (...a: unknown[]) => Promise<{ bytesWritten: number }>).apply(target, args);
          writes.push({ position: args[positionArg] as number, bytes: r.bytesWritten });
          return r;
        };
      return {
        datasync: async () => {
          if (journal ? faults.journal > 0 : faults.data > 0) {
            if (journal) {
              faults.journal--;
              onJournalSyncFault?.(path);
            } else faults.data--;
            throw eio(`${journal ? 'journal' : 'data'} datasync`);
          }
          return target.datasync();
        },
        ...(rollback ? { write: recorded('write', 3), writev: recorded('writev', 1) } : {}),
      };
    });
    const resource = [{ rid: '1', path: dir.path, capacityBytes: '64MiB', fsync: 'safe' as const }];
    t = await startDepot({ resource }, undefined, { diskIo });
    const depotOf = t;
    return {
      t: depotOf,
      rollbackWrites,
      faults,
      restart: async () => {
        await depotOf.close();
        t = await startDepot({ port: depotOf.port, resource: [{ ...resource[0]!, startupCheck: 'full' as const }] });
        return t;
      },
      /**
       * An allocation of `size` bytes of OLD, then a WRITE of `length` bytes of NEW at 1 000 whose
       * data sync fails after its copy in place, and whose rollback's first journal sync fails too:
       * the caps, and the WRITE's outcome.
       */
      refusedOverwrite: async (size: number, length: number) => {
        const caps = await depotOf.client.allocate(depotOf, { size: 2 << 20, durationSec: 600 });
        await depotOf.client.store(caps.write, Buffer.alloc(size, OLD));
        faults.data = 1;
        faults.journal = 1;
        return { caps, outcome: await tryWrite(depotOf, caps, 1_000, Buffer.alloc(length, NEW)) };
      },
    };
  }

  /** Where the retry wrote the image: contiguous, ending where the first attempt put its record. */
  function imageWrites(retry: { position: number; bytes: number }[], record: number): { from: number; to: number } {
    const image = retry.slice(0, -1);
    expect(image.length).toBeGreaterThan(0);
    let at = image[0]!.position;
    const from = at;
    for (const w of image) {
      expect(w.position).toBe(at);
      at += w.bytes;
    }
    expect(retry[retry.length - 1]!.position).toBe(record);
    return { from, to: at };
  }

  for (const [what, length, small] of [
    ['a small overwrite (image written from memory at every attempt)', 200_000, true],
    ['a large overwrite (image read back, checked and rewritten)', 600_000, false],
    ['a large overwrite of several undo records', 1_500_000, false],
  ] as const) {
    it(`--fsync safe, ${what}: the retry writes the whole image, then the record; refused, old bytes served, before and after a restart`, async () => {
      const d = await depot();
      const size = 2_000_000;
      // Refused and rolled back, the rollback's first journal sync failing.
      const { caps, outcome } = await d.refusedOverwrite(size, length);
      expect(outcome).not.toBe('ok');
      expect(d.faults).toEqual({ data: 0, journal: 0 });
      expect(d.rollbackWrites.length).toBe(2);
      const [first, retry] = d.rollbackWrites as [{ position: number; bytes: number }[], { position: number; bytes: number }[]];
      // The retry wrote the image again, whole (the bytes replaced, in records of at most 1 MiB, each
      // with its header), then the record where the first attempt had put it. The first attempt
      // wrote the image too when it was kept in memory, else only the record.
      const record = first[first.length - 1]!.position;
      const image = imageWrites(retry, record);
      expect(image.to).toBe(record);
      expect(image.to - image.from).toBe(length + Math.ceil(length / (1 << 20)) * RECORD_HEADER_BYTES);
      if (small) expect(imageWrites(first, record)).toEqual(image);
      else expect(first.length).toBe(1);
      // Refused, so nothing changed: before and after a restart.
      expect(allOf(await loadAll(d.t, caps, size), OLD, size)).toBe(true);
      const t2 = await d.restart();
      expect(allOf(await loadAll(t2, caps, size), OLD, size)).toBe(true);
    });
  }

  /** Zeros over a page of the journal's undo image, as a failed sync that dropped it leaves it. */
  function dropAPage(path: string): void {
    const fd = openSync(path, 'r+');
    try {
      writeSync(fd, Buffer.alloc(4096), 0, 4096, fstatSync(fd).size - 8192);
    } finally {
      closeSync(fd);
    }
  }

  it('--fsync safe, a small overwrite whose image lost a page: the retry writes it again from memory, and the rollback holds', async () => {
    const d = await depot(dropAPage);
    const size = 1_000_000;
    const { caps, outcome } = await d.refusedOverwrite(size, 200_000);
    expect(outcome).not.toBe('ok');
    expect(d.rollbackWrites.length).toBe(2);
    expect(allOf(await loadAll(d.t, caps, size), OLD, size)).toBe(true);
    const t2 = await d.restart();
    expect(allOf(await loadAll(t2, caps, size), OLD, size)).toBe(true);
  });

  it('--fsync safe, a large overwrite whose image no longer reads back whole: no record is written again, and the allocation is marked damaged', async () => {
    // The failed sync "dropped" a page of the image: it reads back as zeros.
    const d = await depot(dropAPage);
    const size = 1_000_000;
    const { caps, outcome } = await d.refusedOverwrite(size, 600_000);
    expect(outcome).not.toBe('ok');
    // Each retry found the image torn and wrote nothing: no rollback record after a torn image.
    expect(d.rollbackWrites.length).toBeGreaterThan(1);
    for (const retry of d.rollbackWrites.slice(1)) expect(retry).toEqual([]);
    // Neither old nor new bytes can be vouched for in the range: the allocation is refused, and
    // stays so after a restart (its old bytes are gone from the file and from the journal alike).
    expect(typeof (await loadAll(d.t, caps, size))).toBe('string');
    const t2 = await d.restart();
    expect(await loadAll(t2, caps, size)).toMatch(/-15|DAMAGED|FILE_READ/);
  });
});
