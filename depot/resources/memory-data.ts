import type { DirectTarget } from '../../ibp/index.js';
import { loadNativeKernels } from '../nfu/native-loader.js';
import type { AllocationData, BlockChecksums, RangeWriter, ReadOptions } from '../core/allocation.js';
import { DepotError, DepotErrorCode } from '../errors.js';

const EMPTY = Buffer.alloc(0);

/**
 * Allocations of at least this many bytes keep their data in segments of this size, taken from
 * a pool of warm memory, instead of one buffer that grows by doubling (which copies everything
 * it held at each step and faults in fresh pages twice over).
 */
export const SEGMENT_BYTES = 2 * 1024 * 1024;

/**
 * Idle segments kept for reuse, at most this many bytes, or the capacity of the memory resources
 * served when that is more: their capacity is committed to the depot, so keeping what a deleted
 * allocation freed warm for the next one takes no memory the resources do not own.
 */
const POOL_MIN_MAX_BYTES = 256 * 1024 * 1024;
/** Idle segments unused for this long go back to the system. */
const POOL_IDLE_MS = 30_000;

/**
 * A zeroed buffer of `n` bytes over shared memory. Every byte an allocation holds lives in such
 * buffers, so an NFU worker thread can read an input range in place, with no copy on the event
 * loop (see {@link MemoryData.pin}).
 */
function sharedBuffer(n: number): Buffer {
  return Buffer.from(new SharedArrayBuffer(n));
}

/** Zeros to copy from: never written, so its pages are the system's shared zero page. */
const ZEROS = Buffer.alloc(SEGMENT_BYTES);

/**
 * Zeroes `buf[from, to)`. Over shared memory `fill` stores byte by byte (about ten times slower
 * than a copy, and a pooled segment is zeroed whole each time it is reused), so the zeros are
 * copied in instead.
 */
export function zeroFill(buf: Buffer, from: number, to: number): void {
  for (let at = from; at < to; at += SEGMENT_BYTES) ZEROS.copy(buf, at, 0, Math.min(SEGMENT_BYTES, to - at));
}

let populator: ((bytes: Uint8Array) => boolean) | null | undefined;
/** Populate is given up for the process after this many failures in a row (one may be passing). */
const POPULATE_TRIES = 4;
let populateFailures = 0;

/**
 * Faults in the pages of a new segment in one call (the native addon's `populate`) rather than
 * one fault per 4 KiB page as the writer first touches them, which takes a quarter to a third
 * less CPU on a VM. Contents are not touched. Without the addon, or where the system has no such
 * call, the pages fault in as they are written.
 */
function populate(buf: Buffer): void {
  if (populator === undefined) {
    const native = loadNativeKernels().native as { populate?: (bytes: Uint8Array) => boolean } | undefined;
    populator = typeof native?.populate === 'function' ? native.populate.bind(native) : null;
  }
  if (populator === null) return;
  if (populator(buf)) populateFailures = 0;
  else if (++populateFailures >= POPULATE_TRIES) populator = null; // unsupported here: stop asking
}

/** A part of a pinned range: `bytes` hold the range's bytes from `at` on. */
export interface PinnedPiece {
  readonly at: number;
  readonly bytes: Uint8Array;
}

/**
 * A range of an allocation pinned for a reader in another thread: the views in `pieces` (over
 * shared memory) keep the bytes the range held when it was pinned, whatever is written to the
 * allocation afterwards; what no piece covers reads as zeros. Call `release` once the reader is
 * done; `release(false)` when it may still be reading (a stopped worker): its buffers then never
 * return to the pool of warm segments.
 */
export interface PinnedRange {
  readonly length: number;
  readonly pieces: readonly PinnedPiece[];
  release(recycle?: boolean): void;
}

/** Counters of the pinning machinery (tests, diagnostics). */
export const pinStats = {
  /** Bytes copied by writers that found the buffer they were to change pinned (copy on write). */
  copiedOnWriteBytes: 0,
};

