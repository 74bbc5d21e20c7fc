import { constants as fsConstants, statSync, truncateSync } from 'node:fs';
import { mkdir, open, rm, stat, truncate, type FileHandle } from 'node:fs/promises';
import { dirname, sep } from 'node:path';
import { crc32 } from 'node:zlib';
import {
  bufferBlockCrcs,
  readBlockCrcs,
  streamBlockCrcs,
  threadPoolCrc,
  threadPoolRead,
  threadPoolWrite,
  writeStreamBlockCrcs,
} from './block-crc.js';
import type { AllocationData, BlockChecksums, RangeWriter, ReadOptions } from '../../core/allocation.js';
import type { DirectTarget } from '../../../ibp/index.js';
import { DepotError, DepotErrorCode, storageError } from '../../errors.js';
import { Status } from '../../../ibp/index.js';
import type { FsyncPolicy } from '../../options.js';
import type { MetadataDb } from './metadata-db.js';
import {
  RECORD_HEADER_BYTES,
  applyJournal,
  copyInPlace,
  endRecord,
  journalPath,
  recordHeader,
  restoreUndo,
  rewriteUndo,
  rollbackRecord,
  HOLE,
  saveUndo,
  undoMarker,
  writevFully,
} from './redo-journal.js';
import type { SpaceReserve } from './space-reserve.js';

/** How a disk allocation's file uses its resource's warm files (see warm-pool.ts and `DiskResource`). */
export interface WarmHooks {
  /** Puts a warm file at `file` for an allocation of at most `maxSize` bytes; false if none. */
  take(file: string, maxSize: number): Promise<boolean>;
  /** Marks data moving until the returned function is called (the warmer keeps off meanwhile). */
  busy(): () => void;
  /** `data`'s file started warm: its unused tail is to be cut once it is idle. */
  tookWarm(data: DiskData): void;
  /** Frees room now (warm files, idle files' unused tails); true if it freed any. */
  reclaim(): boolean;
}
import { isOutOfSpace } from './space-reserve.js';

/** Bytes covered by one stored checksum. */
export const BLOCK_BYTES = 64 * 1024;
/** Writes are gathered up to this many bytes before one positional writev (or journal record). */
const WRITE_BATCH_BYTES = 1024 * 1024;
/**
 * Reads go to the file in runs of this many bytes (whole blocks). A run costs a thread-pool job and
 * a socket write whatever its size: 1 MiB runs against 512 KiB ones took a tenth less depot CPU per
 * byte in the bulk bench's LOADs of 1 MiB (2 MiB runs were slower again: the run read ahead for the
 * next LOAD then holds bytes past it).
 */
const READ_RUN_BYTES = 16 * BLOCK_BYTES;
/** Stage buffers a body is read into (see `openWriter`), at most this many out per writer. */
const STAGES_OUT = 4;
/** Stage buffers out over all writers of the process (beyond it, bodies take the chunked path). */
const STAGES_OUT_ALL = 64;
let stagesOutAll = 0;
/** Stage buffers kept for reuse. */
const POOLED_STAGES = 16;
const stages: Buffer[] = [];

function takeStage(): Buffer {
  stagesOutAll++;
  return stages.pop() ?? Buffer.allocUnsafeSlow(WRITE_BATCH_BYTES);
}

function giveStage(b: Buffer): void {
  stagesOutAll--;
  if (stages.length < POOLED_STAGES) stages.push(b);
}

/** Run buffers kept for reuse by readers whose sink gives them back (see `ReadOptions`). */
const POOLED_RUN_BUFFERS = 16;
/**
 * A reader that carries on where its last LOAD ended has the next run read ahead (see
 * `startPrefetch`); kept this long for the next LOAD, at most this many over the process.
 */
const PREFETCH_KEEP_MS = 100;
const MAX_PREFETCHES = 32;
/** LOADs shorter than this are taken for random access: nothing is read ahead for them. */
const PREFETCH_MIN_LOAD_BYTES = 128 * 1024;
let prefetchesOut = 0;
let prefetchKeepMs = PREFETCH_KEEP_MS;

/** How long a run read ahead is kept for the next LOAD (default {@link PREFETCH_KEEP_MS}): for tests. */
export function setPrefetchKeepMs(ms: number = PREFETCH_KEEP_MS): void {
  prefetchKeepMs = ms;
}
const prefetchCounts = { started: 0, served: 0, dropped: 0, bytes: 0 };

/**
 * Runs read ahead for sequential LOADs over the process: started, served, dropped (stale or unused),
 * and the bytes they were to read.
 */
export function prefetchStats(): Readonly<typeof prefetchCounts> {
  return { ...prefetchCounts };
}

/** A run read and checked against the checksums of its time (see `readRun`). */
interface ReadRun {
  buf: Buffer;
  end: number;
  failure?: string;
}

/** The run after a sequential LOAD, read ahead for the next one. */
interface Prefetch {
  readonly at: number;
  /** The data's generation when it was started: any change since makes it stale. */
  readonly generation: number;
  readonly run: Promise<ReadRun | undefined>;
  readonly timer: NodeJS.Timeout;
}

/**
 * Run buffers of readers whose sink releases its chunks: a LOAD of 512 MiB no longer allocates
 * (and leaves to the collector) 512 fresh MiB, whose external memory alone set off a full
 * collection every 64 MiB.
 */
const runBuffers: Buffer[] = [];

function takeRunBuffer(length: number, pooled: boolean): Buffer {
  if (!pooled) return Buffer.allocUnsafe(length);
  const b = runBuffers.pop() ?? Buffer.allocUnsafeSlow(READ_RUN_BYTES);
  return b.subarray(0, length);
}

function giveRunBuffer(b: Buffer): void {
  if (runBuffers.length < POOLED_RUN_BUFFERS && b.buffer.byteLength === READ_RUN_BYTES && b.byteOffset === 0) {
    runBuffers.push(Buffer.from(b.buffer, 0, READ_RUN_BYTES));
  }
}

/**
 * Attempts at writing an undo image back (each on fresh descriptors, rewritten and fdatasynced
 * again): a failed fdatasync may have dropped the dirty pages, so the bytes are written anew.
 */
const UNDO_ATTEMPTS = 3;

const CREATE_FLAGS = fsConstants.O_RDWR | fsConstants.O_CREAT;
const JOURNAL_FLAGS = fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_TRUNC;
/** A journaled write whose bytes fit in this many is copied in place from memory, not read back. */
const JOURNAL_MEMORY_BYTES = 256 * 1024;

/** What disk data needs to know of, and tell, its allocation. */
export interface DiskOwner {
  readonly id: number;
  readonly size: number;
  readonly maxSize: number;
  /** Deleted (or in the trash): its metadata rows are gone or going, and nothing is recorded for it. */
  readonly freed: boolean;
  /**
   * A BUFFER, FIFO or CIRQ: its start-up recovery judges a part by reading the file itself, so its
   * writes never take the hole-fill path (bytes in the file before their checksums are recorded).
   */
  readonly ring?: boolean;
  /** Called when stored bytes fail verification. */
  markDamaged(reason: string): void;
  /**
   * Resolves when the command that holds the allocation's write lock now gives it up (the commands
   * queued behind it are not waited for: one of them may wait on this one).
   */
  settled(): Promise<void>;
}

/** What a reader in another thread needs to read a range and verify it (see `DiskData.readPlan`). */
export interface DiskReadPlan {
  readonly file: string;
  /** The data's size: the last block's checksum covers the bytes up to it. */
  readonly size: number;
  readonly blockBytes: number;
  /**
   * The checksums of blocks `firstBlock`, `firstBlock + 1`, … covering the range; undefined for a
   * hole (a block never written below the size), which reads as zeros whatever the file holds.
   */
  readonly firstBlock: number;
  readonly crcs: readonly (number | undefined)[];
}

/** The filesystem calls disk data makes; tests inject faults (ENOSPC, EIO) through this. */
export interface DiskIo {
  open(path: string, flags: number): Promise<FileHandle>;
}
export const realDiskIo: DiskIo = { open: (path, flags) => open(path, flags, 0o600) };

