import { constants as fsConstants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import Database from 'better-sqlite3';
import type { AllocationRecord, AllocationState, BlockChecksums } from '../../core/allocation.js';
import { DepotError, DepotErrorCode, storageError } from '../../errors.js';
import type { FsyncPolicy } from '../../options.js';
import { HOLE } from './redo-journal.js';
import { isOutOfSpace, type SpaceReserve } from './space-reserve.js';

const SCHEMA_VERSION = '1';

interface Row {
  id: number;
  read_digest: Buffer;
  write_digest: Buffer;
  manage_digest: Buffer;
  max_size: number;
  size: number;
  reliability: number;
  type: number;
  expires_at_ms: number;
  read_refs: number;
  write_refs: number;
  state: AllocationState;
  trashed_at_ms: number | null;
  trash_reason: string | null;
}

/**
 * The metadata of one disk resource in SQLite (WAL): allocations (key digests, sizes, lease,
 * refcounts, state) and per-block checksums. Every change is one transaction; under the `safe`
 * policy SQLite syncs the WAL at each commit (`synchronous = FULL`), except for the writes' commits,
 * which are grouped ({@link commitWrites}) and made durable by one fsync of the WAL per group
 * ({@link syncWal}).
 */
export class MetadataDb {
  private readonly db: Database.Database;
  private readonly stmts;
  /** The WAL file, opened on the first {@link syncWal}. */
  private wal: FileHandle | undefined;
  private walOpening: Promise<FileHandle> | undefined;
  private readonly file: string;

  /**
   * Opens (or creates) the store. With a space `reserve`, a filesystem too full to open it, or to
   * record a change that frees space or keeps the depot consistent, gives the reserve up and tries
   * once more.
   */
  constructor(
    file: string,
    rid: string,
    fsync: FsyncPolicy,
    private readonly reserve?: SpaceReserve,
  ) {
    this.file = file;
    try {
      this.db = this.retryWhenFull(() => MetadataDb.openDatabase(file, fsync));
    } catch (e) {
      throw new DepotError(DepotErrorCode.RESOURCE_UNAVAILABLE, `cannot open metadata store ${file}: ${(e as Error).message}`, {
        cause: e,
      });
    }
    const get = this.db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?');
    const put = this.db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)');
    const storedRid = get.get('rid')?.value;
    if (storedRid !== undefined && storedRid !== rid) {
      this.db.close();
      throw new DepotError(
        DepotErrorCode.CONFIG,
        `invalid config: data directory holds resource ${storedRid}, but it is configured as resource ${rid}`,
      );
    }
    const version = get.get('schema')?.value;
    if (version !== undefined && version !== SCHEMA_VERSION) {
      this.db.close();
      throw new DepotError(
        DepotErrorCode.RESOURCE_UNAVAILABLE,
        `metadata schema ${version} is not supported (expected ${SCHEMA_VERSION})`,
      );
    }
    // Written only when new: a restart on a full filesystem must not need room.
    if (storedRid === undefined || version === undefined) {
      try {
        this.retryWhenFull(() => {
          put.run('rid', rid);
          put.run('schema', SCHEMA_VERSION);
        });
      } catch (e) {
        this.db.close();
        throw storageError(e, 'metadata store: cannot record the resource id');
      }
    }
    this.stmts = {
      all: this.db.prepare<[], Row>('SELECT * FROM allocations ORDER BY id'),
      insert: this.db.prepare(
        `INSERT INTO allocations (id, read_digest, write_digest, manage_digest, max_size, size, reliability, type,
           expires_at_ms, read_refs, write_refs, state, trashed_at_ms, trash_reason)
         VALUES (@id, @read_digest, @write_digest, @manage_digest, @max_size, @size, @reliability, @type,
           @expires_at_ms, @read_refs, @write_refs, @state, @trashed_at_ms, @trash_reason)`,
      ),
      update: this.db.prepare(
        `UPDATE allocations SET max_size = @max_size, reliability = @reliability, expires_at_ms = @expires_at_ms,
           read_refs = @read_refs, write_refs = @write_refs, state = @state, trashed_at_ms = @trashed_at_ms,
           trash_reason = @trash_reason, read_digest = @read_digest, write_digest = @write_digest,
           manage_digest = @manage_digest WHERE id = @id`,
      ),
      setSize: this.db.prepare('UPDATE allocations SET size = ? WHERE id = ?'),
      setSizes: this.db.prepare('UPDATE allocations SET size = ?, max_size = ? WHERE id = ?'),
      remove: this.db.prepare('DELETE FROM allocations WHERE id = ?'),
      removeBlocks: this.db.prepare('DELETE FROM blocks WHERE alloc_id = ?'),
      removeBlocksFrom: this.db.prepare('DELETE FROM blocks WHERE alloc_id = ? AND idx >= ?'),
      putBlock: this.db.prepare('INSERT OR REPLACE INTO blocks (alloc_id, idx, crc) VALUES (?, ?, ?)'),
      removeBlock: this.db.prepare('DELETE FROM blocks WHERE alloc_id = ? AND idx = ?'),
      blocks: this.db.prepare<[number], { idx: number; crc: number }>('SELECT idx, crc FROM blocks WHERE alloc_id = ?'),
      seq: this.db.prepare<[number], { seq: number }>('SELECT seq FROM write_seq WHERE alloc_id = ?'),
      putSeq: this.db.prepare('INSERT OR REPLACE INTO write_seq (alloc_id, seq) VALUES (?, ?)'),
      removeSeq: this.db.prepare('DELETE FROM write_seq WHERE alloc_id = ?'),
      maxId: this.db.prepare<[], { id: number | null }>('SELECT MAX(id) AS id FROM allocations'),
      unsynced: this.db.prepare('PRAGMA synchronous = NORMAL'),
      synced: this.db.prepare(`PRAGMA synchronous = ${fsync === 'safe' ? 'FULL' : 'NORMAL'}`),
    };
  }

  all(): AllocationRecord[] {
    return this.stmts.all.all().map((r) => ({
      id: r.id,
      rid: '',
      maxSize: r.max_size,
      size: r.size,
      reliability: r.reliability,
      type: r.type,
      expiresAtMs: r.expires_at_ms,
      readRefs: r.read_refs,
      writeRefs: r.write_refs,
      state: r.state,
      trashedAtMs: r.trashed_at_ms ?? undefined,
      trashReason: r.trash_reason ?? undefined,
      digests: { 1: r.read_digest, 2: r.write_digest, 3: r.manage_digest },
    }));
  }

  insert(a: AllocationRecord): void {
    this.run(
      'record the allocation',
      () =>
        this.stmts.insert.run({
          ...this.params(a),
          read_digest: a.digests[1],
          write_digest: a.digests[2],
          manage_digest: a.digests[3],
          type: a.type,
        }),
      false,
    );
  }

  /**
   * Records an allocation's metadata: keys, max size, lease, reliability, refcounts, state; never
   * its size. The size is recorded only with the bytes it covers ({@link commitWrite},
   * {@link truncate}, {@link setBlocks} undoing a refused write): a write's grouped commit records
   * its new size before it is durable and before the allocation in memory has it, so an update
   * meanwhile must not put the old one back (the write would be acknowledged, then cut at the next
   * start-up).
   */
  update(a: AllocationRecord): void {
    const { size: _size, ...params } = this.params(a);
    this.run('record the allocation change', () =>
      this.stmts.update.run({
        ...params,
        read_digest: a.digests[1],
        write_digest: a.digests[2],
        manage_digest: a.digests[3],
      }),
    );
  }

  /**
   * The new size and the block checksums of one write, atomically; with `seq`, also the sequence
   * number of the write's redo journal (which makes that journal stale).
   */
  commitWrite(id: number, newSize: number, blocks: BlockChecksums | undefined, seq?: number): void {
    this.run(
      'commit the write',
      () =>
        this.db.transaction(() => {
          if (blocks !== undefined) for (const [idx, crc] of blocks) this.stmts.putBlock.run(id, idx, crc);
          this.stmts.setSize.run(newSize, id);
          if (seq !== undefined) this.stmts.putSeq.run(id, seq);
        })(),
      false,
    );
  }

  /**
   * Several writes' commits ({@link commitWrite}) in one transaction that SQLite does not sync: a
   * commit that fails is undone alone (a savepoint), the others stand. Under `safe` they are
   * durable only after {@link syncWal}. Returns each commit's failure (undefined: recorded).
   */
  commitWrites(changes: readonly (() => void)[]): (unknown | undefined)[] {
    const failures: (unknown | undefined)[] = changes.map(() => undefined);
    this.stmts.unsynced.run();
    try {
      this.db.transaction(() => {
        changes.forEach((change, i) => {
          try {
            this.db.transaction(change)(); // nested: its own savepoint
          } catch (e) {
            failures[i] = e;
          }
        });
      })();
    } catch (e) {
      throw storageError(e, 'metadata store: cannot commit the writes');
    } finally {
      this.stmts.synced.run();
    }
    return failures;
  }

  /**
   * Makes every transaction committed so far durable: one fdatasync of the WAL, on the thread
   * pool (the frames of a commit are in the WAL once it returns; a checkpoint syncs the WAL before
   * it copies them, and SQLite syncs the header of a WAL it restarts).
   */
  async syncWal(): Promise<void> {
    try {
      if (this.wal === undefined) {
        const opening = (this.walOpening ??= open(`${this.file}-wal`, fsConstants.O_RDONLY));
        try {
          this.wal = await opening;
        } catch (e) {
          // A failed open is not kept: the next sync tries again.
          if (this.walOpening === opening) this.walOpening = undefined;
          throw e;
        }
      }
      await this.wal.datasync();
    } catch (e) {
      throw storageError(e, 'metadata store: cannot make the writes durable');
    }
  }

  /**
   * Replaces checksums ({@link HOLE} drops the block's: it is a hole again) and drops those of
   * blocks at or past `fromBlock` (after a truncation); with `seq`, also records the redo journal of
   * that write as done; with `size`, records that size (a refused write is undone: its size,
   * checksums and rollback in one transaction).
   */
  setBlocks(id: number, blocks: BlockChecksums, fromBlock?: number, seq?: number, size?: number): void {
    this.run('record block checksums', () =>
      this.db.transaction(() => {
        if (fromBlock !== undefined) this.stmts.removeBlocksFrom.run(id, fromBlock);
        for (const [idx, crc] of blocks) {
          if (crc === HOLE) this.stmts.removeBlock.run(id, idx);
          else this.stmts.putBlock.run(id, idx, crc);
        }
        if (seq !== undefined) this.stmts.putSeq.run(id, seq);
        if (size !== undefined) this.stmts.setSize.run(size, id);
      })(),
    );
  }

  /**
   * Records checksums of blocks whose bytes are already durable, in a transaction SQLite does not
   * sync: the next synced commit (any write's, or {@link syncWal}) makes it durable, and losing it
   * in a crash only leaves those blocks as they were recorded before.
   */
  addBlocksUnsynced(id: number, blocks: BlockChecksums): void {
    this.stmts.unsynced.run();
    try {
      this.run('record block checksums', () =>
        this.db.transaction(() => {
          for (const [idx, crc] of blocks) this.stmts.putBlock.run(id, idx, crc);
        })(),
      );
    } finally {
      this.stmts.synced.run();
    }
  }

  /** Sequence number of the last overwrite whose redo journal is done with (0: none). */
  journalSeq(id: number): number {
    return this.stmts.seq.get(id)?.seq ?? 0;
  }

  /** TRUNCATE: new sizes and the re-recorded checksums, atomically. */
  truncate(id: number, newSize: number, newMaxSize: number, blocks: BlockChecksums, fromBlock: number): void {
    this.run('record the truncation', () =>
      this.db.transaction(() => {
        this.stmts.removeBlocksFrom.run(id, fromBlock);
        for (const [idx, crc] of blocks) this.stmts.putBlock.run(id, idx, crc);
        this.stmts.setSizes.run(newSize, newMaxSize, id);
      })(),
    );
  }

  blocks(id: number): Map<number, number> {
    return new Map(this.stmts.blocks.all(id).map((r) => [r.idx, r.crc]));
  }

  remove(id: number): void {
    this.run('forget the allocation', () =>
      this.db.transaction(() => {
        this.stmts.removeBlocks.run(id);
        this.stmts.removeSeq.run(id);
        this.stmts.remove.run(id);
      })(),
    );
  }

  maxId(): number {
    return this.stmts.maxId.get()?.id ?? 0;
  }

  close(): void {
    if (this.db.open) this.db.close();
    // After the database: its last connection may remove the WAL, which a held descriptor does not stop.
    void this.walOpening?.then((fh) => fh.close()).catch(() => undefined);
    this.walOpening = undefined;
    this.wal = undefined;
  }

  private params(a: AllocationRecord) {
    return {
      id: a.id,
      max_size: a.maxSize,
      size: a.size,
      reliability: a.reliability,
      expires_at_ms: a.expiresAtMs,
      read_refs: a.readRefs,
      write_refs: a.writeRefs,
      state: a.state,
      trashed_at_ms: a.trashedAtMs ?? null,
      trash_reason: a.trashReason ?? null,
    };
  }

  /**
   * Runs a change. An `essential` one (it frees space or keeps the depot consistent) that finds
   * the filesystem full gives the space reserve up and runs once more; new data (allocations,
   * writes) never does.
   */
  private run(what: string, fn: () => unknown, essential = true): void {
    try {
      if (essential) this.retryWhenFull(fn);
      else fn();
    } catch (e) {
      throw storageError(e, `metadata store: cannot ${what}`);
    }
  }

  private retryWhenFull<T>(fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (!isOutOfSpace(e) || this.reserve?.release() !== true) throw e;
      return fn();
    }
  }

  private static openDatabase(file: string, fsync: FsyncPolicy): Database.Database {
    const db = new Database(file);
    try {
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${fsync === 'safe' ? 'FULL' : 'NORMAL'}`);
      db.exec(`
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS allocations (
          id INTEGER PRIMARY KEY,
          read_digest BLOB NOT NULL, write_digest BLOB NOT NULL, manage_digest BLOB NOT NULL,
          max_size INTEGER NOT NULL, size INTEGER NOT NULL,
          reliability INTEGER NOT NULL, type INTEGER NOT NULL,
          expires_at_ms INTEGER NOT NULL,
          read_refs INTEGER NOT NULL, write_refs INTEGER NOT NULL,
          state TEXT NOT NULL, trashed_at_ms INTEGER, trash_reason TEXT
        );
        CREATE TABLE IF NOT EXISTS blocks (
          alloc_id INTEGER NOT NULL, idx INTEGER NOT NULL, crc INTEGER NOT NULL,
          PRIMARY KEY (alloc_id, idx)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS write_seq (alloc_id INTEGER PRIMARY KEY, seq INTEGER NOT NULL);
        `);
      return db;
    } catch (e) {
      db.close();
      throw e;
    }
  }
}
