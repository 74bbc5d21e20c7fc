/**
 * An NFU input that the worker thread gathers itself, from views of the shared memory holding an
 * allocation's bytes (see `MemoryData.pin`): the event loop hands over the views and copies
 * nothing; the worker lays the bytes end to end in a buffer of its own before the kernel runs.
 * A split op's parts each gather only their own rows.
 */

/** A part of an input: `bytes` are the input's bytes from offset `at` on. */
export interface SourcePiece {
  readonly at: number;
  readonly bytes: Uint8Array;
}

/** Where an input's `length` bytes are: pieces in order of `at`; whatever no piece covers is zero. */
export interface InputSource {
  readonly length: number;
  readonly pieces: readonly SourcePiece[];
}

/** The part `[from, to)` of `source`, with offsets counted from `from` (views, no copy). */
export function sliceSource(source: InputSource, from: number, to: number): InputSource {
  const pieces: SourcePiece[] = [];
  for (const p of source.pieces) {
    const start = Math.max(from, p.at);
    const end = Math.min(to, p.at + p.bytes.length);
    if (end <= start) continue;
    pieces.push({ at: start - from, bytes: p.bytes.subarray(start - p.at, end - p.at) });
  }
  return { length: to - from, pieces };
}

/** Fills `dest` (the whole input, or one part of it) from `source`: its pieces, zeros between. */
export function gatherInto(dest: Uint8Array, source: InputSource): void {
  let cursor = 0;
  for (const p of source.pieces) {
    if (p.at >= dest.length) break;
    if (p.at > cursor) dest.fill(0, cursor, p.at);
    const n = Math.min(p.bytes.length, dest.length - p.at);
    dest.set(n === p.bytes.length ? p.bytes : p.bytes.subarray(0, n), p.at);
    cursor = Math.max(cursor, p.at + n);
  }
  if (cursor < dest.length) dest.fill(0, cursor);
}
