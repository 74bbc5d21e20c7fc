import { AllocationType, CapType, Status, type CapTypeNumber } from '../protocol/commands.js';
import { formatCapability } from '../protocol/caps.js';
import type { AllocateRequest, KeyRef, ManageRequest } from '../protocol/requests.js';
import type { ProbeFields, ResourceStatus } from '../protocol/reply.js';
import { DepotError, DepotErrorCode } from '../errors.js';
import type { DepotOptions, ResourceOptions } from '../options.js';
import type { Clock } from './clock.js';
import { digestIndex, digestKey, newCapabilityKey, sameDigest } from './capability-keys.js';
import { ExpiryHeap } from './expiry-heap.js';
import { MemoryAllocation } from './memory-allocation.js';

interface ResourceState {
  readonly options: ResourceOptions;
  /** Bytes reserved by live allocations (their max sizes). */
  reservedBytes: number;
  allocations: number;
}

interface KeyEntry {
  readonly allocation: MemoryAllocation;
  readonly type: CapTypeNumber;
  readonly digest: Buffer;
}

/** The three capabilities of a new allocation, as cap strings. */
export interface AllocatedCaps {
  readonly read: string;
  readonly write: string;
  readonly manage: string;
}

/** Why an allocation left the depot (for logs and metrics). */
export type FreeReason = 'expired' | 'deleted';

export interface DepotCoreDeps {
  onFree?(allocation: MemoryAllocation, reason: FreeReason): void;
  /** Source of capability keys; CSPRNG by default. Tests inject a seeded one for repeatable caps. */
  newKey?(): string;
}

const MANAGE_WORD: Readonly<Record<CapTypeNumber, string>> = { 1: 'read', 2: 'write', 3: 'manage' };
const WRM_STATUS: Readonly<Record<CapTypeNumber, number>> = {
  1: Status.INVALID_READ_CAP,
  2: Status.INVALID_WRITE_CAP,
  3: Status.INVALID_MANAGE_CAP,
};

function err(code: (typeof DepotErrorCode)[keyof typeof DepotErrorCode], message: string, status?: number): DepotError {
  return new DepotError(code, message, status === undefined ? {} : { status });
}

/**
 * The depot's state and the semantics of every IBP call, free of sockets and bytes on the
 * wire: allocations and their leases, capability lookup, resource accounting. Every method
 * validates completely before it changes anything, and throws {@link DepotError} on refusal.
 */
export class DepotCore {
  private readonly resources = new Map<string, ResourceState>();
  private readonly byKey = new Map<string, KeyEntry>();
  private readonly byId = new Map<number, MemoryAllocation>();
  private readonly expiry = new ExpiryHeap();
  private nextId = 1;
  private capHost: string;
  private capPort: number;

  constructor(
    readonly options: DepotOptions,
    readonly clock: Clock,
    private readonly deps: DepotCoreDeps = {},
  ) {
    for (const r of options.resources) this.resources.set(r.rid, { options: r, reservedBytes: 0, allocations: 0 });
    this.capHost = options.publicHost;
    this.capPort = options.port;
  }

  /** Sets the host and port written into new caps (the port is known only after listening). */
  setCapAddress(host: string, port: number): void {
    this.capHost = host;
    this.capPort = port;
  }

  get allocationCount(): number {
    return this.byId.size;
  }