/**
 * Warm segments of deleted or truncated allocations (those no read has lent out and no NFU worker
 * still reads: see {@link MemoryData.pin}), kept for the next writer: memory that was
 * touched before is written at copy speed, while fresh pages fault in one 4 KiB page at a time
 * (about 11 µs each on a VM, which alone caps a cold write near 370 MB/s). A segment comes out of
 * the pool with stale bytes: its taker zeroes it whole before any reader can see it, unless it
 * overwrites all of it at once (a copy on write).
 */
class SegmentPool {
  private idle: { buf: Buffer; since: number }[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** Buffers pinned by readers in other threads, with their pin counts. */
  private readonly pins = new Map<Buffer, number>();
  /** Pinned buffers given back meanwhile: they join the pool when their last pin goes. */
  private readonly parked = new Set<Buffer>();
  /** Buffers a stopped reader may still be reading: pinned for good (never written, never pooled). */
  private readonly condemned = new WeakSet<Buffer>();
  /** Capacity of the memory resources served (see {@link SegmentPool.reserve}). */
  private reserved = 0;

  /** Idle bytes kept at most. */
  get maxIdleBytes(): number {
    return Math.max(POOL_MIN_MAX_BYTES, this.reserved);
  }

  /**
   * A memory resource of `capacityBytes` starts serving: up to its capacity of freed segments
   * stays warm. Returns the call that undoes it (the resource closes).
   */
  reserve(capacityBytes: number): () => void {
    this.reserved += capacityBytes;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.reserved -= capacityBytes;
      while (this.idleBytes > this.maxIdleBytes) this.idle.shift();
    };
  }

  get idleBytes(): number {
    return this.idle.length * SEGMENT_BYTES;
  }

  /**
   * A segment: a pooled one (stale bytes; `fresh` false) or a new one (zeros), its pages faulted
   * in when `populated` (a copy on write, which overwrites it whole, leaves them to the copy).
   */
  take(populated = true): { buf: Buffer; fresh: boolean } {
    const reused = this.idle.pop();
    if (reused !== undefined) return { buf: reused.buf, fresh: false };
    const buf = sharedBuffer(SEGMENT_BYTES);
    if (populated) populate(buf);
    return { buf, fresh: true };
  }

  /**
   * A buffer leaves its allocation. A pinned one waits for its last pin before it may join the
   * pool, so no new allocation is handed a segment another thread still reads.
   */
  give(buf: Buffer): void {
    if (this.isPinned(buf)) {
      if (!this.condemned.has(buf)) this.parked.add(buf);
      return;
    }
    if (buf.length !== SEGMENT_BYTES || this.idleBytes >= this.maxIdleBytes) return;
    this.idle.push({ buf, since: Date.now() });
    this.timer ??= setInterval(() => this.trim(), POOL_IDLE_MS).unref();
  }

