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
 * A record: magic u32 | sequence u64 | offset u64 | length u32 | payload CRC-32 u32 | header
 * CRC-32 u32 (32 bytes, little-endian), then the payload; the end record has its own magic and no
 * payload. A torn or foreign record ends the journal.
 */
const MAGIC = 0x52564e41; // "ANVR"
const END_MAGIC = 0x45564e41; // "ANVE"
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

export interface RedoRecord {
  readonly seq: number;
  readonly offset: number;
  readonly payload: Buffer;
}

/**
 * The records at the head of a journal that share the first record's sequence number, up to its
 * end record; `complete` tells whether the end record was found (the caller checks after the loop).
 */
export async function* readRecords(fh: FileHandle, state: { complete: boolean }): AsyncGenerator<RedoRecord> {
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
    for (let done = 0; done < n;) {
      const { bytesWritten } = await data.write(r.payload, done, n - done, r.offset + done);
      done += bytesWritten;
    }
    for (let b = Math.floor(r.offset / blockBytes); b * blockBytes < r.offset + n; b++) blocks.add(b);
  }
  if (!state.complete) throw new Error('the redo journal reads back incomplete');
  return blocks;
}

/**
 * Re-applies the journal of `dataFile` when it is complete and belongs to a write newer than
 * `committedSeq`, within the first `size` bytes. Returns that write's sequence number and the
 * blocks it touched (with the data file made durable), or undefined when there is nothing to redo.
 */
export async function redoJournal(
  dataFile: string,
  committedSeq: number,
  size: number,
  blockBytes: number,
): Promise<{ seq: number; blocks: Set<number> } | undefined> {
  const jfh = await open(journalPath(dataFile), fsConstants.O_RDONLY).catch(() => undefined);
  if (jfh === undefined) return undefined;
  try {
    // First pass: is it complete, and whose is it?
    const state = { complete: false };
    let seq: number | undefined;
    for await (const r of readRecords(jfh, state)) seq = r.seq;
    if (!state.complete || seq === undefined || seq <= committedSeq) return undefined;
    const dfh = await open(dataFile, fsConstants.O_WRONLY);
    try {
      const blocks = await applyJournal(jfh, dfh, size, blockBytes);
      await dfh.datasync();
      return { seq, blocks };
    } finally {
      await dfh.close();
    }
  } finally {
    await jfh.close();
  }
}

async function readFully(fh: FileHandle, length: number, position: number): Promise<Buffer | undefined> {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, position + got);
    if (bytesRead === 0) return undefined;
    got += bytesRead;
  }
  return buf;
}
