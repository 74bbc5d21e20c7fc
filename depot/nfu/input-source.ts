/**
 * An NFU input that the worker thread gathers itself, from views of the shared memory holding an
 * allocation's bytes (see `MemoryData.pin`), or from an allocation's file (see
 * `DiskData.readPlan`): the event loop hands over the views or the file's name and checksums and
 * copies nothing; the worker lays the bytes end to end in a buffer of its own before the kernel
 * runs. A split op's parts each gather only their own rows.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { crc32 } from 'node:zlib';

/** A worker's answer code when a file input no longer matched its checksums: read it again. */
export const INPUT_CHANGED = 'NFU_INPUT_CHANGED';

/** A part of an input: `bytes` are the input's bytes from offset `at` on. */
export interface SourcePiece {
  readonly at: number;
  readonly bytes: Uint8Array;
}

/** An input range of an allocation's file, with the checksums its blocks had when it was planned. */
export interface FileRange {
  readonly file: string;
  /** The data's size then: the last block's checksum covers the bytes up to it. */
  readonly size: number;
  readonly blockBytes: number;
  readonly firstBlock: number;
  readonly crcs: readonly (number | undefined)[];
  /** The file offset of the input's first byte. */
  readonly offset: number;
  /** How many of the input's bytes are data from `offset` on (the rest are zeros). */
  readonly available: number;
}

/**
 * Where an input's `length` bytes are: pieces in order of `at`, or a file range; whatever neither
 * covers is zero.
 */
export interface InputSource {
  readonly length: number;
  readonly pieces: readonly SourcePiece[];
  readonly file?: FileRange | undefined;
}

/** The part `[from, to)` of `source`, with offsets counted from `from` (views, no copy). */
export function sliceSource(source: InputSource, from: number, to: number): InputSource {
  const f = source.file;
  if (f !== undefined) {
    const available = Math.max(0, Math.min(f.available - from, to - from));
    return { length: to - from, pieces: [], file: { ...f, offset: f.offset + from, available } };
  }
  const pieces: SourcePiece[] = [];
  for (const p of source.pieces) {
    const start = Math.max(from, p.at);
    const end = Math.min(to, p.at + p.bytes.length);
    if (end <= start) continue;
    pieces.push({ at: start - from, bytes: p.bytes.subarray(start - p.at, end - p.at) });
  }
  return { length: to - from, pieces };
}

/**
 * Fills `dest` (the whole input, or one part of it) from `source`: its pieces or its file range,
 * zeros elsewhere. False when the file no longer holds what was planned (a block fails its
 * checksum, the file is shorter or gone): the caller reads the input again another way.
 */
export function gatherInto(dest: Uint8Array, source: InputSource): boolean {
  if (source.file !== undefined) return readFileInto(dest, source.file);
  let cursor = 0;
  for (const p of source.pieces) {
    if (p.at >= dest.length) break;
    if (p.at > cursor) dest.fill(0, cursor, p.at);
    const n = Math.min(p.bytes.length, dest.length - p.at);
    dest.set(n === p.bytes.length ? p.bytes : p.bytes.subarray(0, n), p.at);
    cursor = Math.max(cursor, p.at + n);
  }
  if (cursor < dest.length) dest.fill(0, cursor);
  return true;
}

/** One block that `dest` holds only part of (the range's first and last). */
let edgeBlock: Uint8Array | undefined;

/**
 * Reads `f` into `dest` with positional reads on a descriptor of its own (blocking: a worker
 * thread), block by block, each checked against its planned checksum before it counts.
 */
function readFileInto(dest: Uint8Array, f: FileRange): boolean {
  const want = Math.min(dest.length, f.available);
  const start = f.offset;
  const end = f.offset + want;
  if (want > 0) {
    let fd: number;
    try {
      fd = openSync(f.file, 'r');
    } catch {
      return false;
    }
    try {
      for (let at = Math.floor(start / f.blockBytes) * f.blockBytes; at < end; at += f.blockBytes) {
        const blockEnd = Math.min(at + f.blockBytes, f.size);
        const n = blockEnd - at;
        // A block inside the range is read in place; an edge block goes through a scratch block.
        const inside = at >= start && blockEnd <= end;
        // A hole (no checksum) is zeros, whatever the file holds there.
        if (f.crcs[at / f.blockBytes - f.firstBlock] === undefined) {
          dest.fill(0, Math.max(at, start) - start, Math.min(blockEnd, end) - start);
          continue;
        }
        let block: Uint8Array;
        if (inside) block = dest.subarray(at - start, blockEnd - start);
        else {
          if (edgeBlock === undefined || edgeBlock.length < f.blockBytes) edgeBlock = new Uint8Array(f.blockBytes);
          block = edgeBlock.subarray(0, n);
        }
        for (let got = 0; got < n;) {
          const r = readSync(fd, block, got, n - got, at + got);
          if (r === 0) return false;
          got += r;
        }
        if (crc32(block) !== f.crcs[at / f.blockBytes - f.firstBlock]) return false;
        if (!inside) {
          const from = Math.max(at, start);
          const to = Math.min(blockEnd, end);
          dest.set(block.subarray(from - at, to - at), from - start);
        }
      }
    } catch {
      return false;
    } finally {
      closeSync(fd);
    }
  }
  if (want < dest.length) dest.fill(0, want);
  return true;
}
