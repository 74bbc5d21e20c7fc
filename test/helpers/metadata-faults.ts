import { vi } from 'vitest';
import { MetadataDb } from '../../depot/resources/disk/metadata-db.js';

/** Fails the next `n` WAL syncs of the metadata store (the group commit's, under `safe`). */
export function failWalSyncs(n: number): void {
  const real = MetadataDb.prototype.syncWal;
  vi.spyOn(MetadataDb.prototype, 'syncWal').mockImplementation(async function (this: MetadataDb) {
    if (n > 0) {
      n--;
      throw new Error('EIO (injected WAL sync fault)');
    }
    return real.call(this);
  });
}

/** Fails the next `n` checksum updates of the metadata store (where a refused write's undo is recorded). */
export function failSetBlocks(n: number): void {
  const real = MetadataDb.prototype.setBlocks;
  vi.spyOn(MetadataDb.prototype, 'setBlocks').mockImplementation(function (
    this: MetadataDb,
    ...args: Parameters<MetadataDb['setBlocks']>
  ) {
    if (n > 0) {
      n--;
      throw new Error('EIO (injected metadata fault)');
    }
    return real.apply(this, args);
  });
}
