import type { Allocation, AllocationData, AllocationRecord, BlockChecksums } from '../core/allocation.js';
import type { ResourceOptions } from '../options.js';
import { MemoryData, segmentPool } from './memory-data.js';

/**
 * A place allocations live: RAM or a data directory. The depot core owns the semantics and the
 * accounting; a resource stores the bytes and, when it is persistent, every metadata change
 * before the core acknowledges it.
 */
export interface StorageResource {
  readonly options: ResourceOptions;
  /** Allocations (live, damaged and in the trash) found at start-up; empty for memory. */
  restore(): Promise<AllocationRecord[]>;
  /** The data store of a new or restored allocation. */
  createData(a: Allocation): AllocationData;
  /** Records a new allocation durably (before its caps are returned). */
  insert(a: Allocation): void;
  /**
   * Records changed metadata: keys, refcounts, lease, max size, reliability, state; never the size,
   * which only a write's commit (or the data layer's truncate) records with the bytes it covers.
   */
  update(a: Allocation): void;
  /** Records a write's new size and block checksums in one transaction (durable once it resolves). */
  commitWrite(a: Allocation, newSize: number, blocks: BlockChecksums | undefined): void | Promise<void>;
  /** Frees an allocation's bytes and forgets it. */
  purge(a: Allocation): Promise<void>;
  /** Closes the resource; resolves once nothing of it runs any more. */
  close(): void | Promise<void>;
}

/** A memory resource: nothing survives the process, so there is nothing to record. */
export class MemoryResource implements StorageResource {
  /** Freed segments stay warm up to this resource's capacity (see `SegmentPool.reserve`). */
  private readonly unreserve: () => void;
  constructor(readonly options: ResourceOptions) {
    this.unreserve = segmentPool.reserve(options.capacityBytes);
  }
  async restore(): Promise<AllocationRecord[]> {
    return [];
  }
  createData(a: Allocation): AllocationData {
    return new MemoryData(a);
  }
  insert(): void {}
  update(): void {}
  commitWrite(): void {}
  async purge(a: Allocation): Promise<void> {
    await a.data.release();
  }
  close(): void {
    this.unreserve();
  }
}
