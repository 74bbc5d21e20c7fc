import type { CapTypeNumber } from '../../ibp/index.js';
import type { Ring } from './ring-allocation.js';

/** Checksums to record with a write: block index → CRC-32C of the block's committed bytes. */
export type BlockChecksums = ReadonlyMap<number, number>;

/** Receives the body of one STORE/WRITE straight into the allocation's storage. */
export interface RangeWriter {
  /** Stores the next chunk; chunks arrive in order and never exceed the declared length. */
  write(chunk: Buffer): void | Promise<void>;
  /**
   * Makes the bytes durable under the resource's policy (flush, fsync) and returns what must be
   * recorded with the new size. Nothing is visible to readers until the core commits.
   */
  finish(newSize: number): Promise<BlockChecksums | undefined>;
  /** Abandons the range: bytes past the committed size are discarded. */
  abort(): Promise<void>;
}

/** Where an allocation's bytes live: RAM or a file. */
export interface AllocationData {
  /** Bytes of RAM or disk currently used by the data. */
  readonly residentBytes: number;
  openWriter(offset: number, length: number): Promise<RangeWriter>;
  /**
   * Streams `[offset, offset + length)` to `sink` in order, verifying stored checksums where the
   * resource keeps them. The caller has checked the range against the committed size.
   */
  read(offset: number, length: number, sink: (chunk: Buffer) => void | Promise<void>): Promise<void>;
  /**
   * Cuts the data to `newSize` bytes under a new max size; what is cut never reappears. A
   * persistent store records the new sizes before it cuts the bytes.
   */
  truncate(newSize: number, newMaxSize: number): Promise<void>;
  /** Frees the bytes for good. */
  release(): Promise<void>;
}

export type AllocationState = 'ok' | 'damaged' | 'trash';

export interface AllocationRecord {
  readonly id: number;
  readonly rid: string;
  maxSize: number;
  size: number;
  reliability: number;
  readonly type: number;
  expiresAtMs: number;
  readRefs: number;
  writeRefs: number;
  state: AllocationState;
  /** When it went to the trash, and why (`expired` or `deleted`). */
  trashedAtMs: number | undefined;
  trashReason: string | undefined;
  readonly digests: Readonly<Record<CapTypeNumber, Buffer>>;
}

/**
 * One allocation: a byte array of bounded size with a lease, reference counts, three capability
 * digests, a state, and its data on a resource.
 */
export class Allocation implements AllocationRecord {
  readonly id: number;
  readonly rid: string;
  maxSize: number;
  /** Bytes of data held: the high-water mark of acknowledged writes. */
  size: number;
  reliability: number;
  readonly type: number;
  expiresAtMs: number;
  readRefs: number;
  writeRefs: number;
  state: AllocationState;
  trashedAtMs: number | undefined;
  trashReason: string | undefined;
  /** Digests of the three keys (replaced by RENAME). */
  digests: Readonly<Record<CapTypeNumber, Buffer>>;
  /** Deadline of this allocation's authoritative entry in the depot's expiry heap. */
  scheduledExpiryMs = Number.POSITIVE_INFINITY;
  /** Set once the allocation left the key index (deleted, expired, trashed). */
  freed = false;
  data!: AllocationData;
  /** The counters of a BUFFER, FIFO or CIRQ allocation (`data` is then its logical view). */
  ring: Ring | undefined;
  /** Waits until no write holds the lock (a reader that saw a write half-done retries after it). */
  settled(): Promise<void> {
    return this.withWriteLock(async () => undefined);
  }

  /** Serializes writes: each STORE appends at the size left by the previous one. */
  private writeTail: Promise<void> = Promise.resolve();

  constructor(r: AllocationRecord) {
    this.id = r.id;
    this.rid = r.rid;
    this.maxSize = r.maxSize;
    this.size = r.size;
    this.reliability = r.reliability;
    this.type = r.type;
    this.expiresAtMs = r.expiresAtMs;
    this.readRefs = r.readRefs;
    this.writeRefs = r.writeRefs;
    this.state = r.state;
    this.trashedAtMs = r.trashedAtMs;
    this.trashReason = r.trashReason;
    this.digests = r.digests;
  }

  /** The WRM-key token written into this allocation's caps (its id, as the ACCRE depot does). */
  get wrmKey(): string {
    return String(this.id);
  }

  /** Runs `task` after every earlier write to this allocation has finished. */
  async withWriteLock<T>(task: () => Promise<T>): Promise<T> {
    const previous = this.writeTail;
    let release!: () => void;
    this.writeTail = new Promise<void>((resolve) => (release = resolve));
    await previous;
    try {
      return await task();
    } finally {
      release();
    }
  }
}
