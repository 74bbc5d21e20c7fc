import { existsSync } from 'node:fs';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { MessageChannel, type Transferable } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { DepotError, DepotErrorCode } from '../errors.js';
import { Status } from '../../ibp/index.js';
import type { NfuOptions } from '../options.js';
import { NfuMemoryBudget, defaultNfuMemoryBudgetMb } from './memory-budget.js';
import { kernelBackendFor } from './native-loader.js';
import { runNfuTask, type NfuTask, type NfuTaskResult, type NfuWorkerData, type NfuWrote } from './nfu-worker.js';
import { SharedBufferPool } from './shared-pool.js';
import { sliceSource } from './input-source.js';
import { bytesPer, type Attrs, type KernelBackend, type KernelConfig } from '../../nfu-kernels/index.js';

/** Elements of a `sum` split's parts added between two turns of the event loop (1 MiB). */
const SUM_SLICE = 128 * 1024;

/** Ops on fewer rows run in one piece (splitting costs more than it saves). */
export const MIN_SPLIT_ROWS = 8192;

/**
 * True for an error after which a worker may still be running the op (deadline or queue abort):
 * the op's buffers must not be reused.
 */
export function workerMayRun(e: unknown): boolean {
  return e instanceof DepotError && e.details['workerMayRun'] === true;
}

/** An op's output in a pooled buffer: use it, then `release()` it (once). */
export interface PooledOutput {
  readonly output: Uint8Array;
  release(): void;
}

/**
 * The worker file. Compiled, it sits beside this module; when the depot runs from TypeScript
 * sources (tests), the compiled copy under dist/ is used (`npm test` builds it first).
 */
