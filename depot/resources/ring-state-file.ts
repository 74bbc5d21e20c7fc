import { constants as fsConstants } from 'node:fs';
import { mkdir, open, rm } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import type { RingCounters, RingPart, RingStateStore } from '../core/ring-allocation.js';
import type { FsyncPolicy } from '../options.js';

/** Bytes of one record slot; the file holds two, written alternately. */
const SLOT_BYTES = 2048;

interface StoredRecord {
  readonly seq: number;
  readonly before: RingCounters;
  readonly parts: readonly { at: number; length: number; after: RingCounters; digest: string }[];
}

/** SHA-256 of the given buffers, the digest a ring part is recognised by after a crash. */
export function partDigest(parts: readonly Buffer[]): Buffer {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
}

/**
 * The counters of a ring allocation on a disk resource, in a small file of two checksummed
 * slots written alternately (a torn slot write leaves the other one intact). Each record holds
 * the counters before a write and the parts the write is about to put in place, each with the
 * digest of its bytes; start-up takes the counters of the longest prefix of parts whose bytes
 * are in the data file, so a crash never exposes a half-written ring.
 *
 * The file lives in `<data dir>/rings/`, named by the allocation id and its read-key digest (an
 * id can be reused after its allocation is gone; the digest cannot).
 */
export class RingStateFile implements RingStateStore {
  private seq = 0;

  constructor(
    readonly path: string,
    private readonly fsync: FsyncPolicy,
  ) {}

  /** The state file of allocation `id` whose data file is `dataFile` (`<dir>/data/<shard>/<id>`). */
  static pathFor(dataFile: string, id: number, readDigest: Buffer): string {
    const dir = dirname(dirname(dirname(dataFile)));
    return join(dir, 'rings', `${id}.${readDigest.subarray(0, 8).toString('hex')}`);
  }

  /**
   * Reads the counters back after a restart, checking each recorded part against the bytes of
   * `dataFile` (whose first `physicalSize` bytes hold data). No file: a ring nothing was ever
   * written to.
   */
  async load(dataFile: string, physicalSize: number): Promise<RingCounters> {
    const fh = await open(this.path, fsConstants.O_RDONLY).catch(() => undefined);
    if (fh === undefined) return { written: 0, consumed: 0 };
    let best: StoredRecord | undefined;
    try {
      const buf = Buffer.alloc(SLOT_BYTES * 2);
      await fh.read(buf, 0, buf.length, 0);
      for (let slot = 0; slot < 2; slot++) {
        const rec = decodeSlot(buf.subarray(slot * SLOT_BYTES, (slot + 1) * SLOT_BYTES));
        if (rec !== undefined && (best === undefined || rec.seq > best.seq)) best = rec;
      }
    } finally {
      await fh.close();
    }
    if (best === undefined) return { written: 0, consumed: 0 };
    this.seq = best.seq;
    let state = best.before;
    const data = await open(dataFile, fsConstants.O_RDONLY).catch(() => undefined);
    try {
      for (const p of best.parts) {
        if (data === undefined || p.at + p.length > physicalSize) break;
        const bytes = Buffer.alloc(p.length);
        let got = 0;
        while (got < p.length) {
          const { bytesRead } = await data.read(bytes, got, p.length - got, p.at + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        if (got < p.length || partDigest([bytes]).toString('hex') !== p.digest) break;
        state = p.after;
      }
    } finally {
      await data?.close();
    }
    return state;
  }

  async record(before: RingCounters, parts: readonly { part: RingPart; digest: Buffer }[]): Promise<void> {
    this.seq++;
    const rec: StoredRecord = {
      seq: this.seq,
      before,
      parts: parts.map(({ part, digest }) => ({
        at: part.at,
        length: part.length,
        after: part.after,
        digest: digest.toString('hex'),
      })),
    };
    const slot = encodeSlot(rec);
    let fresh = false;
    let fh = await open(this.path, fsConstants.O_RDWR).catch(() => undefined);
    if (fh === undefined) {
      await mkdir(dirname(this.path), { recursive: true });
      fh = await open(this.path, fsConstants.O_RDWR | fsConstants.O_CREAT, 0o600);
      fresh = true;
    }
    try {
      let written = 0;
      while (written < slot.length) {
        const { bytesWritten } = await fh.write(slot, written, slot.length - written, (this.seq % 2) * SLOT_BYTES + written);
        written += bytesWritten;
      }
      if (this.fsync === 'safe') await fh.datasync();
    } finally {
      await fh.close();
    }
    if (fresh && this.fsync === 'safe') {
      const dir = await open(dirname(this.path), fsConstants.O_RDONLY);
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    }
  }

  async remove(): Promise<void> {
    await rm(this.path, { force: true });
  }
}

function encodeSlot(rec: StoredRecord): Buffer {
  const json = JSON.stringify(rec);
  const sum = createHash('sha256').update(json).digest('hex');
  const text = `${json}\n${sum}\n`;
  if (Buffer.byteLength(text) > SLOT_BYTES) throw new RangeError(`ring state record of ${text.length} bytes`);
  const out = Buffer.alloc(SLOT_BYTES);
  out.write(text, 'utf8');
  return out;
}

function decodeSlot(slot: Buffer): StoredRecord | undefined {
  const end = slot.indexOf(0);
  const text = slot.subarray(0, end < 0 ? slot.length : end).toString('utf8');
  const [json, sum] = text.split('\n');
  if (json === undefined || sum === undefined || json === '') return undefined;
  if (createHash('sha256').update(json).digest('hex') !== sum) return undefined;
  try {
    const rec = JSON.parse(json) as StoredRecord;
    return Number.isSafeInteger(rec.seq) ? rec : undefined;
  } catch {
    return undefined;
  }
}
