import { afterEach, describe, expect, it } from 'vitest';
import { endRecord, recordHeader } from '../../depot/resources/disk/redo-journal.js';
import type { AllocationCaps } from '../../ibp/index.js';
import { crashingDepot, pattern, restartDepot } from '../helpers/depot-child.js';

const DIST = new URL('../../dist/depot/index.js', import.meta.url);
const BLOCK = 64 * 1024;

/**
 * A depot child whose disk I/O dies at a chosen point of an in-place overwrite: on the Nth write
 * into an allocation's file at a position inside the file's bytes, it SIGKILLs itself before the
 * write (`before`), after writing half of it (`torn`), or after the whole of it (`after`: bytes in
 * the file, metadata not yet committed); `journal-torn` dies half-way through the Nth write to the
 * allocation's redo journal instead, and `journal-before` dies before the Nth write to the journal.
Deterministic, unlike a timed kill.
 */
const CHILD = `
import { open } from 'node:fs/promises';
import { basename } from 'node:path';
const { DepotServer, parseDepotOptions } = await import(process.env.ANVIL_DIST);
const [dir, port, mode, nth] = process.argv.slice(2);
let seen = 0;
const die = () => { process.kill(process.pid, 'SIGKILL'); return new Promise(() => undefined); };
const diskIo = {
  async open(path, flags) {
    const fh = await open(path, flags, 0o600);
    const journal = mode.startsWith('journal-');
    if (!(journal ? /^\\d+\\.redo$/ : /^\\d+$/).test(basename(path))) return fh;
    // in-place changes: writev (the batches) and write (a journal being applied)
    const writev = fh.writev.bind(fh);
    const write = fh.write.bind(fh);
    const hook = async (bytes, position, put) => {
      const { size } = await fh.stat();
      if ((!journal && position >= size) || ++seen !== Number(nth)) return put(bytes);
      if (mode === 'before' || mode === 'journal-before') return die();
      if (mode === 'torn' || journal) {
        await put(bytes.subarray(0, bytes.length >> 1));
        return die();
      }
      await put(bytes);
      return die();
    };
    fh.writev = (buffers, position) => hook(Buffer.concat(buffers), position, (b) => writev([b], position));
    fh.write = (buffer, off, len, position) =>
      typeof position === 'number' && Buffer.isBuffer(buffer)
        ? hook(buffer.subarray(off, off + len), position, (b) => write(b, 0, b.length, position))
        : write(buffer, off, len, position);
    return fh;
  },
};
const options = parseDepotOptions({ host: '127.0.0.1', port: Number(port), logLevel: 'warn', resource: [{ kind: 'disk', path: dir, fsync: 'safe' }] });
const depot = await DepotServer.start(options, { diskIo });
process.stdout.write('listening on ' + depot.url + '\\n');
`;

/** A depot child over a new directory that dies at `mode`'s `nth` write (see CHILD), and a client. */
function crashingPoint(cleanups: Array<() => unknown>, mode: string, nth: number) {
  return crashingDepot(cleanups, CHILD, DIST, (data) => [data, '0', mode, String(nth)], { ANVIL_DIST: DIST.href });
}

interface Case {
  name: string;
  /** Allocation max size, bytes stored (acknowledged) before the overwrite. */
  maxSize: number;
  stored: number;
  /** The overwrite that is killed. */
  offset: number;
  length: number;
  mode: 'before' | 'torn' | 'after' | 'journal-torn';
  /** Counted over every write of its kind since start-up, the prior overwrite's included. */
  nth: number;
  /** An overwrite acknowledged first, through the same journal (its descriptor kept, emptied at its commit). */
  prior?: { offset: number; length: number };
  /**
   * What the write's blocks hold after the restart: `new` when its journal was complete (the
   * restart finishes it), `old` when it was not (no byte of it reached the data).
   */
  outcome: 'old' | 'new';
}

const CASES: Case[] = [
  // The reported case: 1 KiB inside a 1 MiB allocation, killed with its bytes in the file.
  {
    name: '1 KiB inside 1 MiB, killed after its bytes reach the file',
    maxSize: 1 << 20,
    stored: 1 << 20,
    offset: 500_000,
    length: 1024,
    mode: 'after',
    nth: 1,
    outcome: 'new',
  },
  {
    name: '3 MiB inside 4 MiB, killed after the second batch',
    maxSize: 4 << 20,
    stored: 4 << 20,
    offset: 100_000,
    length: 3 << 20,
    mode: 'after',
    nth: 2,
    outcome: 'new',
  },
  {
    name: '3 MiB inside 4 MiB, killed half-way through the first batch',
    maxSize: 4 << 20,
    stored: 4 << 20,
    offset: 100_000,
    length: 3 << 20,
    mode: 'torn',
    nth: 1,
    outcome: 'new',
  },
  {
    name: '3 MiB inside 4 MiB, killed before the second batch',
    maxSize: 4 << 20,
    stored: 4 << 20,
    offset: 100_000,
    length: 3 << 20,
    mode: 'before',
    nth: 2,
    outcome: 'new',
  },
  {
    name: '3 MiB inside 4 MiB, killed with its journal complete, before any byte changes in place',
    maxSize: 4 << 20,
    stored: 4 << 20,
    offset: 100_000,
    length: 3 << 20,
    mode: 'before',
    nth: 1,
    outcome: 'new',
  },
  {
    name: '3 MiB inside 4 MiB, killed half-way through its second journal record',
    maxSize: 4 << 20,
    stored: 4 << 20,
    offset: 100_000,
    length: 3 << 20,
    mode: 'journal-torn',
    nth: 2,
    outcome: 'old',
  },
  // After a longer overwrite: 2 records (the second with its end record) and 2 undo records, then 2
  // in-place writes copied from the journal.
  {
    name: '1 KiB after a 1.5 MiB overwrite, killed half-way through its journal record',
    maxSize: 4 << 20,
    stored: 4 << 20,
    offset: 500_000,
    length: 1024,
    mode: 'journal-torn',
    nth: 5,
    prior: { offset: 0, length: 3 << 19 },
    outcome: 'old',
  },
  {
    name: '1 KiB after a 1.5 MiB overwrite, killed after its bytes reach the file',
    maxSize: 4 << 20,
    stored: 4 << 20,
    offset: 500_000,
    length: 1024,
    mode: 'after',
    nth: 3,
    prior: { offset: 0, length: 3 << 19 },
    outcome: 'new',
  },
  {
    name: '512 KiB across the end of the data, killed after its bytes reach the file',
    maxSize: 2 << 20,
    stored: 1 << 20,
    offset: 800_000,
    length: 512 << 10,
    mode: 'after',
    nth: 1,
    outcome: 'new',
  },
];

