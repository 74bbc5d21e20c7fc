import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MessageChannel, type Transferable } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { DepotError, DepotErrorCode } from '../errors.js';
import { Status } from '../protocol/commands.js';
import type { NfuOptions } from '../options.js';
import { runNfuTask, type NfuTask, type NfuTaskResult } from './nfu-worker.js';
import { bytesPer, encodeAttrs, type Attrs, type KernelConfig } from '../../nfu-kernels/index.js';

/** Ops on fewer rows run in one piece (splitting costs more than it saves). */
export const MIN_SPLIT_ROWS = 8192;

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

  constructor(
    private readonly options: Pick<NfuOptions, 'workers' | 'maxQueue' | 'timeoutMs' | 'memoryMb'>,
    private readonly retrySec: number,
  ) {
    if (options.workers > 0) {
      this.pool = new Piscina({
        filename: workerFile(),
        minThreads: 0,
        maxThreads: options.workers,
        maxQueue: options.maxQueue,
        idleTimeout: 30_000,
        resourceLimits: { maxOldGenerationSizeMb: options.memoryMb },
      });
    }
  }

  /**
   * Runs an op; a large op whose kernel splits by rows is cut into one row range per worker, the
   * parts run in parallel and their outputs are joined (concatenated or summed). The split is a
   * function of the row count and the worker count only, so results are reproducible for a given
   * depot configuration.
   */
  async run(task: NfuTask, kernel?: KernelConfig, attrs?: Attrs): Promise<Uint8Array> {
    const parts = this.options.workers;
    if (kernel?.rowSplit === undefined || attrs === undefined || parts < 2 || attrs.rows < MIN_SPLIT_ROWS)
      return this.runOne(task);
    const widths = kernel.inputRowElements!(attrs);
    const bytes = bytesPer(attrs.dtype);
    const per = Math.ceil(attrs.rows / parts);
    const jobs: Array<Promise<Uint8Array>> = [];
    for (let r0 = 0; r0 < attrs.rows; r0 += per) {
      const n = Math.min(per, attrs.rows - r0);
      const partAttrs = encodeAttrs({ ...attrs, rows: n, rowOffset: attrs.rowOffset + r0 });
      // Views, not copies: on shared memory the workers read the same bytes; otherwise each part is copied.
      const inputs = task.inputs.map((b, i) => {
        const from = r0 * widths[i]! * bytes;
        const to = (r0 + n) * widths[i]! * bytes;
        return b.buffer instanceof SharedArrayBuffer ? b.subarray(from, to) : b.slice(from, to);
      });
      jobs.push(this.runOne({ opcode: task.opcode, attrs: partAttrs, inputs }));
    }
    const outs = await Promise.all(jobs);
    if (kernel.rowSplit === 'concat') {
      const joined = new Uint8Array(outs.reduce((s, o) => s + o.length, 0));
      let at = 0;
      for (const o of outs) {
        joined.set(o, at);
        at += o.length;
      }
      return joined;
    }
    const sum = new Float64Array(new Uint8Array(outs[0]!).buffer);
    for (const o of outs.slice(1)) {
      const v = new Float64Array(new Uint8Array(o).buffer);
      for (let i = 0; i < sum.length; i++) sum[i]! += v[i]!;
    }
    return new Uint8Array(sum.buffer);
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
      result = runNfuTask(task);
    } else {
      this.assertCapacity();
      // The deadline runs from the moment a worker starts the op (it says so on `started`), so
      // neither the queue nor the start of a fresh worker eats into the op's time.
      const abort = new AbortController();
      const signal = abort.signal;
      const { port1: startedRx, port2: started } = new MessageChannel();
      let deadline: NodeJS.Timeout | undefined;
      startedRx.once('message', () => {
        deadline = setTimeout(() => abort.abort(), this.options.timeoutMs);
        startedRx.close();
      });
      // Shared inputs are seen by the worker as they are; others are moved (their owner gives them up).
      const transfer: Transferable[] = task.inputs
        .filter((b) => !(b.buffer instanceof SharedArrayBuffer))
        .map((b) => b.buffer as ArrayBuffer);
      transfer.push(started);
      this.running++;
      try {
        const r = (await this.pool.run({ ...task, started }, { signal, transferList: transfer as never })) as
          Uint8Array | NfuTaskResult;
        result = r instanceof Uint8Array ? { ok: true, output: r } : r;
      } catch (e) {
        if (signal.aborted) {
          throw new DepotError(
            DepotErrorCode.NFU_TIMEOUT,
            `the op ran past its ${this.options.timeoutMs} ms deadline and was stopped`,
            {
              cause: e,
            },
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
