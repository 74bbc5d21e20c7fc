import type { SchedulerLike, Unsubscribable } from 'rxjs';
import type { Dataset, DatasetBlock, DatasetReplica } from './dataset-shape.js';
import { depotId } from './dataset-shape.js';
import type { DepotGate } from './depot-gate.js';
import type { OpAnswer, OpAttempt, OpRunner, OpSpec } from './op-runner.js';
import type { OpOutcome, ReliabilityView } from './reliability-view.js';
import type { TimerHandle, TimerQueue } from './timer-queue.js';
import type { SuspectDepots } from './suspect-depots.js';

/** What became of one block: answered (by which attempt) or missing. */
export interface BlockOutcome {
  readonly block: DatasetBlock;
  readonly answer: OpAnswer | undefined;
  /** Attempts started (1 + hedges and retries). */
  readonly attempts: number;
  /** The last error when every replica failed. */
  readonly error?: unknown;
  /**
   * Set when the runner refused the op itself ({@link isOpInvalid}: a programming error, not a depot failure):
   * the block was not tried further and nothing was recorded in the reliability history. The job fails with it.
   */
  readonly opInvalid?: unknown;
}

/**
 * Whether a runner's error says the op itself is invalid for that runner (a `CoordinatorError` with code
 * `COORD_E_INVALID_ARGUMENT`, e.g. an op the runner cannot run) — a programming error, not a failure of the
 * depot: the engine records nothing against the depot and fails the job with this error at once.
 */
export function isOpInvalid(error: unknown): boolean {
  return (
    typeof error === 'object' &&
    error !== null &&
    (error as { code?: unknown }).code === 'COORD_E_INVALID_ARGUMENT' &&
    (error as { name?: unknown }).name === 'CoordinatorError'
  );
}

/** An attempt that answered in time with an output the job's `validate` rejected (a failed attempt). */
export class InvalidAnswerError extends Error {
  override readonly name = 'InvalidAnswerError';
}

/**
 * Why an attempt ended without an answer in time: the per-op timeout, the shortened wait of a depot that was
 * late earlier in the job ({@link SuspectDepots}), or the job's deadline (the attempt was still running).
 */
export type LateKind = 'op-timeout' | 'suspect-wait' | 'deadline';

/** An attempt that did not answer in time ({@link OpTimeoutError.kind} says which limit it hit, `waitMs` how long it had). */
export class OpTimeoutError extends Error {
  override readonly name = 'TimeoutError';
  constructor(
    message: string,
    readonly kind: LateKind = 'op-timeout',
    readonly waitMs?: number,
  ) {
    super(message);
  }
}

/** What {@link hedgeDelayMs} reads: the reliability history, the clock and the job's hedging options. */
export interface HedgeContext {
  readonly reliability: ReliabilityView;
  readonly scheduler: SchedulerLike;
  readonly opTimeoutMs: number;
  readonly hedgeQuantile: number;
  readonly defaultHedgeMs: number;
  readonly minHedgeMs: number;
}

/** @internal What {@link startBlock} needs from the job (the engine builds it from the job and its run options). */
export interface BlockContext extends HedgeContext {
  readonly dataset: Dataset;
  readonly op: OpSpec;
  readonly runner: OpRunner;
  readonly gate: DepotGate;
  /** The job's timers (per-op timeouts, hedge delays) on one scheduled action. */
  readonly timers: TimerQueue;
  /** True once the job's deadline dropped what still runs (recorded as late, not as cancelled). */
  readonly deadlinePassed: () => boolean;
  /** The job's plausibility check of an output: a reason to reject it, or undefined. */
  readonly validate?: (block: DatasetBlock, output: Uint8Array) => string | undefined;
  /** Called for every finished attempt (metrics). */
  readonly onAttempt?: (depot: string, outcome: OpOutcome, latencyMs: number | undefined) => void;
  /**
   * Called for every attempt that ended without an answer (failed, late, invalid, busy too often, or still
   * running at the deadline), with why ({@link OpTimeoutError} for the late ones) and the block.
   */
  readonly onFailure?: (depot: string, outcome: OpOutcome, error: unknown, block: DatasetBlock) => void;
  /** Depots late earlier in the job: tried last, hedged at once, waited on for {@link suspectWaitMs} only. */
  readonly suspects?: SuspectDepots;
  /** Least wait for an attempt on a suspect depot (default 1000 ms; see {@link SuspectDepots.waitMs}). */
  readonly suspectWaitMs?: number;
  /**
   * Depots that let a shortened wait pass without an answer in this job: its later attempts there are not made
   * (they fail at once as late), so a stalled depot costs one shortened wait per job, not one per gate slot.
   */
  readonly silent?: Set<string>;
  /** Busy answers (`-66 <retry>`) a replica may give before the next one is asked (default {@link DEFAULT_MAX_BUSY_RETRIES}). */
  readonly maxBusyRetries?: number;
}

