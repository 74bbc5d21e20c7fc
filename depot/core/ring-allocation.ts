import { AllocationType } from '../../ibp/index.js';
import { DepotError, DepotErrorCode } from '../errors.js';
import type { AllocationData, RangeWriter } from './allocation-data.js';

/**
 * The LoCI allocation types other than the byte array, layered over a plain byte array of
 * `maxSize` physical bytes (an {@link AllocationData}):
 *
 * - CIRQ (4): a circular queue. The stream of stored bytes is numbered from 0; `written` is the
 *   number of bytes ever stored (the write position; `floor(written / maxSize)` is the wrap
 *   count). Stream byte `s` lives at physical offset `s mod maxSize`; the queue holds the last
 *   `min(written, maxSize)` bytes, oldest first.
 * - FIFO (3): the same ring, but `consumed` bytes have been read away; it holds `written -
 *   consumed` bytes and a STORE never overwrites bytes not yet read.
 * - BUFFER (2): the physical bytes as they are; `written` is the logical length (a STORE replaces
 *   the content, a WRITE patches it).
 *
 * Logical offsets (what LOAD, NFU and transfers address) count from the oldest held byte.
 */
export interface RingCounters {
  /** Bytes ever stored (CIRQ, FIFO) or the logical length (BUFFER). */
  readonly written: number;
  /** Bytes consumed by reads (FIFO); 0 otherwise. */
  readonly consumed: number;
}

/** One physical range a ring write touches, in the order the body's bytes fill it. */
export interface RingPart {
  /** Physical offset. */
  readonly at: number;
  readonly length: number;
  /** The counters once this part (and every one before it) is in place. */
  readonly after: RingCounters;
}

/** Where a ring's counters are kept durably (disk) or not at all (memory). */
export interface RingStateStore {
  /**
   * Records the counters before a write together with the parts it is about to put in place and
   * a digest of each part's bytes, durably. After a crash the state is `before` advanced by the
   * longest prefix of parts whose physical bytes match their digest.
   */
  record(before: RingCounters, parts: readonly { part: RingPart; digest: Buffer }[]): Promise<void>;
  /** Frees the record for good. */
  remove(): Promise<void>;
}

export const MEMORY_RING_STATE: RingStateStore = {
  record: async () => undefined,
  remove: async () => undefined,
};

/** Whether allocations of `type` are rings (served by this module). */
export function isRingType(type: number): boolean {
  return type === AllocationType.BUFFER || type === AllocationType.FIFO || type === AllocationType.CIRQ;
}

function refused(code: (typeof DepotErrorCode)[keyof typeof DepotErrorCode], message: string, status?: number): DepotError {
  return new DepotError(code, message, status === undefined ? {} : { status });
}

/**
 * The counters and the physical layout of one BUFFER, FIFO or CIRQ allocation, and the waits of
 * commands that need data (FIFO/CIRQ loads) or room (FIFO stores).
 */
export class Ring {
  written: number;
  consumed: number;
  /** Physical high-water mark: bytes of the underlying byte array that hold data. */
  physicalSize: number;
  /**
   * Stream position up to which a write may have changed physical bytes (set before a write's
   * first byte lands): a read of stream bytes `[s, e)` is intact only if this stays `<= s + maxSize`.
   */
  reservedEnd: number;
  private waiters = new Set<() => void>();
  /** Serializes FIFO consumers (stores hold the allocation's write lock instead). */
  private readTail: Promise<void> = Promise.resolve();

  constructor(
    readonly type: number,
    private readonly maxSizeOf: () => number,
    counters: RingCounters,
    physicalSize: number,
  ) {
    this.written = counters.written;
    this.consumed = counters.consumed;
    this.physicalSize = physicalSize;
    this.reservedEnd = counters.written;
  }

  get maxSize(): number {
    return this.maxSizeOf();
  }

  get counters(): RingCounters {
    return { written: this.written, consumed: this.consumed };
  }

  /** Bytes a LOAD can see: the logical size. */
  get held(): number {
    switch (this.type) {
      case AllocationType.CIRQ:
        return Math.min(this.written, this.maxSize);
      case AllocationType.FIFO:
        return this.written - this.consumed;
      default:
        return this.written;
    }
  }

  /** Stream position of the oldest held byte (logical offset 0). */
  get oldest(): number {
    return this.type === AllocationType.BUFFER ? 0 : this.written - this.held;
  }

  /** Free room for a FIFO store. */
  get room(): number {
    return this.maxSize - this.held;
  }

  /** The physical ranges of stream bytes `[start, start + length)`, in stream order. */
  physicalRanges(start: number, length: number): { at: number; length: number }[] {
    if (this.type === AllocationType.BUFFER) return length === 0 ? [] : [{ at: start, length }];
    const m = this.maxSize;
    const out: { at: number; length: number }[] = [];
    let s = start;
    let left = length;
    while (left > 0) {
      const at = s % m;
      const n = Math.min(left, m - at);
      out.push({ at, length: n });
      s += n;
      left -= n;
    }
    return out;
  }

