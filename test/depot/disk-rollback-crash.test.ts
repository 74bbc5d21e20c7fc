import { afterEach, describe, expect, it } from 'vitest';
import type { AllocationCaps } from '../../ibp/index.js';
import { crashingDepot, pattern, restartDepot } from '../helpers/depot-child.js';

const DIST = new URL('../../dist/depot/index.js', import.meta.url);
const METADATA_DIST = new URL('../../dist/depot/resources/disk/metadata-db.js', import.meta.url);
const BLOCK = 64 * 1024;

/**
 * A depot child (`safe`) where an overwrite is refused after its copy in place, then the depot
 * dies while it rolls the write back. `fault` refuses the write: `wal` fails the metadata WAL's
 * second fdatasync (the first is the STORE's; the write's grouped commit is then recorded but not
 * known durable, and putting its size back makes it durable), `datasync` fails the data file's
 * second fdatasync (the STORE's is the first; the write's, after its copy in place). `kill` picks
 * the point of the rollback it SIGKILLs itself at: `record` before its rollback record reaches the
 * journal, `write-back` half-way through writing the old bytes back (the record is durable by then),
 * `undo-metadata` just before the metadata store records the undo (the size and checksums the write
 * had replaced), `after-undo-metadata` just after (before the file is cut back to its old size).
 */
const CHILD = `
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename } from 'node:path';
const { DepotServer, parseDepotOptions } = await import(process.env.ANVIL_DIST);
const { MetadataDb } = await import(process.env.ANVIL_METADATA_DIST);
const [dir, port, fault, kill] = process.argv.slice(2);
const die = () => { process.kill(process.pid, 'SIGKILL'); return new Promise(() => undefined); };
const dieNow = () => { process.kill(process.pid, 'SIGKILL'); Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10_000); };
let faulted = false;
const eio = () => { faulted = true; return Object.assign(new Error('EIO: injected'), { code: 'EIO' }); };
let walSyncs = 0;
const realSyncWal = MetadataDb.prototype.syncWal;
MetadataDb.prototype.syncWal = async function () {
  if (fault === 'wal' && ++walSyncs === 2) throw eio();
  return realSyncWal.call(this);
};
const realSetBlocks = MetadataDb.prototype.setBlocks;
MetadataDb.prototype.setBlocks = function (...args) {
  if (faulted && kill === 'undo-metadata') dieNow();
  const result = realSetBlocks.apply(this, args);
  if (faulted && kill === 'after-undo-metadata') dieNow();
  return result;
};
let dataSyncs = 0;
const diskIo = {
  async open(path, flags) {
    const fh = await open(path, flags, 0o600);
    const name = basename(path);
    // The rollback opens its descriptors afresh, without O_CREAT: the journal to write its record,
    // the data file to write the old bytes back.
    const fresh = (flags & constants.O_CREAT) === 0 && (flags & (constants.O_WRONLY | constants.O_RDWR)) !== 0;
    if (/^\\d+$/.test(name)) {
      const datasync = fh.datasync.bind(fh);
      fh.datasync = async () => {
        if (fault === 'datasync' && ++dataSyncs === 2) throw eio();
        return datasync();
      };
      if (fresh && kill === 'write-back') {
        const write = fh.write.bind(fh);
        fh.writev = async (buffers, position) => {
          const all = Buffer.concat(buffers);
          await write(all, 0, all.length >> 1, position);
          return die();
        };
      }
    } else if (/^\\d+\\.redo$/.test(name) && fresh && kill === 'record') {
      fh.writev = () => die();
    }
    return fh;
  },
};
const options = parseDepotOptions({ host: '127.0.0.1', port: Number(port), logLevel: 'warn', resource: [{ kind: 'disk', path: dir, fsync: 'safe' }] });
const depot = await DepotServer.start(options, { diskIo });
process.stdout.write('listening on ' + depot.url + '\\n');
`;

type Kill = 'record' | 'write-back' | 'undo-metadata' | 'after-undo-metadata';

interface Case {
  fault: 'wal' | 'datasync';
  kill: Kill;
  /**
   * What the write's range holds after the restart: `old` once the rollback record is durable (the
   * restart finishes the rollback), `new` when the depot died before it (the write was never
   * answered: the restart finishes it, or it was recorded already).
   */
  outcome: 'old' | 'new';
}

const CASES: Case[] = [
  { fault: 'wal', kill: 'write-back', outcome: 'old' },
  { fault: 'datasync', kill: 'write-back', outcome: 'old' },
  { fault: 'wal', kill: 'record', outcome: 'new' },
  { fault: 'datasync', kill: 'record', outcome: 'new' },
  { fault: 'wal', kill: 'undo-metadata', outcome: 'old' },
  { fault: 'datasync', kill: 'after-undo-metadata', outcome: 'old' },
];