/** IBP status of a depot whose NFU admission is full (`-66 <retry-seconds>`). */
const IBP_BUSY = -66;
/** Busy retries per replica before the next replica is asked. */
export const DEFAULT_MAX_BUSY_RETRIES = 3;
/** Delay before retrying a `-66` answer that named no delay (ms). */
export const DEFAULT_BUSY_RETRY_MS = 1_000;

/**
 * The delay (ms) a depot asked for with a busy answer (`-66 <retry-seconds>`: its NFU queue or memory
 * budget is full), or undefined when `error` is not a busy answer. Recognises any error carrying the IBP
 * `status` -66 (the client's `ClientError`), with its `retryAfterSec` or else {@link DEFAULT_BUSY_RETRY_MS}.
 */
export function busyRetryAfterMs(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { status, retryAfterSec } = error as { status?: unknown; retryAfterSec?: unknown };
  if (status !== IBP_BUSY) return undefined;
  if (typeof retryAfterSec === 'number' && Number.isFinite(retryAfterSec) && retryAfterSec >= 0) return retryAfterSec * 1000;
  return DEFAULT_BUSY_RETRY_MS;
}

/**
 * How long to wait for a replica before asking the next one: the depot's latency quantile from history
 * (or `defaultHedgeMs`), scaled by its answer probability — a depot that often fails is hedged sooner —
 * clamped to [minHedgeMs, opTimeoutMs].
 */
export function hedgeDelayMs(ctx: HedgeContext, replica: DatasetReplica): number {
  const id = depotId(replica.depot);
  const now = ctx.scheduler.now();
  const base = ctx.reliability.latencyQuantile(id, ctx.hedgeQuantile, now) ?? ctx.defaultHedgeMs;
  const p = ctx.reliability.inclusion('depot', id, now).p;
  return Math.min(ctx.opTimeoutMs, Math.max(ctx.minHedgeMs, base * p));
}

/** One try of the op on one replica (its own timer and gate callbacks, no closures per attempt). */
class Attempt {
  /** When the gate let it start (undefined while it waits). */
  t0: number | undefined = undefined;
  settled = false;
  release: (() => void) | undefined = undefined;
  run: Unsubscribable | undefined = undefined;
  timeout: TimerHandle | undefined = undefined;
  hedge: TimerHandle | undefined = undefined;
  /** A busy retry waiting for the depot's advertised delay. */
  retry: TimerHandle | undefined = undefined;
  /** When the first try on this replica started: busy retries stay within the op's deadline from here. */
  firstStart: number | undefined = undefined;
  busyRetries = 0;
  /** How long this attempt may run (the op timeout, or the shortened wait when its depot is suspect). */
  waitMs = 0;
  /** Its depot was suspect when the first try started. */
  suspect = false;
  /** Bumped on every try, so a callback of an earlier try is ignored. */
  generation = 0;

  constructor(
    readonly owner: BlockRun,
    readonly replica: DatasetReplica,
    readonly depot: string,
  ) {}

  stop(): void {
    this.settled = true;
    this.timeout?.cancel();
    this.hedge?.cancel();
    this.retry?.cancel();
    this.run?.unsubscribe();
    this.release?.();
  }

  /** Ends the current try but keeps the attempt (and its hedge timer) for a retry on the same replica. */
  pause(): void {
    this.timeout?.cancel();
    this.timeout = undefined;
    this.run?.unsubscribe();
    this.run = undefined;
    const release = this.release;
    this.release = undefined;
    release?.();
    this.t0 = undefined;
    this.generation++;
  }
}

const onTimeout = (a: Attempt): void => a.owner.timedOut(a);
const onHedge = (a: Attempt): void => a.owner.launch();
const onStart = (a: Attempt): void => a.owner.begin(a);
const onRetry = (a: Attempt): void => a.owner.retry(a);

/** @internal One block's attempts: see {@link startBlock}. */
class BlockRun {
  readonly attempts: Attempt[] = [];
  next = 0;
  pending = 0;
  lastError: unknown = undefined;
  opInvalid: unknown = undefined;
  finished = false;