  /** ALLOCATE: reserves `size` bytes on a resource for a lease and returns the three caps. */
  allocate(req: AllocateRequest): AllocatedCaps {
    if (req.type < AllocationType.BYTEARRAY || req.type > AllocationType.CIRQ) {
      throw err(DepotErrorCode.INVALID_PARAMETER, `\`type\` must be 1 (byte array) (got ${req.type})`);
    }
    if (req.type !== AllocationType.BYTEARRAY) {
      throw err(DepotErrorCode.TYPE_NOT_SUPPORTED, `allocation type ${req.type} is not supported; only 1 (byte array) is`);
    }
    if (req.durationSec === 0 || req.durationSec < -1) {
      throw err(
        DepotErrorCode.INVALID_PARAMETER,
        `\`duration\` must be positive seconds or -1 for the maximum (got ${req.durationSec})`,
      );
    }
    if (req.size < 1) throw err(DepotErrorCode.INVALID_PARAMETER, `\`size\` must be at least 1 byte (got ${req.size})`);
    this.sweep(); // give back the capacity of leases that ran out since the last sweep
    if (this.byId.size >= this.options.limits.maxAllocations) {
      throw err(DepotErrorCode.ALLOC_FAILED, `the depot holds its maximum of ${this.options.limits.maxAllocations} allocations`);
    }
    const resource = this.pickResource(req);
    const r = resource.options;
    const durationSec = req.durationSec === -1 ? r.maxDurationSec : req.durationSec;
    if (durationSec > r.maxDurationSec) {
      throw err(
        DepotErrorCode.LONG_DURATION,
        `duration ${durationSec} s exceeds the resource's maxDurationSec (${r.maxDurationSec})`,
      );
    }

    const newKey = this.deps.newKey ?? newCapabilityKey;
    const keys = { 1: newKey(), 2: newKey(), 3: newKey() } as const;
    const digests = { 1: digestKey(keys[1]), 2: digestKey(keys[2]), 3: digestKey(keys[3]) } as const;
    const allocation = new MemoryAllocation({
      id: this.nextId++,
      rid: r.rid,
      maxSize: req.size,
      reliability: req.reliability,
      type: req.type,
      expiresAtMs: this.clock.now() + durationSec * 1000,
      digests,
    });
    resource.reservedBytes += req.size;
    resource.allocations++;
    this.byId.set(allocation.id, allocation);
    for (const type of [CapType.READ, CapType.WRITE, CapType.MANAGE] as const) {
      this.byKey.set(digestIndex(digests[type]), { allocation, type, digest: digests[type] });
    }
    this.schedule(allocation, allocation.expiresAtMs);
    const cap = (type: CapTypeNumber) =>
      formatCapability({ host: this.capHost, port: this.capPort, rid: r.rid, key: keys[type], wrmKey: allocation.wrmKey, type });
    return { read: cap(CapType.READ), write: cap(CapType.WRITE), manage: cap(CapType.MANAGE) };
  }

  /**
   * Finds the live allocation a request's key names and checks that the key is a cap of type
   * `need`. Unknown, expired and wrong-type keys all answer CAP_NOT_FOUND (-4), as the ACCRE depot.
   */
  lookup(ref: KeyRef, need: CapTypeNumber): MemoryAllocation {
    const digest = digestKey(ref.key);
    const entry = this.byKey.get(digestIndex(digest));
    if (entry === undefined || !sameDigest(entry.digest, digest) || (ref.rid !== '' && ref.rid !== entry.allocation.rid)) {
      throw err(DepotErrorCode.CAP_NOT_FOUND, `no ${MANAGE_WORD[need]} capability with that key`);
    }
    const allocation = entry.allocation;
    if (allocation.expiresAtMs <= this.clock.now()) {
      this.free(allocation, 'expired');
      throw err(DepotErrorCode.CAP_NOT_FOUND, `no ${MANAGE_WORD[need]} capability with that key (lease expired)`);
    }
    if (entry.type !== need) {
      throw err(
        DepotErrorCode.WRONG_CAP_TYPE,
        `the key is a ${MANAGE_WORD[entry.type]} capability; this command needs a ${MANAGE_WORD[need]} capability`,
      );
    }
    if (this.options.wrmKey === 'check' && ref.wrmKey !== allocation.wrmKey) {
      throw err(
        DepotErrorCode.WRM_KEY_MISMATCH,
        `the WRM key does not match the ${MANAGE_WORD[need]} capability`,
        WRM_STATUS[need],
      );
    }
    return allocation;
  }

  /** Checks that `length` bytes fit at `offset` of the allocation (STORE/WRITE). */
  checkWriteRange(allocation: MemoryAllocation, offset: number, length: number): void {
    if (offset + length > allocation.maxSize) {
      throw err(
        DepotErrorCode.WOULD_EXCEED_LIMIT,
        `writing ${length} bytes at offset ${offset} would exceed the allocation's max size (${allocation.maxSize})`,
      );
    }
  }

