/**
 * A FIFO of received byte chunks that yields command lines and raw byte runs without
 * copying more than a line. The IBP codec's only buffer: it knows bytes, never sockets.
 */

/** Returned by {@link ByteQueue.takeLine} when no newline occurs within the line limit. */
export const LINE_TOO_LONG: unique symbol = Symbol('LINE_TOO_LONG');

const NEWLINE = 0x0a;
const CR = 0x0d;

export class ByteQueue {
  private chunks: Buffer[] = [];
  /** Read offset into `chunks[0]`. */
  private head = 0;
  /** Bytes held (not yet taken). */
  length = 0;
  /** How many leading bytes are already known to hold no newline (saves rescans). */
  private scanned = 0;

  /** Drops everything held (the references go, so the memory can be freed). */
  clear(): void {
    this.chunks = [];
    this.head = 0;
    this.length = 0;
    this.scanned = 0;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /**
   * Removes and returns the next line (without `\n` and an optional trailing `\r`), decoded as
   * latin1 so that every byte maps to one character. Returns `null` when no complete line is
   * held yet, or {@link LINE_TOO_LONG} when `maxBytes` bytes are held without a newline
   * (the limit counts the newline itself).
   */
  takeLine(maxBytes: number): string | null | typeof LINE_TOO_LONG {
    const nl = this.indexOfNewline(maxBytes);
    if (nl < 0) return this.length >= maxBytes ? LINE_TOO_LONG : null;
    const raw = this.takeCopy(nl + 1);
    let end = nl;
    if (end > 0 && raw[end - 1] === CR) end--;
    return raw.toString('latin1', 0, end);
  }

  /**
   * Removes up to `max` bytes from the front and returns them as a view of the received chunk
   * (no copy). Returns an empty buffer when nothing is held.
   */
  take(max: number): Buffer {
    if (this.length === 0 || max <= 0) return EMPTY;
    const first = this.chunks[0]!;
    const available = first.length - this.head;
    const n = Math.min(max, available);
    const out = first.subarray(this.head, this.head + n);
    this.consume(n);
    return out;
  }

  private indexOfNewline(maxBytes: number): number {
    let pos = 0;
    let offset = this.head;
    for (const chunk of this.chunks) {
      const span = chunk.length - offset;
      if (pos + span > this.scanned) {
        const from = offset + Math.max(0, this.scanned - pos);
        const limit = Math.min(chunk.length, offset + (maxBytes - pos));
        if (from < limit) {
          const i = chunk.indexOf(NEWLINE, from);
          if (i >= 0 && i < limit) return pos + (i - offset);
        }
        this.scanned = Math.min(pos + span, maxBytes);
      }
      pos += span;
      offset = 0;
      if (pos >= maxBytes) break;
    }
    return -1;
  }

  /** Removes `n` bytes into one buffer (a view when they sit in one chunk). */
  private takeCopy(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length - this.head >= n) {
      const out = first.subarray(this.head, this.head + n);
      this.consume(n);
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const part = this.take(n - filled);
      part.copy(out, filled);
      filled += part.length;
    }
    return out;
  }

  private consume(n: number): void {
    this.length -= n;
    this.scanned = Math.max(0, this.scanned - n);
    this.head += n;
    while (this.chunks.length > 0 && this.head >= this.chunks[0]!.length) {
      this.head -= this.chunks[0]!.length;
      this.chunks.shift();
    }
  }
}

const EMPTY = Buffer.alloc(0);
