import { closeSync, fdatasyncSync, openSync, statSync, statfsSync, truncateSync, writeSync } from 'node:fs';

const MIN_RESERVE_BYTES = 64 * 1024;
const MAX_RESERVE_BYTES = 4 * 1024 * 1024;
const ZEROS = Buffer.alloc(64 * 1024);

/**
 * Room kept back on a disk resource's filesystem for the metadata store, so a full filesystem is
 * not a dead end: a file of zeros (1/64 of the filesystem, 64 KiB to 4 MiB) that the resource
 * gives up when the metadata store finds no room for a change that frees space or keeps the depot
 * consistent (deleting, recording damage, opening at start-up). While the reserve is not whole the
 * resource refuses new data (`-23`), and after every purge it takes the freed room back first.
 */
export class SpaceReserve {
  private held: number;
  /** Frees room elsewhere (synchronously) when the reserve cannot be made whole; true if it did. */
  onShort: (() => boolean) | undefined;

  private constructor(
    readonly file: string,
    readonly target: number,
  ) {
    this.held = statSync(file, { throwIfNoEntry: false })?.size ?? 0;
  }

  /** The reserve of the filesystem holding `dir`, kept in `file`. */
  static open(dir: string, file: string): SpaceReserve {
    let target = MIN_RESERVE_BYTES;
    try {
      const fs = statfsSync(dir);
      target = Math.floor((fs.blocks * fs.bsize) / 64 / 4096) * 4096;
    } catch {
      // no figures: the minimum
    }
    return new SpaceReserve(file, Math.min(MAX_RESERVE_BYTES, Math.max(MIN_RESERVE_BYTES, target)));
  }

  /** Whether the reserve is whole (the filesystem had room for it). */
  get whole(): boolean {
    return this.held >= this.target;
  }

  /**
   * Makes the reserve whole if the filesystem has room; true when it is. Synchronous, so no
   * other change interleaves; it writes only when the reserve was given up.
   */
  ensure(): boolean {
    if (this.whole) return true;
    if (this.fill()) return true;
    return this.onShort?.() === true && this.fill();
  }

  private fill(): boolean {
    let fd: number | undefined;
    try {
      fd = openSync(this.file, 'a', 0o600);
      while (this.held < this.target) {
        this.held += writeSync(fd, ZEROS, 0, Math.min(ZEROS.length, this.target - this.held));
      }
      fdatasyncSync(fd);
      return true;
    } catch {
      return false; // ENOSPC (or worse): what was written stays held
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }

  /** Gives the reserve up; true if that freed any room. */
  release(): boolean {
    if (this.held === 0) return false;
    try {
      truncateSync(this.file, 0);
    } catch {
      return false;
    }
    this.held = 0;
    return true;
  }
}

/** Whether `e` says the filesystem is out of room (SQLite's I/O errors included: they may be). */
export function isOutOfSpace(e: unknown): boolean {
  const code = (e as { code?: unknown }).code;
  return (
    code === 'ENOSPC' ||
    code === 'EDQUOT' ||
    code === 'SQLITE_FULL' ||
    (typeof code === 'string' && code.startsWith('SQLITE_IOERR'))
  );
}
