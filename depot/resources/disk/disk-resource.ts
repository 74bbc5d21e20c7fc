import { constants as fsConstants, readFileSync, rmSync } from 'node:fs';
import { mkdir, open, readFile, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { AllocationType } from '../../../ibp/index.js';
import type { Allocation, AllocationData, AllocationRecord, BlockChecksums } from '../../core/allocation.js';
import { DepotError, DepotErrorCode } from '../../errors.js';
import type { ResourceOptions } from '../../options.js';
import type { StorageResource } from '../resource.js';
import {
  BLOCK_BYTES,
  DiskData,
  assertRoom,
  closeHandlesUnder,
  crcOfFileBlock,
  realDiskIo,
  type DiskIo,
  type WarmHooks,
} from './disk-data.js';
import { GroupCommit, type GroupCommitStats } from './group-commit.js';
import { MetadataDb } from './metadata-db.js';
import { journalPath, pendingRollback, redoJournal } from './redo-journal.js';
import { SpaceReserve, isOutOfSpace } from './space-reserve.js';
import { WarmPool, type WarmPoolStats } from './warm-pool.js';

/** Metadata store file inside a disk resource's data directory. */
export const METADATA_FILE = 'anvil.sqlite';
const LOCK_FILE = 'lock';
/** A file that started warm keeps its unused tail for this long after its last write (the next appends find warm pages). */
const TAIL_IDLE_MS = 10_000;
const TAIL_SWEEP_MS = 5_000;
/** Room kept back for the metadata store (see {@link SpaceReserve}). */
const RESERVE_FILE = 'space-reserve';

/**
 * A disk resource: allocation bytes in files under `path/data/`, metadata in SQLite. At start-up it
 * takes the directory's lock, restores every allocation, and checks each file (`startupCheck`):
 * a file shorter than its data or failing its checksums marks the allocation damaged; bytes past
 * the committed size (a torn append, or a warm file's unused tail) are cut; files nobody owns are removed.
 */
export class DiskResource implements StorageResource {
  /** Files that started warm and may still hold an unused tail. */
  private readonly tails = new Set<DiskData>();
  private readonly tailSweep: NodeJS.Timeout;
  private readonly hooks: WarmHooks;
  /** Under `safe`: the writes' commits, grouped (see group-commit.ts). */
  private readonly group: GroupCommit | undefined;

  private constructor(
    readonly options: ResourceOptions,
    private readonly dir: string,
    private readonly db: MetadataDb,
    private readonly log: Logger,
    private readonly io: DiskIo,
    private readonly reserve: SpaceReserve,
    private readonly warm: WarmPool,
  ) {
    this.tailSweep = setInterval(() => {
      this.trimTails(TAIL_IDLE_MS);
      warm.trim();
    }, TAIL_SWEEP_MS);
    this.tailSweep.unref();
    this.hooks = {
      take: (file, maxSize) => warm.take(file, maxSize),
      busy: () => warm.busy(),
      tookWarm: (data) => void this.tails.add(data),
      reclaim: () => this.reclaim(),
    };
    this.group =
      options.fsync === 'safe'
        ? new GroupCommit({ transact: (changes) => db.commitWrites(changes), sync: () => db.syncWal() })
        : undefined;
  }

  /** What the warm-file pool has done (see warm-pool.ts). */
  get warmStats(): WarmPoolStats {
    return this.warm.stats;
  }

  /** Resolves once the warm-file pool holds what it aims to (tests, benchmarks). */
  warmed(): Promise<void> {
    return this.warm.settled();
  }

  /** Commits and metadata syncs of the grouped writes so far (`safe` only). */
  get groupCommitStats(): GroupCommitStats | undefined {
    return this.group?.stats;
  }

  static async open(options: ResourceOptions, log: Logger, io: DiskIo = realDiskIo): Promise<DiskResource> {
    const dir = options.path!;
    try {
      await mkdir(join(dir, 'data'), { recursive: true });
    } catch (e) {
      throw new DepotError(DepotErrorCode.RESOURCE_UNAVAILABLE, `cannot create data directory ${dir}: ${(e as Error).message}`, {
        cause: e,
      });
    }
    const reserve = SpaceReserve.open(dir, join(dir, RESERVE_FILE));
    const lock = join(dir, LOCK_FILE);
    try {
      await takeLock(lock);
    } catch (e) {
      // The lock holds a pid: on a filesystem with not a byte left, the reserve makes the room.
      if (!isOutOfSpace(e) || !reserve.release()) throw e;
      await takeLock(lock);
    }
    let db: MetadataDb;
    let warm: WarmPool;
    const child = log.child({ rid: options.rid });
    try {
      warm = await WarmPool.open(dir, options.warmBytes ?? defaultWarmBytes(), child);

      db = new MetadataDb(join(dir, METADATA_FILE), options.rid, options.fsync, reserve);
    } catch (e) {
      releaseLock(lock);
      throw e;
    }
    const resource = new DiskResource(options, dir, db, child, io, reserve, warm);
    // Short of room: warm files and idle tails go before anything else.
    reserve.onShort = () => resource.reclaim();
    return resource;
  }

  /** Highest allocation id ever recorded here (ids must stay unique across restarts). */
  maxId(): number {
    return this.db.maxId();
  }

  async restore(): Promise<AllocationRecord[]> {
    const started = Date.now();
    const rows = this.db.all().map((r) => ({ ...r, rid: this.options.rid }));
    const known = new Set(rows.map((r) => r.id));
    let damaged = 0;
    let stillDamaged = 0;
    let cut = 0;
    let recovered = 0;
    for (const r of rows) {
      if (r.state === 'damaged') {
        if (await this.recoverDamaged(r)) recovered++;
        else stillDamaged++;
        continue;
      }
      if (r.state !== 'ok') continue;
      const reason = await this.check(r);
      if (reason === 'cut') cut++;
      else if (reason !== undefined) {
        r.state = 'damaged';
        this.db.update(r);
        damaged++;
        this.log.warn({ alloc: r.id, reason }, 'allocation damaged: its bytes will not be served');
      }
    }
    const orphans = await this.removeOrphans(known);
    if (!this.reserve.ensure()) {
      this.log.warn(
        { reserveBytes: this.reserve.target },
        'filesystem full: serving loads and deletes, refusing new data (-23) until deletes free room',
      );
    }
    this.log.info(
      {
        allocations: rows.length,
        // Found damaged by this start-up's check, and marked damaged before it (still not served).
        damaged,
        damagedBefore: stillDamaged,
        recovered,
        // A torn append, or the unused tail of a file that started warm.
        tailsCut: cut,
        orphanFilesRemoved: orphans,
        check: this.options.startupCheck,
        warmBytes: this.warm.budgetBytes,
        ms: Date.now() - started,
      },
      'disk resource restored',
    );
    return rows;
  }

  createData(a: Allocation): AllocationData {
    const shard = this.shardDir(a.id);
    return new DiskData(
      join(shard, String(a.id)),
      {
        id: a.id,
        get size() {
          return a.size;
        },
        get maxSize() {
          return a.maxSize;
        },
        get freed() {
          return a.freed;
        },
        ring: a.type !== AllocationType.BYTEARRAY,
        settled: () => a.holderDone(),
        markDamaged: (reason: string) => {
          if (a.state === 'damaged') return;
          a.state = 'damaged';
          this.log.warn({ alloc: a.id, reason }, 'allocation damaged: its bytes will not be served');
          try {
            this.db.update(a);
          } catch (e) {
            this.log.error({ alloc: a.id, err: (e as Error).message }, 'cannot record damage');
          }
        },
      },
      this.db,
      this.options.fsync,
      this.io,
      this.reserve,
      this.hooks,
    );
  }

  /** Frees what warm files hold: the pool's files and every idle file's unused tail; true if any. */
  reclaim(): boolean {
    const shed = this.warm.shed();
    return this.trimTails(0) > 0 || shed;
  }

  /** Cuts the unused tails of files that started warm and have had no write for `idleMs`; how many. */
  private trimTails(idleMs: number): number {
    const now = Date.now();
    let trimmed = 0;
    for (const d of this.tails) {
      const r = d.trimWarmTail(now, idleMs);
      if (r !== 'kept') this.tails.delete(d);
      if (r === 'trimmed') trimmed++;
    }
    return trimmed;
  }

  insert(a: Allocation): void {
    assertRoom(this.reserve, `allocation ${a.id}`);
    this.db.insert(a);
  }

  update(a: Allocation): void {
    this.db.update(a);
  }

  /**
   * Records a write (its data is durable under the policy already). Under `fast` at once; under
   * `safe` with the writes that finish meanwhile, resolving once the record is durable. The write's
   * checksums reach readers only then (the core sets the new size after it).
   */
  commitWrite(a: Allocation, newSize: number, blocks: BlockChecksums | undefined): void | Promise<void> {
    const data = a.data as DiskData;
    if (this.group === undefined) {
      this.db.commitWrite(a.id, newSize, blocks, data.journalToCommit());
      data.noteCommitted(blocks);
      return;
    }
    return this.commitGrouped(a, data, newSize, blocks);
  }

  private async commitGrouped(a: Allocation, data: DiskData, newSize: number, blocks: BlockChecksums | undefined): Promise<void> {
    // Readers keep the checksums that go with the committed size until the record is durable: the
    // cache is filled now, before the new ones are in the store.
    data.loadChecksums();
    const seq = data.journalToCommit();
    // A failure leaves the write refused. If its sync failed, the transaction stands (it may even be
    // durable): the writer's undo records the committed size and checksums again in one transaction
    // of its own, after putting any bytes changed in place back (see `DiskData`).
    await this.group!.submit(() => {
      // Deleted while it waited for its group: its rows are gone and must not come back.
      if (a.freed) throw new DepotError(DepotErrorCode.CAP_NOT_FOUND, 'the allocation was deleted during the transfer');
      this.db.commitWrite(a.id, newSize, blocks, seq);
    });
    data.noteCommitted(blocks);
  }

  async purge(a: Allocation): Promise<void> {
    // Forget it first: a crash in between leaves an orphan file, which start-up removes.
    this.db.remove(a.id);
    await a.data.release();
    if (!this.reserve.whole && this.reserve.ensure()) this.log.info('filesystem has room again: taking new data');
  }

  async close(): Promise<void> {
    clearInterval(this.tailSweep);
    // The pool goes first: its files are gone before the directory's lock is.
    await this.warm.close();
    // Pending journal emptyings end first (they use the kept descriptors), then those close.
    await closeHandlesUnder(join(this.dir, 'data'));
    this.db.close();
    releaseLock(join(this.dir, LOCK_FILE));
  }

  private shardDir(id: number): string {
    return join(this.dir, 'data', (id % 256).toString(16).padStart(2, '0'));
  }

  /**
   * A damaged allocation whose damage may be only a refused overwrite's rollback the disk failed to
   * finish (its journal keeps it): start-up finishes it, and the allocation is served again if then
   * every block verifies. Resolves to whether it is no longer damaged.
   */
  private async recoverDamaged(r: AllocationRecord): Promise<boolean> {
    const file = join(this.shardDir(r.id), String(r.id));
    const pending = await pendingRollback(file, this.db.journalSeq(r.id)).catch(() => undefined);
    if (pending === undefined) return false;
    const reason = await this.check(r, true);
    if (reason !== undefined && reason !== 'cut') {
      this.log.warn({ alloc: r.id, reason }, 'a damaged allocation stays damaged after its rollback was retried');
      return false;
    }
    r.state = 'ok';
    this.db.update(r);
    this.log.warn({ alloc: r.id }, 'a refused overwrite was rolled back at start-up: the allocation is no longer damaged');
    return true;
  }

  /**
   * Start-up check of one allocation's file (every block verified if `full`): a damage reason,
   * `'cut'`, or undefined when fine.
   */
  private async check(r: AllocationRecord, full = this.options.startupCheck === 'full'): Promise<string | undefined> {
    const file = join(this.shardDir(r.id), String(r.id));
    let st = await stat(file).catch(() => undefined);
    if (st === undefined) return r.size > 0 ? 'its file is missing' : undefined;
    if (st.size < r.size) {
      // Unless a refused write's rollback a crash interrupted puts a smaller committed size back (the
      // store may hold the refused one).
      const rollback = await pendingRollback(file, this.db.journalSeq(r.id)).catch(() => undefined);
      const size = Math.min(r.size, rollback?.size ?? r.size);
      if (st.size < size) return `half-written: its file has ${st.size} bytes, ${size} were acknowledged`;
    }
    try {
      await this.redo(r, file);
    } catch (e) {
      // Its blocks may be half old, half new: never served as good data.
      return `an overwrite interrupted by a crash could not be finished (${(e as Error).message})`;
    }
    let result: string | undefined;
    st = await stat(file).catch(() => undefined);
    if (st !== undefined && st.size > r.size) {
      await truncate(file, r.size);
      result = 'cut';
    }
    if (full && r.size > 0) {
      const owner = {
        id: r.id,
        size: r.size,
        maxSize: r.maxSize,
        freed: false,
        markDamaged: () => undefined,
        settled: async () => undefined,
      };
      const data = new DiskData(file, owner, this.db, 'fast', this.io, this.reserve);
      const failure = await data.verifyAll();
      if (failure !== undefined) return failure.replace(/^allocation \d+: /, '');
    }
    return result;
  }

  /**
   * Finishes an overwrite a crash interrupted: re-applies its redo journal (when its write did not
   * commit), or writes its undo image back (when it was refused and its rollback not recorded), and
   * records the checksums of the blocks it touched, so each of them holds its old or its new bytes
   * (only old ones after a refusal) and every other block keeps its committed ones. The journal is
   * then removed.
   */
  private async redo(r: AllocationRecord, file: string): Promise<void> {
    const done = await redoJournal(file, this.db.journalSeq(r.id), r.size, BLOCK_BYTES);
    if (done?.rolledBack === true) {
      // The committed size and checksums the rollback record carries, never ones computed from the
      // file (which would pass off bytes that went bad before the write as good).
      this.db.setBlocks(r.id, done.crcs, Math.ceil(done.size / BLOCK_BYTES), done.seq, done.size);
      r.size = done.size;
      this.log.warn(
        { alloc: r.id, from: done.from, to: done.to },
        'a refused overwrite interrupted by a crash was rolled back from its undo image',
      );
    } else if (done !== undefined) {
      const blocks = new Map<number, number>();
      const fh = await open(file, fsConstants.O_RDONLY);
      try {
        for (const b of done.blocks) blocks.set(b, await crcOfFileBlock(fh, b, r.size));
      } finally {
        await fh.close();
      }
      this.db.setBlocks(r.id, blocks, undefined, done.seq);
      this.log.warn(
        { alloc: r.id, blocks: done.blocks.size },
        'an overwrite interrupted by a crash was completed from its redo journal (it was never acknowledged)',
      );
    }
    await rm(journalPath(file), { force: true });
  }

  private async removeOrphans(known: ReadonlySet<number>): Promise<number> {
    let removed = 0;
    const shards = await readdir(join(this.dir, 'data')).catch(() => [] as string[]);
    for (const shard of shards) {
      const names = await readdir(join(this.dir, 'data', shard)).catch(() => [] as string[]);
      for (const name of names) {
        // A known allocation's file, and its redo journal: a damaged allocation keeps the journal
        // (a rollback the disk did not let start-up finish) for a later start-up.
        const m = /^(\d+)(\.redo)?$/.exec(name);
        if (m !== null && known.has(Number(m[1]))) continue;
        await rm(join(this.dir, 'data', shard, name), { force: true, recursive: true });
        removed++;
      }
    }
    return removed;
  }
}

/**
 * Default page-cache budget of a disk resource's warm files: 1 GiB, at most 1/16 of the machine's
 * memory (it is only used as new allocations ask for it).
 */
export function defaultWarmBytes(): number {
  return Math.min(1024 ** 3, Math.floor(totalmem() / 16 / (1024 * 1024)) * 1024 * 1024);
}

/** Lock files held by this process (a second depot in the same process must be refused too). */
const heldLocks = new Set<string>();

/** One depot per data directory: a lock file holding the owner's pid (stale locks are taken over). */
async function takeLock(file: string): Promise<void> {
  const dir = file.replace(/\/lock$/, '');
  if (heldLocks.has(file)) {
    throw new DepotError(DepotErrorCode.RESOURCE_UNAVAILABLE, `data directory ${dir} is in use by another depot of this process`);
  }
  const holder = await readFile(file, 'utf8').catch(() => undefined);
  const pid = holder === undefined ? NaN : Number(holder.trim());
  if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid)) {
    throw new DepotError(DepotErrorCode.RESOURCE_UNAVAILABLE, `data directory ${dir} is in use by process ${pid}`);
  }
  await writeFile(file, `${process.pid}\n`);
  heldLocks.add(file);
}

function releaseLock(file: string): void {
  heldLocks.delete(file);
  rmSync(file, { force: true });
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A depot killed but not yet reaped by its parent (a zombie) holds nothing any more.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no /proc: as kill said
  }
}