/** CRC-32 of each whole block of `buf`, which starts at block `firstBlock`, cut at `size`. */
export function blockCrcs(buf: Buffer, firstBlock: number, size: number, into: Map<number, number>): void {
  for (let at = 0; at < buf.length; at += BLOCK_BYTES) {
    const block = firstBlock + at / BLOCK_BYTES;
    const end = Math.min(at + BLOCK_BYTES, size - firstBlock * BLOCK_BYTES, buf.length);
    if (end <= at) break;
    into.set(block, crc32(buf.subarray(at, end)));
  }
}

/** Open allocation files kept for reuse across commands, at most this many per process. */
const MAX_CACHED_HANDLES = 64;

/** An allocation file's descriptor, shared by the commands that use it. */
interface CachedHandle {
  readonly fh: FileHandle;
  readonly writable: boolean;
  users: number;
  /** Evicted or dropped: closed once its last user is done. */
  retired: boolean;
  /** The descriptor of the file's redo journal, once a write has used it; closed with `fh`. */
  journal?: FileHandle;
}

/**
 * Descriptors of allocation files (by path) stay open between commands (one open, stat and close per
 * 1 MiB block was a fifth of the depot's time under bulk load), least recently used first out.
 */
class HandleCache {
  private readonly open = new Map<string, CachedHandle>();

  get(owner: string): CachedHandle | undefined {
    const h = this.open.get(owner);
    if (h !== undefined) {
      this.open.delete(owner); // most recently used goes last
      this.open.set(owner, h);
    }
    return h;
  }

  /**
   * Caches `h` for `owner`, closing the least recently used unused ones past MAX_CACHED_HANDLES;
   * never `h` itself, which its caller is about to use (with every other one in use, the cache holds
   * one more for a while).
   */
  put(owner: string, h: CachedHandle): void {
    this.drop(owner);
    this.open.set(owner, h);
    for (const [o, old] of this.open) {
      if (this.open.size <= MAX_CACHED_HANDLES) break;
      if (old.users > 0 || old === h) continue;
      this.open.delete(o);
      void retire(old);
    }
  }

  /** Forgets the descriptors of every file under `dir` (a resource that closes). */
  dropUnder(dir: string): Promise<void> {
    const closing: Promise<void>[] = [];
    for (const owner of [...this.open.keys()]) if (owner.startsWith(dir)) closing.push(this.drop(owner));
    return Promise.all(closing).then(() => undefined);
  }

  /** Forgets `owner`'s descriptor; closed now if unused (resolves once closed), else by its last user. */
  drop(owner: string): Promise<void> {
    const h = this.open.get(owner);
    if (h === undefined) return Promise.resolve();
    this.open.delete(owner);
    return retire(h);
  }
}

function retire(h: CachedHandle): Promise<void> {
  h.retired = true;
  return h.users === 0 ? closeHandle(h) : Promise.resolve();
}

function unuse(h: CachedHandle): void {
  h.users--;
  if (h.retired && h.users === 0) void closeHandle(h);
}

async function closeHandle(h: CachedHandle): Promise<void> {
  await Promise.all([h.fh.close().catch(() => undefined), h.journal?.close().catch(() => undefined)]);
}

const handles = new HandleCache();

/**
 * The emptyings of redo journals under way (see `DiskData.dropJournal`), by allocation file: whatever
 * writes a journal next waits for its file's, so that a late truncate never cuts records written
 * after it. By file, not by object: a resource closed and opened again in this process waits too.
 */
const emptyings = new Map<string, Promise<void>>();

/**
 * Closes the kept descriptors of the allocation files under `dir` (those in use, once their last
 * user is done): a resource that closes leaves none behind, and another opened later on the same
 * directory in this process never reads through a descriptor of a file since replaced.
 */
export async function closeHandlesUnder(dir: string): Promise<void> {
  const prefix = dir.endsWith(sep) ? dir : dir + sep;
  // The journals' emptyings first: they use the descriptors about to close.
  await Promise.all([...emptyings].filter(([file]) => file.startsWith(prefix)).map(([, step]) => step));
  return handles.dropUnder(prefix);
}

/**
 * A WRITE in progress that replaces committed bytes (`[from, to)`): how far its body has arrived, and
 * when it is over (committed or undone).
 */
interface Overwrite {
  readonly from: number;
  readonly to: number;
  /** End of the bytes received so far. */
  received: number;
  /** Resolves once the write is committed or undone. */
  readonly over: Promise<void>;
  /** Marks it over (idempotent): releases the in-place gate if it holds it. */
  end(): void;
  /** Release of the in-place gate, held from the copy in place until the commit or the undo. */
  gate: (() => void) | undefined;
}

/**
 * What undoing a refused write records, in one metadata transaction, once its committed bytes are
 * back in place: the committed size, the committed checksums of the blocks it may have changed (in
 * place, and the one holding the committed end), blocks past the size dropped, and the sequence
 * number that marks its journal done (its rollback's, or its own if it was never copied in place).
 */
interface PendingUndo {
  readonly size: number;
  readonly blocks: ReadonlyMap<number, number>;
  readonly seq: number | undefined;
  /**
   * False while its undo image could not be written back (the disk failed): the allocation is
   * marked damaged, nothing is recorded and the journal is kept (it holds the rollback record and the
   * image, durable under `safe`), so the next start-up writes the image back and records the undo.
   */
  readonly writtenBack: boolean;
}

/**
 * The bytes of an allocation on a disk resource: one file, written positionally, with a CRC-32
 * per 64 KiB block kept in the metadata store. Every read verifies the blocks it touches, so
 * bytes that were torn by a crash or corrupted on disk are never served as good data.
 */
export class DiskData implements AllocationData {
  private crcs: Map<number, number> | undefined;
  /** Sequence number of the last journaled overwrite the metadata store recorded as done. */
  private seq: number | undefined;
  /** Sequence number of the journal of the write in progress, once it has written one. */
  private journaled: number | undefined;
  /** The undo of a refused write, until the metadata store has recorded it (see {@link recordUndo}). */
  private undoPending: PendingUndo | undefined;
  /** Highest sequence number handed out. */
  private lastSeq = 0;
  /** Writes in progress that replace committed bytes. */
  private readonly overwrites = new Set<Overwrite>();
  /** The overwrite whose bytes are being copied in place, until it is committed or undone. */
  private inPlace: Overwrite | undefined;
  /**
   * The in-place gate: changes of committed bytes or checksums that are not atomic for a reader (an
   * overwrite from its copy in place to its commit, a TRUNCATE until the allocation's new size is
   * set) and the re-reads that decide whether a checksum mismatch is damage exclude each other.
   */
  private gateTail: Promise<void> = Promise.resolve();
  /** Writes in progress (from their opening to the end of their command), and when the last ended. */
  private writers = 0;
  private lastWriteEnd = 0;
  /** The file started warm and may still hold its unused tail (see {@link trimWarmTail}). */
  private warmTail = false;
  /**
   * Moves on with every change that may touch committed bytes, their checksums or the size (a
   * writer that opens or ends, a commit, a TRUNCATE, a release): a run read ahead under an older
   * one is never served.
   */
  private generation = 0;
  /** Changes under way (writers, TRUNCATEs): nothing is read ahead meanwhile. */
  private changing = 0;
  /** Where the last LOAD ended (a LOAD starting there reads on sequentially). */
  private lastReadEnd = -1;
  /** Where the last LOAD started (a LOAD ending there reads backwards, last block first). */
  private lastReadStart = -1;
  /**
   * The redo journal may hold bytes: a write's journal starts empty, so that nothing but its own
   * records follows them (bytes left behind, client bytes among them, could be read as records of
   * the next write). Unknown (true) until this process has emptied it.
   */
  private journalUsed = true;
  private prefetch: Prefetch | undefined;

  constructor(
    readonly file: string,
    private readonly owner: DiskOwner,
    private readonly db: MetadataDb,
    private readonly fsync: FsyncPolicy,
    private readonly io: DiskIo,
    private readonly reserve: SpaceReserve,
    /** Where a new file starts warm (see warm-pool.ts), if the resource keeps one. */
    private readonly warm?: WarmHooks,
  ) {}

  get residentBytes(): number {
    return this.owner.size;
  }

  /**
   * The file's descriptor (the cached one, or a new one that is cached), counted as in use until
   * `unuse`. Writers need it writable (it creates the file); readers take either.
   */
  private async acquire(writable: boolean): Promise<CachedHandle> {
    let h = handles.get(this.file);
    if (h === undefined || (writable && !h.writable)) {
      const fh = await this.io.open(this.file, writable ? CREATE_FLAGS : fsConstants.O_RDONLY);
      // Another command may have cached one meanwhile: this one replaces it.
      h = { fh, writable, users: 0, retired: false };
      handles.put(this.file, h);
    }
    h.users++;
    return h;
  }

