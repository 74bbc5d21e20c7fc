import type { SchedulerLike, Unsubscribable } from 'rxjs';
import type { Dataset, DatasetBlock, DatasetReplica } from './dataset-shape.js';
import { depotId } from './dataset-shape.js';
import type { DepotGate } from './depot-gate.js';
import type { OpAnswer, OpAttempt, OpRunner, OpSpec } from './op-runner.js';
import type { OpOutcome, ReliabilityView } from './reliability-view.js';
import type { TimerHandle, TimerQueue } from './timer-queue.js';

/** What became of one block: answered (by which attempt) or missing. */
export interface BlockOutcome {
  readonly block: DatasetBlock;
  readonly answer: OpAnswer | undefined;
  /** Attempts started (1 + hedges and retries). */
  readonly attempts: number;
  /** The last error when every replica failed. */
  readonly error?: unknown;
}

/** An attempt that answered in time with an output the job's `validate` rejected (a failed attempt). */
export class InvalidAnswerError extends Error {
  override readonly name = 'InvalidAnswerError';
}

/** An attempt that did not answer within the per-op timeout. */
export class OpTimeoutError extends Error {
  override readonly name = 'TimeoutError';
}

/** @internal What {@link startBlock} needs from the job. */
export interface BlockContext {
  readonly dataset: Dataset;
  readonly op: OpSpec;
  readonly runner: OpRunner;
  readonly gate: DepotGate;
  readonly reliability: ReliabilityView;
  readonly scheduler: SchedulerLike;
  /** The job's timers (per-op timeouts, hedge delays) on one scheduled action. */
  readonly timers: TimerQueue;
  readonly opTimeoutMs: number;
  readonly hedgeQuantile: number;
  readonly defaultHedgeMs: number;
  readonly minHedgeMs: number;
  /** True once the job's deadline dropped what still runs (recorded as late, not as cancelled). */
  readonly deadlinePassed: () => boolean;
  /** The job's plausibility check of an output: a reason to reject it, or undefined. */
  readonly validate?: (block: DatasetBlock, output: Uint8Array) => string | undefined;
  /** Called for every finished attempt (metrics). */
  readonly onAttempt?: (depot: string, outcome: OpOutcome, latencyMs: number | undefined) => void;
}

/**
 * How long to wait for a replica before asking the next one: the depot's latency quantile from history
 * (or `defaultHedgeMs`), scaled by its answer probability — a depot that often fails is hedged sooner —
 * clamped to [minHedgeMs, opTimeoutMs].
 */
export function hedgeDelayMs(ctx: BlockContext, replica: DatasetReplica): number {
  const id = depotId(replica.depot);
  const now = ctx.scheduler.now();
  const base = ctx.reliability.latencyQuantile(id, ctx.hedgeQuantile, now) ?? ctx.defaultHedgeMs;
  const p = ctx.reliability.inclusion('depot', id, now).p;
  return Math.min(ctx.opTimeoutMs, Math.max(ctx.minHedgeMs, base * p));
}

/** One try of the op on one replica. */
interface Attempt {
  readonly depot: string;
  /** When the gate let it start (undefined while it waits). */
  t0: number | undefined;
  settled: boolean;
  release: (() => void) | undefined;
  run: Unsubscribable | undefined;
  timeout: TimerHandle | undefined;
  hedge: TimerHandle | undefined;
}

/**
 * Runs the job's op on one block over its replicas in the given order: the first attempt at once, the next
 * one when the previous fails (errs, times out, or answers something `validate` rejects) or after its hedge
 * delay, each under the per-op timeout and the per-depot gate. Calls `done` once with the block's
 * {@link BlockOutcome} (possibly synchronously). The returned function cancels every attempt and timer
 * (attempts still running count as late when the job's deadline passed); after `done` it does nothing.
 *
 * Callbacks and one shared timer queue, no observable chain per attempt: this is the per-op hot path.
 */
