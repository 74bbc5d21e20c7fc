import { constants as fsConstants } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { FsyncPolicy } from '../options.js';

/** An alias as a disk resource records it (digests of its three keys, hex). */
export interface StoredAlias {
  readonly id: number;
  readonly masterId: number;
  readonly offset: number;
  readonly length: number;
  readonly expiresAtMs: number;
  readonly readRefs: number;
  readonly writeRefs: number;
  readonly digests: readonly [string, string, string];
}

const NAME = /^(\d+)\.json$/;

/**
 * The aliases of a disk resource, one small JSON file each in `<data dir>/aliases/`, replaced
 * atomically (written aside, fsynced, renamed, directory fsynced under `safe`), so an alias whose
 * caps were returned, or whose change was acknowledged, survives a restart.
 */
export class AliasStore {
  constructor(
    private readonly dir: string,
    private readonly fsync: FsyncPolicy,
  ) {}

  async save(a: StoredAlias): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const file = join(this.dir, `${a.id}.json`);
    const tmp = `${file}.tmp`;
    const fh = await open(tmp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_TRUNC, 0o600);
    try {
      await fh.writeFile(JSON.stringify(a));
      if (this.fsync === 'safe') await fh.datasync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
    await this.syncDir();
  }

  async remove(id: number): Promise<void> {
    await rm(join(this.dir, `${id}.json`), { force: true });
  }

  /** Every recorded alias (unreadable or half-written files are skipped and removed). */
  async loadAll(): Promise<StoredAlias[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    const out: StoredAlias[] = [];
    for (const name of names) {
      const path = join(this.dir, name);
      if (!NAME.test(name)) {
        await rm(path, { force: true });
        continue;
      }
      try {
        const a = JSON.parse(await readFile(path, 'utf8')) as StoredAlias;
        if (!Number.isSafeInteger(a.id) || !Array.isArray(a.digests) || a.digests.length !== 3) throw new Error('malformed');
        out.push(a);
      } catch {
        await rm(path, { force: true });
      }
    }
    return out;
  }

  private async syncDir(): Promise<void> {
    if (this.fsync !== 'safe') return;
    const fh = await open(this.dir, fsConstants.O_RDONLY);
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }
}
