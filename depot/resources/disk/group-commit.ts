/**
 * Group commit of the writes of one disk resource under the `safe` policy. Each write has its data
 * fsynced by its own writer; what it still needs before it is acknowledged is its metadata (new
 * size, block checksums) durable. Writes that finish while the metadata of earlier ones is being
 * synced wait for that sync and then share the next: one metadata transaction and one fsync for
 * all of them, instead of one synchronous fsync each on the event loop.
 */

/** What a group commit runs: the changes in one transaction, then a sync that makes them durable. */
export interface GroupCommitStore {
  /**
   * Applies every change in one transaction; a change that throws is undone alone (the others
   * still commit). Returns each change's failure (undefined: applied), in order.
   */
  transact(changes: readonly (() => void)[]): (unknown | undefined)[];
  /** Makes every transaction committed so far durable. */
  sync(): Promise<void>;
}

/** How many commits and syncs a group commit has made (for tests and the bench). */
export interface GroupCommitStats {
  /** Changes submitted and made durable. */
  readonly committed: number;
  /** Transactions (and syncs) run: one per group. */
  readonly groups: number;
}

interface Pending {
  readonly change: () => void;
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
}

export class GroupCommit {
  private queue: Pending[] = [];
  private running = false;
  private committed = 0;
  private groups = 0;

  constructor(private readonly store: GroupCommitStore) {}

  get stats(): GroupCommitStats {
    return { committed: this.committed, groups: this.groups };
  }

  /**
   * Resolves once `change` is committed and durable; rejects with its own failure, or with the
   * sync's (the change was applied but may not survive a crash: the caller undoes it).
   */
  submit(change: () => void): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ change, resolve, reject });
      if (!this.running) {
        this.running = true;
        // Started once the current turn is over, so that writes finishing together share it.
        setImmediate(() => void this.drain());
      }
    });
  }

  /** Commits groups until nothing waits: each takes every change submitted meanwhile. */
  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const group = this.queue.splice(0);
        let failures: (unknown | undefined)[];
        try {
          failures = this.store.transact(group.map((p) => p.change));
        } catch (e) {
          for (const p of group) p.reject(e);
          continue;
        }
        this.groups++;
        const applied = group.filter((p, i) => {
          if (failures[i] === undefined) return true;
          p.reject(failures[i]);
          return false;
        });
        if (applied.length === 0) continue;
        try {
          await this.store.sync();
        } catch (e) {
          for (const p of applied) p.reject(e);
          continue;
        }
        this.committed += applied.length;
        for (const p of applied) p.resolve();
      }
    } finally {
      this.running = false;
    }
  }
}
