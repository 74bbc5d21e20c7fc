import { AllocationType, CapType, Status, type CapTypeNumber } from '../../ibp/index.js';
import { formatCapability } from '../../ibp/index.js';
import type {
  AliasAllocateRequest,
  AliasManageRequest,
  AllocateRequest,
  KeyRef,
  ManageRequest,
  MergeRequest,
  SplitRequest,
} from '../../ibp/index.js';
import type { ProbeFields, ResourceStatus } from '../../ibp/index.js';
import type { Logger } from 'pino';
import { DepotError, DepotErrorCode } from '../errors.js';
import type { DepotOptions, ResourceOptions } from '../options.js';
import { MemoryResource, type StorageResource } from '../resources/resource.js';
import { DiskResource } from '../resources/disk/disk-resource.js';
import type { DiskIo } from '../resources/disk/disk-data.js';
import type { Clock } from './clock.js';
import { Allocation, type AllocationRecord, type RangeWriter, type ReadOptions } from './allocation.js';
import { digestIndex, digestKey, newCapabilityKey, sameDigest } from './capability-keys.js';
import { ExpiryHeap } from './expiry-heap.js';
import { MEMORY_RING_STATE, Ring, RingView, isRingType, type RingStateStore } from './ring-allocation.js';
import { RingStateFile, partDigest } from '../resources/ring-state-file.js';
import { AliasStore, type StoredAlias } from '../resources/alias-store.js';
import { join } from 'node:path';
import { readdir, rm } from 'node:fs/promises';
import type { DiskData } from '../resources/disk/disk-data.js';
import { storageError } from '../errors.js';

interface ResourceState {
  readonly options: ResourceOptions;
  readonly store: StorageResource;
  /** Where a disk resource records its aliases; none for memory. */
  readonly aliases: AliasStore | undefined;
  /** Bytes reserved by allocations, live and in the trash (their max sizes). */
  reservedBytes: number;
}

interface KeyEntry {
  readonly allocation: Allocation;
  readonly type: CapTypeNumber;
  readonly digest: Buffer;
  /** Set when the key is one of an alias's caps (`allocation` is then its master). */
  readonly alias?: AliasRecord;
}

/**
 * An alias (ACCRE PROXY) allocation: three caps of its own, reference counts and a lease, limited
 * to `[offset, offset + length)` of its master (`length` 0: to the end of the master's max size).
 * Disk resources record aliases (depot/resources/alias-store.ts): they survive a restart.
 */
export interface AliasRecord {
  readonly id: number;
  readonly master: Allocation;
  offset: number;
  length: number;
  expiresAtMs: number;
  readRefs: number;
  writeRefs: number;
  readonly digests: Readonly<Record<CapTypeNumber, Buffer>>;
}

/** Probe fields of an alias. */
export interface AliasProbe {
  readonly readRefs: number;
  readonly writeRefs: number;
  readonly offset: number;
  readonly length: number;
  readonly secondsLeft: number;
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
  onFree?(allocation: Allocation, reason: FreeReason): void;
  /** Source of capability keys; CSPRNG by default. Tests inject a seeded one for repeatable caps. */
  newKey?(): string;
  /** Filesystem calls of disk resources (tests inject faults). */
  diskIo?: DiskIo;
  log?: Logger;
}

/** `length` bytes of `chunks` starting at byte `from`, as views. */
function sliceChunks(chunks: readonly Buffer[], from: number, length: number): Buffer[] {
  const out: Buffer[] = [];
  let skip = from;
  let left = length;
  for (const c of chunks) {
    if (left === 0) break;
    if (skip >= c.length) {
      skip -= c.length;
      continue;
    }
    const piece = c.subarray(skip, skip + left);
    skip = 0;
    left -= piece.length;
    out.push(piece);
  }
  return out;
}

