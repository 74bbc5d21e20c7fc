import { existsSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { MetadataDb } from '../../depot/resources/disk/metadata-db.js';
import { tempDir } from '../helpers/temp-dir.js';

it('metadata store: a WAL that cannot be opened fails that sync only; the next one opens it again', async () => {
  const dir = tempDir();
  const file = join(dir.path, 'meta.db');
  const db = new MetadataDb(file, '1', 'safe');
  try {
    expect(existsSync(`${file}-wal`)).toBe(true);
    renameSync(`${file}-wal`, `${file}-wal.away`);
    await expect(db.syncWal()).rejects.toMatchObject({ message: expect.stringMatching(/cannot make the writes durable/) });
    renameSync(`${file}-wal.away`, `${file}-wal`);
    await expect(db.syncWal()).resolves.toBeUndefined();
    await expect(db.syncWal()).resolves.toBeUndefined();
  } finally {
    db.close();
    dir.cleanup();
  }
});