  /** LOAD: a view of the bytes; the range must lie within the data held. */
  read(allocation: MemoryAllocation, offset: number, length: number): Buffer {
    if (offset + length > allocation.size) {
      throw err(
        DepotErrorCode.WOULD_EXCEED_LIMIT,
        `reading ${length} bytes at offset ${offset} goes past the end of the data (${allocation.size} bytes)`,
      );
    }
    return allocation.read(offset, length);
  }

  /** MANAGE: PROBE, INCR, DECR, CHNG, TRUNCATE on the allocation a manage cap names. */
  manage(req: ManageRequest): ProbeFields | undefined {
    const a = this.lookup(req.cap, CapType.MANAGE);
    const r = this.resources.get(a.rid)!;
    switch (req.op) {
      case 'probe':
        return {
          readRefs: a.readRefs,
          writeRefs: a.writeRefs,
          size: a.size,
          maxSize: a.maxSize,
          secondsLeft: Math.ceil((a.expiresAtMs - this.clock.now()) / 1000),
          reliability: a.reliability,
          type: a.type,
        };
      case 'incr':
      case 'decr': {
        if (req.capType === CapType.MANAGE) {
          throw err(
            DepotErrorCode.INVALID_PARAMETER,
            '`captype` must be 1 (read) or 2 (write): manage caps have no reference count',
          );
        }
        const delta = req.op === 'incr' ? 1 : -1;
        if (req.capType === CapType.READ) a.readRefs = Math.max(0, a.readRefs + delta);
        else a.writeRefs = Math.max(0, a.writeRefs + delta);
        if (a.readRefs === 0 && a.writeRefs === 0) this.free(a, 'deleted');
        return undefined;
      }
      case 'chng': {
        if (req.maxSize < 1 || req.maxSize < a.size) {
          throw err(
            DepotErrorCode.WOULD_DAMAGE_DATA,
            `new max size ${req.maxSize} is below the ${a.size} bytes of data held (use TRUNCATE to cut data)`,
          );
        }
        this.checkGrowth(r, a, req.maxSize);
        if (req.durationSec === 0) {
          throw err(
            DepotErrorCode.INVALID_PARAMETER,
            '`duration` must be positive seconds, or negative to leave it unchanged (got 0)',
          );
        }
        if (req.durationSec > r.options.maxDurationSec) {
          throw err(
            DepotErrorCode.WOULD_EXCEED_POLICY,
            `duration ${req.durationSec} s exceeds the resource's maxDurationSec (${r.options.maxDurationSec})`,
          );
        }
        if (req.reliability !== -1 && req.reliability !== 1 && req.reliability !== 2) {
          throw err(
            DepotErrorCode.BAD_FORMAT,
            `\`reliability\` must be 1, 2 or -1 for unchanged (got ${req.reliability})`,
            Status.BAD_FORMAT,
          );
        }
        r.reservedBytes += req.maxSize - a.maxSize;
        a.maxSize = req.maxSize;
        if (req.durationSec > 0) this.setExpiry(a, this.clock.now() + req.durationSec * 1000);
        if (req.reliability !== -1) a.reliability = req.reliability;
        return undefined;
      }
      case 'truncate': {
        if (req.size < 0) throw err(DepotErrorCode.INVALID_PARAMETER, `\`size\` must be >= 0 (got ${req.size})`);
        this.checkGrowth(r, a, req.size);
        r.reservedBytes += req.size - a.maxSize;
        a.truncate(req.size);
        return undefined;
      }
    }
  }

  /** Resource figures for ST_INQ; `rid` undefined or `'0'` means every resource. */
  resourceStatus(rid: string | undefined): ResourceStatus[] {
    this.sweep();
    const states = rid === undefined || rid === '0' ? [...this.resources.values()] : [this.resourceById(rid)];
    return states.map((s) => ({
      rid: s.options.rid,
      resourceType: 2,
      capacityBytes: s.options.capacityBytes,
      usedBytes: s.reservedBytes,
      maxDurationSec: s.options.maxDurationSec,
    }));
  }

