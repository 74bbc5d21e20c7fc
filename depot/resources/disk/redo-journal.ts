import { constants as fsConstants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { crc32 } from 'node:zlib';

/**
 * The redo journal of an overwrite. A WRITE that changes bytes already committed (an offset inside
 * the data) cannot change them in place safely on its own: a crash after some bytes reach the file
 * but before the block checksums are committed would leave blocks that fail verification. So the
 * bytes of such a write are first appended to `<file>.redo` as records; when all have arrived an end
 * record follows (made durable under the `safe` policy), and only then are they copied in place and
 * the checksums committed. After a crash, start-up re-applies a journal that has its end record and
 * belongs to a write that did not commit (its sequence number is above the one the metadata store
 * recorded for the allocation), then records the checksums of the blocks it touched. So a WRITE a
 * crash interrupts is either not applied at all (no end record: its bytes never reached the data
 * file) or applied in full; every other byte keeps its committed value.
 *
 * The undo image. Once the journal is complete (and durable), the committed bytes the write is about
 * to replace are appended after the end record as undo records, before the copy in place; they are
 * not synced then. If the write is refused after its copy in place began (the copy, the data file's
 * fdatasync or the metadata commit failed), a rollback record follows them, carrying a sequence
 * number of its own (above the write's), the committed size and the committed checksums of the
 * blocks the write touched (and of the block holding the committed end), and the journal is made
 * durable (under `safe`); then the undo records are written back over the range and made durable,
 * and one metadata transaction records the rollback's sequence number with that size and those
 * checksums (dropping those of blocks past the size); only then is the file cut back to the size.
 * So the refused bytes are never served and the acknowledged ones stay. After a crash, start-up
 * finishes a rollback newer than the recorded sequence number (writes the image back again and
 * records the size and checksums its record carries, never ones computed from the file) instead of
 * the redo; a journal without a whole rollback record is redone as above (a crash before the
 * refusal was sent leaves the write interrupted: it may take effect). A refused write that changed
 * no committed byte (an append, or an overwrite refused before its copy in place) needs no image; if
 * the metadata store fails to record its undo, its journal is replaced by an undo marker: a rollback
 * record alone, which start-up finishes the same way.
 *
 * A record: magic u32 | sequence u64 | offset u64 | length u32 | payload CRC-32 u32 | header
 * CRC-32 u32 (32 bytes, little-endian), then the payload; the end record has its own magic and no
 * payload, undo records their own, and the rollback record the rollback's sequence number in place
 * of the offset and as payload the committed size (u64) then a block index (u32) and its checksum
 * (u32) per block. A torn or foreign record ends the journal.
 */
const MAGIC = 0x52564e41; // "ANVR"
const END_MAGIC = 0x45564e41; // "ANVE"
const UNDO_MAGIC = 0x55564e41; // "ANVU"
const ROLLBACK_MAGIC = 0x42564e41; // "ANVB"
export const RECORD_HEADER_BYTES = 32;
/** Records longer than this are not ours (batches are about 1 MiB). */
const MAX_RECORD_BYTES = 1 << 30;

export function journalPath(dataFile: string): string {
  return `${dataFile}.redo`;
}

/** The header of a record holding `parts`, to be written at `offset` of the data file. */
export function recordHeader(seq: number, offset: number, parts: readonly Buffer[], magic = MAGIC): Buffer {
  let length = 0;
  let crc = 0;
  for (const p of parts) {
    length += p.length;
    crc = crc32(p, crc);
  }
  const h = Buffer.alloc(RECORD_HEADER_BYTES);
  h.writeUInt32LE(magic, 0);
  h.writeBigUInt64LE(BigInt(seq), 4);
  h.writeBigUInt64LE(BigInt(offset), 12);
  h.writeUInt32LE(length, 20);
  h.writeUInt32LE(crc, 24);
  h.writeUInt32LE(crc32(h.subarray(0, 28)), 28);
  return h;
}

/** The record that closes a complete journal of write `seq`. */
export function endRecord(seq: number): Buffer {
  return recordHeader(seq, 0, [], END_MAGIC);
}

/**
 * In a rollback record, a block number with this bit set names a block to record as a hole (its
 * checksum dropped: see {@link HOLE}); block numbers stay below it (allocations under 128 TiB).
 */
const HOLE_BIT = 0x8000_0000;
/** In a map of block checksums to record, this value drops the block's checksum: it is a hole again. */
export const HOLE = -1;

/**
 * The record, after its undo image, that rolls write `seq` back as change `rollbackSeq`, to the
 * committed `size` and the committed checksums `blocks` ({@link HOLE} for a block that was a hole)
 * (header and payload).
 */
export function rollbackRecord(seq: number, rollbackSeq: number, size: number, blocks: ReadonlyMap<number, number>): Buffer {
  const payload = Buffer.alloc(8 + 8 * blocks.size);
  payload.writeBigUInt64LE(BigInt(size), 0);
  let at = 8;
  for (const [b, crc] of blocks) {
    if (b >= HOLE_BIT) throw new RangeError(`block ${b} is past what a rollback record can name`);
    payload.writeUInt32LE(crc === HOLE ? b + HOLE_BIT : b, at);
    payload.writeUInt32LE(crc === HOLE ? 0 : crc, at + 4);
    at += 8;
  }
  return Buffer.concat([recordHeader(seq, rollbackSeq, [payload], ROLLBACK_MAGIC), payload]);
}

/** A rollback as its record tells it: the range of its undo image, and what to record once it is back. */
export interface Rollback {
  /** The range the undo image covers. */
  readonly from: number;
  readonly to: number;
  readonly rollbackSeq: number;
  /** The committed size, and the committed checksums to record again. */
  readonly size: number;
  readonly crcs: ReadonlyMap<number, number>;
}

export interface RedoRecord {
  readonly seq: number;
  readonly offset: number;
  readonly payload: Buffer;
}

/**
 * The records at the head of a journal that share the first record's sequence number, up to its
 * end record; `complete` tells whether the end record was found, and `end` where the bytes after
 * it start (the caller checks after the loop).
 */
export async function* readRecords(fh: FileHandle, state: { complete: boolean; end?: number }): AsyncGenerator<RedoRecord> {
  state.complete = false;
  let pos = 0;
  let seq: number | undefined;
  for (;;) {
    const h = await readFully(fh, RECORD_HEADER_BYTES, pos);
    if (h === undefined || h.readUInt32LE(28) !== crc32(h.subarray(0, 28))) return;
    const magic = h.readUInt32LE(0);
    const recSeq = Number(h.readBigUInt64LE(4));
    if ((magic !== MAGIC && magic !== END_MAGIC) || (seq !== undefined && recSeq !== seq)) return;
    if (magic === END_MAGIC) {
      state.complete = seq !== undefined;
      state.end = pos + RECORD_HEADER_BYTES;
      return;
    }
    const offset = Number(h.readBigUInt64LE(12));
    const length = h.readUInt32LE(20);
    if (length > MAX_RECORD_BYTES) return;
    const payload = await readFully(fh, length, pos + RECORD_HEADER_BYTES);
    if (payload === undefined || crc32(payload) !== h.readUInt32LE(24)) return;
    seq = recSeq;
    yield { seq: recSeq, offset, payload };
    pos += RECORD_HEADER_BYTES + length;
  }
}

/** Writes a record's `payload` at `offset` of the data file (the copy in place). */
export async function copyInPlace(data: FileHandle, payload: Buffer, offset: number): Promise<void> {
  for (let done = 0; done < payload.length;) {
    const { bytesWritten } = await data.write(payload, done, payload.length - done, offset + done);
    done += bytesWritten;
  }
}

/**
 * Copies every record of a complete journal into the data file (within its first `size` bytes);
 * returns the blocks written. Throws if the journal turns out incomplete (then part may be copied).
 */
export async function applyJournal(
  journal: FileHandle,
  data: FileHandle,
  size: number,
  blockBytes: number,
): Promise<Set<number>> {
  const blocks = new Set<number>();
  const state = { complete: false };
  for await (const r of readRecords(journal, state)) {
    const n = Math.min(r.payload.length, size - r.offset);
    if (n <= 0) continue;
    await copyInPlace(data, r.payload.subarray(0, n), r.offset);
    for (let b = Math.floor(r.offset / blockBytes); b * blockBytes < r.offset + n; b++) blocks.add(b);
  }
  if (!state.complete) throw new Error('the redo journal reads back incomplete');
  return blocks;
}

/** What {@link redoJournal} finished: a write redone, or a refused write rolled back. */
export type Redone =
  | { readonly rolledBack: false; readonly seq: number; readonly blocks: Set<number> }
  | ({ readonly rolledBack: true; readonly seq: number } & Rollback);

/**
 * The rollback the journal of `dataFile` holds that is newer than `committedSeq` (a crash
 * interrupted it before the metadata store recorded it); undefined when there is none.
 */
export async function pendingRollback(dataFile: string, committedSeq: number): Promise<Rollback | undefined> {
  const jfh = await open(journalPath(dataFile), fsConstants.O_RDONLY).catch(() => undefined);
  if (jfh === undefined) return undefined;
  try {
    const rollback = (await inspect(jfh))?.rollback;
    return rollback !== undefined && rollback.rollbackSeq > committedSeq ? rollback : undefined;
  } finally {
    await jfh.close();
  }
}

/**
 * The journal of a refused write that changed no committed byte (an append, or an overwrite refused
 * before its copy in place) whose undo the metadata store failed to record: its rollback record
 * alone, with an empty undo image, so that start-up records the committed size and checksums.
 */
export function undoMarker(rollbackSeq: number, size: number, blocks: ReadonlyMap<number, number>): Buffer {
  return rollbackRecord(rollbackSeq, rollbackSeq, size, blocks);
}

/**
 * Whose a journal is: a complete one (its write's sequence number, where its end record ends, and its
 * rollback if a whole rollback record follows its undo image), or an undo marker ({@link undoMarker});
 * undefined for anything else (incomplete, torn, foreign).
 */
async function inspect(jfh: FileHandle): Promise<{ seq: number; end: number; rollback: Rollback | undefined } | undefined> {
  const state: { complete: boolean; end?: number } = { complete: false };
  let seq: number | undefined;
  for await (const r of readRecords(jfh, state)) seq = r.seq;
  if (state.complete && seq !== undefined && state.end !== undefined) {
    return { seq, end: state.end, rollback: await findRollback(jfh, state.end, seq) };
  }
  const h = await readFully(jfh, RECORD_HEADER_BYTES, 0);
  if (h === undefined || h.readUInt32LE(28) !== crc32(h.subarray(0, 28)) || h.readUInt32LE(0) !== ROLLBACK_MAGIC)
    return undefined;
  const markerSeq = Number(h.readBigUInt64LE(4));
  const rollback = await findRollback(jfh, 0, markerSeq, true);
  return rollback === undefined ? undefined : { seq: markerSeq, end: 0, rollback };
}

/**
 * Finishes what the journal of `dataFile` holds: the rollback of a refused write when its rollback
 * record is whole and newer than `committedSeq` (the undo image is written back, within the
 * committed size the record carries), else the write itself, within the first `size` bytes, when
 * the journal is complete and the write newer than `committedSeq` (its records are re-applied).
 * Returns what to record (the data file is durable by then); undefined when there is nothing to do.
 */
export async function redoJournal(
  dataFile: string,
  committedSeq: number,
  size: number,
  blockBytes: number,
): Promise<Redone | undefined> {
  const jfh = await open(journalPath(dataFile), fsConstants.O_RDONLY).catch(() => undefined);
  if (jfh === undefined) return undefined;
  try {
    // First pass: is it complete, and whose is it?
    const journal = await inspect(jfh);
    if (journal === undefined) return undefined;
    const { seq, rollback } = journal;
    if (rollback !== undefined) {
      if (rollback.rollbackSeq <= committedSeq) return undefined;
      // An undo marker's image is empty: no byte goes back.
      if (rollback.to > rollback.from) {
        const dfh = await open(dataFile, fsConstants.O_WRONLY);
        try {
          await restoreUndo(jfh, journal.end, dfh, seq, rollback.from, rollback.to, rollback.size);
          await dfh.datasync();
        } finally {
          await dfh.close();
        }
      }
      return { ...rollback, seq: rollback.rollbackSeq, rolledBack: true };
    }
    if (seq <= committedSeq) return undefined;
    const dfh = await open(dataFile, fsConstants.O_WRONLY);
    try {
      const blocks = await applyJournal(jfh, dfh, size, blockBytes);
      await dfh.datasync();
      return { seq, blocks, rolledBack: false };
    } finally {
      await dfh.close();
    }
  } finally {
    await jfh.close();
  }
}

/**
 * The rollback of write `seq` whose undo image starts at `at` of its journal, when every undo record
 * verifies and a whole rollback record follows them (an empty image only if `emptyImage`, for an
 * undo marker); else undefined.
 */
export async function findRollback(
  journal: FileHandle,
  at: number,
  seq: number,
  emptyImage = false,
): Promise<Rollback | undefined> {
  let from: number | undefined;
  let to = 0;
  for (;;) {
    const h = await readFully(journal, RECORD_HEADER_BYTES, at);
    if (h === undefined || h.readUInt32LE(28) !== crc32(h.subarray(0, 28)) || Number(h.readBigUInt64LE(4)) !== seq) {
      return undefined;
    }
    const magic = h.readUInt32LE(0);
    const offset = Number(h.readBigUInt64LE(12));
    const length = h.readUInt32LE(20);
    if (magic === ROLLBACK_MAGIC) {
      if (from === undefined && emptyImage) from = to = 0;
      if (from === undefined || length < 8 || length % 8 !== 0 || length > MAX_RECORD_BYTES) return undefined;
      const payload = await readFully(journal, length, at + RECORD_HEADER_BYTES);
      if (payload === undefined || crc32(payload) !== h.readUInt32LE(24)) return undefined;
      const size = Number(payload.readBigUInt64LE(0));
      const crcs = new Map<number, number>();
      for (let p = 8; p < length; p += 8) {
        const b = payload.readUInt32LE(p);
        if (b >= HOLE_BIT) crcs.set(b - HOLE_BIT, HOLE);
        else crcs.set(b, payload.readUInt32LE(p + 4));
      }
      return { from, to, rollbackSeq: offset, size, crcs };
    }
    if (magic !== UNDO_MAGIC || length === 0 || length > MAX_RECORD_BYTES || (from !== undefined && offset !== to)) {
      return undefined;
    }
    const payload = await readFully(journal, length, at + RECORD_HEADER_BYTES);
    if (payload === undefined || crc32(payload) !== h.readUInt32LE(24)) return undefined;
    from ??= offset;
    to = offset + length;
    at += RECORD_HEADER_BYTES + length;
  }
}

/**
 * Appends the bytes `[from, to)` of `data` to the journal of write `seq` at `at` (just past its end
 * record) as undo records of at most `runBytes` each; resolves to the journal's new end. Throws if
 * the data file is shorter than `to` (nothing is copied in place then). With `keep`, the records
 * written (headers and payloads, in order) are also kept there, to be written again from memory.
 */
export async function saveUndo(
  journal: FileHandle,
  at: number,
  data: FileHandle,
  from: number,
  to: number,
  seq: number,
  runBytes: number,
  keep?: Buffer[],
): Promise<number> {
  const run = Buffer.allocUnsafe(Math.min(runBytes, to - from));
  for (let pos = from; pos < to;) {
    const n = Math.min(run.length, to - pos);
    const payload = await readFully(data, n, pos, run);
    if (payload === undefined) throw new Error(`the data file ends before byte ${pos + n}: no undo image`);
    const header = recordHeader(seq, pos, [payload], UNDO_MAGIC);
    await writevFully(journal, [header, payload], at);
    keep?.push(header, Buffer.from(payload));
    at += RECORD_HEADER_BYTES + n;
    pos += n;
  }
  return at;
}

/**
 * The undo records of write `seq` (saved by {@link saveUndo} at `at` of its journal, covering
 * `[from, to)`), in order, each checked before it is yielded: header CRC, kind, sequence number,
 * offset (each starts where the last ended) and payload CRC. Throws at the first that does not
 * check, or if the image ends short of `to`.
 */
async function* undoRecords(
  journal: FileHandle,
  at: number,
  seq: number,
  from: number,
  to: number,
): AsyncGenerator<{ at: number; pos: number; header: Buffer; payload: Buffer }> {
  for (let pos = from; pos < to;) {
    const header = await readFully(journal, RECORD_HEADER_BYTES, at);
    const length = header?.readUInt32LE(20) ?? 0;
    const payload =
      header !== undefined &&
      header.readUInt32LE(28) === crc32(header.subarray(0, 28)) &&
      header.readUInt32LE(0) === UNDO_MAGIC &&
      Number(header.readBigUInt64LE(4)) === seq &&
      Number(header.readBigUInt64LE(12)) === pos &&
      length > 0 &&
      length <= to - pos
        ? await readFully(journal, length, at + RECORD_HEADER_BYTES)
        : undefined;
    if (header === undefined || payload === undefined || crc32(payload) !== header.readUInt32LE(24)) {
      throw new Error(`the undo image reads back torn at byte ${pos}`);
    }
    yield { at, pos, header, payload };
    at += RECORD_HEADER_BYTES + length;
    pos += length;
  }
}

/**
 * Writes the undo image of write `seq` (saved by {@link saveUndo} at `at` of its journal) back over
 * `[from, to)` of `data`, within its first `size` bytes. Every record is verified before its bytes
 * are written; throws if the image reads back torn, foreign or short of `to` (then part of the range
 * may be written back).
 */
export async function restoreUndo(
  journal: FileHandle,
  at: number,
  data: FileHandle,
  seq: number,
  from: number,
  to: number,
  size = Infinity,
): Promise<void> {
  for await (const r of undoRecords(journal, at, seq, from, to)) {
    const n = Math.min(r.payload.length, size - r.pos);
    if (n > 0) await writevFully(data, [r.payload.subarray(0, n)], r.pos);
  }
}

/**
 * Reads the undo image of write `seq` (at `at` of its journal, covering `[from, to)`) a record at a
 * time, checks each as {@link restoreUndo} does, and writes it back where it was: its pages are dirty
 * again, for the next sync to write. Throws at the first record that does not check (those before
 * it are written back).
 */
export async function rewriteUndo(journal: FileHandle, at: number, seq: number, from: number, to: number): Promise<void> {
  for await (const r of undoRecords(journal, at, seq, from, to)) await writevFully(journal, [r.header, r.payload], r.at);
}

/** Writes all of `parts` at `position`, however many calls it takes. */
export async function writevFully(fh: FileHandle, parts: Buffer[], position: number): Promise<void> {
  const total = parts.reduce((n, p) => n + p.length, 0);
  for (let written = 0; written < total;) {
    const { bytesWritten } = await fh.writev(skipBytes(parts, written), position + written);
    written += bytesWritten;
  }
}

/** The buffers of `parts` after skipping their first `n` bytes. */
function skipBytes(parts: Buffer[], n: number): Buffer[] {
  if (n === 0) return parts;
  const out: Buffer[] = [];
  for (const p of parts) {
    if (n >= p.length) {
      n -= p.length;
      continue;
    }
    out.push(n > 0 ? p.subarray(n) : p);
    n = 0;
  }
  return out;
}

async function readFully(fh: FileHandle, length: number, position: number, into?: Buffer): Promise<Buffer | undefined> {
  const buf = into === undefined ? Buffer.allocUnsafe(length) : into.subarray(0, length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, position + got);
    if (bytesRead === 0) return undefined;
    got += bytesRead;
  }
  return buf;
}
