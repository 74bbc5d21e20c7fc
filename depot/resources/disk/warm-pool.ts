import { unlinkSync } from 'node:fs';
import { mkdir, readdir, rename, rm, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';

/** Allocations smaller than this create their file as before (a few fresh pages cost nothing). */
export const WARM_MIN_BYTES = 1024 * 1024;
/** Size of a warm file before any allocation has asked for one. */
const DEFAULT_WARM_FILE_BYTES = 64 * 1024 * 1024;
/** Warm files are sized like recent allocations, within these limits. */
const MIN_WARM_FILE_BYTES = 4 * 1024 * 1024;
const MAX_WARM_FILE_BYTES = 256 * 1024 * 1024;
/** The warmer reads its files in chunks of this size. */
const WARM_READ_BYTES = 1024 * 1024;
/** The warmer reads this much between checks that the resource is idle. */
const WARM_STEP_BYTES = 4 * 1024 * 1024;
/** The warmer waits for this long without a read or write of the resource's data. */
const QUIET_MS = 100;
/** The pool holds what new allocations asked for in this window (at most the budget). */
const DEMAND_WINDOW_MS = 10 * 60 * 1000;

/** What a pool has done so far (status and benchmarks). */
export interface WarmPoolStats {
  /** Bytes of warm files ready now. */
  readonly readyBytes: number;
  /** Bytes warmed since start. */
  readonly warmedBytes: number;
  /** Allocation files that started from a warm file / that found none. */
  readonly taken: number;
  readonly missed: number;
}

/**
 * Warm files for a disk resource's new allocations. Writing a new file costs the kernel a fresh
 * page-cache page per 4 KiB, and on a virtual machine whose free memory goes back to the host
 * (free page reporting) each of those is a fault in the hypervisor too: a new file is written at a
 * few hundred MB/s while overwriting pages already in the cache runs at several GB/s.
 *
 * The pool keeps **sparse** files of zeros (no disk blocks) whose pages
 * it has read into the page cache beforehand, in the background: as many bytes as new allocations
 * asked for in the last ten minutes, at most `budgetBytes` (an idle depot warms nothing). A new allocation's file starts as
 * one of them (renamed into place and cut to the allocation's maximum size): its first writes land
 * on pages already there. A warm file never holds anything but zeros, so it can never show one
 * lease's bytes to another, and a hole left by a write past the end reads as zeros as in any new
 * file. The files take
 * memory the kernel may reclaim under pressure (then the allocation only writes as fast as a new
 * file); they are removed at start-up and on close.
 */
export class WarmPool {
  private readonly ready: { path: string; bytes: number }[] = [];
  private readyBytes = 0;
  private warmedBytes = 0;
  private taken = 0;
  private missed = 0;
  private nextName = 0;
  private fileBytes = DEFAULT_WARM_FILE_BYTES;
  private warming: Promise<void> | undefined;
  private closed = false;
  /** Warm files cannot be used here (see `take`). */
  private off = false;
  /** Ends the warmer's wait for an idle moment (see `quiet`). */
  private wake: (() => void) | undefined;
  /** Number of the last step asked of the warming thread (its answer names it). */
  private step = 0;
  /** Set while a warm file is being made: removed by close. */
  private making: string | undefined;
  private worker: Worker | undefined;
  private pending: { step: number; resolve: () => void; reject: (e: Error) => void } | undefined;
  /** Recent asks of new allocations (time, bytes), oldest first. */
  private readonly asks: { at: number; bytes: number }[] = [];
  private askedBytes = 0;
  /** Reads and writes in progress, and when the last one ended. */
  private active = 0;
  private lastActive = 0;

  private constructor(
    private readonly dir: string,
    readonly budgetBytes: number,
    private readonly log: Logger,
    private readonly now: () => number,
  ) {}

  /**
   * The pool of the resource whose directory is `resourceDir` (its files in `pool/`, emptied now),
   * holding at most `budgetBytes` (0: no pool). Its files are sparse under `safe` as well: files
   * written with zeros and synced ahead (so that a synced write commits no block allocation) were
   * tried and dropped; making them took the disk and the CPU the writes needed, and a depot written
   * back to back wrote 320–450 MB/s with them against 650–770 with sparse ones.
   */
  static async open(
    resourceDir: string,
    budgetBytes: number,
    log: Logger,
    options: { now?: () => number } = {},
  ): Promise<WarmPool> {
    const dir = join(resourceDir, 'pool');
    // Never in the way of start-up (a full filesystem, say): the warmer makes the directory again.
    await rm(dir, { recursive: true, force: true }).catch((e: unknown) =>
      log.warn({ err: (e as Error).message }, 'cannot empty the warm-file pool'),
    );
    if (budgetBytes > 0) await mkdir(dir, { recursive: true }).catch(() => undefined);
    return new WarmPool(dir, budgetBytes, log, options.now ?? Date.now);
  }

  /**
   * Removes warm files beyond what new allocations asked for lately (oldest first): a depot whose
   * writes have stopped gives their page cache back once the asks leave the window.
   */
  trim(): void {
    const target = this.target();
    while (this.readyBytes > target && this.ready.length > 0) {
      const f = this.ready.shift()!;
      this.readyBytes -= f.bytes;
      try {
        unlinkSync(f.path);
      } catch {
        // gone already
      }
    }
  }

  /**
   * Removes every warm file now (synchronously): the filesystem is short of room (a sparse file
   * holds no blocks, but its directory entry and inode do), or warm files are turned off.
   */
  shed(): boolean {
    let freed = false;
    for (const f of this.ready.splice(0)) {
      try {
        unlinkSync(f.path);
        freed = true;
      } catch {
        // gone already
      }
    }
    this.readyBytes = 0;
    return freed;
  }

  get stats(): WarmPoolStats {
    return { readyBytes: this.readyBytes, warmedBytes: this.warmedBytes, taken: this.taken, missed: this.missed };
  }

  /** Resolves once the pool is as full as its budget allows (or it is closed). */
  async settled(): Promise<void> {
    while (this.warming !== undefined) await this.warming;
  }

  /**
   * Puts a warm file at `target` (which must not exist) for an allocation of at most `maxSize`
   * bytes; false when there is none (or the allocation is small), and the caller creates the file.
   */
  async take(target: string, maxSize: number): Promise<boolean> {
    if (this.budgetBytes === 0 || this.off || maxSize < WARM_MIN_BYTES) return false;
    this.noteAsk(maxSize);
    // Later files are sized like this one (the next allocations are likely alike).
    this.fileBytes = Math.min(MAX_WARM_FILE_BYTES, Math.max(MIN_WARM_FILE_BYTES, roundUp(maxSize, 4096)));
    // The smallest that holds it, else the largest: taken off the list before any await.
    let pick = -1;
    for (let i = 0; i < this.ready.length; i++) {
      const f = this.ready[i]!;
      const best = pick < 0 ? undefined : this.ready[pick]!;
      const fits = f.bytes >= maxSize;
      if (best === undefined) pick = i;
      else if (fits && (best.bytes < maxSize || f.bytes < best.bytes)) pick = i;
      else if (!fits && best.bytes < maxSize && f.bytes > best.bytes) pick = i;
    }
    if (pick < 0) {
      this.missed++;
      this.refill();
      return false;
    }
    const [file] = this.ready.splice(pick, 1);
    this.readyBytes -= file!.bytes;
    try {
      await rename(file!.path, target);
      // Never longer than the allocation may grow: its space on disk stays what it was granted.
      if (file!.bytes > maxSize) await truncate(target, maxSize);
    } catch (e) {
      await rm(file!.path, { force: true }).catch(() => undefined);
      if ((e as NodeJS.ErrnoException).code === 'EXDEV') {
        // The data directory is another filesystem: a warm file can never be moved there.
        this.off = true;
        this.shed();
        this.log.warn("the data directory is not on the pool's filesystem: warm files are off");
      } else {
        this.log.warn({ err: (e as Error).message }, 'a warm file could not be used; the allocation creates its own');
      }
      this.missed++;
      this.refill();
      return false;
    }
    this.taken++;
    this.refill();
    return true;
  }

  /** Stops warming and removes the pool's files. */
  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = undefined;
    this.pending?.reject(new Error('closed'));
    this.pending = undefined;
    this.wake?.();
    await worker?.terminate();
    await this.warming?.catch(() => undefined);
    this.ready.length = 0;
    this.readyBytes = 0;
    await rm(this.dir, { recursive: true, force: true }).catch(() => undefined);
  }

  /** How many bytes the pool aims to hold now: the recent asks, at most the budget. */
  private target(): number {
    const since = this.now() - DEMAND_WINDOW_MS;
    while (this.asks.length > 0 && this.asks[0]!.at < since) this.askedBytes -= this.asks.shift()!.bytes;
    return Math.min(this.budgetBytes, this.askedBytes);
  }

  private noteAsk(bytes: number): void {
    this.asks.push({ at: this.now(), bytes: Math.min(bytes, MAX_WARM_FILE_BYTES) });
    this.askedBytes += Math.min(bytes, MAX_WARM_FILE_BYTES);
  }

  /** Starts warming files until the pool holds its target, unless already at it. */
  private refill(): void {
    if (this.warming !== undefined || this.closed || this.off || this.budgetBytes === 0) return;
    this.warming = this.warm()
      .catch((e: unknown) => {
        // Stopping the thread at close is no failure.
        if (this.closed) return;
        this.log.warn({ err: (e as Error).message }, 'warming files for new allocations failed; new files are written cold');
      })
      .finally(() => {
        this.warming = undefined;
        if (this.making !== undefined) void rm(this.making, { force: true }).catch(() => undefined);
        this.making = undefined;
      });
  }

  /**
   * Marks a read or write of the resource's data in progress until the returned function is
   * called: the warmer works only while none is and none was for {@link QUIET_MS}, so it takes
   * time from idle moments, not from the transfers it is meant to speed up.
   */
  busy(): () => void {
    this.active++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.active--;
      this.lastActive = this.now();
    };
  }

  private async warm(): Promise<void> {
    while (!this.closed) {
      const bytes = Math.min(this.fileBytes, this.budgetBytes);
      if (this.readyBytes + bytes > this.target()) return;
      const path = join(this.dir, String(this.nextName++));
      this.making = path;
      for (let at = 0; at < bytes && !this.closed; at += WARM_STEP_BYTES) {
        await this.quiet();
        if (this.closed) return;
        await this.prepare(path, at, Math.min(bytes, at + WARM_STEP_BYTES), bytes);
      }
      if (this.closed) return;
      this.making = undefined;
      this.ready.push({ path, bytes });
      this.readyBytes += bytes;
      this.warmedBytes += bytes;
    }
  }

  /** Resolves once no read or write has been in progress for {@link QUIET_MS}. */
  private async quiet(): Promise<void> {
    for (;;) {
      if (this.closed) return;
      const wait = this.active > 0 ? QUIET_MS : this.lastActive + QUIET_MS - this.now();
      if (wait <= 0) return;
      // Unref'd (an idle depot may exit), and woken by close: nothing waits on a timer that never fires.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => this.wake?.(), wait);
        timer.unref();
        this.wake = () => {
          clearTimeout(timer);
          this.wake = undefined;
          resolve();
        };
      });
    }
  }

  /**
   * Has the warming thread read `[from, to)` of warm file `path` (of `bytes` bytes; made when `from`
   * is 0).
   */
  private prepare(path: string, from: number, to: number, bytes: number): Promise<void> {
    if (this.worker === undefined) {
      const worker = new Worker(WARM_THREAD, { eval: true });
      worker.unref();
      // Each handler acts for its own thread only, and an answer only for the step it names.
      const fail = (e: Error) => {
        if (this.worker !== worker) return;
        this.worker = undefined;
        const p = this.pending;
        this.pending = undefined;
        p?.reject(e);
      };
      worker.on('message', (m: { step: number; ok: boolean; error?: string }) => {
        if (this.worker !== worker || this.pending?.step !== m.step) return;
        const p = this.pending;
        this.pending = undefined;
        if (m.ok) p.resolve();
        else p.reject(new Error(m.error ?? 'warming failed'));
      });
      worker.on('error', fail);
      worker.on('exit', () => fail(new Error('the warming thread stopped')));
      this.worker = worker;
    }
    const worker = this.worker;
    const step = ++this.step;
    return new Promise<void>((resolve, reject) => {
      this.pending = { step, resolve, reject };
      worker.postMessage({ step, path, from, to, bytes, chunk: WARM_READ_BYTES });
    });
  }
}

