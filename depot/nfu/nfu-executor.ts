import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { DepotError, DepotErrorCode } from '../errors.js';
import { Status } from '../protocol/commands.js';
import type { NfuOptions } from '../options.js';
import { runNfuTask, type NfuTask, type NfuTaskResult } from './nfu-worker.js';

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
    private readonly options: NfuOptions,
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

  async run(task: NfuTask): Promise<Uint8Array> {
    let result: NfuTaskResult;
    if (this.pool === undefined) {
      result = runNfuTask(task);
    } else {
      if (this.pool.queueSize >= this.options.maxQueue && this.running >= this.options.workers) {
        throw new DepotError(DepotErrorCode.OVERLOADED, `NFU queue is full (${this.options.maxQueue} waiting)`, {
          details: { retryAfterSec: this.retrySec },
        });
      }
      const signal = AbortSignal.timeout(this.options.timeoutMs);
      const transfer = task.inputs.map((b) => b.buffer as ArrayBuffer);
      this.running++;
      try {
        const r = (await this.pool.run(task, { signal, transferList: transfer })) as Uint8Array | NfuTaskResult;
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