  /**
   * Cuts the unused tail of a file that started warm (zeros past the committed size, up to the max
   * size) once no write has run for `idleMs`: `trimmed`, `kept` (not idle yet, or the cut failed:
   * asked again later) or `gone` (nothing to cut any more). Synchronous, so no write starts
   * between the check and the cut; bytes past the committed size are never read.
   */
  trimWarmTail(now: number, idleMs: number): 'trimmed' | 'kept' | 'gone' {
    if (!this.warmTail || this.owner.freed) return 'gone';
    if (this.writers > 0 || now - this.lastWriteEnd < idleMs) return 'kept';
    try {
      const st = statSync(this.file, { throwIfNoEntry: false });
      if (st !== undefined && st.size > this.owner.size) truncateSync(this.file, this.owner.size);
    } catch {
      return 'kept';
    }
    this.warmTail = false;
    return 'trimmed';
  }

  /** Closes the cached descriptor (after a failure on it, or before the file goes away). */
  private forgetHandle(): Promise<void> {
    return handles.drop(this.file);
  }

  async openWriter(offset: number, length: number): Promise<RangeWriter & DirectTarget> {
    // The undo of a refused write is recorded before any other change (its journal would go, and a
    // commit would record past it): a write is refused while it cannot be.
    if (this.undoPending !== undefined) await this.recordUndo();
    this.journaled = undefined;
    assertRoom(this.reserve, `allocation ${this.owner.id}`);
    // The warmer keeps off while data moves, and an unused tail stays until the command is over
    // (it ends under the write lock).
    const idle = this.warm?.busy();
    this.writers++;
    this.changing++;
    this.generation++;
    const over = () => {
      idle?.();
      this.writers--;
      this.changing--;
      this.generation++;
      this.lastWriteEnd = Date.now();
    };
    void this.owner.settled().then(over, over);
    // An open descriptor means the file exists (a released file's descriptor is dropped first).
    const existed =
      handles.get(this.file) !== undefined ||
      (await stat(this.file).then(
        () => true,
        () => false,
      ));
    let handle: CachedHandle;
    let newShard = false;
    try {
      if (!existed) {
        newShard = (await mkdir(dirname(this.file), { recursive: true })) !== undefined;
        // A warm file (zeros, its pages already in the cache) in place of a new one, when there is one.
        if (length > 0 && (await this.warm?.take(this.file, this.owner.maxSize)) === true) {
          this.warmTail = true;
          this.warm!.tookWarm(this);
        }
      }
      handle = await this.acquire(true);
    } catch (e) {
      throw storageError(e, `allocation ${this.owner.id}: cannot open its file`);
    }
    const fh = handle.fh;
    const end = offset + length;
    const size = this.owner.size;
    // A write that touches only holes (blocks below the size never written, which read as zeros
    // whatever the file holds there) replaces nothing: its bytes go straight to the file, as an
    // append's do, and its blocks read as written once the commit records their checksums.
    const fillsHoles = this.owner.ring !== true && offset < Math.min(end, size) && this.onlyHoles(offset, end, size);
    // Bytes in [offset, journalEnd) replace committed ones: they are staged in the redo journal and
    // copied in place only once all have arrived (see redo-journal.ts); the rest go to the file.
    const journalEnd = fillsHoles ? offset : Math.min(end, size);
    // Holes a journaled write covers become blocks of zeros first, so that every block it may
    // change in place has a committed checksum (what its undo and the journal's recovery restore);
    // so does a hole holding the old end that an append extends (its checksum covers the new bytes).
    const toFill = this.holesIn(offset, journalEnd);
    const endBlock = Math.floor(size / BLOCK_BYTES);
    if (end > size && size % BLOCK_BYTES !== 0 && !toFill.includes(endBlock) && !this.checksums().has(endBlock))
      toFill.push(endBlock);
    // A hole fill that covers part of a block has the rest of it (below the size) written as zeros
    // first, over whatever an unfinished write left there: the block's checksum, taken from the file
    // at the commit, covers zeros and the new bytes only.
    const pads: [number, number][] = [];
    if (fillsHoles) {
      const head = Math.floor(offset / BLOCK_BYTES) * BLOCK_BYTES;
      const tail = Math.min(Math.ceil(end / BLOCK_BYTES) * BLOCK_BYTES, size);
      if (head < offset) pads.push([head, offset]);
      if (end < tail) pads.push([end, tail]);
    }
    if (toFill.length > 0 || pads.length > 0) {
      try {
        await this.fillWithZeros(fh, toFill);
        for (const [from, to] of pads) await this.writeZerosAt(fh, from, to);
      } catch (e) {
        unuse(handle);
        void this.forgetHandle();
        throw storageError(e, `allocation ${this.owner.id}: write failed`);
      }
    }
    /** `finish` is over: an abort now is a refused commit. */
    let finished = false;
    // Readers of the bytes it replaces wait for it once they have arrived (see `read`).
    const overwrite = offset < journalEnd ? this.beginOverwrite(offset, journalEnd) : undefined;
    const jpath = journalPath(this.file);
    let seq = 0;
    let journal: FileHandle | undefined;
    let journalAt = 0;
    /** Where the undo image lies in the journal, and its records when kept in memory (small writes). */
    let undo: { at: number; end: number; records: Buffer[] | undefined } | undefined;
    /** The committed checksums of the blocks the write may change in place, taken before it does. */
    let committedCrcs: Map<number, number> | undefined;
    let applying = false;
    let cursor = offset;
    const batch: Buffer[] = [];
    let batchBytes = 0;
    let batchAt = offset;
    // CRCs of the blocks that lie wholly inside the written range, computed as the bytes stream by.
    const streaming = new Map<number, number>();
    /** The journaled bytes, kept when they are few, to be copied in place from memory. */
    const inMemory: { at: number; bytes: Buffer }[] | undefined = journalEnd - offset <= JOURNAL_MEMORY_BYTES ? [] : undefined;
    const toJournal = async (at: number, parts: Buffer[], last = false) => {
      if (journal === undefined) {
        seq = this.nextSeq();
        journal = await this.journalOf(handle, jpath);
        this.journaled = seq;
      }
      const record = [recordHeader(seq, at, parts), ...parts];
      inMemory?.push({ at, bytes: Buffer.concat(parts) });
      // The last bytes and the end record in one write.
      if (last) record.push(endRecord(seq));
      await writevFully(journal, record, journalAt);
      journalAt += record.reduce((n, p) => n + p.length, 0);
      return last;
    };
    // With the native addon the CRCs of each batch run in the thread pool beside its write; a batch
    // that goes straight to the file is written and checksummed by one job, and under `safe` its
    // write-out starts at once, while the rest of the body is still arriving.
    const crcRuns = threadPoolCrc();
    const nativeWrite = this.io === realDiskIo ? threadPoolWrite() : undefined;
    const writeBack = this.fsync === 'safe';
    /** Writes the batch; `final`: the body's last, whose journal records may carry the end record. Resolves to whether they did. */
    const flush = async (final = false): Promise<boolean> => {
      if (batchBytes === 0) return false;
      const parts = batch.splice(0);
      const at = batchAt;
      const staged = Math.max(0, Math.min(batchBytes, journalEnd - at));
      batchAt += batchBytes;
      batchBytes = 0;
      if (staged === 0 && nativeWrite !== undefined) {
        const once = () => writeStreamBlockCrcs(nativeWrite, fh.fd, parts, at, BLOCK_BYTES, offset, streaming, writeBack);
        try {
          await once();
        } catch (e) {
          // Out of room while warm files or idle tails hold some: once more after freeing them.
          if (!isOutOfSpace(e) || this.warm?.reclaim() !== true) throw e;
          await once();
        }
        return false;
      }
      const crcs =
        crcRuns === undefined ? undefined : streamBlockCrcs(crcRuns, parts.slice(), at, BLOCK_BYTES, offset, streaming);
      try {
        let ended = false;
        if (staged > 0) ended = await toJournal(at, takeBytes(parts, staged), final && parts.length === 0);
        if (parts.length > 0) {
          try {
            await writevFully(fh, parts, at + staged);
          } catch (e) {
            // Out of room while warm files or idle tails hold some: once more after freeing them.
            if (!isOutOfSpace(e) || this.warm?.reclaim() !== true) throw e;
            await writevFully(fh, parts, at + staged);
          }
        }
        return ended;
      } finally {
        // Never left running after a failure: its parts stay held until it is done.
        await crcs;
      }
    };
    let closed = false;
    let failed = false;
    const close = async () => {
      if (!closed) {
        closed = true;
        // After a failure the descriptor is not trusted again: the next command opens afresh.
        // (The journal's descriptor goes with the file's, cached: see `journalOf`.)
        if (failed) void this.forgetHandle();
        unuse(handle);
      }
    };
    const put = async (chunk: Buffer) => {
      if (cursor + chunk.length > end) throw new RangeError(`writer overrun: ${cursor + chunk.length} > ${end}`);
      for (let at = 0; crcRuns === undefined && at < chunk.length;) {
        const block = Math.floor((cursor + at) / BLOCK_BYTES);
        const blockEnd = (block + 1) * BLOCK_BYTES;
        const n = Math.min(chunk.length - at, blockEnd - (cursor + at));
        if (block * BLOCK_BYTES >= offset) streaming.set(block, crc32(chunk.subarray(at, at + n), streaming.get(block) ?? 0));
        at += n;
      }
      cursor += chunk.length;
      if (overwrite !== undefined) overwrite.received = Math.min(cursor, journalEnd);
      batch.push(chunk);
      batchBytes += chunk.length;
      if (batchBytes >= WRITE_BATCH_BYTES) {
        try {
          await flush();
        } catch (e) {
          failed = true;
          throw storageError(e, `allocation ${this.owner.id}: write failed`);
        }
      }
    };
    // A body past the committed size may be read from the socket straight into stage buffers
    // (no 64 KiB chunk per read, no copy into a batch): each full stage (and the last one) is put in
    // order behind what was put before it. Bytes that replace committed ones always go through
    // `write` (the redo journal and the readers that wait for an overwrite see them arrive).
    /** Offset after the last byte given to the writer (by `write` or landed in a stage). */
    let received = offset;
    let stage: Buffer | undefined;
    let filled = 0;
    let lent = 0;
    let stagesOut = 0;
    /** Stages put and not yet taken back (the last, partial one stays in the batch until finish). */
    const held: Buffer[] = [];
    let chain: Promise<void> = Promise.resolve();
    let chainFailure: unknown;
    const enqueue = (chunk: Buffer, onDone?: () => void): Promise<void> => {
      const next = chain.then(async () => {
        if (chainFailure !== undefined) throw chainFailure;
        await put(chunk);
      });
      chain = next.then(
        () => onDone?.(),
        (e: unknown) => {
          chainFailure ??= e;
          onDone?.();
        },
      );
      return next;
    };
    const submitStage = () => {
      const buf = stage!;
      const n = filled;
      stage = undefined;
      filled = 0;
      stagesOut++;
      // A full stage is flushed by its put (it fills a batch); a partial one stays in the batch.
      const reusable = n === WRITE_BATCH_BYTES;
      if (!reusable) held.push(buf);
      void enqueue(buf.subarray(0, n), () => {
        stagesOut--;
        if (reusable) giveStage(buf);
      }).catch(() => undefined);
    };
    /** Waits for every stage put so far; throws the first failure. */
    const drain = async () => {
      await chain;
      if (chainFailure !== undefined) throw chainFailure;
    };
    const giveBackStages = () => {
      if (stage !== undefined) giveStage(stage);
      stage = undefined;
      for (const b of held.splice(0)) giveStage(b);
    };
    return {
      span: (max: number): Uint8Array | undefined => {
        if (lent > 0) throw new Error('a span is already out');
        if (failed || closed || chainFailure !== undefined || received < journalEnd || received >= end) return undefined;
        if (stage === undefined) {
          if (stagesOut >= STAGES_OUT || stagesOutAll >= STAGES_OUT_ALL) return undefined;
          stage = takeStage();
        }
        const n = Math.min(max, WRITE_BATCH_BYTES - filled, end - received);
        if (n <= 0) return undefined;
        lent = n;
        return stage.subarray(filled, filled + n);
      },
      landed: (n: number): void => {
        if (lent === 0) throw new Error('no span is out');
        if (n > lent) throw new RangeError(`span overrun: ${n} > ${lent}`);
        lent = 0;
        filled += n;
        received += n;
        if (filled === WRITE_BATCH_BYTES || received === end) submitStage();
      },
      cancel: () => {
        lent = 0;
      },
      write: (chunk: Buffer) => {
        if (lent > 0) throw new Error('a write while a span is out');
        // A partly filled stage goes first (a span was cancelled): order is kept.
        if (stage !== undefined && filled > 0) submitStage();
        received += chunk.length;
        return enqueue(chunk);
      },
      finish: async (newSize: number): Promise<BlockChecksums> => {
        if (stage !== undefined && filled > 0) submitStage();
        await drain().catch((e: unknown) => {
          failed = true;
          void close();
          throw e;
        });
        if (cursor !== end) throw new RangeError(`finish of a partial range: ${cursor} of ${end}`);
        try {
          const ended = await flush(true);
          if (journal !== undefined) {
            // All the bytes are staged: close the journal, make it durable, then change the data.
            if (!ended) {
              await writevFully(journal, [endRecord(seq)], journalAt);
              journalAt += RECORD_HEADER_BYTES;
            }
            if (this.fsync === 'safe') await journal.datasync();
            // The committed bytes about to be replaced, and their checksums: a refusal from the copy
            // in place on puts both back (see redo-journal.ts). Not synced: until a rollback record
            // follows it, recovery finishes the write from its redo records and never reads it.
            const committed = this.checksums();
            committedCrcs = new Map<number, number>();
            for (let b = Math.floor(offset / BLOCK_BYTES); b * BLOCK_BYTES < journalEnd; b++) {
              const c = committed.get(b);
              if (c !== undefined) committedCrcs.set(b, c);
            }
            // Kept in memory when small, as the redo records are: a rollback's retry writes them again.
            const records = inMemory === undefined ? undefined : [];
            const undoEnd = await saveUndo(journal, journalAt, fh, offset, journalEnd, seq, WRITE_BATCH_BYTES, records);
            undo = { at: journalAt, end: undoEnd, records };
            // From the first byte copied in place until the commit (or the undo), the committed
            // bytes and their checksums disagree: readers that see it judge under the gate.
            if (overwrite !== undefined) await this.holdGate(overwrite);
            applying = true;
            if (inMemory !== undefined) {
              // The journal's records, from the copy kept of them.
              for (const r of inMemory) await copyInPlace(fh, r.bytes, r.at);
            } else await applyJournal(journal, fh, journalEnd, BLOCK_BYTES);
          }
          if (this.fsync === 'safe') {
            await fh.datasync();
            if (!existed) await syncDirectory(dirname(this.file));
            if (newShard) await syncDirectory(dirname(dirname(this.file)));
          }
          const crcs = new Map<number, number>();
          const first = Math.floor(offset / BLOCK_BYTES);
          const last = Math.floor((end - 1) / BLOCK_BYTES);
          for (let b = first; b <= last; b++) {
            const bStart = b * BLOCK_BYTES;
            const bEnd = Math.min(bStart + BLOCK_BYTES, newSize);
            const whole = bStart >= offset && bEnd <= end && streaming.has(b);
            crcs.set(b, whole ? streaming.get(b)! : await crcOfFileBlock(fh, b, newSize));
          }
          // The block holding the old end may change its extent without being rewritten (a hole).
          const oldEndBlock = Math.floor(this.owner.size / BLOCK_BYTES);
          if (newSize > this.owner.size && this.owner.size % BLOCK_BYTES !== 0 && !crcs.has(oldEndBlock)) {
            crcs.set(oldEndBlock, await crcOfFileBlock(fh, oldEndBlock, newSize));
          }
          // Blocks wholly in the hole get no checksum: a block below the size without one is a hole,
          // which reads as zeros whatever its file holds (see `readRun`) until a write fills it.
          finished = true;
          return crcs;
        } catch (e) {
          failed = true;
          throw storageError(e, `allocation ${this.owner.id}: cannot make the write durable`);
        } finally {
          await close();
          giveBackStages();
        }
      },
      abort: async () => {
        failed = true;
        try {
          lent = 0;
          // Nothing is put after this; what was put is over before the undo starts.
          await chain;
          giveBackStages();
          await close();
          // A refused commit of holes filled (a grouped commit whose sync failed may have recorded
          // the refused bytes' checksums): the undo drops those blocks' checksums, so they are holes
          // again and read as zeros whatever the file holds. A write that never reached its commit
          // left the holes as they were.
          let holes: Map<number, number> | undefined;
          if (fillsHoles && finished) {
            holes = new Map();
            for (let b = Math.floor(offset / BLOCK_BYTES); b * BLOCK_BYTES < end; b++) holes.set(b, HOLE);
          }
          // Its journal (if any) is no longer one a commit records: the undo records it instead.
          const journaledSeq = this.journaled;
          this.journaled = undefined;
          // The committed checksums go back (the refused bytes are never checksummed as committed),
          // with the committed size, whatever the store holds now (a grouped commit whose sync
          // failed has recorded the refused ones).
          const blocks = this.committedBlocks(size, holes ?? committedCrcs);
          // Committed bytes changed only if the journal was being applied: the old ones go back.
          if (applying && undo !== undefined && journaledSeq !== undefined) {
            // A change of its own, recorded once done (see redo-journal.ts).
            const rollbackSeq = this.nextSeq();
            const image = { ...undo, size, blocks };
            const done = await this.rollBack(jpath, image, journaledSeq, rollbackSeq, offset, journalEnd);
            if (done === 'gone') return;
            if (done !== 'done') {
              // The disk is failing: the range may hold old and refused bytes, never served. The
              // journal keeps the rollback for the next start-up.
              this.undoPending = { size, blocks, seq: rollbackSeq, writtenBack: false };
              this.owner.markDamaged(`a refused WRITE could not put back bytes ${offset} to ${journalEnd} (${done.failure})`);
              return;
            }
            this.undoPending = { size, blocks, seq: rollbackSeq, writtenBack: true };
            // If this fails the undo stays pending: the next write or TRUNCATE records it first, and
            // start-up from the rollback record.
            await this.recordUndo();
            return;
          }
          this.undoPending = { size, blocks, seq: journaledSeq, writtenBack: true };
          try {
            await this.recordUndo();
          } catch (e) {
            // The store may keep the refused write (a grouped commit whose sync failed), or its
            // journal be complete: an undo marker in place of the journal has start-up record the undo.
            await this.markUndo(jpath);
            throw e;
          }
        } finally {
          overwrite?.end();
        }
      },
    };
  }

