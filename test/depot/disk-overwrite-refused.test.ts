import { existsSync, readdirSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { DiskIo } from '../../depot/resources/disk/disk-data.js';
import { MetadataDb } from '../../depot/resources/disk/metadata-db.js';
import { capTokens } from '../../ibp/index.js';
import { RawSession, startDepot, type TestDepot } from '../helpers/depot-fixture.js';
import { loadAll, allOf, tryWrite } from '../helpers/load-checks.js';
import { failWalSyncs } from '../helpers/metadata-faults.js';
import { tempDir } from '../helpers/temp-dir.js';

const OLD = 1;
const NEW = 2;

interface DataFaults {
  /** The next this many `datasync`s fail. */
  datasync: number;
  /** The next this many positional writes (`write`, `writev`) succeed, then the next `failWrites` fail. */
  passWrites: number;
  failWrites: number;
}

/** Disk I/O whose descriptors of allocation files (not of their journals) fail as `faults` says. */
function faultyDataIo(faults: DataFaults): DiskIo {
  const eio = (what: string) => Object.assign(new Error(`EIO: injected ${what} fault`), { code: 'EIO' });
  return {
    open: async (path: string, flags: number): Promise<FileHandle> => {
      const fh = await open(path, flags, 0o600);
      if (!/^\d+$/.test(basename(path))) return fh;
      return new Proxy(fh, {
        get(target, prop, receiver) {
          if (prop === 'datasync') {
            return async () => {
              if (faults.datasync > 0) {
                faults.datasync--;
                throw eio('datasync');
              }
              return target.datasync();
            };
          }
          if (prop === 'write' || prop === 'writev') {
            const real = (target[prop] as (...a: unknown[]) => Promise<unknown>).bind(target);
            return async (...args: unknown[]) => {
              if (faults.passWrites > 0) faults.passWrites--;
              else if (faults.failWrites > 0) {
                faults.failWrites--;
                throw eio(prop);
              }
              return real(...args);
            };
          }
          const v = Reflect.get(target, prop, receiver) as unknown;
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
    },
  };
}

describe('disk: an overwrite refused after its bytes were copied in place', () => {
  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    vi.restoreAllMocks();
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  /** A depot on a fresh directory; the same directory is reused by `restart`. */
  async function depot(fsync: 'safe' | 'fast', diskIo?: DiskIo) {
    const dir = tempDir();
    cleanups.push(dir.cleanup);
    const resource = [{ rid: '1', path: dir.path, capacityBytes: '64MiB', fsync }];
    const t = await startDepot({ resource }, undefined, diskIo === undefined ? {} : { diskIo });
    let open = true;
    cleanups.push(() => (open ? t.close() : undefined));
    return {
      t,
      async restart(): Promise<TestDepot> {
        open = false;
        await t.close();
        const t2 = await startDepot({ port: t.port, resource: [{ ...resource[0]!, startupCheck: 'full' as const }] });
        cleanups.push(() => t2.close());
        return t2;
      },
    };
  }

  /** Fails the next `n` write commits of the metadata store (under `fast`, commits are not grouped). */
  function failCommits(n: number): void {
    const real = MetadataDb.prototype.commitWrite;
    vi.spyOn(MetadataDb.prototype, 'commitWrite').mockImplementation(function (
      this: MetadataDb,
      ...args: Parameters<MetadataDb['commitWrite']>
    ) {
      if (n > 0) {
        n--;
        throw new Error('EIO (injected)');
      }
      return real.apply(this, args);
    });
  }

  it('--fsync safe, the WAL sync fails: refused, the old bytes are served, before and after a restart', async () => {
    const { t, restart } = await depot('safe');
    const caps = await t.client.allocate(t, { size: 1 << 20, durationSec: 600 });
    await t.client.store(caps.write, Buffer.alloc(200_000, OLD));
    failWalSyncs(1);
    expect(await tryWrite(t, caps, 100, Buffer.alloc(150_000, NEW))).not.toBe('ok');
    expect((await t.client.probe(caps.manage)).size).toBe(200_000);
    expect(allOf(await loadAll(t, caps, 200_000), OLD, 200_000)).toBe(true);
    // Not damaged: the next overwrite is taken and served.
    expect(await tryWrite(t, caps, 70_000, Buffer.alloc(10, NEW))).toBe('ok');
    vi.restoreAllMocks();
    const t2 = await restart();
    const after = await loadAll(t2, caps, 200_000);
    expect(allOf(typeof after === 'string' ? after : after.subarray(70_000, 70_010), NEW, 10)).toBe(true);
    if (typeof after !== 'string') after.fill(OLD, 70_000, 70_010);
    expect(allOf(after, OLD, 200_000)).toBe(true);
  });

  it('--fsync fast, the metadata commit fails: refused, the old bytes are served, before and after a restart', async () => {
    const { t, restart } = await depot('fast');
    const caps = await t.client.allocate(t, { size: 1 << 20, durationSec: 600 });
    await t.client.store(caps.write, Buffer.alloc(200_000, OLD));
    failCommits(1);
    expect(await tryWrite(t, caps, 100, Buffer.alloc(150_000, NEW))).not.toBe('ok');
    expect((await t.client.probe(caps.manage)).size).toBe(200_000);
    expect(allOf(await loadAll(t, caps, 200_000), OLD, 200_000)).toBe(true);
    vi.restoreAllMocks();
    const t2 = await restart();
    expect(allOf(await loadAll(t2, caps, 200_000), OLD, 200_000)).toBe(true);
  });

  it('--fsync safe, the data file fdatasync fails after the copy in place: refused, the old bytes are served', async () => {
    const faults = { datasync: 0, passWrites: 0, failWrites: 0 };
    const { t, restart } = await depot('safe', faultyDataIo(faults));
    const caps = await t.client.allocate(t, { size: 4 << 20, durationSec: 600 });
    await t.client.store(caps.write, Buffer.alloc(1_500_000, OLD));
    faults.datasync = 1;
    // 2 MiB: its journal takes two records; its tail past the data is an append, which is cut.
    expect(await tryWrite(t, caps, 5, Buffer.alloc(2 << 20, NEW))).not.toBe('ok');
    expect(faults.datasync).toBe(0);
    expect((await t.client.probe(caps.manage)).size).toBe(1_500_000);
    expect(allOf(await loadAll(t, caps, 1_500_000), OLD, 1_500_000)).toBe(true);
    const t2 = await restart();
    expect((await t2.client.probe(caps.manage)).size).toBe(1_500_000);
    expect(allOf(await loadAll(t2, caps, 1_500_000), OLD, 1_500_000)).toBe(true);
  });

  it('a refused overwrite whose old bytes cannot be put back marks the allocation damaged, never serves the refused bytes, and a restart on a healthy disk puts the old ones back', async () => {
    const faults = { datasync: 0, passWrites: 0, failWrites: 0 };
    const { t, restart } = await depot('safe', faultyDataIo(faults));
    const caps = await t.client.allocate(t, { size: 1 << 20, durationSec: 600 });
    await t.client.store(caps.write, Buffer.alloc(200_000, OLD));
    // The copy in place gets through (one positional write: one journal record), then the data
    // file takes no more writes and fails every fdatasync: the old bytes cannot be put back.
    faults.passWrites = 1;
    faults.failWrites = Infinity;
    faults.datasync = Infinity;
    expect(await tryWrite(t, caps, 100, Buffer.alloc(150_000, NEW))).not.toBe('ok');
    const seen = await loadAll(t, caps, 200_000);
    expect(typeof seen === 'string' ? seen : 'served').toMatch(/-15\b/);
    faults.datasync = 0;
    faults.failWrites = 0;
    // The rollback record and the undo image are durable in the journal (only the data file failed).
    const t2 = await restart();
    expect((await t2.client.probe(caps.manage)).size).toBe(200_000);
    expect(allOf(await loadAll(t2, caps, 200_000), OLD, 200_000)).toBe(true);
    expect(await tryWrite(t2, caps, 0, Buffer.alloc(10, NEW))).toBe('ok');
  });

  it('an undo image whose first write-back fails is written back again: the old bytes are served, not damaged', async () => {
    const faults = { datasync: 0, passWrites: 0, failWrites: 0 };
    const { t } = await depot('safe', faultyDataIo(faults));
    const caps = await t.client.allocate(t, { size: 1 << 20, durationSec: 600 });
    await t.client.store(caps.write, Buffer.alloc(200_000, OLD));
    // The copy in place gets through, its fdatasync fails, the first write-back too.
    faults.passWrites = 1;
    faults.failWrites = 1;
    faults.datasync = 1;
    expect(await tryWrite(t, caps, 100, Buffer.alloc(150_000, NEW))).not.toBe('ok');
    expect(faults).toEqual({ datasync: 0, passWrites: 0, failWrites: 0 });
    expect(allOf(await loadAll(t, caps, 200_000), OLD, 200_000)).toBe(true);
    expect(await tryWrite(t, caps, 0, Buffer.alloc(10, NEW))).toBe('ok');
  });
  it('an overwrite whose allocation is deleted during its transfer is refused, leaves no file and marks nothing damaged', async () => {
    const dir = tempDir();
    cleanups.push(dir.cleanup);
    const warnings: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) });
    const t = await startDepot(
      { resource: [{ rid: '1', path: dir.path, capacityBytes: '64MiB', fsync: 'safe', trashGraceSec: 0 }] },
      undefined,
      { logger },
    );
    cleanups.push(() => t.close());
    const caps = await t.client.allocate(t, { size: 1 << 20, durationSec: 600 });
    await t.client.store(caps.write, Buffer.alloc(200_000, OLD));
    const s = await RawSession.open(t.port);
    cleanups.push(() => s.end());
    const body = Buffer.alloc(150_000, NEW);
    s.send(`1 13 ${capTokens(caps.write).join(' ')} 100 ${body.length} 10\n`);
    expect(await s.line()).toBe('1 \n');
    s.send(body.subarray(0, 100_000));
    // Deleted (its only read reference dropped) while the body is on its way: purged at once.
    await t.client.decr(caps.manage, 'read');
    s.send(body.subarray(100_000));
    expect(await s.line(10_000)).toMatch(/^-4 /);
    const left = readdirSync(join(dir.path, 'data'), { recursive: true, encoding: 'utf8' }).filter((f) =>
      /\/\d+(\.redo)?$/.test(f),
    );
    expect(left).toEqual([]);
    expect(warnings.filter((w) => w.includes('damaged'))).toEqual([]);
    expect(existsSync(join(dir.path, 'data'))).toBe(true);
  });
});
