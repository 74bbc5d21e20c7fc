import type { CapTypeNumber } from '../../ibp/index.js';
import type { Ring } from './ring-allocation.js';

export type { AllocationData, BlockChecksums, RangeWriter, ReadOptions } from './allocation-data.js';
import type { AllocationData } from './allocation-data.js';

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

  /**
   * Resolves when the write that holds the lock now gives it up (at once if none does). Unlike
   * {@link settled} it does not queue behind the writes waiting for the lock: a command that holds
   * the lock can wait on its own end without waiting for the next command, which may wait on it.
   */
  holderDone(): Promise<void> {
    return this.holding ?? Promise.resolve();
  }

  /** Serializes writes: each STORE appends at the size left by the previous one. */
  private writeTail: Promise<void> = Promise.resolve();
  /** Resolves when the current holder of the write lock gives it up. */
  private holding: Promise<void> | undefined;

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
    const done = new Promise<void>((resolve) => (release = resolve));
    this.writeTail = done;
    await previous;
    this.holding = done;
    try {
      return await task();
    } finally {
      if (this.holding === done) this.holding = undefined;
      release();
    }
  }
}