  /**
   * Whether every block `[offset, end)` (within `size`) touches is a hole: a block below the size
   * with no checksum, which a WRITE past the end left behind and none has filled since.
   */
  private onlyHoles(offset: number, end: number, size: number): boolean {
    const touched = Math.ceil(end / BLOCK_BYTES) - Math.floor(offset / BLOCK_BYTES);
    return end <= size && this.holesIn(offset, end).length === touched;
  }

  /** The holes among the blocks that `[from, to)` touches (empty when `from >= to`). */
  private holesIn(from: number, to: number): number[] {
    const holes: number[] = [];
    if (from >= to) return holes;
    const crcs = this.checksums();
    for (let b = Math.floor(from / BLOCK_BYTES); b * BLOCK_BYTES < to; b++) if (!crcs.has(b)) holes.push(b);
    return holes;
  }

  /**
   * Makes the holes `blocks` blocks of zeros through `fh`: zeros written over whatever their file
   * holds (a write that never reached its commit may have left bytes there), cut at the size and
   * made durable under `safe`, and only then their checksums recorded.
   */
  private async fillWithZeros(fh: FileHandle, blocks: readonly number[]): Promise<void> {
    const size = this.owner.size;
    const rows = new Map<number, number>();
    for (const b of blocks) {
      const n = Math.min(BLOCK_BYTES, size - b * BLOCK_BYTES);
      if (n <= 0) continue; // cut off by a TRUNCATE meanwhile
      await this.writeZerosAt(fh, b * BLOCK_BYTES, b * BLOCK_BYTES + n);
      rows.set(b, zeroCrc(n));
    }
    if (rows.size === 0) return;
    if (this.fsync === 'safe') await fh.datasync();
    // Deleted meanwhile: its rows are gone and must not come back (checked with nothing awaited
    // before the transaction, as a delete forgets the rows before it removes the file).
    if (this.owner.freed) return;
    // Not synced: lost in a crash, the blocks are holes again, which read as the same zeros (and a
    // write that follows syncs it with its own commit).
    this.db.addBlocksUnsynced(this.owner.id, rows);
    const crcs = this.checksums();
    for (const [b, c] of rows) crcs.set(b, c);
    this.generation++;
  }

