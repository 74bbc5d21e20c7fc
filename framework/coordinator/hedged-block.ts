import { Observable, Subscription, defer, timeout, timer, type SchedulerLike } from 'rxjs';
import type { Dataset, DatasetBlock, DatasetReplica } from './dataset-shape.js';
import { depotId } from './dataset-shape.js';
import type { DepotGate } from './depot-gate.js';
import type { OpAnswer, OpRunner, OpSpec } from './op-runner.js';
import type { OpOutcome, ReliabilityView } from './reliability-view.js';

/** What became of one block: answered (by which attempt) or missing. */
export interface BlockOutcome {
  readonly block: DatasetBlock;
  readonly answer: OpAnswer | undefined;
  /** Attempts started (1 + hedges and retries). */
  readonly attempts: number;
  /** The last error when every replica failed. */
  readonly error?: unknown;
}

/** @internal What {@link hedgedBlock} needs from the job. */
export interface BlockContext {
  readonly dataset: Dataset;
  readonly op: OpSpec;
  readonly runner: OpRunner;
  readonly gate: DepotGate;
  readonly reliability: ReliabilityView;
  readonly scheduler: SchedulerLike;
  readonly opTimeoutMs: number;
  readonly hedgeQuantile: number;
  readonly defaultHedgeMs: number;
  readonly minHedgeMs: number;
  /** True once the job's deadline dropped what still runs (recorded as late, not as cancelled). */
  readonly deadlinePassed: () => boolean;
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

/**
 * Runs the job's op on one block over its replicas in the given order: the first attempt at once, the next
 * one when the previous fails or after its hedge delay, each under the per-op timeout and the per-depot
 * gate. Emits one {@link BlockOutcome} and completes; unsubscribing cancels every attempt and timer.
 */
export function hedgedBlock(
  ctx: BlockContext,
  block: DatasetBlock,
  replicas: readonly DatasetReplica[],
): Observable<BlockOutcome> {
  return new Observable<BlockOutcome>((subscriber) => {
    const subs = new Subscription();
    const inFlight = new Map<number, { depot: string; started: number }>();
    let next = 0;
    let started = 0;
    let pending = 0;
    let lastError: unknown;
    let done = false;

    const finish = (answer: OpAnswer | undefined): void => {
      if (done) return;
      done = true;
      subscriber.next(
        answer === undefined ? { block, answer, attempts: started, error: lastError } : { block, answer, attempts: started },
      );
      subscriber.complete();
    };

    const record = (depot: string, outcome: OpOutcome, latencyMs: number | undefined): void => {
      ctx.reliability.record('depot', depot, outcome, latencyMs, ctx.scheduler.now());
      ctx.onAttempt?.(depot, outcome, latencyMs);
    };

    const launch = (): void => {
      if (done || next >= replicas.length) return;
      const i = next++;
      const replica = replicas[i]!;
      const depot = depotId(replica.depot);
      started++;
      pending++;
      let hedge: Subscription | undefined;
      if (next < replicas.length) {
        hedge = timer(hedgeDelayMs(ctx, replica), ctx.scheduler).subscribe(() => launch());
        subs.add(hedge);
      }
      const attempt$ = defer(() => {
        inFlight.set(i, { depot, started: ctx.scheduler.now() });
        return ctx.runner
          .run({ dataset: ctx.dataset, block, replica, op: ctx.op, timeoutMs: ctx.opTimeoutMs })
          .pipe(timeout({ first: ctx.opTimeoutMs, scheduler: ctx.scheduler }));
      });
      subs.add(
        ctx.gate.run(depot, attempt$).subscribe({
          next: (answer) => {
            const t0 = inFlight.get(i)!.started;
            inFlight.delete(i);
            pending--;
            record(depot, 'answer', ctx.scheduler.now() - t0);
            finish(answer);
          },
          error: (e: unknown) => {
            const t0 = inFlight.get(i)?.started ?? ctx.scheduler.now();
            inFlight.delete(i);
            pending--;
            lastError = e;
            record(depot, (e as Error)?.name === 'TimeoutError' ? 'late' : 'failure', ctx.scheduler.now() - t0);
            hedge?.unsubscribe();
            if (next < replicas.length) launch();
            else if (pending === 0) finish(undefined);
          },
        }),
      );
    };

    if (replicas.length === 0) finish(undefined);
    else launch();
    return () => {
      // Attempts still running when the job's deadline dropped them count as late answers.
      if (!done && ctx.deadlinePassed()) for (const { depot } of inFlight.values()) record(depot, 'late', undefined);
      done = true;
      subs.unsubscribe();
    };
  });
}