describe('crash during an unacknowledged WRITE inside committed data (deterministic kill points)', () => {
  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  for (const c of CASES) {
    it(`${c.name}: every acknowledged byte loads; the write's blocks are all ${c.outcome}`, async () => {
      const { client, child: first, data, addr } = await crashingPoint(cleanups, c.mode, c.nth);
      const caps: AllocationCaps = await client.allocate(addr, { size: c.maxSize, durationSec: 3600 });
      const old = pattern(c.stored, 7);
      expect(await client.store(caps.write, old)).toBe(c.stored);
      if (c.prior !== undefined) {
        // Acknowledged: from now on it is part of what must load.
        const before = pattern(c.prior.length, 55);
        expect(await client.write(caps.write, c.prior.offset, before)).toBe(c.prior.length);
        before.copy(old, c.prior.offset);
      }
      const body = pattern(c.length, 101);
      await expect(client.write(caps.write, c.offset, body)).rejects.toThrow();
      expect(await first.exit).toBe('SIGKILL');
      client.close();

      const { again, client: client2 } = await restartDepot(cleanups, data, first.port);
      const p = await client2.probe(caps.manage);
      expect(p.size).toBe(c.stored); // the unacknowledged WRITE did not commit a new size
      const got = await client2.load(caps.read, 0, p.size);
      const neu = Buffer.from(old);
      body.subarray(0, Math.max(0, c.stored - c.offset)).copy(neu, c.offset);
      let oldBlocks = 0;
      let newBlocks = 0;
      for (let at = 0; at < p.size; at += BLOCK) {
        const g = got.subarray(at, at + BLOCK);
        const isOld = g.equals(old.subarray(at, at + BLOCK));
        const isNew = g.equals(neu.subarray(at, at + BLOCK));
        const inWrite = at + BLOCK > c.offset && at < c.offset + c.length;
        if (!inWrite) expect(isOld, `block ${at / BLOCK} outside the write`).toBe(true);
        else expect(isOld || isNew, `block ${at / BLOCK} of the write is neither old nor new`).toBe(true);
        if (inWrite && isOld && !isNew) oldBlocks++;
        if (inWrite && isNew && !isOld) newBlocks++;
      }
      console.log(JSON.stringify({ crashPoint: c.name, oldBlocks, newBlocks }));
      // all or nothing: a complete journal is finished, an incomplete one left no trace
      if (c.outcome === 'new') expect(oldBlocks).toBe(0);
      else expect(newBlocks).toBe(0);
      // the allocation takes writes again and keeps them
      await client2.write(caps.write, 0, Buffer.from('after'));
      expect((await client2.load(caps.read, 0, 5)).toString()).toBe('after');
      expect(await again.proc.kill('SIGTERM')).toBe(0);
    }, 60_000);
  }
});

describe('bytes left in a redo journal', () => {
  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('an acknowledged overwrite whose bytes hold well-formed records of the next write: never applied for it', async () => {
    // Journal writes: WRITE A's record with its end record (1), its undo image (2); WRITE B's record
    // (3), then its end record (4), before which the depot dies.
    const { client, child: first, data, addr } = await crashingPoint(cleanups, 'journal-before', 4);
    const caps: AllocationCaps = await client.allocate(addr, { size: 4 << 20, durationSec: 3600 });
    const stored = pattern(2 << 20, 7);
    expect(await client.store(caps.write, stored)).toBe(2 << 20);
    // WRITE A (the allocation's first journaled write): at byte 1 000 of its body, a record of the
    // next write putting other bytes at 100, and that write's end record. In A's journal they lie
    // just past where B's record ends.
    const forged = Buffer.from('FORGED-FORGED-!!');
    const a = Buffer.alloc(200_000, 0x22);
    Buffer.concat([recordHeader(2, 100, [forged]), forged, endRecord(2)]).copy(a, 1000);
    expect(await client.write(caps.write, 0, a)).toBe(200_000);
    // WRITE B: 1 000 bytes inside the data (one journal record of 1 032 bytes) and 1 000 past it.
    await expect(client.write(caps.write, (2 << 20) - 1000, pattern(2000, 9))).rejects.toThrow();
    expect(await first.exit).toBe('SIGKILL');
    client.close();

    const { again, client: client2 } = await restartDepot(cleanups, data, first.port);
    expect((await client2.probe(caps.manage)).size).toBe(2 << 20);
    const expected = Buffer.from(stored);
    a.copy(expected, 0);
    // B had no end record: none of it applies, and A's bytes are all as acknowledged.
    expect((await client2.load(caps.read, 0, 2 << 20)).equals(expected)).toBe(true);
    expect(await again.proc.kill('SIGTERM')).toBe(0);
  }, 60_000);
});
