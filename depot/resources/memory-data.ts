import type { AllocationData, BlockChecksums, RangeWriter } from '../core/allocation.js';
import { DepotError, DepotErrorCode } from '../errors.js';

const EMPTY = Buffer.alloc(0);

/** What memory data needs to know of its allocation. */
export interface SizeView {
  readonly size: number;
  readonly maxSize: number;
}

/**
 * The bytes of an allocation on a memory resource. The buffer grows on demand (capacity is
 * reserved up front by the resource), and every byte past `size` is zero, so a hole left by a
 * WRITE beyond the end, or a later growth, never exposes old data.
 */
export class MemoryData implements AllocationData {
  private data: Buffer = EMPTY;

  constructor(private readonly owner: SizeView) {}

  get residentBytes(): number {
    return this.data.length;
  }

  async openWriter(offset: number, length: number): Promise<RangeWriter> {
    const end = offset + length;
    this.ensureCapacity(end);
    let cursor = offset;
    return {
      write: (chunk: Buffer) => {
        if (cursor + chunk.length > end) throw new RangeError(`writer overrun: ${cursor + chunk.length} > ${end}`);
        // After a concurrent TRUNCATE the buffer may be shorter: copy() stops at its end.
        if (cursor < this.data.length) chunk.copy(this.data, cursor);
        cursor += chunk.length;
      },
      finish: async (): Promise<BlockChecksums | undefined> => {
        if (cursor !== end) throw new RangeError(`finish of a partial range: ${cursor} of ${end}`);
        return undefined;
      },
      abort: async () => {
        const from = Math.max(this.owner.size, offset);
        const to = Math.min(cursor, this.data.length);
        if (to > from) this.data.fill(0, from, to);
      },
    };
  }

  async read(offset: number, length: number, sink: (chunk: Buffer) => void | Promise<void>): Promise<void> {
    if (offset + length > Math.min(this.owner.size, this.data.length)) {
      // The data shrank (TRUNCATE, delete) after the caller checked the range.
      throw new DepotError(DepotErrorCode.WOULD_EXCEED_LIMIT, `the data no longer reaches ${offset + length} bytes`);
    }
    await sink(this.data.subarray(offset, offset + length));
  }

  async truncate(newSize: number, newMaxSize: number): Promise<void> {
    if (this.data.length > newMaxSize) {
      // Shrink the buffer so the memory is really returned.
      const kept = Buffer.alloc(newMaxSize);
      this.data.copy(kept, 0, 0, newSize);
      this.data = kept;
    } else if (this.data.length > newSize) {
      this.data.fill(0, newSize);
    }
  }

  async release(): Promise<void> {
    this.data = EMPTY;
  }

  private ensureCapacity(end: number): void {
    if (end <= this.data.length) return;
    const grown = Math.min(this.owner.maxSize, Math.max(end, this.data.length * 2));
    const next = Buffer.alloc(grown);
    this.data.copy(next);
    this.data = next;
  }
}