  resourceIds(): string[] {
    return [...this.resources.keys()];
  }

  /** Frees every allocation whose lease has run out; returns how many. */
  sweep(): number {
    const now = this.clock.now();
    let freed = 0;
    for (const [deadline, id] of this.expiry.popDue(now)) {
      const a = this.byId.get(id);
      if (a === undefined || a.scheduledExpiryMs !== deadline) continue; // stale entry
      if (a.expiresAtMs <= now) {
        this.free(a, 'expired');
        freed++;
      } else {
        this.schedule(a, a.expiresAtMs); // the lease was extended since
      }
    }
    return freed;
  }

  private resourceById(rid: string): ResourceState {
    const r = this.resources.get(rid);
    if (r === undefined) {
      throw err(
        DepotErrorCode.INVALID_RID,
        `resource ${rid} does not exist on this depot (resources: ${this.resourceIds().join(', ')})`,
      );
    }
    return r;
  }

  private pickResource(req: AllocateRequest): ResourceState {
    if (req.rid !== undefined && req.rid !== '0') {
      const r = this.resourceById(req.rid);
      this.checkFits(r, req.size);
      return r;
    }
    // Any resource: the first one where the allocation fits; otherwise report the first refusal.
    let firstError: DepotError | undefined;
    for (const r of this.resources.values()) {
      try {
        this.checkFits(r, req.size);
        return r;
      } catch (e) {
        firstError ??= e as DepotError;
      }
    }
    throw firstError!;
  }

  private checkFits(r: ResourceState, size: number): void {
    if (size > r.options.maxAllocationBytes) {
      throw err(
        DepotErrorCode.WOULD_EXCEED_LIMIT,
        `allocation of ${size} bytes exceeds resource ${r.options.rid}'s maxAllocationBytes (${r.options.maxAllocationBytes})`,
      );
    }
    const free = r.options.capacityBytes - r.reservedBytes;
    if (size > free) {
      throw err(DepotErrorCode.ALLOC_FAILED, `resource ${r.options.rid} has ${free} bytes free; ${size} were requested`);
    }
  }

  private checkGrowth(r: ResourceState, a: MemoryAllocation, newMax: number): void {
    if (newMax > r.options.maxAllocationBytes) {
      throw err(
        DepotErrorCode.WOULD_EXCEED_LIMIT,
        `max size ${newMax} exceeds resource ${r.options.rid}'s maxAllocationBytes (${r.options.maxAllocationBytes})`,
      );
    }
    this.sweep();
    const growth = newMax - a.maxSize;
    const free = r.options.capacityBytes - r.reservedBytes;
    if (growth > free) {
      throw err(
        DepotErrorCode.ALLOC_FAILED,
        `growing by ${growth} bytes needs more than the ${free} bytes free on resource ${r.options.rid}`,
      );
    }
  }

  /**
   * Extending a lease leaves its heap entry in place (the sweep re-files it when it comes due),
   * so a client renewing often does not grow the heap; only shortening files a new entry.
   */
  private setExpiry(a: MemoryAllocation, atMs: number): void {
    a.expiresAtMs = atMs;
    if (atMs < a.scheduledExpiryMs) this.schedule(a, atMs);
  }

  private schedule(a: MemoryAllocation, atMs: number): void {
    a.scheduledExpiryMs = atMs;
    this.expiry.push(atMs, a.id);
  }

  private free(a: MemoryAllocation, reason: FreeReason): void {
    if (!this.byId.delete(a.id)) return;
    for (const type of [CapType.READ, CapType.WRITE, CapType.MANAGE] as const) {
      this.byKey.delete(digestIndex(a.digests[type]));
    }
    const r = this.resources.get(a.rid)!;
    r.reservedBytes -= a.maxSize;
    r.allocations--;
    a.release();
    this.deps.onFree?.(a, reason);
  }
}