  /**
   * The parts of a STORE of `length` bytes (append to the stream; for a BUFFER, replace the
   * content) or, for a BUFFER with `offset`, of a WRITE at that offset.
   */
  planWrite(length: number, offset?: number): RingPart[] {
    if (this.type === AllocationType.BUFFER) {
      const at = offset ?? 0;
      const written = offset === undefined ? length : Math.max(this.written, at + length);
      return [{ at, length, after: { written, consumed: 0 } }];
    }
    let w = this.written;
    return this.physicalRanges(this.written, length).map((r) => {
      w += r.length;
      return { ...r, after: { written: w, consumed: this.consumed } };
    });
  }

  /** Checks a write of `length` bytes (at `offset` for a BUFFER WRITE) against the ring's bounds. */
  checkWrite(length: number, offset?: number): void {
    const end = (offset ?? 0) + length;
    if (end > this.maxSize) {
      throw refused(
        DepotErrorCode.WOULD_EXCEED_LIMIT,
        `writing ${length} bytes${offset === undefined ? '' : ` at offset ${offset}`} exceeds the queue's size (${this.maxSize} bytes)`,
      );
    }
    if (offset !== undefined && this.type !== AllocationType.BUFFER) {
      throw refused(
        DepotErrorCode.TYPE_NOT_SUPPORTED,
        'WRITE at an offset is not served by FIFO and CIRQ allocations; STORE appends to them',
      );
    }
  }

  /** Runs `task` after every earlier consumer of this FIFO has finished. */
  async withReadLock<T>(task: () => Promise<T>): Promise<T> {
    const previous = this.readTail;
    let release!: () => void;
    this.readTail = new Promise<void>((resolve) => (release = resolve));
    await previous;
    try {
      return await task();
    } finally {
      release();
    }
  }

  /** Wakes every waiter (after a write, a consumption, a deletion). */
  notify(): void {
    const ws = [...this.waiters];
    this.waiters.clear();
    for (const w of ws) w();
  }

  /**
   * Waits until `ready()` holds, or until `deadline` (a `Date.now()` value): then refuses with
   * SERVER_TIMEOUT (-46), as the LoCI depot does for a blocked FIFO/CIRQ command. `gone()` is
   * checked after every wake-up.
   */
  async waitUntil(ready: () => boolean, deadline: number, what: string, gone: () => boolean): Promise<void> {
    while (!ready()) {
      if (gone()) throw refused(DepotErrorCode.CAP_NOT_FOUND, 'the allocation was deleted or expired while the command waited');
      const left = deadline - Date.now();
      if (left <= 0) {
        throw refused(DepotErrorCode.RING_WAIT_TIMEOUT, `${what} did not happen within the command's timeout`);
      }
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, left);
        this.waiters.add(wake);
      });
    }
  }
}

/**
 * The logical view of a ring allocation: what LOAD, NFU and transfers read. Reads copy the range
 * and check that no write overwrote it meanwhile, so a reader never gets a torn window.
 */
export class RingView implements AllocationData {
  constructor(
    readonly ring: Ring,
    readonly physical: AllocationData,
    readonly state: RingStateStore,
  ) {}

  get residentBytes(): number {
    return this.physical.residentBytes;
  }

  async openWriter(): Promise<RangeWriter> {
    throw refused(DepotErrorCode.TYPE_NOT_SUPPORTED, 'this allocation is a queue or buffer: it is written by STORE only', -22);
  }

  async read(offset: number, length: number, sink: (chunk: Buffer) => void | Promise<void>): Promise<void> {
    if (offset + length > this.ring.held) {
      throw refused(DepotErrorCode.WOULD_EXCEED_LIMIT, `the queue no longer holds ${offset + length} bytes`);
    }
    await sink(await this.readStream(this.ring.oldest + offset, length));
  }

  /**
   * Copies stream bytes `[start, start + length)` (physical offsets for a BUFFER) and checks that
   * they were still held, unchanged, when the copy ended.
   */
  async readStream(start: number, length: number): Promise<Buffer> {
    const out = Buffer.allocUnsafe(length);
    let at = 0;
    for (const r of this.ring.physicalRanges(start, length)) {
      await this.physical.read(r.at, r.length, (chunk) => {
        chunk.copy(out, at);
        at += chunk.length;
      });
    }
    if (this.ring.type !== AllocationType.BUFFER && this.ring.reservedEnd > start + this.ring.maxSize) {
      throw refused(
        DepotErrorCode.RING_OVERWRITTEN,
        `the queue's bytes from position ${start} were overwritten while they were read`,
      );
    }
    return out;
  }

  async truncate(): Promise<void> {
    throw refused(DepotErrorCode.TYPE_NOT_SUPPORTED, 'queues and buffers cannot be truncated');
  }

  async release(): Promise<void> {
    this.ring.notify();
    await this.physical.release();
    await this.state.remove();
  }
}
