import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startDepot, type TestDepot } from '../helpers/depot-fixture.js';
import { interceptedIo } from '../helpers/filesystems.js';
import { failSetBlocks, failWalSyncs } from '../helpers/metadata-faults.js';
import { tempDir } from '../helpers/temp-dir.js';

const KiB = 1024;

/**
 * A committed overwrite's redo journal is emptied off the event loop, after the commit. The next
 * overwrite of the same allocation writes a journal of its own in the same file: it must wait for
 * that emptying, or the late truncate cuts its records (a crash then finds no journal to finish it
 * from, with bytes half copied in place).
 */
describe('the emptying of a committed write’s redo journal', () => {
  const dir = tempDir('anvil-journal-emptying-');
  let t: TestDepot | undefined;
  afterEach(async () => {
    vi.restoreAllMocks();
    await t?.close();
    t = undefined;
    dir.cleanup();
  });

  for (const fsync of ['fast', 'safe'] as const) {
    it(`never cuts the next write's journal, however late it ends (--fsync ${fsync})`, async () => {
      /** What happened to journal files, in order: a truncate's start and end, and each write. */
      const events: string[] = [];
      let truncates = 0;
      // Only the journals' descriptors are watched: the data files' writes go on meanwhile.
      const diskIo = interceptedIo((target, path) => {
        if (!path.endsWith('.redo')) return undefined;
        return {
          truncate: async (len?: number) => {
            events.push('truncate-start');
            // Every other one slower than the round trip of the next command, as under a busy file
            // system: a slow one may then end after a fast one that the next write made itself.
            if (truncates++ % 2 === 0) await new Promise((r) => setTimeout(r, 150));
            await target.truncate(len);
            events.push('truncate-end');
          },
          writev: async (buffers: Buffer[], position?: number) => {
            events.push('writev');
            return target.writev(buffers, position);
          },
          write: async (...args: Parameters<typeof target.write>) => {
            events.push('write');
            return (target.write as (...a: unknown[]) => Promise<unknown>)(...args);
          },
        };
      });
      t = await startDepot({ resource: [{ rid: '1', path: dir.path, capacityBytes: '64MiB', fsync }] }, undefined, {
        diskIo,
      });
      const at = { host: '127.0.0.1', port: t.port };
      const size = 256 * KiB;
      const caps = await t.client.allocate(at, { size, durationSec: 600 });
      await t.client.store(caps.write, Buffer.alloc(size, 1));
      // Overwrites of committed bytes, one right after the other: each is journaled.
      const expected = Buffer.alloc(size, 1);
      for (let i = 0; i < 6; i++) {
        const bytes = Buffer.alloc(3 * KiB, 10 + i);
        const offset = 1000 + i * 5000;
        await t.client.write(caps.write, offset, bytes);
        bytes.copy(expected, offset);
      }
      expect((await t.client.load(caps.read, 0, size)).equals(expected)).toBe(true);
      // Each truncate ran alone: nothing was written to a journal while one was under way.
      let emptying = 0;
      let overlapped = 0;
      for (const e of events) {
        if (e === 'truncate-start') emptying++;
        else if (e === 'truncate-end') emptying--;
        else if (emptying > 0) overlapped++;
      }
      expect(events.filter((e) => e === 'truncate-start').length).toBeGreaterThan(0);
      expect(overlapped).toBe(0);
    });
  }

  it('never cuts the undo marker of a refused write recorded after it (--fsync safe)', async () => {
    // The journals' truncates end 300 ms late.
    const diskIo = interceptedIo((target, path) =>
      path.endsWith('.redo')
        ? {
            truncate: async (len?: number) => {
              await new Promise((r) => setTimeout(r, 300));
              return target.truncate(len);
            },
          }
        : undefined,
    );
    t = await startDepot({ resource: [{ rid: '1', path: dir.path, capacityBytes: '64MiB', fsync: 'safe' }] }, undefined, {
      diskIo,
    });
    const at = { host: '127.0.0.1', port: t.port };
    const caps = await t.client.allocate(at, { size: 256 * KiB, durationSec: 600 });
    await t.client.store(caps.write, Buffer.alloc(128 * KiB, 1));
    // A journaled overwrite commits: its journal's emptying starts, and ends late.
    await t.client.write(caps.write, 1000, Buffer.alloc(3 * KiB, 2));
    // An append refused at its commit (the WAL sync fails), whose undo the metadata store then fails
    // to record: the undo is marked in the journal instead, for start-up to record.
    failWalSyncs(1);
    failSetBlocks(1);
    await expect(t.client.store(caps.write, Buffer.alloc(16 * KiB, 3))).rejects.toThrow();
    // Well after the late truncate would have ended: the marker is still there.
    await new Promise((r) => setTimeout(r, 600));
    const data = join(dir.path, 'data');
    const journals = readdirSync(data, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.redo'));
    expect(journals.length).toBe(1);
    expect(statSync(join(data, journals[0]!)).size).toBeGreaterThan(0);
  });
});