function workerFile(): string {
  const sibling = new URL('./nfu-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(sibling))) return fileURLToPath(sibling);
  return fileURLToPath(new URL('../../dist/depot/nfu/nfu-worker.js', import.meta.url));
}

/**
 * Runs NFU kernels off the event loop in a bounded worker pool: at most `workers` ops at once and
 * `maxQueue` waiting (beyond: `-66 <retry>`), a wall-clock deadline per op (its worker is
 * terminated: -46), and a heap limit per worker. With `workers = 0` ops run inline (tests only).
 */
export class NfuExecutor {
  private readonly pool: Piscina | undefined;
  private running = 0;
  /** Reused shared buffers for op inputs (filled by the service) and outputs. */
  readonly buffers: SharedBufferPool;
  private readonly queueTimeoutMs: number;
  /** The bytes admitted ops may hold at once (`nfu.memoryBudgetMb`). */
  readonly budget: NfuMemoryBudget;
  /** The backend of inline ops (workers = 0), made on the first one. */
  private inlineBackend: KernelBackend | undefined;

  constructor(
    private readonly options: Pick<NfuOptions, 'workers' | 'maxQueue' | 'timeoutMs' | 'memoryMb'> &
      Partial<Pick<NfuOptions, 'native' | 'bufferPoolMb' | 'queueTimeoutMs' | 'memoryBudgetMb'>>,
    private readonly retrySec: number,
  ) {
    this.buffers = new SharedBufferPool((options.bufferPoolMb ?? 512) * 1024 * 1024);
    this.queueTimeoutMs = options.queueTimeoutMs ?? 60_000;
    this.budget = new NfuMemoryBudget((options.memoryBudgetMb ?? defaultNfuMemoryBudgetMb()) * 1024 * 1024, retrySec);
    if (options.workers > 0) {
      this.pool = new Piscina({
        filename: workerFile(),
        minThreads: 0,
        maxThreads: options.workers,
        maxQueue: options.maxQueue,
        idleTimeout: 30_000,
        resourceLimits: { maxOldGenerationSizeMb: options.memoryMb },
        workerData: {
          native: options.native ?? true,
          keepInputBytes: Math.floor(((options.bufferPoolMb ?? 512) * 1024 * 1024) / options.workers),
        } satisfies NfuWorkerData,
      });
    }
  }

  /**
   * The bytes a built-in op holds while it runs, for admission against {@link budget}: its input
   * buffers (pooled copies, or the buffers its workers gather memory inputs into) and output (a `sum` split keeps one output per part), and the scratch of every
   * part running at once.
   */
  estimateBytes(kernel: KernelConfig, attrs: Attrs | undefined, inputLengths: readonly number[]): number {
    const total = kernel.outputBytes(attrs, inputLengths);
    const parts = this.splitParts(kernel, attrs, total);
    const inputs = inputLengths.reduce((s, n) => s + SharedBufferPool.sizeClass(n), 0);
    const outputs = SharedBufferPool.sizeClass(kernel.rowSplit === 'sum' ? parts * total : total);
    return inputs + outputs + Math.min(parts, Math.max(1, this.options.workers)) * kernel.workBytes(attrs);
  }

  /** Parts a built-in op is split into (1: not split). */
  private splitParts(kernel: KernelConfig, attrs: Attrs | undefined, total: number): number {
    const parts = this.options.workers;
    const split =
      kernel.rowSplit !== undefined &&
      attrs !== undefined &&
      parts >= 2 &&
      attrs.rows >= MIN_SPLIT_ROWS &&
      (kernel.rowSplit === 'sum' ? total % 8 === 0 : total % attrs.rows === 0);
    if (!split) return 1;
    return Math.ceil(attrs.rows / Math.ceil(attrs.rows / parts));
  }

  /**
   * Runs an op and returns a copy of its output (tests, benchmarks); the depot uses
   * {@link runPooled}, which saves the copy.
   */
  async run(task: NfuTask, kernel?: KernelConfig, attrs?: Attrs): Promise<Uint8Array> {
    const r = await this.runPooled(task, kernel, attrs);
    const copy = r.output.slice();
    r.release();
    return copy;
  }

  /**
   * Runs an op. A built-in kernel writes its output straight into a pooled shared buffer (no
   * fresh pages, no copy back from the worker); call `release()` once the output has been used.
   * A large op whose kernel splits by rows is cut into one row range per worker and the parts run
   * in parallel: `concat` parts write their rows of the one output, `sum` parts their own copies,
   * which are then added in part order. The split is a function of the row count and the worker
   * count only, so results are reproducible for a given depot configuration.
   */
  async runPooled(task: NfuTask, kernel?: KernelConfig, attrs?: Attrs): Promise<PooledOutput> {
    if (kernel === undefined) {
      const output = await this.runOne(task);
      return { output, release: () => {} };
    }
    const total = kernel.outputBytes(
      attrs,
      task.inputs.map((b, i) => task.sources?.[i]?.length ?? b.length),
    );
    const parts = this.options.workers;
    if (attrs === undefined || this.splitParts(kernel, attrs, total) === 1) {
      const out = this.buffers.take(total);
      return this.guard(out, async () => {
        const got = await this.runOne({ ...task, out });
        return got.length === total ? out : out.subarray(0, got.length);
      });
    }
    const widths = kernel.inputRowElements!(attrs);
    const bytes = bytesPer(attrs.dtype);
    const per = Math.ceil(attrs.rows / parts);
    const count = Math.ceil(attrs.rows / per);
    const sum = kernel.rowSplit === 'sum';
    const base = this.buffers.take(sum ? count * total : total);
    const perRow = sum ? 0 : total / attrs.rows;
    return this.guard(base, async () => {
      const jobs: Array<Promise<Uint8Array>> = [];
      for (let p = 0, r0 = 0; r0 < attrs.rows; p++, r0 += per) {
        const n = Math.min(per, attrs.rows - r0);
        // The parsed attributes with the part's rows: parsed once, cloned to the worker as they are.
        const partAttrs: Attrs = { ...attrs, rows: n, rowOffset: attrs.rowOffset + r0 };
        // Views, not copies: on shared memory the workers read the same bytes; otherwise each part is copied.
        const range = (i: number): [number, number] => [r0 * widths[i]! * bytes, (r0 + n) * widths[i]! * bytes];
        const inputs = task.inputs.map((b, i) => {
          if (task.sources?.[i] !== undefined) return b; // a placeholder: the part gathers its rows
          const [from, to] = range(i);
          return b.buffer instanceof SharedArrayBuffer ? b.subarray(from, to) : b.slice(from, to);
        });
        // An input read in place: each part gathers its own rows (in parallel, off the event loop).
        const sources = task.sources?.map((s, i) => (s === undefined ? undefined : sliceSource(s, ...range(i))));
        const out = sum ? base.subarray(p * total, (p + 1) * total) : base.subarray(r0 * perRow, (r0 + n) * perRow);
        jobs.push(this.runOne({ opcode: task.opcode, attrs: partAttrs, inputs, sources, out }));
      }
      // Every part settles before the buffer can go back to the pool, even when one fails; a part
      // whose worker may still run wins, so the buffers are kept out of the pool.
      const settled = await Promise.allSettled(jobs);
      const failures = settled.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason);
      if (failures.length > 0) throw failures.find(workerMayRun) ?? failures[0];
      if (!sum) return base;
      // Added on the event loop, in slices with a turn of the loop between them (a large output,
      // e.g. a Gram matrix of 4096 columns, is 128 MiB per part); each element still adds the
      // parts in part order, so the bits do not depend on the slicing.
      const acc = new Float64Array(base.buffer, base.byteOffset, total / 8);
      const parts = Array.from(
        { length: count - 1 },
        (_, p) => new Float64Array(base.buffer, base.byteOffset + (p + 1) * total, total / 8),
      );
      for (let from = 0; from < acc.length; from += SUM_SLICE) {
        if (from > 0) await yieldToLoop();
        const to = Math.min(acc.length, from + SUM_SLICE);
        for (const v of parts) for (let i = from; i < to; i++) acc[i]! += v[i]!;
      }
      return base.subarray(0, total);
    });
  }

  /**
   * Runs `body` on a pooled buffer: on success the caller releases it; on failure it goes back at
   * once — unless an op was aborted while a worker may still be writing to it.
   */
  private async guard(buffer: Uint8Array, body: () => Promise<Uint8Array>): Promise<PooledOutput> {
    try {
      const output = await body();
      let released = false;
      return {
        output,
        release: () => {
          if (!released) this.buffers.give(buffer);
          released = true;
        },
      };
    } catch (e) {
      if (!workerMayRun(e)) this.buffers.give(buffer);
      throw e;
    }
  }

  /** Ops admitted by {@link admit} and not yet finished (reading inputs, queued, running, writing). */
  private admitted = 0;

  /**
   * Admits an op of about `bytes` (see {@link estimateBytes}) before its inputs are read: refuses
   * with `-66 <retry>` when `workers + maxQueue` ops are admitted already or the memory budget has
   * no room for it (`-19` when it exceeds the whole budget). Call the returned release (once is
   * enough) when the op's buffers are given up.
   */
  admit(bytes: number, what: string): () => void {
    if (this.pool !== undefined && this.admitted >= this.options.workers + this.options.maxQueue) {
      throw new DepotError(
        DepotErrorCode.OVERLOADED,
        `NFU is full (${this.options.workers} running, ${this.options.maxQueue} waiting)`,
        { details: { retryAfterSec: this.retrySec } },
      );
    }
    this.assertCapacity();
    const release = this.budget.reserve(bytes, what);
    this.admitted++;
    let done = false;
    return () => {
      if (!done) {
        this.admitted--;
        release();
      }
      done = true;
    };
  }

  /** Throws `-66 <retry>` when every worker is busy and the queue is full. */
  assertCapacity(): void {
    if (this.pool !== undefined && this.pool.queueSize >= this.options.maxQueue && this.running >= this.options.workers) {
      throw new DepotError(DepotErrorCode.OVERLOADED, `NFU queue is full (${this.options.maxQueue} waiting)`, {
        details: { retryAfterSec: this.retrySec },
      });
    }
  }

  private async runOne(task: NfuTask): Promise<Uint8Array> {
    let result: NfuTaskResult;
    if (this.pool === undefined) {
      // Inline (tests): on the event loop, with the native kernels unless nfu.native is false.
      this.inlineBackend ??= kernelBackendFor(this.options.native !== false, 1).backend;
      result = runNfuTask(task, this.inlineBackend);
    } else {
      this.assertCapacity();
      // The deadline runs from the moment a worker starts the op (it says so on `started`), so
      // neither the queue nor the start of a fresh worker eats into the op's time.
      const abort = new AbortController();
      const signal = abort.signal;
      const { port1: startedRx, port2: started } = new MessageChannel();
      let deadline: NodeJS.Timeout | undefined;
      let queuedOut = false;
      // An op that no worker starts within queueTimeoutMs is withdrawn (-66, retry later).
      const queueTimer = setTimeout(() => {
        queuedOut = true;
        abort.abort();
      }, this.queueTimeoutMs);
      startedRx.once('message', () => {
        clearTimeout(queueTimer);
        deadline = setTimeout(() => abort.abort(), this.options.timeoutMs);
        startedRx.close();
      });
      // Shared inputs are seen by the worker as they are; others are moved (their owner gives them
      // up), each buffer once. Placeholders of inputs read in place (no bytes) stay.
      const transfer: Transferable[] = [
        ...new Set(
          task.inputs
            .filter((b) => b.byteLength > 0 && !(b.buffer instanceof SharedArrayBuffer))
            .map((b) => b.buffer as ArrayBuffer),
        ),
      ];
      transfer.push(started);
      this.running++;
      try {
        const r = (await this.pool.run({ ...task, started }, { signal, transferList: transfer as never })) as
          Uint8Array | NfuTaskResult | NfuWrote;
        result =
          r instanceof Uint8Array
            ? { ok: true, output: r }
            : 'wrote' in r
              ? { ok: true, output: task.out!.subarray(0, r.wrote) }
              : r;
      } catch (e) {
        // After an abort a worker may still be inside the op (native code returns to JS, where the
        // termination lands, only at the end of a call): its buffers must not be reused.
        if (signal.aborted && queuedOut) {
          throw new DepotError(DepotErrorCode.OVERLOADED, `no NFU worker was free within ${this.queueTimeoutMs} ms`, {
            cause: e,
            details: { retryAfterSec: this.retrySec, workerMayRun: true },
          });
        }
        if (signal.aborted) {
          throw new DepotError(
            DepotErrorCode.NFU_TIMEOUT,
            `the op ran past its ${this.options.timeoutMs} ms deadline and was stopped`,
            { cause: e, details: { workerMayRun: true } },
          );
        }
        if (/queue is at limit/i.test((e as Error).message)) {
          throw new DepotError(DepotErrorCode.OVERLOADED, 'NFU queue is full', { details: { retryAfterSec: this.retrySec } });
        }
        throw new DepotError(DepotErrorCode.NFU_FAILED, `the op failed: ${(e as Error).message}`, {
          cause: e,
          status: Status.INTERNAL,
        });
      } finally {
        clearTimeout(queueTimer);
        clearTimeout(deadline);
        startedRx.close();
        this.running--;
      }
    }
    if (!result.ok) {
      throw new DepotError(DepotErrorCode.INVALID_PARAMETER, result.message, { details: { kernelCode: result.code } });
    }
    return result.output;
  }

  async close(): Promise<void> {
    await this.pool?.destroy();
  }
}