/** Fields a metadata change may touch; restored when recording the change fails. */
function snapshot(a: Allocation) {
  const { maxSize, size, reliability, expiresAtMs, readRefs, writeRefs, state, trashedAtMs, trashReason } = a;
  return { maxSize, size, reliability, expiresAtMs, readRefs, writeRefs, state, trashedAtMs, trashReason };
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
  private readonly byId = new Map<number, Allocation>();
  private readonly expiry = new ExpiryHeap();
  /** Allocations in the trash by id, and when each is due to be purged. */
  private readonly trash = new Map<number, Allocation>();
  private readonly trashDue = new ExpiryHeap();
  private nextId = 1;
  private capHost: string;
  private capPort: number;

  private constructor(
    readonly options: DepotOptions,
    readonly clock: Clock,
    private readonly deps: DepotCoreDeps,
    stores: readonly StorageResource[],
  ) {
    for (const store of stores) {
      const o = store.options;
      const aliases = o.kind === 'disk' && o.path !== undefined ? new AliasStore(join(o.path, 'aliases'), o.fsync) : undefined;
      this.resources.set(o.rid, { options: o, store, aliases, reservedBytes: 0 });
    }
    this.capHost = options.publicHost;
    this.capPort = options.port;
  }

  /**
   * Opens every configured resource and restores what the persistent ones hold. Memory-only
   * depots open synchronously in effect; disk resources take their directory's lock and check
   * their files first.
   */
  static async open(options: DepotOptions, clock: Clock, deps: DepotCoreDeps = {}): Promise<DepotCore> {
    const stores: StorageResource[] = [];
    try {
      for (const r of options.resources) {
        if (r.kind === 'disk') {
          if (deps.log === undefined) throw new Error('a logger is required to open disk resources');
          stores.push(await DiskResource.open(r, deps.log, deps.diskIo));
        } else {
          stores.push(new MemoryResource(r));
        }
      }
    } catch (e) {
      await Promise.all(stores.map((s) => s.close()));
      throw e;
    }
    const core = new DepotCore(options, clock, deps, stores);
    try {
      await core.restore();
    } catch (e) {
      await core.close();
      throw e;
    }
    return core;
  }

  /** Closes the resources (metadata stores, locks). */
  async close(): Promise<void> {
    await Promise.all([...this.resources.values()].map((r) => r.store.close()));
  }

  private async restore(): Promise<void> {
    for (const r of this.resources.values()) {
      if (r.store instanceof DiskResource) this.nextId = Math.max(this.nextId, r.store.maxId() + 1);
      for (const record of await r.store.restore()) {
        const a = this.adopt(r, record);
        if (a.ring !== undefined) {
          const view = a.data as RingView;
          if (view.state instanceof RingStateFile) {
            const counters = await view.state.load((view.physical as DiskData).file, a.ring.physicalSize);
            a.ring.written = counters.written;
            a.ring.consumed = counters.consumed;
            a.ring.reservedEnd = counters.written;
          }
          a.size = a.ring.held;
        }
        if (a.state === 'trash') {
          this.trash.set(a.id, a);
          this.trashDue.push((a.trashedAtMs ?? 0) + r.options.trashGraceSec * 1000, a.id);
          continue;
        }
        this.index(a);
      }
      if (r.aliases !== undefined) await this.restoreAliases(r.aliases);
      if (r.options.kind === 'disk' && r.options.path !== undefined) await this.removeOrphanRingStates(r.options.path);
    }
    this.sweep();
  }

  /** Removes ring state files no restored allocation owns (a crash between a purge and their removal). */
  private async removeOrphanRingStates(path: string): Promise<void> {
    const dir = join(path, 'rings');
    const owned = new Set<string>();
    for (const a of [...this.byId.values(), ...this.trash.values()]) {
      const state = a.ring === undefined ? undefined : (a.data as RingView).state;
      if (state instanceof RingStateFile) owned.add(state.path);
    }
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      const file = join(dir, name);
      if (!owned.has(file)) await rm(file, { force: true });
    }
  }

  /** Re-indexes a disk resource's aliases; those whose allocation is gone or expired are removed. */
  private async restoreAliases(store: AliasStore): Promise<void> {
    const now = this.clock.now();
    for (const s of await store.loadAll()) {
      this.nextId = Math.max(this.nextId, s.id + 1);
      const master = this.byId.get(s.masterId);
      if (master === undefined || master.expiresAtMs <= now || s.expiresAtMs <= now) {
        await store.remove(s.id);
        continue;
      }
      const d = s.digests.map((h) => Buffer.from(h, 'hex'));
      this.indexAlias({
        id: s.id,
        master,
        offset: s.offset,
        length: s.length,
        expiresAtMs: s.expiresAtMs,
        readRefs: s.readRefs,
        writeRefs: s.writeRefs,
        digests: { 1: d[0]!, 2: d[1]!, 3: d[2]! },
      });
    }
  }

  /** Records an alias (disk resources) before a change to it is acknowledged. */
  private async saveAlias(al: AliasRecord): Promise<void> {
    const store = this.resources.get(al.master.rid)!.aliases;
    if (store === undefined) return;
    const rec: StoredAlias = {
      id: al.id,
      masterId: al.master.id,
      offset: al.offset,
      length: al.length,
      expiresAtMs: al.expiresAtMs,
      readRefs: al.readRefs,
      writeRefs: al.writeRefs,
      digests: [al.digests[1].toString('hex'), al.digests[2].toString('hex'), al.digests[3].toString('hex')],
    };
    try {
      await store.save(rec);
    } catch (e) {
      throw storageError(e, `alias ${al.id}: cannot record it`);
    }
  }

  private adopt(r: ResourceState, record: AllocationRecord): Allocation {
    const a = new Allocation(record);
    this.attachData(r, a);
    r.reservedBytes += a.maxSize;
    return a;
  }

  /**
   * Gives `a` its data. A BUFFER, FIFO or CIRQ gets a ring over a plain byte array of its max
   * size; its `data` is then the logical view, and the resource sees the byte array (through
   * {@link stored}). `a.size` is the physical size until the ring's counters are known.
   */
  private attachData(r: ResourceState, a: Allocation): void {
    if (!isRingType(a.type)) {
      a.data = r.store.createData(a);
      return;
    }
    const ring = new Ring(a.type, () => a.maxSize, { written: 0, consumed: 0 }, a.size);
    a.ring = ring;
    const physical = r.store.createData(this.stored(a));
    let state: RingStateStore = MEMORY_RING_STATE;
    if (r.store instanceof DiskResource) {
      state = new RingStateFile(
        RingStateFile.pathFor((physical as DiskData).file, a.id, a.digests[CapType.READ]),
        r.options.fsync,
      );
    }
    a.data = new RingView(ring, physical, state);
  }

  /**
   * The allocation as its resource must record it: for a ring, its size is the physical size of
   * the byte array under it and its data that byte array.
   */
  private stored(a: Allocation): Allocation {
    const ring = a.ring;
    if (ring === undefined) return a;
    return new Proxy(a, {
      get(target, prop) {
        if (prop === 'size') return ring.physicalSize;
        if (prop === 'data') return (target.data as RingView).physical;
        const v = Reflect.get(target, prop, target) as unknown;
        return typeof v === 'function' ? (v as (...args: unknown[]) => unknown).bind(target) : v;
      },
    });
  }

  private index(a: Allocation): void {
    this.byId.set(a.id, a);
    for (const type of [CapType.READ, CapType.WRITE, CapType.MANAGE] as const) {
      this.byKey.set(digestIndex(a.digests[type]), { allocation: a, type, digest: a.digests[type] });
    }
    this.schedule(a, a.expiresAtMs);
  }

  /** Records a metadata change on the resource; if that fails, the change is undone. */
  private persist(a: Allocation, change: () => void): void {
    const before = snapshot(a);
    change();
    try {
      this.resources.get(a.rid)!.store.update(this.stored(a));
    } catch (e) {
      Object.assign(a, before);
      throw e;
    }
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
      throw err(
        DepotErrorCode.INVALID_PARAMETER,
        `\`type\` must be 1 (byte array), 2 (buffer), 3 (FIFO) or 4 (CIRQ) (got ${req.type})`,
      );
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

    return this.create(resource, req.type, req.reliability, durationSec, req.size, true);
  }

  /** Three fresh keys and their digests. */
  private newKeys() {
    const newKey = this.deps.newKey ?? newCapabilityKey;
    const keys = { 1: newKey(), 2: newKey(), 3: newKey() } as const;
    const digests = { 1: digestKey(keys[1]), 2: digestKey(keys[2]), 3: digestKey(keys[3]) } as const;
    return { keys, digests };
  }

  /** The cap strings of `keys` on resource `rid` with WRM key `wrm`. */
  private capStrings(rid: string, keys: Readonly<Record<CapTypeNumber, string>>, wrm: string): AllocatedCaps {
    const cap = (type: CapTypeNumber) =>
      formatCapability({ host: this.capHost, port: this.capPort, rid, key: keys[type], wrmKey: wrm, type });
    return { read: cap(CapType.READ), write: cap(CapType.WRITE), manage: cap(CapType.MANAGE) };
  }

  /** Creates, records and indexes a new allocation (its parameters checked); `reserve` counts its size. */
  private create(
    resource: ResourceState,
    type: number,
    reliability: number,
    durationSec: number,
    size: number,
    reserve: boolean,
  ): AllocatedCaps {
    const r = resource.options;
    const { keys, digests } = this.newKeys();
    const allocation = new Allocation({
      id: this.nextId++,
      rid: r.rid,
      maxSize: size,
      size: 0,
      reliability,
      type,
      expiresAtMs: this.clock.now() + durationSec * 1000,
      readRefs: 1,
      writeRefs: 0,
      state: 'ok',
      trashedAtMs: undefined,
      trashReason: undefined,
      digests,
    });
    this.attachData(resource, allocation);
    resource.store.insert(this.stored(allocation)); // durable before the caps leave the depot
    if (reserve) resource.reservedBytes += size;
    this.index(allocation);
    return this.capStrings(r.rid, keys, allocation.wrmKey);
  }

  /**
   * Finds the live allocation a request's key names and checks that the key is a cap of type
   * `need`. Unknown, expired and wrong-type keys all answer CAP_NOT_FOUND (-4), as the ACCRE depot.
   */
  lookup(ref: KeyRef, need: CapTypeNumber): Allocation {
    const digest = digestKey(ref.key);
    const entry = this.byKey.get(digestIndex(digest));
    if (entry === undefined || !sameDigest(entry.digest, digest) || (ref.rid !== '' && ref.rid !== entry.allocation.rid)) {
      throw err(DepotErrorCode.CAP_NOT_FOUND, `no ${MANAGE_WORD[need]} capability with that key`);
    }
    if (entry.alias !== undefined) return this.lookupAlias(entry.alias, entry.type, ref, need);
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

  /** Allocations that are alias views, and the alias each one shows. */
  private readonly aliasViews = new WeakMap<Allocation, AliasRecord>();
  private readonly aliases = new Map<number, AliasRecord>();

  private lookupAlias(al: AliasRecord, type: CapTypeNumber, ref: KeyRef, need: CapTypeNumber): Allocation {
    const now = this.clock.now();
    if (al.master.freed || al.master.expiresAtMs <= now || al.expiresAtMs <= now) {
      void this.dropAlias(al);
      throw err(
        DepotErrorCode.CAP_NOT_FOUND,
        `no ${MANAGE_WORD[need]} capability with that key (alias expired or its allocation gone)`,
      );
    }
    if (type !== need) {
      throw err(
        DepotErrorCode.WRONG_CAP_TYPE,
        `the key is a ${MANAGE_WORD[type]} capability; this command needs a ${MANAGE_WORD[need]} capability`,
      );
    }
    if (this.options.wrmKey === 'check' && ref.wrmKey !== String(al.id)) {
      throw err(
        DepotErrorCode.WRM_KEY_MISMATCH,
        `the WRM key does not match the ${MANAGE_WORD[need]} capability`,
        WRM_STATUS[need],
      );
    }
    return this.aliasView(al);
  }

  /** Effective length of an alias's window now: never past its master's max size (a TRUNCATE may have cut it). */
  private aliasLength(al: AliasRecord): number {
    const toEnd = Math.max(0, al.master.maxSize - al.offset);
    return al.length === 0 ? toEnd : Math.min(al.length, toEnd);
  }

  /**
   * The master as seen through an alias: offsets count from the alias's offset, its size and max
   * size are those of the window. Writes commit on the master (see {@link commitWrite}).
   */
  private aliasView(al: AliasRecord): Allocation {
    const master = al.master;
    const len = () => this.aliasLength(al);
    const data = {
      get residentBytes() {
        return 0;
      },
      openWriter: (offset: number, length: number) => master.data.openWriter(al.offset + offset, length),
      read: (offset: number, length: number, sink: (chunk: Buffer) => void | Promise<void>, options?: ReadOptions) =>
        master.data.read(al.offset + offset, length, sink, options),
      truncate: async () => {
        throw err(DepotErrorCode.TYPE_NOT_SUPPORTED, 'an alias cannot be truncated');
      },
      release: async () => undefined,
    };
    const view = new Proxy(master, {
      get(target, prop) {
        if (prop === 'size') return Math.min(Math.max(0, target.size - al.offset), len());
        if (prop === 'maxSize') return len();
        if (prop === 'data') return data;
        const v = Reflect.get(target, prop, target) as unknown;
        return typeof v === 'function' ? (v as (...args: unknown[]) => unknown).bind(target) : v;
      },
      set() {
        return false;
      },
    });
    this.aliasViews.set(view, al);
    return view;
  }

  private indexAlias(al: AliasRecord): void {
    this.aliases.set(al.id, al);
    for (const type of [CapType.READ, CapType.WRITE, CapType.MANAGE] as const) {
      this.byKey.set(digestIndex(al.digests[type]), { allocation: al.master, type, digest: al.digests[type], alias: al });
    }
  }

  private dropAlias(al: AliasRecord): Promise<void> {
    if (!this.aliases.delete(al.id)) return Promise.resolve();
    for (const type of [CapType.READ, CapType.WRITE, CapType.MANAGE] as const) this.byKey.delete(digestIndex(al.digests[type]));
    const store = this.resources.get(al.master.rid)!.aliases;
    if (store === undefined) return Promise.resolve();
    return store.remove(al.id).catch((e: unknown) => {
      this.deps.log?.error({ alias: al.id, err: (e as Error).message }, 'cannot remove an alias record');
    });
  }

  /** The allocation a manage cap names, refusing alias caps (they have ALIAS_MANAGE). */
  private lookupOwn(ref: KeyRef, need: CapTypeNumber = CapType.MANAGE): Allocation {
    const a = this.lookup(ref, need);
    if (this.aliasViews.has(a)) {
      throw err(DepotErrorCode.CAP_NOT_FOUND, "the key is an alias capability; this command needs the allocation's own");
    }
    return a;
  }

  /** ALIAS_ALLOCATE (14): caps limited to a byte range of the allocation a manage cap names. */
  async aliasAllocate(req: AliasAllocateRequest): Promise<AllocatedCaps> {
    const master = this.lookupOwn(req.cap);
    if (master.ring !== undefined) {
      throw err(DepotErrorCode.TYPE_NOT_SUPPORTED, 'aliases are served for byte arrays only; this is a queue or buffer');
    }
    const expiresAtMs = this.aliasExpiry(master, req.offset, req.length, req.durationSec);
    const { keys, digests } = this.newKeys();
    const al: AliasRecord = {
      id: this.nextId++,
      master,
      offset: req.offset,
      length: req.length,
      expiresAtMs,
      readRefs: 1,
      writeRefs: 0,
      digests,
    };
    await this.saveAlias(al); // durable before its caps leave the depot
    if (master.freed) {
      await this.resources.get(master.rid)!.aliases?.remove(al.id);
      throw err(DepotErrorCode.CAP_NOT_FOUND, 'the allocation was deleted while its alias was recorded');
    }
    this.indexAlias(al);
    return this.capStrings(master.rid, keys, String(al.id));
  }

  /** Checks an alias range and lease against its master; returns the alias's expiry. */
  private aliasExpiry(master: Allocation, offset: number, length: number, durationSec: number): number {
    if (offset + length > master.maxSize) {
      throw err(
        DepotErrorCode.WOULD_EXCEED_LIMIT,
        `the alias range ends at ${offset + length}, past the allocation's max size (${master.maxSize})`,
      );
    }
    if (offset >= master.maxSize && length === 0) {
      throw err(
        DepotErrorCode.WOULD_EXCEED_LIMIT,
        `the alias offset ${offset} is past the allocation's max size (${master.maxSize})`,
      );
    }
    const expiresAtMs = durationSec === 0 ? master.expiresAtMs : this.clock.now() + durationSec * 1000;
    if (expiresAtMs > master.expiresAtMs) {
      throw err(DepotErrorCode.LONG_DURATION, `the alias would outlive its allocation (${durationSec} s asked)`);
    }
    return expiresAtMs;
  }

  /** ALIAS_MANAGE (15): PROBE, INCR/DECR and CHNG of an alias (the latter with its master's manage key). */
  async aliasManage(req: AliasManageRequest): Promise<AliasProbe | undefined> {
    const view = this.lookup(req.cap, CapType.MANAGE);
    const al = this.aliasViews.get(view);
    if (al === undefined) throw err(DepotErrorCode.CAP_NOT_FOUND, 'the key is not an alias manage capability');
    if (req.op === 'probe') {
      return {
        readRefs: al.readRefs,
        writeRefs: al.writeRefs,
        offset: al.offset,
        length: al.length,
        secondsLeft: Math.ceil((al.expiresAtMs - this.clock.now()) / 1000),
      };
    }
    const master = this.lookupOwn(req.master);
    if (master !== al.master)
      throw err(DepotErrorCode.CAP_NOT_FOUND, "the master key is not the manage capability of the alias's allocation");
    const next = { ...al };
    if (req.op === 'chng') {
      next.expiresAtMs = this.aliasExpiry(master, req.offset, req.length, req.durationSec);
      next.offset = req.offset;
      next.length = req.length;
    } else {
      const delta = req.op === 'incr' ? 1 : -1;
      if (req.capType === CapType.READ) next.readRefs = Math.max(0, al.readRefs + delta);
      else next.writeRefs = Math.max(0, al.writeRefs + delta);
    }
    // Recorded (or removed) before the change is applied and acknowledged.
    if (next.readRefs === 0 && next.writeRefs === 0) {
      await this.dropAlias(al);
      return undefined;
    }
    await this.saveAlias(next);
    Object.assign(al, next);
    return undefined;
  }

  /** RENAME (16): new keys for all three caps; the old ones stop working at once. */
  rename(ref: KeyRef): AllocatedCaps {
    const a = this.lookupOwn(ref);
    const { keys, digests } = this.newKeys();
    const old = a.digests;
    a.digests = digests;
    try {
      this.resources.get(a.rid)!.store.update(this.stored(a));
    } catch (e) {
      a.digests = old;
      throw e;
    }
    for (const type of [CapType.READ, CapType.WRITE, CapType.MANAGE] as const) {
      this.byKey.delete(digestIndex(old[type]));
      this.byKey.set(digestIndex(digests[type]), { allocation: a, type, digest: digests[type] });
    }
    return this.capStrings(a.rid, keys, a.wrmKey);
  }

  /**
   * SPLIT_ALLOCATE (18): a new allocation whose max size is taken from the master's. As on the
   * ACCRE depot, the master's data past its new max size is cut (as by TRUNCATE).
   */
  async split(req: SplitRequest): Promise<AllocatedCaps> {
    const master = this.lookupOwn(req.cap);
    const r = this.resources.get(master.rid)!;
    if (req.type < AllocationType.BYTEARRAY || req.type > AllocationType.CIRQ) {
      throw err(DepotErrorCode.INVALID_PARAMETER, `\`type\` must be 1 to 4 (got ${req.type})`);
    }
    if (master.ring !== undefined) {
      throw err(DepotErrorCode.TYPE_NOT_SUPPORTED, 'only byte arrays can be split; this is a queue or buffer');
    }
    if (req.durationSec === 0 || req.durationSec < -1) {
      throw err(DepotErrorCode.INVALID_PARAMETER, `\`duration\` must be positive seconds or -1 (got ${req.durationSec})`);
    }
    if (req.size < 1) throw err(DepotErrorCode.INVALID_PARAMETER, `\`size\` must be at least 1 byte (got ${req.size})`);
    const durationSec = req.durationSec === -1 ? r.options.maxDurationSec : req.durationSec;
    if (durationSec > r.options.maxDurationSec) {
      throw err(
        DepotErrorCode.LONG_DURATION,
        `duration ${durationSec} s exceeds the resource's maxDurationSec (${r.options.maxDurationSec})`,
      );
    }
    if (req.size >= master.maxSize) {
      throw err(
        DepotErrorCode.WOULD_EXCEED_LIMIT,
        `cannot split ${req.size} bytes off an allocation of max size ${master.maxSize}`,
      );
    }
    if (this.byId.size >= this.options.limits.maxAllocations) {
      throw err(DepotErrorCode.ALLOC_FAILED, `the depot holds its maximum of ${this.options.limits.maxAllocations} allocations`);
    }
    // The master shrinks first (giving its space back), then the child takes that space: a crash
    // in between leaves the space free, never counted twice.
    await this.manage({
      command: 'manage',
      version: 1,
      cap: req.cap,
      op: 'truncate',
      size: master.maxSize - req.size,
      timeoutSec: req.timeoutSec,
    });
    return this.create(r, req.type, req.reliability, durationSec, req.size, true);
  }

  /** MERGE_ALLOCATE (19): the child's max size joins the master's; the child (refs read 1, write 0) is deleted. */
  merge(req: MergeRequest): void {
    const master = this.lookupOwn(req.cap);
    const child = this.lookupOwn(req.child);
    if (child === master || child.rid !== master.rid) {
      throw err(DepotErrorCode.INVALID_PARAMETER, 'the child must be another allocation of the same resource');
    }
    if (master.ring !== undefined || child.ring !== undefined) {
      throw err(DepotErrorCode.TYPE_NOT_SUPPORTED, 'only byte arrays can be merged');
    }
    if (child.readRefs !== 1 || child.writeRefs !== 0) {
      throw err(
        DepotErrorCode.INVALID_PARAMETER,
        `the child must have reference counts read 1, write 0 (has ${child.readRefs}, ${child.writeRefs})`,
        Status.GENERIC,
      );
    }
    const r = this.resources.get(master.rid)!;
    const grown = master.maxSize + child.maxSize;
    if (grown > r.options.maxAllocationBytes) {
      throw err(
        DepotErrorCode.WOULD_EXCEED_LIMIT,
        `the merged max size ${grown} exceeds resource ${r.options.rid}'s maxAllocationBytes (${r.options.maxAllocationBytes})`,
      );
    }
    this.persist(master, () => (master.maxSize = grown));
    r.reservedBytes += child.maxSize; // the child's share moves to the master; the child's goes when it is purged
    this.free(child, 'deleted');
  }

  /**
   * VALIDATE_CHKSUM (32): reads every 64 KiB block of the allocation through its checksums and
   * returns how many fail (memory resources keep none: 0).
   */
  async validate(ref: KeyRef): Promise<number> {
    const a = this.lookupOwn(ref);
    const block = 64 * 1024;
    let bad = 0;
    for (let at = 0; at < a.size; at += block) {
      try {
        await a.data.read(at, Math.min(block, a.size - at), () => undefined);
      } catch {
        bad++;
      }
    }
    return bad;
  }

  /** GET_CHKSUM (31): the allocation must exist; it has no ACCRE checksum (type NONE). */
  checksumInfo(ref: KeyRef): void {
    this.lookupOwn(ref);
  }

  /** Checks that `length` bytes may be written at `offset` of the allocation (STORE/WRITE). */
  checkWriteRange(allocation: Allocation, offset: number, length: number): void {
    if (allocation.state === 'damaged') {
      throw err(DepotErrorCode.DAMAGED, `allocation ${allocation.id} is damaged; it takes no more writes`, Status.FILE_WRITE);
    }
    if (offset + length > allocation.maxSize) {
      throw err(
        DepotErrorCode.WOULD_EXCEED_LIMIT,
        `writing ${length} bytes at offset ${offset} would exceed the allocation's max size (${allocation.maxSize})`,
      );
    }
  }

  /**
   * Makes a received range visible: the resource makes it durable, then the new size (and block
   * checksums) are recorded in one step. On any failure nothing is acknowledged or changed.
   */
  async commitWrite(a: Allocation, writer: RangeWriter, offset: number, length: number): Promise<void> {
    const al = this.aliasViews.get(a);
    if (al !== undefined) return this.commitWrite(al.master, writer, al.offset + offset, length);
    const end = offset + length;
    const newSize = Math.max(a.size, end);
    let blocks;
    try {
      blocks = await writer.finish(newSize);
    } catch (e) {
      await writer.abort().catch(() => undefined);
      throw e;
    }
    if (a.freed) {
      // Deleted meanwhile: its bytes may have been purged already; do not leave a file behind.
      await writer.abort().catch(() => undefined);
      await a.data.release().catch(() => undefined);
      throw err(DepotErrorCode.CAP_NOT_FOUND, 'the allocation was deleted during the transfer');
    }
    if (end > a.maxSize) {
      await writer.abort().catch(() => undefined);
      throw err(DepotErrorCode.WOULD_EXCEED_LIMIT, 'the allocation was truncated during the transfer');
    }
    try {
      await this.resources.get(a.rid)!.store.commitWrite(a, newSize, blocks);
    } catch (e) {
      // Nothing was recorded: put the stored bytes back in line with the metadata.
      await writer.abort().catch(() => undefined);
      throw e;
    }
    a.size = newSize;
  }

  /**
   * Writes `length` bytes produced by `produce` into `a` at `offset` (-1 appends), the way every
   * in-depot writer does (transfers, local copies, NFU outputs): under the allocation's write
   * lock, on a live allocation, within its bounds, committed only when complete. A failure of
   * `produce` or of the storage undoes the range and rethrows.
   */
  async writeInto(
    a: Allocation,
    offset: number,
    length: number,
    produce: (write: (chunk: Buffer) => Promise<void>) => Promise<void>,
  ): Promise<void> {
    if (a.ring !== undefined) {
      // Queues and buffers take whole STOREs: stage the bytes, then write them as one.
      const ring = a.ring;
      const at = offset === -1 || a.type !== AllocationType.BUFFER ? undefined : offset;
      ring.checkWrite(length, at);
      const chunks: Buffer[] = [];
      await produce(async (chunk) => {
        chunks.push(Buffer.from(chunk));
      });
      await a.withWriteLock(async () => {
        this.assertLive(a);
        if (a.type === AllocationType.FIFO && ring.room < length) {
          throw err(DepotErrorCode.WOULD_EXCEED_LIMIT, `the FIFO has room for ${ring.room} bytes; ${length} were sent`);
        }
        await this.ringWrite(a, chunks, length, at);
      });
      return;
    }
    await a.withWriteLock(async () => {
      this.assertLive(a);
      const at = offset === -1 ? a.size : offset;
      this.checkWriteRange(a, at, length);
      const writer = await a.data.openWriter(at, length);
      try {
        await produce(async (chunk) => {
          await writer.write(chunk);
        });
      } catch (e) {
        await writer.abort().catch(() => undefined);
        throw e;
      }
      await this.commitWrite(a, writer, at, length);
    });
  }

  /**
   * Writes a received STORE (or BUFFER WRITE at `offset`) into a ring, under its write lock, after
   * {@link Ring.checkWrite} and (FIFO) the room check. The state record (disk) names the parts
   * about to change before any byte lands; each part is then written, made durable and committed,
   * and the counters advance with it. Readers of bytes a part overwrites see RING_OVERWRITTEN.
   */
  async ringWrite(a: Allocation, chunks: readonly Buffer[], length: number, offset?: number): Promise<void> {
    const ring = a.ring!;
    const view = a.data as RingView;
    const parts = ring.planWrite(length, offset);
    const slices: Buffer[][] = [];
    let from = 0;
    for (const p of parts) {
      slices.push(sliceChunks(chunks, from, p.length));
      from += p.length;
    }
    await view.state.record(
      ring.counters,
      parts.map((part, i) => ({ part, digest: partDigest(slices[i]!) })),
    );
    if (a.type !== AllocationType.BUFFER) ring.reservedEnd = Math.max(ring.reservedEnd, ring.written + length);
    const store = this.resources.get(a.rid)!.store;
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      const overwrites = part.at < ring.physicalSize;
      let writer: RangeWriter | undefined;
      try {
        writer = await view.physical.openWriter(part.at, part.length);
        for (const c of slices[i]!) await writer.write(c);
        const newPhysical = Math.max(ring.physicalSize, part.at + part.length);
        const blocks = await writer.finish(newPhysical);
        if (a.freed) throw err(DepotErrorCode.CAP_NOT_FOUND, 'the allocation was deleted during the transfer');
        await store.commitWrite(this.stored(a), newPhysical, blocks);
        ring.physicalSize = newPhysical;
      } catch (e) {
        await writer?.abort().catch(() => undefined);
        if (overwrites && !a.freed) {
          // Held bytes may be half replaced: they are never served again.
          try {
            this.persist(a, () => (a.state = 'damaged'));
          } catch {
            a.state = 'damaged';
          }
        }
        ring.notify();
        throw DepotError.isDepotError(e) ? e : storageError(e, `allocation ${a.id}: write failed`);
      }
      ring.written = part.after.written;
      ring.consumed = part.after.consumed;
      a.size = ring.held;
    }
    ring.notify();
  }

  /** FIFO: the `length` oldest bytes were delivered; they are gone once this is recorded. */
  async ringConsume(a: Allocation, length: number): Promise<void> {
    const ring = a.ring!;
    const after = { written: ring.written, consumed: ring.consumed + length };
    await (a.data as RingView).state.record(after, []);
    ring.consumed = after.consumed;
    a.size = ring.held;
    ring.notify();
  }

  /**
   * Inside an allocation's write lock, after waiting for it: the allocation must still be live
   * (not deleted, lease not over), or the waiting command answers CAP_NOT_FOUND.
   */
  assertLive(a: Allocation): void {
    if (!a.freed && a.expiresAtMs <= this.clock.now()) this.free(a, 'expired');
    if (a.freed) throw err(DepotErrorCode.CAP_NOT_FOUND, 'the allocation was deleted or expired while the command waited');
  }

  /** LOAD checks: the range must lie within the data held, and the data must be sound. */
  checkReadRange(a: Allocation, offset: number, length: number): void {
    if (a.state === 'damaged') {
      throw err(DepotErrorCode.DAMAGED, `allocation ${a.id} is damaged; its bytes are not served`);
    }
    if (offset + length > a.size) {
      throw err(
        DepotErrorCode.WOULD_EXCEED_LIMIT,
        `reading ${length} bytes at offset ${offset} goes past the end of the data (${a.size} bytes)`,
      );
    }
  }

  /**
   * MANAGE: PROBE, INCR, DECR, CHNG, TRUNCATE on the allocation a manage cap names. PROBE also takes
   * the read or the write cap, as the LoCI depot does (LoRS probes with the read cap).
   */
  async manage(req: ManageRequest): Promise<ProbeFields | undefined> {
    const given = req.op === 'probe' ? this.byKey.get(digestIndex(digestKey(req.cap.key)))?.type : undefined;
    const a = this.lookup(req.cap, given ?? CapType.MANAGE);
    if (this.aliasViews.has(a) && req.op === 'probe') {
      // The allocation as the alias shows it: its window's size and max size.
      return {
        readRefs: a.readRefs,
        writeRefs: a.writeRefs,
        size: a.size,
        maxSize: a.maxSize,
        secondsLeft: Math.ceil((a.expiresAtMs - this.clock.now()) / 1000),
        reliability: a.reliability,
        type: a.type,
      };
    }
    if (this.aliasViews.has(a)) {
      throw err(DepotErrorCode.CAP_NOT_FOUND, 'the key is an alias capability; manage aliases with ALIAS_MANAGE (15)');
    }
    const r = this.resources.get(a.rid)!;
    switch (req.op) {
      case 'probe': {
        const ring = a.ring !== undefined && a.type !== AllocationType.BUFFER ? a.ring : undefined;
        return {
          readRefs: a.readRefs,
          writeRefs: a.writeRefs,
          size: a.size,
          maxSize: a.maxSize,
          secondsLeft: Math.ceil((a.expiresAtMs - this.clock.now()) / 1000),
          reliability: a.reliability,
          type: a.type,
          ...(ring === undefined ? {} : { written: ring.written, consumed: ring.consumed }),
        };
      }
      case 'incr':
      case 'decr': {
        if (req.capType === CapType.MANAGE) {
          throw err(
            DepotErrorCode.INVALID_PARAMETER,
            '`captype` must be 1 (read) or 2 (write): manage caps have no reference count',
          );
        }
        const delta = req.op === 'incr' ? 1 : -1;
        const capType = req.capType;
        this.persist(a, () => {
          if (capType === CapType.READ) a.readRefs = Math.max(0, a.readRefs + delta);
          else a.writeRefs = Math.max(0, a.writeRefs + delta);
        });
        if (a.readRefs === 0 && a.writeRefs === 0) this.free(a, 'deleted');
        return undefined;
      }
      case 'chng': {
        if (a.ring !== undefined && a.type !== AllocationType.BUFFER && req.maxSize !== a.maxSize) {
          throw err(
            DepotErrorCode.WOULD_DAMAGE_DATA,
            `the size of a FIFO or CIRQ cannot change (it is ${a.maxSize}; got ${req.maxSize})`,
          );
        }
        if (req.maxSize < 1 || req.maxSize < a.size || (a.ring !== undefined && req.maxSize < a.ring.physicalSize)) {
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
        const growth = req.maxSize - a.maxSize;
        const newExpiry = req.durationSec > 0 ? this.clock.now() + req.durationSec * 1000 : a.expiresAtMs;
        this.persist(a, () => {
          a.maxSize = req.maxSize;
          a.expiresAtMs = newExpiry;
          if (req.reliability !== -1) a.reliability = req.reliability;
        });
        r.reservedBytes += growth;
        this.setExpiry(a, newExpiry);
        return undefined;
      }
      case 'truncate': {
        if (a.ring !== undefined) {
          throw err(DepotErrorCode.TYPE_NOT_SUPPORTED, 'TRUNCATE is served for byte arrays only; this is a queue or buffer');
        }
        if (req.size < 0) throw err(DepotErrorCode.INVALID_PARAMETER, `\`size\` must be >= 0 (got ${req.size})`);
        const newMax = req.size;
        return a.withWriteLock(async () => {
          this.assertLive(a);
          this.checkGrowth(r, a, newMax);
          const growth = newMax - a.maxSize;
          const newSize = Math.min(a.size, newMax);
          // Reserve (or give back) before the await, so no concurrent ALLOCATE sees the old figure;
          // the data layer records the new size and checksums, then cuts the bytes.
          r.reservedBytes += growth;
          try {
            await a.data.truncate(newSize, newMax);
          } catch (e) {
            r.reservedBytes -= growth;
            throw e;
          }
          if (a.freed) {
            r.reservedBytes -= growth; // purged meanwhile, at its old size
            return undefined;
          }
          this.persist(a, () => {
            a.maxSize = newMax;
            a.size = newSize;
          });
          return undefined;
        });
      }
    }
  }

  /** Resource figures for ST_INQ; `rid` undefined or `'0'` means every resource. */
  resourceStatus(rid: string | undefined): ResourceStatus[] {
    this.sweep();
    const states = rid === undefined || rid === '0' ? [...this.resources.values()] : [this.resourceById(rid)];
    return states.map((s) => ({
      rid: s.options.rid,
      resourceType: s.options.kind === 'disk' ? 1 : 2,
      capacityBytes: s.options.capacityBytes,
      usedBytes: s.reservedBytes,
      maxDurationSec: s.options.maxDurationSec,
    }));
  }

  resourceIds(): string[] {
    return [...this.resources.keys()];
  }

  /** Frees every allocation whose lease has run out, and purges the trash that is due; returns how many expired. */
  sweep(): number {
    const now = this.clock.now();
    for (const [deadline, id] of this.trashDue.popDue(now)) {
      const a = this.trash.get(id);
      const grace = a === undefined ? 0 : this.resources.get(a.rid)!.options.trashGraceSec * 1000;
      if (a !== undefined && (a.trashedAtMs ?? 0) + grace === deadline) this.purge(a);
    }
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

  /** No sweep here: it could free `a` itself between its checks and its accounting. */
  private checkGrowth(r: ResourceState, a: Allocation, newMax: number): void {
    if (newMax > r.options.maxAllocationBytes) {
      throw err(
        DepotErrorCode.WOULD_EXCEED_LIMIT,
        `max size ${newMax} exceeds resource ${r.options.rid}'s maxAllocationBytes (${r.options.maxAllocationBytes})`,
      );
    }
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
  private setExpiry(a: Allocation, atMs: number): void {
    if (atMs < a.scheduledExpiryMs) this.schedule(a, atMs);
  }

  private schedule(a: Allocation, atMs: number): void {
    a.scheduledExpiryMs = atMs;
    this.expiry.push(atMs, a.id);
  }

  /**
   * Takes an allocation out of service. With a trash grace period its bytes stay (and keep
   * counting against capacity) until the sweep purges them; without one they go at once.
   */
  private free(a: Allocation, reason: FreeReason): void {
    if (!this.byId.delete(a.id)) return;
    for (const type of [CapType.READ, CapType.WRITE, CapType.MANAGE] as const) {
      this.byKey.delete(digestIndex(a.digests[type]));
    }
    a.freed = true;
    a.ring?.notify(); // commands waiting on a queue see it gone
    this.deps.onFree?.(a, reason);
    const r = this.resources.get(a.rid)!;
    const grace = r.options.trashGraceSec * 1000;
    if (grace > 0) {
      const now = this.clock.now();
      try {
        this.persist(a, () => {
          a.state = 'trash';
          a.trashedAtMs = now;
          a.trashReason = reason;
        });
        this.trash.set(a.id, a);
        this.trashDue.push(now + grace, a.id);
        return;
      } catch (e) {
        this.deps.log?.error({ alloc: a.id, err: (e as Error).message }, 'cannot move to trash; purging now');
      }
    }
    this.purge(a);
  }

  /** Frees the bytes for good and gives the capacity back. */
  private purge(a: Allocation): void {
    this.trash.delete(a.id);
    const r = this.resources.get(a.rid)!;
    r.reservedBytes -= a.maxSize;
    r.store.purge(a).catch((e: unknown) => this.deps.log?.error({ alloc: a.id, err: (e as Error).message }, 'purge failed'));
  }

  /** Allocations in the trash (still counted in capacity). */
  get trashCount(): number {
    return this.trash.size;
  }
}
