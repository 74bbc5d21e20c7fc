import { FrameworkError, FrameworkErrorCode } from './errors.js';

/** A unit of work; `signal` aborts when the queue or the task's own signal does. */
export type Task<T> = (signal: AbortSignal) => Promise<T> | T;

export interface WorkQueueOptions {
  /** Tasks running at once (≥ 1). */
  readonly concurrency: number;
  /** Tasks waiting for a slot at most (default unbounded); past it `run` refuses with `FW_ERR_QUEUE_FULL`. */
  readonly maxQueued?: number;
  /** Aborts the whole queue, as {@link WorkQueue.abort} does. */
  readonly signal?: AbortSignal;
}

export interface TaskOptions {
  /** Aborts this task: dropped while it waits (the run rejects with the reason), signalled once it runs. */
  readonly signal?: AbortSignal;
}

interface Waiting {
  readonly start: () => void;
  readonly fail: (reason: unknown) => void;
}

function argError(message: string): FrameworkError {
  return new FrameworkError(FrameworkErrorCode.INVALID_ARGUMENT, message);
}

/**
 * A bounded work queue: at most `concurrency` tasks run at once, at most `maxQueued` wait (first in,
 * first out), and every task gets an `AbortSignal`. Aborting the queue rejects the waiting tasks with
 * the reason, signals the running ones and refuses new ones; a running task decides itself how soon
 * it stops. A task's failure is its own: the queue goes on with the next.
 */
export class WorkQueue {
  readonly #concurrency: number;
  readonly #maxQueued: number;
  readonly #controller = new AbortController();
  readonly #waiting: Waiting[] = [];
  #running = 0;
  #idle: Array<() => void> = [];

  constructor(options: WorkQueueOptions) {
    const { concurrency, maxQueued = Infinity } = options;
    if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
      throw argError(`\`concurrency\` must be a positive integer (got ${concurrency})`);
    }
    if (maxQueued !== Infinity && (!Number.isSafeInteger(maxQueued) || maxQueued < 0)) {
      throw argError(`\`maxQueued\` must be a non-negative integer (got ${maxQueued})`);
    }
    this.#concurrency = concurrency;
    this.#maxQueued = maxQueued;
    const outer = options.signal;
    if (outer !== undefined) {
      if (outer.aborted) this.abort(outer.reason);
      else outer.addEventListener('abort', () => this.abort(outer.reason), { once: true });
    }
  }

  /** Tasks running now. */
  get running(): number {
    return this.#running;
  }

  /** Tasks waiting for a slot. */
  get queued(): number {
    return this.#waiting.length;
  }

  /** Aborts when the queue is aborted. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /**
   * Runs `task` when a slot is free and settles as it does. Rejects with the abort reason when the
   * queue or `options.signal` is aborted before the task starts, and with `FW_ERR_QUEUE_FULL` when
   * `maxQueued` tasks already wait.
   */
  run<T>(task: Task<T>, options: TaskOptions = {}): Promise<T> {
    const own = options.signal;
    if (this.#controller.signal.aborted) return Promise.reject(this.#controller.signal.reason as Error);
    if (own?.aborted === true) return Promise.reject(own.reason as Error);
    return new Promise<T>((resolve, reject) => {
      const start = () => {
        this.#running++;
        const taskController = new AbortController();
        const sources = own === undefined ? [this.#controller.signal] : [this.#controller.signal, own];
        const relays = sources.map((s) => {
          const relay = () => taskController.abort(s.reason);
          s.addEventListener('abort', relay, { once: true });
          return () => s.removeEventListener('abort', relay);
        });
        for (const s of sources) if (s.aborted) taskController.abort(s.reason);
        // Called at once (not on a later tick), so the task sees its signal from its first line.
        let result: Promise<T>;
        try {
          result = Promise.resolve(task(taskController.signal));
        } catch (e) {
          result = Promise.reject(e as Error);
        }
        void result.then(resolve, reject).finally(() => {
          for (const unlink of relays) unlink();
          this.#running--;
          this.#pump();
        });
      };
      if (this.#running < this.#concurrency && this.#waiting.length === 0) {
        start();
        return;
      }
      if (this.#waiting.length >= this.#maxQueued) {
        reject(
          new FrameworkError(
            FrameworkErrorCode.QUEUE_FULL,
            `the work queue is full (${this.#running} running, ${this.#waiting.length} waiting, maxQueued ${this.#maxQueued})`,
            { details: { running: this.#running, queued: this.#waiting.length } },
          ),
        );
        return;
      }
      const onAbort = () => {
        const at = this.#waiting.indexOf(entry);
        if (at >= 0) this.#waiting.splice(at, 1);
        reject(own!.reason);
        this.#pump();
      };
      const entry: Waiting = {
        start: () => {
          own?.removeEventListener('abort', onAbort);
          start();
        },
        fail: (reason) => {
          own?.removeEventListener('abort', onAbort);
          reject(reason);
        },
      };
      own?.addEventListener('abort', onAbort, { once: true });
      this.#waiting.push(entry);
    });
  }

  /** Aborts the queue: waiting tasks reject with `reason`, running ones see their signal abort. */
  abort(reason?: unknown): void {
    if (this.#controller.signal.aborted) return;
    this.#controller.abort(reason);
    const reasonNow = this.#controller.signal.reason as unknown;
    for (const w of this.#waiting.splice(0)) w.fail(reasonNow);
    this.#pump();
  }

  /** Resolves once nothing runs and nothing waits. */
  onIdle(): Promise<void> {
    if (this.#running === 0 && this.#waiting.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #pump(): void {
    while (this.#running < this.#concurrency && this.#waiting.length > 0) this.#waiting.shift()!.start();
    if (this.#running === 0 && this.#waiting.length === 0 && this.#idle.length > 0) {
      const idle = this.#idle;
      this.#idle = [];
      for (const resolve of idle) resolve();
    }
  }
}

/**
 * Runs `task(0) … task(count - 1)` on a {@link WorkQueue} of `concurrency`. The first failure (or
 * `signal` aborting) stops new tasks from starting and aborts the running tasks' signal; it is
 * rethrown once they settle.
 */
export async function forEachBounded(
  count: number,
  concurrency: number,
  task: (index: number, signal: AbortSignal) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  if (!Number.isSafeInteger(count) || count < 0) throw argError(`\`count\` must be a non-negative integer (got ${count})`);
  const queue = new WorkQueue({ concurrency, ...(signal === undefined ? {} : { signal }) });
  let next = 0;
  let failure: { error: unknown } | undefined;
  const feeder = async () => {
    while (failure === undefined && next < count) {
      const i = next++;
      try {
        await queue.run((s) => task(i, s));
      } catch (e) {
        if (failure === undefined) {
          failure = { error: e };
          queue.abort(e);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, feeder));
  if (failure !== undefined) throw failure.error;
}