  /** Writes zeros over `[from, to)` (at most a block) through `fh`; out of room, once more after freeing some. */
  private async writeZerosAt(fh: FileHandle, from: number, to: number): Promise<void> {
    const once = () => writevFully(fh, [ZERO_BLOCK.subarray(0, to - from)], from);
    try {
      await once();
    } catch (e) {
      // Out of room while warm files or idle tails hold some: once more after freeing them.
      if (!isOutOfSpace(e) || this.warm?.reclaim() !== true) throw e;
      await once();
    }
  }

  /**
   * Sequence number of the redo journal of the write being committed, if it wrote one: the
   * metadata store records it with the write, which marks the journal done.
   */
  journalToCommit(): number | undefined {
    return this.journaled;
  }

  /** Caches the committed checksums after a write (the core has recorded them). */
  noteCommitted(blocks: BlockChecksums | undefined): void {
    this.generation++;
    this.journalDone();
    if (blocks !== undefined && this.crcs !== undefined) for (const [b, c] of blocks) this.crcs.set(b, c);
    // Bytes and checksums agree again: the overwrite copied in place is over.
    this.inPlace?.end();
  }

  /** Registers a write in progress that replaces the committed bytes `[from, to)`. */
  private beginOverwrite(from: number, to: number): Overwrite {
    let resolve!: () => void;
    const w: Overwrite = {
      from,
      to,
      received: from,
      over: new Promise<void>((r) => (resolve = r)),
      gate: undefined,
      end: () => {
        if (!this.overwrites.delete(w)) return;
        if (this.inPlace === w) this.inPlace = undefined;
        w.gate?.();
        w.gate = undefined;
        resolve();
      },
    };
    this.overwrites.add(w);
    // Its command runs under the allocation's write lock, commit or undo included: once the lock
    // is given up the write is over, whatever path it took.
    void this.owner.settled().then(w.end, w.end);
    return w;
  }

  /** Takes the in-place gate for overwrite `w` (its copy in place is about to start). */
  private async holdGate(w: Overwrite): Promise<void> {
    const release = await this.lockGate();
    if (!this.overwrites.has(w)) {
      release();
      throw new Error('the write ended before its bytes were copied in place');
    }
    w.gate = release;
    this.inPlace = w;
  }