  constructor(
    readonly ctx: BlockContext,
    readonly block: DatasetBlock,
    readonly replicas: readonly DatasetReplica[],
    readonly done: (outcome: BlockOutcome) => void,
  ) {}

  record(depot: string, outcome: OpOutcome, latencyMs: number | undefined): void {
    this.ctx.reliability.record('depot', depot, outcome, latencyMs, this.ctx.scheduler.now());
    this.ctx.onAttempt?.(depot, outcome, latencyMs);
  }

  finish(answer: OpAnswer | undefined): void {
    if (this.finished) return;
    this.finished = true;
    for (const a of this.attempts) if (!a.settled) a.stop();
    const { block } = this;
    const attempts = this.attempts.length;
    this.done(
      answer !== undefined
        ? { block, answer, attempts }
        : this.opInvalid !== undefined
          ? { block, answer, attempts, error: this.opInvalid, opInvalid: this.opInvalid }
          : { block, answer, attempts, error: this.lastError },
    );
  }

  failed(a: Attempt, outcome: OpOutcome, error: unknown): void {
    if (a.settled || this.finished) return;
    if (outcome === 'failure' && isOpInvalid(error)) {
      // The runner cannot run this op at all: the depot did nothing wrong, and no other replica will do better.
      this.opInvalid = error;
      this.finish(undefined);
      return;
    }
    const now = this.ctx.scheduler.now();
    const busyMs = outcome === 'failure' ? busyRetryAfterMs(error) : undefined;
    if (busyMs !== undefined) {
      // A busy depot is loaded, not unreliable: no failure in its history (the metrics count it apart).
      this.ctx.onAttempt?.(a.depot, 'busy', undefined);
      if (this.#retryLater(a, busyMs, now)) return;
      this.ctx.onFailure?.(a.depot, 'busy', error, this.block);
    } else {
      this.record(a.depot, outcome, now - (a.t0 ?? now));
      if (outcome === 'late') this.ctx.suspects?.mark(a.depot, now);
      if (outcome === 'late' && a.suspect) this.ctx.silent?.add(a.depot);
      this.ctx.onFailure?.(a.depot, outcome, error, this.block);
    }
    a.stop();
    this.pending--;
    this.lastError = error;
    if (this.next < this.replicas.length) this.launch();
    else if (this.pending === 0) this.finish(undefined);
  }

  /**
   * Schedules another try of `a` on the same replica after `delayMs`, unless it already had its busy retries or
   * the retry would start past the op's deadline (counted from its first try): then false.
   */
  #retryLater(a: Attempt, delayMs: number, now: number): boolean {
    const max = this.ctx.maxBusyRetries ?? DEFAULT_MAX_BUSY_RETRIES;
    const start = a.firstStart ?? now;
    if (a.busyRetries >= max || now + delayMs - start >= (a.waitMs || this.ctx.opTimeoutMs)) return false;
    a.busyRetries++;
    a.pause();
    a.retry = this.ctx.timers.add(delayMs, onRetry, a);
    return true;
  }

  retry(a: Attempt): void {
    a.retry = undefined;
    if (a.settled || this.finished) return;
    const release = this.ctx.gate.acquire(a.depot, onStart, a);
    if (a.settled) release();
    else a.release = release;
  }

  timedOut(a: Attempt): void {
    const { index } = this.block;
    this.failed(
      a,
      'late',
      a.suspect
        ? new OpTimeoutError(
            `block ${index}: no answer from ${a.depot} within ${a.waitMs} ms (the shortened wait for a depot that timed out earlier in this job)`,
            'suspect-wait',
            a.waitMs,
          )
        : new OpTimeoutError(
            `block ${index}: no answer from ${a.depot} within the op timeout (${a.waitMs} ms)`,
            'op-timeout',
            a.waitMs,
          ),
    );
  }

  answered(a: Attempt, answer: OpAnswer): void {
    if (a.settled || this.finished) return;
    let problem: string | undefined;
    try {
      problem = this.ctx.validate?.(this.block, answer.output);
    } catch (e) {
      problem = `validation threw: ${(e as Error)?.message ?? String(e)}`;
    }
    if (problem !== undefined) {
      const why = `block ${this.block.index}: implausible ${this.ctx.op.name} output from ${a.depot}: ${problem}`;
      this.failed(a, 'invalid', new InvalidAnswerError(why));
      return;
    }
    a.stop();
    this.pending--;
    const latency = this.ctx.scheduler.now() - a.t0!;
    this.record(a.depot, 'answer', latency);
    this.ctx.suspects?.answered(a.depot, latency);
    this.finish(answer);
  }