  /** Drops segments idle for longer than POOL_IDLE_MS (the oldest are at the front). */
  private trim(): void {
    const cutoff = Date.now() - POOL_IDLE_MS;
    let n = 0;
    while (n < this.idle.length && this.idle[n]!.since < cutoff) n++;
    if (n > 0) this.idle = this.idle.slice(n);
    if (this.idle.length === 0 && this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  /** True while a reader in another thread may read `buf`: it must not be changed in place. */
  isPinned(buf: Buffer): boolean {
    return this.pins.has(buf) || this.condemned.has(buf);
  }

  pin(buf: Buffer): void {
    this.pins.set(buf, (this.pins.get(buf) ?? 0) + 1);
  }

  /** Drops one pin; `recycle` false: the reader may still read it, so it stays pinned for good. */
  unpin(buf: Buffer, recycle: boolean): void {
    const n = this.pins.get(buf);
    if (n === undefined) return;
    if (n > 1) this.pins.set(buf, n - 1);
    else this.pins.delete(buf);
    if (!recycle) {
      this.condemned.add(buf);
      this.parked.delete(buf);
      return;
    }
    if (n === 1 && this.parked.delete(buf) && !this.condemned.has(buf)) this.give(buf);
  }

  /** Buffers pinned now (tests). */
  get pinnedCount(): number {
    return this.pins.size;
  }

  /** Empties the pool (tests). */
  clear(): void {
    this.idle = [];
  }
}

/** The process-wide pool of warm segments. */
export const segmentPool = new SegmentPool();

/** What memory data needs to know of its allocation. */
export interface SizeView {
  readonly size: number;
  readonly maxSize: number;
}

/**
 * The bytes of an allocation on a memory resource (capacity is reserved up front by the
 * resource), and every byte past `size` is zero, so a hole left by a WRITE beyond the end, or a
 * later growth, never exposes old data. Small allocations hold one buffer that grows on demand;
 * large ones (a max size of at least {@link SEGMENT_BYTES}) hold segments attached on first write.
 */
export class MemoryData implements AllocationData {
  /** Small allocations: one buffer. */
  private data: Buffer = EMPTY;
  /**
   * Large allocations: segment i holds bytes [i·SEGMENT_BYTES, (i+1)·SEGMENT_BYTES). Undefined for
   * small ones, and once a TRUNCATE takes the max size below a segment.
   */
  private segments: (Buffer | undefined)[] | undefined;
  /** Segments a read has handed out views of. */
  private readonly lent = new WeakSet<Buffer>();
  /** Set by release: a writer still running attaches nothing more. */
  private released = false;
  /**
   * Attached segments a writer has lent to a socket read below the size (at most one at a time: the
   * core runs writers and TRUNCATE under the allocation's write lock). The read lands whenever the
   * socket delivers, so a reader that comes meanwhile copies the bytes of its moment instead of
   * holding a view of them.
   */
  private readonly receiving = new Set<Buffer>();

  constructor(private readonly owner: SizeView) {
    if (owner.maxSize >= SEGMENT_BYTES) this.segments = [];
  }

  /**
   * The most memory a racing writer may copy while [offset, offset + length) is pinned: copy on write
   * copies whole buffers, so every segment the range touches (or the one small buffer) counts whole.
   */
  pinCharge(offset: number, length: number): number {
    if (length <= 0) return 0;
    if (this.segments === undefined) return Math.max(length, this.data.length);
    const first = Math.floor(offset / SEGMENT_BYTES);
    const last = Math.floor((offset + length - 1) / SEGMENT_BYTES);
    return (last - first + 1) * SEGMENT_BYTES;
  }

  get residentBytes(): number {
    if (this.segments === undefined) return this.data.length;
    let n = 0;
    for (const s of this.segments) if (s !== undefined) n += s.length;
    return n;
  }

  async openWriter(offset: number, length: number): Promise<RangeWriter> {
    const end = offset + length;
    if (this.segments !== undefined) return this.segmentWriter(offset, end);
    this.ensureCapacity(end);
    let cursor = offset;
    return {
      write: (chunk: Buffer) => {
        if (cursor + chunk.length > end) throw new RangeError(`writer overrun: ${cursor + chunk.length} > ${end}`);
        // After a concurrent TRUNCATE the buffer may be shorter: copy() stops at its end.
        if (cursor < this.data.length) chunk.copy(this.ownData(), cursor);
        cursor += chunk.length;
      },
      finish: async (): Promise<BlockChecksums | undefined> => {
        if (cursor !== end) throw new RangeError(`finish of a partial range: ${cursor} of ${end}`);
        return undefined;
      },
      abort: async () => {
        const from = Math.max(this.owner.size, offset);
        const to = Math.min(cursor, this.data.length);
        if (to > from) zeroFill(this.ownData(), from, to);
      },
    };
  }

  /**
   * A writer into segments. It offers its memory for the body to be read into in place (see
   * {@link DirectTarget}): a span of one segment, held (pinned) until its bytes land so that a
   * TRUNCATE or delete meanwhile cannot hand the segment to another allocation. Below the size the
   * span is a hole segment of its own (see `filling`), or an attached segment made safe first: a
   * reader's pin is honoured by copy on write, and a reader that comes while the span is out copies
   * (see `receiving`). Each segment is attached when the writer first reaches it, so memory is
   * committed (and faulted in) as the bytes arrive, not for the whole range when the writer opens.
   */
  private segmentWriter(offset: number, end: number): RangeWriter & DirectTarget {
    const segments = this.segments!;
    if (end > this.owner.maxSize) {
      throw new DepotError(
        DepotErrorCode.WOULD_EXCEED_LIMIT,
        `a write up to ${end} bytes passes the max size ${this.owner.maxSize}`,
      );
    }
    let cursor = offset;
    /**
     * Segments this write fills that were holes below the size (never attached: they read as zeros).
     * Nobody else sees them until `finish` attaches them, so the body is read straight into them
     * and readers meanwhile see the zeros of before, never part of the write.
     */
    const filling = new Map<number, Buffer>();
    /** The hole segments `finish` attached. */
    const published: number[] = [];
    /** Segment `i` below the size, if this write fills it as a hole: its own buffer for it. */
    const holeSegment = (i: number): Buffer | undefined => {
      const own = filling.get(i);
      if (own !== undefined) return own;
      if (segments[i] !== undefined || !this.mayAttach(segments, i)) return undefined;
      // Only what this write leaves alone needs zeros: it is attached only once every byte of its
      // range has been written (a pooled segment holds a deleted allocation's bytes).
      const base = i * SEGMENT_BYTES;
      const buf = zeroedSegment(Math.max(offset, base) - base, Math.min(end, base + SEGMENT_BYTES) - base);
      filling.set(i, buf);
      return buf;
    };
    /** The span given out: its segment, index and offset within (`own`: a hole segment of this write). */
    let lent: { seg: Buffer; i: number; within: number; n: number; own: boolean } | undefined;
    const unlend = (): void => {
      if (lent === undefined) return;
      const { seg, own } = lent;
      lent = undefined;
      if (own) return;
      this.receiving.delete(seg);
      segmentPool.unpin(seg, true);
    };
    return {
      span: (max: number): Uint8Array | undefined => {
        if (lent !== undefined) throw new Error('a span is already out');
        if (cursor >= end) return undefined;
        const i = Math.floor(cursor / SEGMENT_BYTES);
        const within = cursor - i * SEGMENT_BYTES;
        const n = Math.min(max, end - cursor, SEGMENT_BYTES - within);
        if (n <= 0) return undefined;
        // A segment it started filling as a hole stays its own to the end, past the size too.
        if (cursor < this.owner.size || filling.has(i)) {
          const own = holeSegment(i);
          if (own !== undefined) {
            lent = { seg: own, i, within, n, own: true };
            return own.subarray(within, within + n);
          }
          // An attached segment below the size: the bytes are read straight into it, where `write`
          // would have copied them. A reader that holds it pinned keeps it (copy on write first);
          // one that comes while the span is out gets a copy of the bytes of that moment (see
          // `receiving`), never a view the read may still change.
          const seg = this.ownSegment(segments, i);
          if (seg === undefined) return undefined;
          segmentPool.pin(seg);
          this.receiving.add(seg);
          lent = { seg, i, within, n, own: false };
          return seg.subarray(within, within + n);
        }
        const seg = this.attach(segments, i);
        if (seg === undefined) return undefined;
        segmentPool.pin(seg);
        lent = { seg, i, within, n, own: false };
        return seg.subarray(within, within + n);
      },
      landed: (n: number): void => {
        if (lent === undefined) throw new Error('no span is out');
        if (n > lent.n) throw new RangeError(`span overrun: ${n} > ${lent.n}`);
        const { seg, i, within, own } = lent;
        // A TRUNCATE meanwhile may have replaced the segment (copy on write) or dropped it: the
        // bytes go where a write would have put them, and as a write would (a reader that has
        // pinned the replacement since keeps it: copy on write again).
        if (!own && segments[i] !== seg && segments[i] !== undefined) {
          const now = this.ownSegment(segments, i);
          if (now !== undefined) seg.copy(now, within, within, within + n);
        }
        cursor += n;
        unlend();
      },
      cancel: unlend,
      write: (chunk: Buffer) => {
        if (lent !== undefined) throw new Error('a write while a span is out');
        if (cursor + chunk.length > end) throw new RangeError(`writer overrun: ${cursor + chunk.length} > ${end}`);
        let at = 0;
        while (at < chunk.length) {
          const pos = cursor + at;
          const i = Math.floor(pos / SEGMENT_BYTES);
          const within = pos - i * SEGMENT_BYTES;
          const n = Math.min(chunk.length - at, SEGMENT_BYTES - within);
          // After a concurrent TRUNCATE or delete a segment may be gone: those bytes are dropped.
          const seg =
            (pos < this.owner.size || filling.has(i) ? holeSegment(i) : undefined) ??
            (this.attach(segments, i) === undefined ? undefined : this.ownSegment(segments, i));
          if (seg !== undefined) chunk.copy(seg, within, at, at + n);
          at += n;
        }
        cursor += chunk.length;
      },
      finish: async (): Promise<BlockChecksums | undefined> => {
        if (cursor !== end) throw new RangeError(`finish of a partial range: ${cursor} of ${end}`);
        // The holes it filled join the allocation (unless a TRUNCATE or delete took them meanwhile).
        for (const [i, buf] of filling) {
          if (segments[i] === undefined && this.mayAttach(segments, i)) {
            place(segments, i, buf);
            published.push(i);
          } else segmentPool.give(buf);
        }
        filling.clear();
        return undefined;
      },
      abort: async () => {
        unlend();
        // Holes it filled: never seen if it did not get to `finish`; else zeros again.
        for (const buf of filling.values()) segmentPool.give(buf);
        filling.clear();
        for (const i of published)
          this.zero(Math.max(offset, i * SEGMENT_BYTES), Math.min(end, (i + 1) * SEGMENT_BYTES, this.owner.size));
        // Every byte past the committed size is zero: clear what this write put there. Below the
        // size, what it did not write is as it was (zeros where it attached a segment: see attach).
        this.zero(Math.max(this.owner.size, offset), end);
      },
    };
  }

  /**
   * Segment `i` of a writer's `segments`, attached now if it is not yet. A pooled one holds a
   * deleted allocation's bytes: it is zeroed whole before it joins this allocation, so a LOAD or an
   * NFU pin never finds the old bytes (segments not attached read as zeros). Undefined where no
   * segment may be attached any more: the allocation was deleted, a TRUNCATE took its max size
   * below the segment, or the segments were given up for one small buffer.
   */
  private attach(segments: (Buffer | undefined)[], i: number): Buffer | undefined {
    const seg = segments[i];
    if (seg !== undefined) return seg;
    if (!this.mayAttach(segments, i)) return undefined;
    const buf = zeroedSegment();
    place(segments, i, buf);
    return buf;
  }

  /**
   * Whether segment `i` of a writer's `segments` may still be attached: the allocation is not
   * deleted, a TRUNCATE has not taken its max size below the segment, and the segments were not
   * given up for one small buffer.
   */
  private mayAttach(segments: (Buffer | undefined)[], i: number): boolean {
    return !this.released && this.segments === segments && i * SEGMENT_BYTES < this.owner.maxSize;
  }

  /**
   * Zeroes `[from, to)` where segments are attached (missing ones read as zeros). After a TRUNCATE
   * below one segment the bytes live in one small buffer: its part of the range is zeroed there.
   */
  private zero(from: number, to: number): void {
    const segments = this.segments;
    if (segments === undefined) {
      const hi = Math.min(to, this.data.length);
      if (from < hi) zeroFill(this.ownData(), from, hi);
      return;
    }
    for (let pos = from; pos < to;) {
      const i = Math.floor(pos / SEGMENT_BYTES);
      const within = pos - i * SEGMENT_BYTES;
      const n = Math.min(to - pos, SEGMENT_BYTES - within);
      const seg = this.ownSegment(segments, i);
      if (seg !== undefined) zeroFill(seg, within, within + n);
      pos += n;
    }
  }

  async read(
    offset: number,
    length: number,
    sink: (chunk: Buffer) => void | Promise<void>,
    options?: ReadOptions,
  ): Promise<void> {
    const end = offset + length;
    const releases = options?.sinkReleases === true;
    for (let pos = offset; ;) {
      // Checked before every chunk: a TRUNCATE or delete may run while the sink waits.
      if (end > this.owner.size) throw shrank(end);
      if (this.segments === undefined) {
        // One buffer (a TRUNCATE below a segment may have moved the bytes into one meanwhile).
        if (end > this.data.length) throw shrank(end);
        const d = this.data;
        // Pinned while a releasing sink holds its view, as a segment is: a write meanwhile goes to a
        // copy (see ownData), so a reply queued behind a slow reader keeps the bytes of its time.
        const pin = releases && d.length > 0;
        if (pin) segmentPool.pin(d);
        let handed = false;
        try {
          await sink(d.subarray(pos, end));
          handed = true;
        } finally {
          if (pin) segmentPool.unpin(d, handed);
        }
        return;
      }
      if (pos >= end) return;
      const i = Math.floor(pos / SEGMENT_BYTES);
      const within = pos - i * SEGMENT_BYTES;
      const n = Math.min(end - pos, SEGMENT_BYTES - within);
      const seg = this.segments[i];
      if (seg !== undefined && this.receiving.has(seg)) {
        // A body is being read into this segment in place: these bytes, copied now.
        await sink(Buffer.from(seg.subarray(within, within + n)));
        pos += n;
        continue;
      }
      // A view, not a copy. The sink (a socket's write queue, a disk writer's batch) may hold it
      // past this call, so a segment once lent never goes back to the pool: the collector frees it.
      // A sink that releases its chunks has the segment pinned only while it holds the view.
      if (seg !== undefined) {
        if (releases) segmentPool.pin(seg);
        else this.lent.add(seg);
      }
      // A segment never attached lies inside a hole: zeros.
      let handed = false;
      try {
        await sink(seg === undefined ? Buffer.alloc(n) : seg.subarray(within, within + n));
        handed = true;
      } finally {
        // After a failed send the socket may be left holding the view: never reused then.
        if (releases && seg !== undefined) segmentPool.unpin(seg, handed);
      }
      pos += n;
    }
  }

  async truncate(newSize: number, newMaxSize: number): Promise<void> {
    if (this.segments !== undefined && newMaxSize < SEGMENT_BYTES) {
      // Now a small allocation, held as one from the start would be: its bytes move into a buffer
      // of their own length and every segment goes (emptied in place, as on release).
      const kept = sharedBuffer(newSize);
      this.segments[0]?.copy(kept, 0, 0, newSize);
      for (const seg of this.segments.splice(0)) this.giveBack(seg);
      this.segments = undefined;
      this.data = kept;
      return;
    }
    if (this.segments !== undefined) {
      const keep = Math.ceil(newMaxSize / SEGMENT_BYTES);
      for (const seg of this.segments.splice(keep)) this.giveBack(seg);
      this.zero(newSize, this.segments.length * SEGMENT_BYTES);
      return;
    }
    if (this.data.length > newMaxSize) {
      // Shrink the buffer so the memory is really returned.
      const kept = sharedBuffer(newMaxSize);
      this.data.copy(kept, 0, 0, newSize);
      this.data = kept;
    } else if (this.data.length > newSize) {
      const d = this.ownData();
      zeroFill(d, newSize, d.length);
    }
  }

  async release(): Promise<void> {
    this.released = true;
    this.data = EMPTY;
    // Emptied in place: a writer still running (a delete during a transfer) holds this array
    // and must find no segment to write into once they are back in the pool.
    const segments = this.segments;
    if (segments !== undefined) for (const seg of segments.splice(0)) this.giveBack(seg);
  }

  /**
   * Pins `[offset, offset + length)` (within the data) for a reader in another thread, such as an
   * NFU worker: it gets views of the shared buffers holding the range, copies nothing, and sees
   * the bytes as they are now. Until the pin is released, a writer that would change a pinned
   * buffer in place (WRITE, STORE, TRUNCATE, an aborted write) first gives the allocation a copy
   * of it and leaves the pinned one to the reader, and a pinned buffer this allocation gives up
   * joins the pool of warm segments only once its last pin is gone.
   */
  pin(offset: number, length: number): PinnedRange {
    const end = offset + length;
    if (end > this.owner.size) throw shrank(end);
    const pieces: PinnedPiece[] = [];
    const held: Buffer[] = [];
    const piece = (buf: Buffer, from: number, n: number, at: number): void => {
      pieces.push({ at, bytes: new Uint8Array(buf.buffer, buf.byteOffset + from, n) });
      if (!held.includes(buf)) held.push(buf);
    };
    if (this.segments === undefined) {
      if (end > this.data.length) throw shrank(end);
      if (length > 0) piece(this.data, offset, length, 0);
    } else {
      for (let pos = offset; pos < end;) {
        const i = Math.floor(pos / SEGMENT_BYTES);
        const within = pos - i * SEGMENT_BYTES;
        const n = Math.min(end - pos, SEGMENT_BYTES - within);
        const seg = this.segments[i];
        // A segment never attached lies inside a hole: no piece, the reader takes zeros. One a body
        // is being read into gives a copy of its bytes of now (shared memory, as every piece is).
        if (seg !== undefined && this.receiving.has(seg)) {
          const copy = sharedBuffer(n);
          seg.copy(copy, 0, within, within + n);
          piece(copy, 0, n, pos - offset);
        } else if (seg !== undefined) piece(seg, within, n, pos - offset);
        pos += n;
      }
    }
    for (const b of held) segmentPool.pin(b);
    let released = false;
    return {
      length,
      pieces,
      release: (recycle = true) => {
        if (released) return;
        released = true;
        for (const b of held) segmentPool.unpin(b, recycle);
      },
    };
  }

  /** Segment `i` of `segments`, made safe to change in place: a pinned one is replaced by a copy. */
  private ownSegment(segments: (Buffer | undefined)[], i: number): Buffer | undefined {
    const seg = segments[i];
    if (seg === undefined || !segmentPool.isPinned(seg)) return seg;
    const { buf } = segmentPool.take(false);
    seg.copy(buf);
    pinStats.copiedOnWriteBytes += SEGMENT_BYTES;
    segments[i] = buf;
    this.giveBack(seg);
    return buf;
  }

  /** The small allocation's buffer, made safe to change in place (a pinned one is replaced by a copy). */
  private ownData(): Buffer {
    const d = this.data;
    if (d.length === 0 || !segmentPool.isPinned(d)) return d;
    const copy = sharedBuffer(d.length);
    d.copy(copy);
    pinStats.copiedOnWriteBytes += d.length;
    this.data = copy;
    return copy;
  }

  /** A segment leaves this allocation: to the pool, unless a reader may still hold a view of it. */
  private giveBack(seg: Buffer | undefined): void {
    if (seg !== undefined && !this.lent.has(seg)) segmentPool.give(seg);
  }

  private ensureCapacity(end: number): void {
    if (end <= this.data.length) return;
    const grown = Math.min(this.owner.maxSize, Math.max(end, this.data.length * 2));
    const next = sharedBuffer(grown);
    this.data.copy(next);
    this.data = next;
  }
}

/**
 * A segment from the pool, all zeros (a pooled one held a deleted allocation's bytes), except
 * `[from, to)` when given: the caller overwrites that range whole before anyone sees the segment.
 */
function zeroedSegment(from = 0, to = 0): Buffer {
  const { buf, fresh } = segmentPool.take();
  if (!fresh) {
    zeroFill(buf, 0, from);
    zeroFill(buf, Math.max(from, to), buf.length);
  }
  return buf;
}

/** Puts `buf` in `segments` as segment `i`. */
function place(segments: (Buffer | undefined)[], i: number, buf: Buffer): void {
  while (segments.length < i) segments.push(undefined);
  segments[i] = buf;
}

function shrank(end: number): DepotError {
  // The data shrank (TRUNCATE, delete) after the caller checked the range.
  return new DepotError(DepotErrorCode.WOULD_EXCEED_LIMIT, `the data no longer reaches ${end} bytes`);
}
