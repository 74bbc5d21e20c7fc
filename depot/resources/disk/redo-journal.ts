import { constants as fsConstants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { crc32 } from 'node:zlib';

/**
 * The redo journal of an overwrite. A WRITE that changes bytes already committed (an offset inside
 * the data) cannot change them in place safely on its own: a crash after some bytes reach the file
 * but before the block checksums are committed would leave blocks that fail verification. So every
 * batch of such bytes is first appended to `<file>.redo` as a record (made durable under the `safe`
 * policy), and only then written in place. After a crash, start-up re-applies every complete record
 * of a write that did not commit (its sequence number is above the one the metadata store recorded
 * for the allocation) and records the checksums of the blocks it touched: each block of the
 * interrupted write then holds its old bytes (its record never completed, so its in-place write never
 * began) or its new bytes (its record is re-applied). Batches are cut at block boundaries, so no
 * block is split between two records.
 *
 * A record: magic u32 | sequence u64 | offset u64 | length u32 | payload CRC-32 u32 | header
 * CRC-32 u32 (32 bytes, little-endian), then the payload. A torn or foreign tail ends the journal.
 */
const MAGIC = 0x52564e41; // "ANVR"
export const RECORD_HEADER_BYTES = 32;
/** Records longer than this are not ours (batches are about 1 MiB). */
const MAX_RECORD_BYTES = 1 << 30;

export function journalPath(dataFile: string): string {
  return `${dataFile}.redo`;
}

/** The header of a record holding `parts`, to be written at `offset` of the data file. */
export function recordHeader(seq: number, offset: number, parts: readonly Buffer[]): Buffer {
  let length = 0;
  let crc = 0;
  for (const p of parts) {
    length += p.length;
    crc = crc32(p, crc);
  }
  const h = Buffer.alloc(RECORD_HEADER_BYTES);
  h.writeUInt32LE(MAGIC, 0);
  h.writeBigUInt64LE(BigInt(seq), 4);
  h.writeBigUInt64LE(BigInt(offset), 12);
  h.writeUInt32LE(length, 20);
  h.writeUInt32LE(crc, 24);
  h.writeUInt32LE(crc32(h.subarray(0, 28)), 28);
  return h;
}

export interface RedoRecord {
  readonly seq: number;
  readonly offset: number;
  readonly payload: Buffer;
}

/** The complete records at the head of a journal that share the first record's sequence number. */
export async function* readRecords(fh: FileHandle): AsyncGenerator<RedoRecord> {
  let pos = 0;
  let seq: number | undefined;
  for (;;) {
    const h = await readFully(fh, RECORD_HEADER_BYTES, pos);
    if (h === undefined || h.readUInt32LE(0) !== MAGIC || h.readUInt32LE(28) !== crc32(h.subarray(0, 28))) return;
    const recSeq = Number(h.readBigUInt64LE(4));
    const offset = Number(h.readBigUInt64LE(12));
    const length = h.readUInt32LE(20);
    if (length > MAX_RECORD_BYTES || (seq !== undefined && recSeq !== seq)) return;
    const payload = await readFully(fh, length, pos + RECORD_HEADER_BYTES);
    if (payload === undefined || crc32(payload) !== h.readUInt32LE(24)) return;
    seq = recSeq;
    yield { seq: recSeq, offset, payload };
    pos += RECORD_HEADER_BYTES + length;
  }
}

/**
 * Re-applies the journal of `dataFile` when it belongs to a write newer than `committedSeq`, within
 * the first `size` bytes. Returns that write's sequence number and the blocks it touched (with the
 * data file made durable), or undefined when there is nothing to redo.
 */
export async function redoJournal(
  dataFile: string,
  committedSeq: number,
  size: number,
  blockBytes: number,
): Promise<{ seq: number; blocks: Set<number> } | undefined> {
  const jfh = await open(journalPath(dataFile), fsConstants.O_RDONLY).catch(() => undefined);
  if (jfh === undefined) return undefined;
  let dfh: FileHandle | undefined;
  try {
    let seq: number | undefined;
    const blocks = new Set<number>();
    for await (const r of readRecords(jfh)) {
      if (r.seq <= committedSeq) return undefined; // committed already: stale
      seq = r.seq;
      const n = Math.min(r.payload.length, size - r.offset);
      if (n <= 0) continue;
      dfh ??= await open(dataFile, fsConstants.O_WRONLY);
      for (let done = 0; done < n;) {
        const { bytesWritten } = await dfh.write(r.payload, done, n - done, r.offset + done);
        done += bytesWritten;
      }
      for (let b = Math.floor(r.offset / blockBytes); b * blockBytes < r.offset + n; b++) blocks.add(b);
    }
    if (seq === undefined) return undefined;
    await dfh?.datasync();
    return { seq, blocks };
  } finally {
    await dfh?.close();
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
