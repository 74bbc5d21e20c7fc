import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { GroupCommit, type GroupCommitStore } from '../../depot/resources/disk/group-commit.js';
import { MetadataDb } from '../../depot/resources/disk/metadata-db.js';
import { tempDir } from '../helpers/temp-dir.js';

/** A store whose syncs finish when the test says so; records each transaction's size. */
function controlledStore(fail: (i: number) => unknown = () => undefined) {
  const transactions: number[] = [];
  const syncs: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  let applied = 0;
  const store: GroupCommitStore = {
    transact: (changes) => {
      transactions.push(changes.length);
      return changes.map((c) => {
        const failure = fail(applied++);
        if (failure !== undefined) return failure;
        c();
        return undefined;
      });
    },
    sync: () => new Promise<void>((resolve, reject) => syncs.push({ resolve, reject })),
  };
  return { store, transactions, syncs };
}

/** Lets pending callbacks (setImmediate, promise reactions) run, a bounded number of turns. */
async function settle(turns = 5): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((r) => setImmediate(r));
}

describe('group commit', () => {
  it('writes that finish during a sync share the next transaction and sync; each is acknowledged only after its sync', async () => {
    const { store, transactions, syncs } = controlledStore();
    const group = new GroupCommit(store);
    const done: string[] = [];
    const applied: string[] = [];
    const submit = (name: string) => group.submit(() => void applied.push(name)).then(() => void done.push(name));
    const first = submit('a');
    await settle();
    expect(transactions).toEqual([1]);
    expect(syncs).toHaveLength(1);
    const rest = ['b', 'c', 'd'].map(submit);
    await settle();
    // Still one sync outstanding: nothing acknowledged, the followers wait for it.
    expect(done).toEqual([]);
    expect(transactions).toEqual([1]);
    syncs[0]!.resolve();
    await first;
    await settle();
    expect(done).toEqual(['a']);
    expect(transactions).toEqual([1, 3]);
    expect(syncs).toHaveLength(2);
    expect(applied).toEqual(['a', 'b', 'c', 'd']);
    syncs[1]!.resolve();
    await Promise.all(rest);
    expect(done).toEqual(['a', 'b', 'c', 'd']);
    expect(group.stats).toEqual({ committed: 4, groups: 2 });
  });

  it('writes submitted in the same turn go in one transaction', async () => {
    const { store, transactions, syncs } = controlledStore();
    const group = new GroupCommit(store);
    const all = Array.from({ length: 5 }, () => group.submit(() => undefined));
    await settle();
    expect(transactions).toEqual([5]);
    syncs[0]!.resolve();
    await Promise.all(all);
    expect(group.stats).toEqual({ committed: 5, groups: 1 });
  });

  it('a change that fails is refused alone; the others of its group are committed', async () => {
    const boom = new Error('constraint');
    const { store, syncs } = controlledStore((i) => (i === 1 ? boom : undefined));
    const group = new GroupCommit(store);
    const results = Array.from({ length: 3 }, () =>
      group
        .submit(() => undefined)
        .then(
          () => 'ok',
          (e: unknown) => e,
        ),
    );
    await settle();
    syncs[0]!.resolve();
    expect(await Promise.all(results)).toEqual(['ok', boom, 'ok']);
  });

  it('a failed sync refuses every change of its group, and the next group still runs', async () => {
    const { store, syncs, transactions } = controlledStore();
    const group = new GroupCommit(store);
    const firstTwo = [group.submit(() => undefined), group.submit(() => undefined)].map((p) =>
      p.then(
        () => 'ok',
        (e: unknown) => e,
      ),
    );
    await settle();
    const eio = new Error('EIO');
    syncs[0]!.reject(eio);
    expect(await Promise.all(firstTwo)).toEqual([eio, eio]);
    const later = group.submit(() => undefined);
    await settle();
    expect(transactions).toEqual([2, 1]);
    syncs[1]!.resolve();
    await expect(later).resolves.toBeUndefined();
    expect(group.stats).toEqual({ committed: 1, groups: 2 });
  });
});

describe('metadata store: grouped write commits', () => {
  const cleanups: (() => void)[] = [];
  afterEach(() => {
    for (const c of cleanups.splice(0).reverse()) c();
  });

  function record(id: number) {
    return {
      id,
      rid: '1',
      maxSize: 1 << 20,
      size: 0,
      reliability: 0,
      type: 0,
      expiresAtMs: 1e13,
      readRefs: 1,
      writeRefs: 1,
      state: 'ok' as const,
      trashedAtMs: undefined,
      trashReason: undefined,
      digests: { 1: Buffer.alloc(32, 1), 2: Buffer.alloc(32, 2), 3: Buffer.alloc(32, 3) },
    };
  }

  it('commits the group in one transaction, undoes a failing commit alone, syncs the WAL, and keeps `safe` commits synchronous', async () => {
    const dir = tempDir();
    cleanups.push(dir.cleanup);
    const file = join(dir.path, 'meta.sqlite');
    const db = new MetadataDb(file, '1', 'safe');
    for (const id of [1, 2, 3]) db.insert(record(id));
    const failures = db.commitWrites([
      () => db.commitWrite(1, 100, new Map([[0, 11]])),
      () => {
        db.commitWrite(2, 200, new Map([[0, 22]]));
        throw new Error('refused after its statements ran');
      },
      () => db.commitWrite(3, 300, new Map([[0, 33]])),
    ]);
    expect(failures.map((f) => f === undefined)).toEqual([true, false, true]);
    await db.syncWal();
    db.setBlocks(3, new Map(), undefined, undefined, 0);
    db.close();

    const raw = new Database(file, { readonly: true });
    cleanups.push(() => raw.close());
    const sizes = raw.prepare<[], { id: number; size: number }>('SELECT id, size FROM allocations ORDER BY id').all();
    expect(sizes).toEqual([
      { id: 1, size: 100 },
      { id: 2, size: 0 },
      { id: 3, size: 0 },
    ]);
    const crcs = raw.prepare<[], { alloc_id: number; crc: number }>('SELECT alloc_id, crc FROM blocks ORDER BY alloc_id').all();
    expect(crcs).toEqual([
      { alloc_id: 1, crc: 11 },
      { alloc_id: 3, crc: 33 },
    ]);
  });

  it('puts `synchronous` back to FULL after a group under `safe` (other changes stay durable at commit)', () => {
    const dir = tempDir();
    cleanups.push(dir.cleanup);
    const file = join(dir.path, 'meta.sqlite');
    const db = new MetadataDb(file, '1', 'safe');
    db.insert(record(1));
    db.commitWrites([() => db.commitWrite(1, 10, undefined)]);
    const level = (db as unknown as { db: Database.Database }).db.pragma('synchronous', { simple: true });
    db.close();
    expect(level).toBe(2); // FULL
  });
});