  begin(a: Attempt): void {
    // A gate slot freed while the deadline drops the job's attempts starts nothing.
    if (a.settled || this.finished || this.ctx.deadlinePassed()) return;
    if (this.ctx.silent?.has(a.depot) === true) {
      this.skip(a);
      return;
    }
    const { ctx } = this;
    a.t0 = ctx.scheduler.now();
    if (a.firstStart === undefined) {
      a.firstStart = a.t0;
      a.suspect = ctx.suspects?.has(a.depot) === true;
      a.waitMs = a.suspect ? ctx.suspects!.waitMs(ctx.opTimeoutMs, ctx.suspectWaitMs) : ctx.opTimeoutMs;
    }
    // A busy retry keeps the deadline of the first try.
    a.timeout = ctx.timers.add(Math.max(0, a.firstStart + a.waitMs - a.t0), onTimeout, a);
    const generation = a.generation;
    const attempt: OpAttempt = {
      dataset: ctx.dataset,
      block: this.block,
      replica: a.replica,
      op: ctx.op,
      timeoutMs: a.waitMs,
    };
    try {
      if (ctx.runner.execute !== undefined) {
        ctx.runner.execute(attempt).then(
          (answer) => {
            if (a.generation === generation) this.answered(a, answer);
          },
          (e: unknown) => {
            if (a.generation === generation) this.failed(a, 'failure', e);
          },
        );
      } else {
        const sub = ctx.runner.run(attempt).subscribe({
          next: (answer) => this.answered(a, answer),
          error: (e: unknown) => this.failed(a, 'failure', e),
          complete: () =>
            this.failed(a, 'failure', new Error(`block ${this.block.index}: ${a.depot} completed without an answer`)),
        });
        if (a.settled || a.generation !== generation) sub.unsubscribe();
        else a.run = sub;
      }
    } catch (e) {
      if (a.generation === generation) this.failed(a, 'failure', e);
    }
  }

  /** Gives up `a` without asking: its depot let a shortened wait pass in this job (see {@link BlockContext.silent}). */
  skip(a: Attempt): void {
    const error = new OpTimeoutError(
      `block ${this.block.index}: not asked: ${a.depot} gave no answer within the shortened wait earlier in this job`,
      'suspect-wait',
      0,
    );
    this.ctx.onFailure?.(a.depot, 'late', error, this.block);
    a.stop();
    this.pending--;
    this.lastError = error;
    if (this.next < this.replicas.length) this.launch();
    else if (this.pending === 0) this.finish(undefined);
  }

  launch(): void {
    if (this.finished || this.next >= this.replicas.length) return;
    const replica = this.replicas[this.next++]!;
    const a = new Attempt(this, replica, depotId(replica.depot));
    this.attempts.push(a);
    this.pending++;
    if (this.ctx.silent?.has(a.depot) === true) {
      this.skip(a);
      return;
    }
    // A suspect depot is hedged at once: the next replica runs alongside it.
    if (this.next < this.replicas.length)
      a.hedge = this.ctx.timers.add(
        this.ctx.suspects?.has(a.depot) === true ? this.ctx.minHedgeMs : hedgeDelayMs(this.ctx, replica),
        onHedge,
        a,
      );
    const release = this.ctx.gate.acquire(a.depot, onStart, a);
    // The attempt may have ended inside acquire (a synchronous runner): free its slot now.
    if (a.settled) release();
    else a.release = release;
  }

  cancel(): void {
    if (this.finished) return;
    // Attempts still running when the job's deadline dropped them count as late answers.
    if (this.ctx.deadlinePassed()) {
      const now = this.ctx.scheduler.now();
      for (const a of this.attempts) {
        if (a.settled || a.t0 === undefined) continue;
        this.record(a.depot, 'late', undefined);
        this.ctx.suspects?.mark(a.depot, now);
        const ran = now - (a.firstStart ?? a.t0);
        this.ctx.onFailure?.(
          a.depot,
          'late',
          new OpTimeoutError(
            `block ${this.block.index}: no answer from ${a.depot} before the job's deadline (it ran ${ran} ms)`,
            'deadline',
            ran,
          ),
          this.block,
        );
      }
    }
    this.finished = true;
    for (const a of this.attempts) if (!a.settled) a.stop();
  }
}

/**
 * @internal Runs the job's op on one block over its replicas in the given order: the first attempt at once, the next
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
  const run = new BlockRun(ctx, block, replicas, done);
  if (replicas.length === 0) run.finish(undefined);
  else run.launch();
  return () => run.cancel();
}