  /** Waits for the in-place gate; resolves to its release (idempotent). */
  private lockGate(): Promise<() => void> {
    const previous = this.gateTail;
    let open!: () => void;
    this.gateTail = new Promise<void>((r) => (open = r));
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      open();
    };
    return previous.then(() => release);
  }

  /**
   * Waits for the overwrites in progress whose bytes already received overlap `[from, to)`. Those
   * received later are not waited for: a copy inside one allocation reads what it overwrites.
   */
  private async afterOverwrites(from: number, to: number): Promise<void> {
    const pending: Promise<void>[] = [];
    for (const w of this.overwrites) {
      // `[w.from, w.received)` is what it has received (empty until its first chunk).
      if (w.received > w.from && w.from < to && w.received > from) pending.push(w.over);
    }
    if (pending.length > 0) await Promise.all(pending);
  }

  /**
   * Rolls refused write `seq` back as change `rollbackSeq`: its rollback record (with the committed
   * `size` and checksums `blocks` to record) goes after its undo image (`image`, in journal `jpath`)
   * and the journal is made durable, then the image is written back over `[from, to)` and made
   * durable (both under `safe`), on fresh descriptors (those of the refused write are not trusted),
   * in up to {@link UNDO_ATTEMPTS} attempts, each after the first writing the image again before
   * the record. Resolves to `done`, to `gone` (the files are gone: the
   * allocation was deleted during the write), or to the last failure; the caller records the undo.
   */
  private async rollBack(
    jpath: string,
    image: { at: number; end: number; records: Buffer[] | undefined; size: number; blocks: ReadonlyMap<number, number> },
    seq: number,
    rollbackSeq: number,
    from: number,
    to: number,
  ): Promise<'done' | 'gone' | { failure: string }> {
    let failure = 'not attempted';
    const record = rollbackRecord(seq, rollbackSeq, image.size, image.blocks);
    for (let attempt = 0; attempt < UNDO_ATTEMPTS; attempt++) {
      let journal: FileHandle | undefined;
      let data: FileHandle | undefined;
      try {
        journal = await this.io.open(jpath, fsConstants.O_RDWR);
        // The undo image is written again before the record: a failed sync may have dropped its
        // pages unwritten, and a durable rollback record after an image that never reached the disk
        // is one start-up cannot use. From memory when it was kept (every attempt: it costs little);
        // else, on a retry, each record read back, checked and written again, and no record at all
        // if one no longer checks (the allocation is then marked damaged; see `abort`).
        if (image.records !== undefined) await writevFully(journal, image.records, image.at);
        else if (attempt > 0) await rewriteUndo(journal, image.at, seq, from, to);
        await writevFully(journal, [record], image.end);
        if (this.fsync === 'safe') await journal.datasync();
        data = await this.io.open(this.file, fsConstants.O_WRONLY);
        await restoreUndo(journal, image.at, data, seq, from, to);
        if (this.fsync === 'safe') await data.datasync();
        return 'done';
      } catch (e) {
        failure = (e as Error).message;
        if ((e as NodeJS.ErrnoException).code === 'ENOENT' && (await stat(this.file).catch(() => undefined)) === undefined) {
          return 'gone';
        }
      } finally {
        await journal?.close().catch(() => undefined);
        await data?.close().catch(() => undefined);
      }
    }
    return { failure };
  }

  /** The metadata store has recorded the journaled write as committed: drop its journal. */
  private journalDone(): void {
    if (this.journaled === undefined) return;
    this.dropJournal(this.journaled);
    this.journaled = undefined;
  }

  /**
   * The metadata store has recorded `seq` for this allocation: its journal is stale, emptied (not
   * removed: its directory entry need not be synced again). Not synced: a journal that survives a
   * crash is stale (its sequence number is recorded) and is ignored. Through the kept descriptor when
   * there is one: on ext4, a file emptied by name and closed is written out at the close, which cost
   * every small overwrite a trip to the disk.
   *
   * Emptied off the event loop (see `emptyings`): on ext4 a truncate may wait for the file system's
   * journal commit that another allocation's sync started, and done in line it held every
   * connection's commands for that long (a tenth of the depot's time under small `safe` WRITEs).
   */
  private dropJournal(seq: number): void {
    this.seq = seq;
    const kept = handles.get(this.file)?.journal;
    const empty = async (): Promise<void> => {
      try {
        if (kept !== undefined) await kept.truncate(0);
        else await truncate(journalPath(this.file), 0);
        this.journalUsed = false;
      } catch {
        // gone already (or closed meanwhile: the next write empties it first)
      }
    };
    const step = (emptyings.get(this.file) ?? Promise.resolve()).then(empty);
    emptyings.set(this.file, step);
    void step.then(() => {
      if (emptyings.get(this.file) === step) emptyings.delete(this.file);
    });
  }

  /**
   * The descriptor of the redo journal at `jpath`, kept with the file's (`h`) from one write to the
   * next, and the journal empty: emptied now if it may hold anything (see `journalUsed`). A journal
   * created now has its directory entry synced under `safe`.
   */
  private async journalOf(h: CachedHandle, jpath: string): Promise<FileHandle> {
    await emptyings.get(this.file);
    let fh = h.journal;
    if (fh === undefined) {
      const had = await stat(jpath).then(
        () => true,
        () => false,
      );
      // The writer holds `h`, so it is closed after its last user, journal included.
      fh = h.journal = await this.io.open(jpath, JOURNAL_FLAGS);
      if (!had && this.fsync === 'safe') await syncDirectory(dirname(this.file));
    } else if (this.journalUsed) await fh.truncate(0);
    this.journalUsed = true;
    return fh;
  }

  /** A sequence number for a new journal: above every one recorded or used. */
  private nextSeq(): number {
    this.seq ??= this.db.journalSeq(this.owner.id);
    this.lastSeq = Math.max(this.lastSeq, this.seq) + 1;
    return this.lastSeq;
  }

  async read(
    offset: number,
    length: number,
    sink: (chunk: Buffer) => void | Promise<void>,
    options?: ReadOptions,
  ): Promise<void> {
    const pooled = options?.sinkReleases === true;
    const idle = this.warm?.busy();
    try {
      await this.readVerified(offset, length, sink, pooled);
    } finally {
      idle?.();
    }
  }

  private async readVerified(
    offset: number,
    length: number,
    sink: (chunk: Buffer) => void | Promise<void>,
    pooled: boolean,
  ): Promise<void> {
    // A read never returns bytes older than an overwrite it overlaps has already received: it
    // waits for that write to be committed (or undone), then reads and verifies.
    await this.afterOverwrites(offset, offset + length);
    let handle: CachedHandle;
    try {
      handle = await this.acquire(false);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // A missing file is lost data; anything else (too many open files, an I/O error) may pass, and
      // the LOAD is refused without condemning the allocation.
      if (code !== 'ENOENT')
        throw storageError(e, `allocation ${this.owner.id}: its file cannot be opened now`, Status.FILE_READ);
      this.owner.markDamaged('its file is missing');
      throw new DepotError(DepotErrorCode.DAMAGED, `allocation ${this.owner.id}: its file cannot be read`, { cause: e });
    }
    const fh = handle.fh;
    let failed = false;
    const end = offset + length;
    // The next run is read (and checksummed) while the current one goes to the sink; it is judged
    // when its turn comes, as if read then.
    let ahead: Promise<ReadRun> | undefined;
    const readAhead = (from: number) => {
      const p = this.readRun(fh, from, end, pooled);
      p.catch(() => undefined); // judged (and its failure thrown) when awaited
      return p;
    };
    // A reader going through the data in order, either way (ibp_perf reads last block first).
    const forwards = pooled && offset === this.lastReadEnd;
    const backwards = pooled && end === this.lastReadStart;
    /** The sink threw: its failure goes on as it is. */
    let sinkFailed = false;
    try {
      let at = Math.floor(offset / BLOCK_BYTES) * BLOCK_BYTES;
      const pre = pooled ? this.takePrefetch(at) : undefined;
      if (at < end) {
        // The run read ahead after the last LOAD, if nothing changed since; else read now (a run
        // that failed its checks is read again here, where a failure is judged).
        ahead =
          pre === undefined
            ? readAhead(at)
            : pre.then((r) => {
                if (r !== undefined && r.failure === undefined) return r;
                if (r !== undefined) giveRunBuffer(r.buf);
                return readAhead(at);
              });
        ahead.catch(() => undefined);
      } else if (pre !== undefined) {
        void pre.then((r) => r !== undefined && giveRunBuffer(r.buf));
      }
      while (at < end) {
        let run = await ahead!;
        ahead = undefined;
        if (run.failure === undefined && run.end < end) ahead = readAhead(run.end);
        if (run.failure !== undefined) {
          // An overwrite being copied in place, or a TRUNCATE, may have changed these bytes or
          // their checksums during the read: look again while neither can run, and only a
          // mismatch then is damage.
          const release = await this.lockGate();
          try {
            run = await this.readRun(fh, at, end, false);
          } finally {
            release();
          }
          if (run.failure !== undefined) {
            this.owner.markDamaged(run.failure);
            throw new DepotError(
              DepotErrorCode.DAMAGED,
              `allocation ${this.owner.id}: stored bytes fail verification (${run.failure})`,
            );
          }
          if (run.end < end) ahead = readAhead(run.end);
        }
        const from = Math.max(offset, at) - at;
        const to = Math.min(end, run.end) - at;
        try {
          await sink(run.buf.subarray(from, to));
        } catch (e) {
          sinkFailed = true;
          throw e;
        }
        // The sink is done with it (it said so): the next run may read into it.
        if (pooled) giveRunBuffer(run.buf);
        at = run.end;
      }
      if (pooled) {
        this.lastReadEnd = end;
        this.lastReadStart = offset;
        if (length >= PREFETCH_MIN_LOAD_BYTES) {
          // The next LOAD is taken to be as long as this one: forwards it starts at `end`, backwards
          // it ends at `offset`. Only its first run is read, never past it.
          if (forwards && end < this.owner.size) this.startPrefetch(end, end + length);
          else if (backwards && offset > 0) this.startPrefetch(Math.max(0, offset - length), offset);
        }
      }
    } catch (e) {
      // The sink's own failure (the reader left, or was too slow) is no fault of the file.
      if (sinkFailed) throw e;
      failed = true;
      throw DepotError.isDepotError(e) ? e : storageError(e, `allocation ${this.owner.id}: read failed`, Status.FILE_READ);
    } finally {
      // A run read ahead and not sent: done before the descriptor may close, its buffer back.
      const left = await ahead?.catch(() => undefined);
      if (left !== undefined && pooled) giveRunBuffer(left.buf);
      if (failed) void this.forgetHandle();
      unuse(handle);
    }
  }

  /**
   * For a reader in another thread (an NFU worker reads its input with its own descriptor, off
   * the event loop and libuv's thread pool): after the overwrites that {@link read} would wait
   * for, the file and the checksum each block of `[offset, offset + length)` must have now. The
   * reader verifies every block it reads; on any mismatch or short read it must fall back to
   * {@link read}, which tells a change since from damage.
   */
  async readPlan(offset: number, length: number): Promise<DiskReadPlan> {
    // The reader is in another thread: the warmer keeps off for a moment from now.
    this.warm?.busy()();
    await this.afterOverwrites(offset, offset + length);
    const size = this.owner.size;
    if (offset + length > size)
      throw new DepotError(
        DepotErrorCode.WOULD_EXCEED_LIMIT,
        `the data no longer reaches ${offset + length} bytes (now ${size})`,
      );
    const crcs = this.checksums();
    const firstBlock = Math.floor(offset / BLOCK_BYTES);
    const blockCrcs: (number | undefined)[] = [];
    for (let b = firstBlock; b * BLOCK_BYTES < offset + length; b++) blockCrcs.push(crcs.get(b));
    return { file: this.file, size, blockBytes: BLOCK_BYTES, firstBlock, crcs: blockCrcs };
  }

  /**
   * After a LOAD that carried on from the last one (starting where it ended, or, going backwards,
   * ending where it started), the first run of the LOAD expected next, `[from, until)` widened to
   * whole blocks and at most a run, is read (and checked) ahead, so that LOAD starts sending at once.
   * It is served only if nothing that may change the data has happened since it was started (see
   * {@link generation}), and dropped unused after {@link PREFETCH_KEEP_MS} (see
   * {@link setPrefetchKeepMs}). Not while a change is under way, nor past the size.
   */
  private startPrefetch(from: number, until: number): void {
    if (this.changing > 0 || this.owner.freed) return;
    const size = this.owner.size;
    const at = Math.floor(from / BLOCK_BYTES) * BLOCK_BYTES;
    if (at >= size) return;
    const runEnd = Math.min(at + READ_RUN_BYTES, Math.ceil(until / BLOCK_BYTES) * BLOCK_BYTES, size);
    // One per allocation: the latest sequential reader's (one from elsewhere goes).
    if (this.prefetch?.at === at && this.prefetch.generation === this.generation) return;
    this.dropPrefetch();
    if (prefetchesOut >= MAX_PREFETCHES) return;
    prefetchesOut++;
    prefetchCounts.started++;
    prefetchCounts.bytes += runEnd - at;
    const idle = this.warm?.busy();
    const run = (async (): Promise<ReadRun | undefined> => {
      const h = await this.acquire(false);
      try {
        return await this.readRun(h.fh, at, runEnd, true);
      } finally {
        unuse(h);
      }
    })()
      .catch(() => undefined)
      .finally(() => idle?.());
    const p: Prefetch = { at, generation: this.generation, run, timer: setTimeout(() => this.dropPrefetch(p), prefetchKeepMs) };
    p.timer.unref();
    this.prefetch = p;
  }

  /**
   * The run read ahead from `at`, if there is one still good. A stale one is dropped; one from
   * elsewhere stays for its reader (another client may read the same data sequentially too).
   */
  private takePrefetch(at: number): Promise<ReadRun | undefined> | undefined {
    const p = this.prefetch;
    if (p === undefined) return undefined;
    if (p.generation !== this.generation) {
      this.dropPrefetch(p);
      return undefined;
    }
    if (p.at !== at) return undefined;
    this.prefetch = undefined;
    clearTimeout(p.timer);
    prefetchesOut--;
    prefetchCounts.served++;
    return p.run;
  }

  /**
   * Drops the run read ahead (`p`, or whichever there is): its buffer goes back once it is read, and
   * only then does it stop counting against {@link MAX_PREFETCHES}.
   */
  private dropPrefetch(p: Prefetch | undefined = this.prefetch): void {
    if (p === undefined || this.prefetch !== p) return;
    this.prefetch = undefined;
    clearTimeout(p.timer);
    prefetchCounts.dropped++;
    void p.run.then((r) => {
      prefetchesOut--;
      if (r !== undefined) giveRunBuffer(r.buf);
    });
  }

  /**
   * Reads and verifies the whole blocks from `at` towards `end`, against the size and checksums
   * as they are now. Fails (never loops) when the data no longer reaches `end`.
   */
  private async readRun(fh: FileHandle, at: number, end: number, pooled: boolean): Promise<ReadRun> {
    const size = this.owner.size;
    if (end > size)
      throw new DepotError(DepotErrorCode.WOULD_EXCEED_LIMIT, `the data no longer reaches ${end} bytes (now ${size})`);
    const runEnd = Math.min(at + READ_RUN_BYTES, Math.ceil(end / BLOCK_BYTES) * BLOCK_BYTES, size);
    // The checksums that go with `size`, taken together: a commit during the read changes both.
    const crcs = this.checksums();
    const firstBlock = at / BLOCK_BYTES;
    const expected: (number | undefined)[] = [];
    for (let b = firstBlock; b * BLOCK_BYTES < runEnd; b++) expected.push(crcs.get(b));
    const buf = takeRunBuffer(runEnd - at, pooled);
    // With the native addon one thread-pool job reads the run and checksums its blocks (through
    // the real filesystem calls only: injected ones are honoured by the path below).
    const preadCrcs = this.io === realDiskIo ? threadPoolRead() : undefined;
    let got = 0;
    /** CRC of block `firstBlock + i`, for the blocks read. */
    let actual: ArrayLike<number | undefined>;
    if (preadCrcs !== undefined) {
      ({ bytesRead: got, crcs: actual } = await readBlockCrcs(preadCrcs, fh.fd, buf, at, firstBlock, BLOCK_BYTES, size));
    } else {
      while (got < buf.length) {
        const { bytesRead } = await fh.read(buf, got, buf.length - got, at + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      const crcs = new Map<number, number>();
      // Verified in the thread pool when the native addon is there, else on the event loop.
      const crcRuns = threadPoolCrc();
      if (crcRuns === undefined) blockCrcs(buf, firstBlock, size, crcs);
      else await bufferBlockCrcs(crcRuns, buf, firstBlock, BLOCK_BYTES, size, crcs);
      actual = Array.from({ length: expected.length }, (_, i) => crcs.get(firstBlock + i));
    }
    if (got < buf.length) return { buf, end: runEnd, failure: 'its file is shorter than its data' };
    for (let i = 0; i < expected.length; i++) {
      // A hole (no checksum) is zeros, whatever the file holds there.
      if (expected[i] === undefined) buf.fill(0, i * BLOCK_BYTES, Math.min((i + 1) * BLOCK_BYTES, buf.length));
      else if (actual[i] !== expected[i]) return { buf, end: runEnd, failure: `block ${firstBlock + i} fails its checksum` };
    }
    return { buf, end: runEnd };
  }

  /**
   * TRUNCATE: records the new sizes and the checksum of the block holding the new end in one
   * transaction, then cuts the file. A crash in between leaves bytes past the recorded size, which
   * start-up cuts; readers never look past the recorded size.
   */
  async truncate(newSize: number, newMaxSize: number): Promise<void> {
    // A refused write's undo is recorded first: recorded later, it would put its size back.
    if (this.undoPending !== undefined) await this.recordUndo();
    // The checksums change here, the size once the core records it (under the same write lock):
    // readers that see the two disagree judge under the gate, which is held until then.
    const release = await this.lockGate();
    this.changing++;
    this.generation++;
    const over = () => {
      release();
      this.changing--;
      this.generation++;
    };
    void this.owner.settled().then(over, over);
    try {
      const blocks = new Map<number, number>();
      // The block holding the new end gets the checksum of its bytes up to it, unless it is a hole.
      const b = Math.floor(newSize / BLOCK_BYTES);
      if (newSize % BLOCK_BYTES !== 0 && this.checksums().has(b)) {
        const fh = await open(this.file, fsConstants.O_RDONLY).catch(() => undefined);
        if (fh !== undefined) {
          try {
            blocks.set(b, await crcOfFileBlock(fh, b, newSize));
          } finally {
            await fh.close();
          }
        } else {
          blocks.set(b, zeroCrc(newSize - b * BLOCK_BYTES));
        }
      }
      const fromBlock = Math.ceil(newSize / BLOCK_BYTES);
      this.db.truncate(this.owner.id, newSize, newMaxSize, blocks, fromBlock);
      const crcs = this.checksums();
      for (const b of [...crcs.keys()]) if (b >= fromBlock) crcs.delete(b);
      for (const [b, c] of blocks) crcs.set(b, c);
      const st = await stat(this.file).catch(() => undefined);
      if (st !== undefined && st.size > newSize) await truncate(this.file, newSize);
    } catch (e) {
      throw storageError(e, `allocation ${this.owner.id}: cannot truncate`);
    }
  }

  async release(): Promise<void> {
    this.generation++;
    this.dropPrefetch();
    // Closed before the file goes: an open descriptor would keep its space taken.
    await this.forgetHandle();
    await rm(this.file, { force: true });
    await rm(journalPath(this.file), { force: true });
  }

  /** Checks every block of the file against the stored checksums (start-up `full` check). */
  async verifyAll(): Promise<string | undefined> {
    const size = this.owner.size;
    if (size === 0) return undefined;
    try {
      await this.read(0, size, () => undefined);
      return undefined;
    } catch (e) {
      return (e as Error).message;
    }
  }

  /** Loads the committed checksums into the cache, if they are not there yet. */
  loadChecksums(): void {
    this.checksums();
  }

  private checksums(): Map<number, number> {
    this.crcs ??= this.db.blocks(this.owner.id);
    return this.crcs;
  }

  /**
   * The committed checksums to record again when a write to an allocation of `size` committed bytes
   * is refused: `touched` (those of the blocks it was to change in place, taken before it did) and
   * that of the block holding the committed end, from the cache, which holds every committed one and
   * only those (a refused grouped commit may have recorded others in the store).
   */
  private committedBlocks(size: number, touched: ReadonlyMap<number, number> | undefined): Map<number, number> {
    const blocks = new Map<number, number>(touched ?? []);
    if (size % BLOCK_BYTES === 0) return blocks;
    const b = Math.floor(size / BLOCK_BYTES);
    const c = blocks.get(b) ?? this.checksums().get(b);
    // Without one the block is a hole (the cache holds every committed checksum): it stays one.
    if (c !== undefined) blocks.set(b, c);
    return blocks;
  }

  /**
   * Replaces the journal with an undo marker of the pending undo (see `undoMarker`), made durable
   * under `safe`, as a change of its own that recording the undo marks done. Best effort: the disk
   * may be failing.
   */
  private async markUndo(jpath: string): Promise<void> {
    const u = this.undoPending;
    if (u === undefined) return;
    const seq = this.nextSeq();
    let fh: FileHandle | undefined;
    try {
      await emptyings.get(this.file);
      const had = await stat(jpath).then(
        () => true,
        () => false,
      );
      fh = await this.io.open(jpath, JOURNAL_FLAGS);
      this.journalUsed = true;
      await writevFully(fh, [undoMarker(seq, u.size, u.blocks)], 0);
      if (this.fsync === 'safe') {
        await fh.datasync();
        if (!had) await syncDirectory(dirname(this.file));
      }
      this.undoPending = { ...u, seq };
    } catch {
      // Left pending in memory only: the next write or TRUNCATE records it first.
    } finally {
      await fh?.close().catch(() => undefined);
    }
  }

  /**
   * Records the undo of a refused write (see {@link PendingUndo}) in one metadata transaction, then
   * cuts the file back to the committed size and drops the journal. Throws if the store fails (the
   * undo stays pending), or if the undo image could not be written back (only a restart does).
   */
  private async recordUndo(): Promise<void> {
    const u = this.undoPending;
    if (u === undefined) return;
    if (!u.writtenBack) {
      throw new DepotError(
        DepotErrorCode.DAMAGED,
        `allocation ${this.owner.id}: a refused WRITE's old bytes could not be put back; a restart puts them back`,
        { status: Status.FILE_WRITE },
      );
    }
    // Deleted meanwhile: its rows are gone and must not come back (checked last, with nothing
    // awaited before the transaction, as a delete forgets the rows before it removes the file).
    const exists = (await stat(this.file).catch(() => undefined)) !== undefined;
    if (!exists || this.owner.freed) {
      this.undoPending = undefined;
      return;
    }
    const fromBlock = Math.ceil(u.size / BLOCK_BYTES);
    try {
      this.db.setBlocks(this.owner.id, u.blocks, fromBlock, u.seq, u.size);
    } catch (e) {
      throw storageError(e, `allocation ${this.owner.id}: cannot record a refused write's undo`);
    }
    this.undoPending = undefined;
    if (u.seq !== undefined) this.dropJournal(u.seq);
    const crcs = this.checksums();
    for (const b of [...crcs.keys()]) if (b >= fromBlock) crcs.delete(b);
    for (const [b, c] of u.blocks) {
      if (c === HOLE) crcs.delete(b);
      else crcs.set(b, c);
    }
    // Bytes past the recorded size are never read, and start-up cuts them if this fails.
    const st = await stat(this.file).catch(() => undefined);
    if (st !== undefined && st.size > u.size) await truncate(this.file, u.size).catch(() => undefined);
  }
}

/**
 * Refuses new data (`-23`) while the space reserve is given up and the filesystem has no room to
 * make it whole again: what room there is stays for deletes and the metadata store.
 */
export function assertRoom(reserve: SpaceReserve, what: string): void {
  if (!reserve.ensure()) {
    throw new DepotError(DepotErrorCode.NO_SPACE, `${what}: no space left on the resource's filesystem`);
  }
}

/** CRC-32 of block `block` of an allocation of `size` bytes, read from its file (zeros past its end). */
export async function crcOfFileBlock(fh: FileHandle, block: number, size: number): Promise<number> {
  const start = block * BLOCK_BYTES;
  const len = Math.min(BLOCK_BYTES, size - start);
  const buf = Buffer.alloc(len);
  let got = 0;
  while (got < len) {
    const { bytesRead } = await fh.read(buf, got, len - got, start + got);
    if (bytesRead === 0) break; // past the end of the file: a hole, zeros
    got += bytesRead;
  }
  return crc32(buf);
}

/** Removes and returns the first `n` bytes of `parts` (splitting a buffer if need be). */
function takeBytes(parts: Buffer[], n: number): Buffer[] {
  const out: Buffer[] = [];
  while (n > 0 && parts.length > 0) {
    const p = parts[0]!;
    if (p.length <= n) {
      out.push(p);
      parts.shift();
      n -= p.length;
    } else {
      out.push(p.subarray(0, n));
      parts[0] = p.subarray(n);
      n = 0;
    }
  }
  return out;
}

/** fsync of a directory, so a new file's entry survives power loss. */
async function syncDirectory(dir: string): Promise<void> {
  const fh = await open(dir, fsConstants.O_RDONLY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** A block of zeros, shared (never written to). */
const ZERO_BLOCK = Buffer.alloc(BLOCK_BYTES);

const zeroCrcCache = new Map<number, number>();
/** CRC-32 of `n` zero bytes (blocks of a hole). */
function zeroCrc(n: number): number {
  let c = zeroCrcCache.get(n);
  if (c === undefined) {
    c = crc32(Buffer.alloc(n));
    zeroCrcCache.set(n, c);
  }
  return c;
}
