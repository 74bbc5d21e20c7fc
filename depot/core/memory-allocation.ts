import type { CapTypeNumber } from '../protocol/commands.js';

const EMPTY = Buffer.alloc(0);

/** Receives the bytes of one STORE/WRITE straight into the allocation's buffer. */
export interface RangeWriter {
  readonly offset: number;
  readonly length: number;
  /** Copies the next chunk in place; chunks must not exceed the declared length in total. */
  write(chunk: Buffer): void;
  /**
   * Makes the range visible: size becomes max(size, offset + length). Returns false (and
   * changes nothing) when the allocation was freed or truncated below the range meanwhile.
   */
  commit(): boolean;
  /** Abandons the range; bytes written past the old size are zeroed again. */
  abort(): void;
}

export interface AllocationInit {
  readonly id: number;
  readonly rid: string;
  readonly maxSize: number;
  readonly reliability: number;
  readonly type: number;
  readonly expiresAtMs: number;
  readonly digests: Readonly<Record<CapTypeNumber, Buffer>>;
}

/**
 * One allocation of a memory resource: a byte array of bounded size with a lease, reference
 * counts and three capability digests. The buffer grows on demand (capacity is reserved up
 * front by the resource), and every byte past `size` is zero, so a hole left by a WRITE beyond
 * the end, or a later growth, never exposes old data.
 */
export class MemoryAllocation {
  readonly id: number;
  readonly rid: string;
  maxSize: number;
  /** Bytes of data held: the high-water mark of acknowledged writes. */
  size = 0;
  reliability: number;
  readonly type: number;
  expiresAtMs: number;
  /** Deadline of this allocation's authoritative entry in the depot's expiry heap. */
  scheduledExpiryMs = Number.POSITIVE_INFINITY;
  readRefs = 1;
  writeRefs = 0;
  readonly digests: Readonly<Record<CapTypeNumber, Buffer>>;
  /** Set once the allocation is deleted or expired; pending writers then fail. */
  freed = false;
  private data: Buffer = EMPTY;
  /** Serializes appends (STORE): each one starts at the size left by the previous. */
  private appendTail: Promise<void> = Promise.resolve();

  constructor(init: AllocationInit) {
    this.id = init.id;
    this.rid = init.rid;
    this.maxSize = init.maxSize;
    this.reliability = init.reliability;
    this.type = init.type;
    this.expiresAtMs = init.expiresAtMs;
    this.digests = init.digests;
  }

  /** The WRM-key token written into this allocation's caps (its id, as the ACCRE depot does). */
  get wrmKey(): string {
    return String(this.id);
  }

  /** Bytes of memory currently held for data (≤ maxSize). */
  get residentBytes(): number {
    return this.data.length;
  }

  /**
   * Runs `task` when every earlier append has finished, so concurrent STOREs on one allocation
   * append one after the other.
   */
  async withAppendLock<T>(task: () => Promise<T>): Promise<T> {
    const previous = this.appendTail;
    let release!: () => void;
    this.appendTail = new Promise<void>((resolve) => (release = resolve));
    await previous;
    try {
      return await task();
    } finally {
      release();
    }
  }

  /** Prepares to receive `length` bytes at `offset`; the caller has checked the bounds. */
  openWriter(offset: number, length: number): RangeWriter {
    const end = offset + length;
    this.ensureCapacity(end);
    let cursor = offset;
    const oldSize = this.size;
    return {
      offset,
      length,
      write: (chunk: Buffer) => {
        if (cursor + chunk.length > end) throw new RangeError(`writer overrun: ${cursor + chunk.length} > ${end}`);
        // After a concurrent TRUNCATE the buffer may be shorter: copy() stops at its end.
        if (!this.freed && cursor < this.data.length) chunk.copy(this.data, cursor);
        cursor += chunk.length;
      },
      commit: () => {
        if (cursor !== end) throw new RangeError(`commit of a partial range: ${cursor} of ${end}`);
        if (this.freed || end > this.maxSize) return false;
        if (end > this.size) this.size = end;
        return true;
      },
      abort: () => {
        if (this.freed) return;
        const from = Math.max(oldSize, this.size, offset);
        const to = Math.min(cursor, this.data.length);
        if (to > from) this.data.fill(0, from, to);
      },
    };
  }

  /** A view of `length` bytes at `offset`; the caller has checked `offset + length <= size`. */
  read(offset: number, length: number): Buffer {
    return this.data.subarray(offset, offset + length);
  }

  /** Sets a new maximum size; data past it is cut off (TRUNCATE). */
  truncate(newMaxSize: number): void {
    this.maxSize = newMaxSize;
    if (this.size > newMaxSize) this.size = newMaxSize;
    if (this.data.length > newMaxSize) {
      // Shrink the buffer so the memory is really returned.
      const kept = Buffer.alloc(newMaxSize);
      this.data.copy(kept, 0, 0, this.size);
      this.data = kept;
    } else if (this.data.length > this.size) {
      this.data.fill(0, this.size);
    }
  }

  /** Drops the data; the allocation must no longer be reachable. */
  release(): void {
    this.freed = true;
    this.data = EMPTY;
    this.size = 0;
  }

  private ensureCapacity(end: number): void {
    if (end <= this.data.length) return;
    const grown = Math.min(this.maxSize, Math.max(end, this.data.length * 2));
    const next = Buffer.alloc(grown);
    // Copy everything, not just `size`: concurrent writers may hold uncommitted bytes past it.
    this.data.copy(next);
    this.data = next;
  }
}