interface GrowCase {
  /** An overwrite of the last 60 000 bytes that grows the allocation by 140 000, or an append of 200 000. */
  write: 'overwrite' | 'append';
  fault: 'wal' | 'datasync';
  kill: Kill;
  /** `old`: the allocation is as acknowledged; `new`: the write took effect whole (size and bytes). */
  outcome: 'old' | 'new';
}

const GROW_CASES: GrowCase[] = [
  { write: 'overwrite', fault: 'wal', kill: 'record', outcome: 'new' },
  { write: 'overwrite', fault: 'wal', kill: 'undo-metadata', outcome: 'old' },
  { write: 'overwrite', fault: 'wal', kill: 'after-undo-metadata', outcome: 'old' },
  { write: 'overwrite', fault: 'datasync', kill: 'undo-metadata', outcome: 'old' },
  { write: 'append', fault: 'wal', kill: 'undo-metadata', outcome: 'new' },
  { write: 'append', fault: 'wal', kill: 'after-undo-metadata', outcome: 'old' },
];

/**
 * A depot child over a new directory that fails `fault` and dies at `kill` (see CHILD), a client
 * and a 4 MiB allocation on it; `cleanups` undo them.
 */
async function crashingRollback(cleanups: Array<() => unknown>, fault: Case['fault'], kill: Kill) {
  const d = await crashingDepot(cleanups, CHILD, DIST, (data) => [data, '0', fault, kill], {
    ANVIL_DIST: DIST.href,
    ANVIL_METADATA_DIST: METADATA_DIST.href,
  });
  const caps: AllocationCaps = await d.client.allocate(d.addr, { size: 4 << 20, durationSec: 3600 });
  return { data: d.data, client: d.client, first: d.child, caps };
}

describe('crash while a refused overwrite is rolled back', () => {
  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  for (const c of CASES) {
    it(`refused by a failed ${c.fault}, killed at its ${c.kill}: the range is all ${c.outcome}, every acknowledged byte outside it loads`, async () => {
      const { data, client, first, caps } = await crashingRollback(cleanups, c.fault, c.kill);
      const stored = 3 << 20;
      const old = pattern(stored, 7);
      expect(await client.store(caps.write, old)).toBe(stored);
      // 2 MiB at 100 000: two journal records, so the write-back takes two writes as well.
      const offset = 100_000;
      const body = pattern(2 << 20, 101);
      await expect(client.write(caps.write, offset, body)).rejects.toThrow();
      expect(await first.exit).toBe('SIGKILL');
      client.close();

      const { again, client: client2 } = await restartDepot(cleanups, data, first.port);
      expect((await client2.probe(caps.manage)).size).toBe(stored);
      const got = await client2.load(caps.read, 0, stored);
      const neu = Buffer.from(old);
      body.copy(neu, offset);
      const want = c.outcome === 'old' ? old : neu;
      for (let at = 0; at < stored; at += BLOCK) {
        expect(got.subarray(at, at + BLOCK).equals(want.subarray(at, at + BLOCK)), `block ${at / BLOCK}`).toBe(true);
      }
      // the allocation takes writes again and keeps them
      await client2.write(caps.write, 0, Buffer.from('after'));
      expect((await client2.load(caps.read, 0, 5)).toString()).toBe('after');
      expect(await again.proc.kill('SIGTERM')).toBe(0);
    }, 60_000);
  }
});

describe('crash while a refused write that grows an allocation of unaligned size is undone', () => {
  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  for (const c of GROW_CASES) {
    it(`${c.write} refused by a failed ${c.fault}, killed at its ${c.kill}: the allocation is ${c.outcome === 'old' ? 'as acknowledged' : 'the write whole'}, every acknowledged byte loads`, async () => {
      const { data, client, first, caps } = await crashingRollback(cleanups, c.fault, c.kill);
      // The block holding the end is partly filled: the write changes its checksum's extent.
      const stored = (3 << 20) + 5000;
      const old = pattern(stored, 7);
      expect(await client.store(caps.write, old)).toBe(stored);
      const offset = c.write === 'append' ? stored : stored - 60_000;
      const body = pattern(200_000, 101);
      if (c.write === 'append') await expect(client.store(caps.write, body)).rejects.toThrow();
      else await expect(client.write(caps.write, offset, body)).rejects.toThrow();
      expect(await first.exit).toBe('SIGKILL');
      client.close();

      const { again, client: client2 } = await restartDepot(cleanups, data, first.port);
      const want = c.outcome === 'old' ? old : Buffer.concat([old.subarray(0, offset), body]);
      expect((await client2.probe(caps.manage)).size).toBe(want.length);
      const got = await client2.load(caps.read, 0, want.length);
      for (let at = 0; at < want.length; at += BLOCK) {
        expect(got.subarray(at, at + BLOCK).equals(want.subarray(at, at + BLOCK)), `block ${at / BLOCK}`).toBe(true);
      }
      await client2.store(caps.write, Buffer.from('after'));
      expect((await client2.load(caps.read, want.length, 5)).toString()).toBe('after');
      expect(await again.proc.kill('SIGTERM')).toBe(0);
    }, 60_000);
  }
});