/**
 * The warming thread: at the lowest scheduling priority (on Linux a thread's own), so it uses only
 * CPU time nothing else wants; it makes a sparse file and reads it, a range per message, which puts
 * its pages (of zeros) in the page cache.
 */
const WARM_THREAD = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
try { require('node:os').setPriority(0, 19); } catch {}
let scratch;
parentPort.on('message', ({ step, path, from, to, bytes, chunk }) => {
  try {
    scratch ??= Buffer.allocUnsafeSlow(chunk);
    const c = fs.constants;
    let fd;
    if (from === 0) {
      fs.mkdirSync(require('node:path').dirname(path), { recursive: true });
      fd = fs.openSync(path, c.O_RDWR | c.O_CREAT | c.O_EXCL, 0o600);
      fs.ftruncateSync(fd, bytes);
    } else {
      fd = fs.openSync(path, c.O_RDONLY);
    }
    try {
      for (let at = from; at < to; ) {
        const n = fs.readSync(fd, scratch, 0, Math.min(chunk, to - at), at);
        if (n === 0) break;
        at += n;
      }
    } finally {
      fs.closeSync(fd);
    }
    parentPort.postMessage({ step, ok: true });
  } catch (e) {
    parentPort.postMessage({ step, ok: false, error: String(e && e.message) });
  }
});
`;

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/** Names of the files in a pool directory (tests). */
export async function poolFiles(resourceDir: string): Promise<string[]> {
  return readdir(join(resourceDir, 'pool')).catch(() => []);
}