export function startBlock(
  ctx: BlockContext,
  block: DatasetBlock,
  replicas: readonly DatasetReplica[],
  done: (outcome: BlockOutcome) => void,
): () => void {
  const attempts: Attempt[] = [];
  let next = 0;
  let pending = 0;
  let lastError: unknown;
  let finished = false;

  const record = (depot: string, outcome: OpOutcome, latencyMs: number | undefined): void => {
    ctx.reliability.record('depot', depot, outcome, latencyMs, ctx.scheduler.now());
    ctx.onAttempt?.(depot, outcome, latencyMs);
  };

  const stop = (a: Attempt): void => {
    a.settled = true;
    a.timeout?.cancel();
    a.hedge?.cancel();
    a.run?.unsubscribe();
    a.release?.();
  };

  const finish = (answer: OpAnswer | undefined): void => {
    if (finished) return;
    finished = true;
    for (const a of attempts) if (!a.settled) stop(a);
    done(
      answer === undefined
        ? { block, answer, attempts: attempts.length, error: lastError }
        : { block, answer, attempts: attempts.length },
    );
  };

  const failed = (a: Attempt, outcome: OpOutcome, error: unknown): void => {
    if (a.settled || finished) return;
    stop(a);
    pending--;
    lastError = error;
    record(a.depot, outcome, ctx.scheduler.now() - (a.t0 ?? ctx.scheduler.now()));
    if (next < replicas.length) launch();
    else if (pending === 0) finish(undefined);
  };

  const answered = (a: Attempt, answer: OpAnswer): void => {
    if (a.settled || finished) return;
    let problem: string | undefined;
    try {
      problem = ctx.validate?.(block, answer.output);
    } catch (e) {
      problem = `validation threw: ${(e as Error)?.message ?? String(e)}`;
    }
    if (problem !== undefined) {
      failed(
        a,
        'invalid',
        new InvalidAnswerError(`block ${block.index}: implausible ${ctx.op.name} output from ${a.depot}: ${problem}`),
      );
      return;
    }
    stop(a);
    pending--;
    record(a.depot, 'answer', ctx.scheduler.now() - a.t0!);
    finish(answer);
  };

  const begin = (a: Attempt, replica: DatasetReplica): void => {
    if (a.settled || finished) return;
    a.t0 = ctx.scheduler.now();
    a.timeout = ctx.timers.add(ctx.opTimeoutMs, () =>
      failed(a, 'late', new OpTimeoutError(`block ${block.index}: no answer from ${a.depot} within ${ctx.opTimeoutMs} ms`)),
    );
    const attempt: OpAttempt = { dataset: ctx.dataset, block, replica, op: ctx.op, timeoutMs: ctx.opTimeoutMs };
    try {
      if (ctx.runner.execute !== undefined) {
        ctx.runner.execute(attempt).then(
          (answer) => answered(a, answer),
          (e: unknown) => failed(a, 'failure', e),
        );
      } else {
        const sub = ctx.runner.run(attempt).subscribe({
          next: (answer) => answered(a, answer),
          error: (e: unknown) => failed(a, 'failure', e),
          complete: () => failed(a, 'failure', new Error(`block ${block.index}: ${a.depot} completed without an answer`)),
        });
        if (a.settled) sub.unsubscribe();
        else a.run = sub;
      }
    } catch (e) {
      failed(a, 'failure', e);
    }
  };

  const launch = (): void => {
    if (finished || next >= replicas.length) return;
    const replica = replicas[next++]!;
    const a: Attempt = {
      depot: depotId(replica.depot),
      t0: undefined,
      settled: false,
      release: undefined,
      run: undefined,
      timeout: undefined,
      hedge: undefined,
    };
    attempts.push(a);
    pending++;
    if (next < replicas.length) a.hedge = ctx.timers.add(hedgeDelayMs(ctx, replica), launch);
    const release = ctx.gate.acquire(a.depot, () => begin(a, replica));
    // The attempt may have ended inside acquire (a synchronous runner): free its slot now.
    if (a.settled) release();
    else a.release = release;
  };

  if (replicas.length === 0) finish(undefined);
  else launch();
  return () => {
    if (finished) return;
    // Attempts still running when the job's deadline dropped them count as late answers.
    if (ctx.deadlinePassed()) for (const a of attempts) if (!a.settled && a.t0 !== undefined) record(a.depot, 'late', undefined);
    finished = true;
    for (const a of attempts) if (!a.settled) stop(a);
  };
}
