import { Observable, asyncScheduler, type SchedulerLike, type Subscription } from 'rxjs';
import {
  CoordinatorError,
  CoordinatorErrorCode,
  blockInclusion,
  type Estimate,
  type Inclusion,
  type PlannedBlock,
  type SourceWeight,
  type Weighting,
} from '../estimation/index.js';
import { depotId, type DatasetBlock, type DatasetReplica } from './dataset-shape.js';
import { DepotGate } from './depot-gate.js';
import { DEFAULT_MAX_BUSY_RETRIES, startBlock, type BlockContext, type BlockOutcome } from './hedged-block.js';
import { TimerQueue } from './timer-queue.js';
import { SuspectDepots } from './suspect-depots.js';
import type { Job } from './job.js';
import type { OpAnswer, OpRunner } from './op-runner.js';
import type { OpOutcome, ReliabilityView } from './reliability-view.js';

/** Blocks in flight at once per job. */
export const DEFAULT_CONCURRENCY = 64;
/** Attempts in flight at once per depot. */
export const DEFAULT_PER_DEPOT_CONCURRENCY = 8;
/** Time one op may take before it counts as late (ms). */
export const DEFAULT_OP_TIMEOUT_MS = 10_000;
/** Hedge delay before a depot has latency history (ms). */
export const DEFAULT_HEDGE_MS = 1_000;
export const DEFAULT_MIN_HEDGE_MS = 5;
/** Latency quantile after which the next replica is asked. */
export const DEFAULT_HEDGE_QUANTILE = 0.95;
export const DEFAULT_DELTA = 0.05;
/** Least time between two partial estimates (ms): each costs a pass over every planned block. */
export const DEFAULT_PARTIAL_INTERVAL_MS = 100;
/**
 * Blocks that must answer for a final estimate (default of `minAnsweredBlocks`): an estimate from no answered
 * block at all is no estimate, whatever `minCoverage` allows.
 */
export const DEFAULT_MIN_ANSWERED_BLOCKS = 1;

export interface RunJobOptions {
  readonly runner: OpRunner;
  readonly reliability: ReliabilityView;
  /** Time source and timers (default `asyncScheduler`; tests pass a `TestScheduler`). */
  readonly scheduler?: SchedulerLike;
  readonly concurrency?: number;
  readonly perDepotConcurrency?: number;
  /** A gate shared between jobs (overrides `perDepotConcurrency`). */
  readonly gate?: DepotGate;
  readonly opTimeoutMs?: number;
  /**
   * Busy answers (`-66 <retry-seconds>`, the depot's NFU admission is full) one replica may give: the op is
   * retried on the same replica after the advertised delay while it still fits in `opTimeoutMs` from its first
   * try, then the next replica is asked (default {@link DEFAULT_MAX_BUSY_RETRIES}). Busy answers are not failures
   * in the reliability history.
   */
  readonly maxBusyRetries?: number;
  /**
   * Deadline mode: answer this long after the start with what arrived; blocks still running then are missing
   * (their attempts are dropped at once, whatever their sockets do, and count as late).
   */
  readonly deadlineMs?: number;
  /**
   * A softer, earlier deadline (ms after the start, at most `deadlineMs`): then the job answers with what arrived
   * if at least `minAnsweredBlocks` blocks have answered, else as soon as that many have (or at `deadlineMs`).
   * A multi-round algorithm gives each round a share of its time this way without a round ending empty-handed
   * just because its depots are slower than the share.
   */
  readonly softDeadlineMs?: number;
  /**
   * Depots late earlier (an op timeout, or still running at a deadline), shared between jobs that should
   * remember them — the rounds of one multi-round algorithm (default: one set for this job). Replicas on a
   * suspect depot are tried last and hedged at once, and an attempt there waits only `suspectWaitMs` (or 4× the
   * median answer time if longer, at most `opTimeoutMs`: {@link SuspectDepots.waitMs}) before it counts as late; a depot that answers
   * is no longer suspect. The job adds the depots that are late in it.
   */
  readonly suspects?: SuspectDepots;
  /** Least wait for an attempt on a suspect depot (ms, default 1000). */
  readonly suspectWaitMs?: number;
  /**
   * Called for every attempt that ended without an answer, with the block, the depot, the outcome and why: the
   * runner's error, an `InvalidAnswerError`, or for a late attempt an `OpTimeoutError` whose `kind` says
   * whether the op timeout, a suspect depot's shortened wait or the deadline ended it.
   */
  readonly onAttemptFailure?: (block: DatasetBlock, depot: string, outcome: OpOutcome, error: unknown) => void;
  readonly hedgeQuantile?: number;
  readonly defaultHedgeMs?: number;
  readonly minHedgeMs?: number;
  /** Failure probability of the sampling bound (default 0.05). */
  readonly delta?: number;
  /**
   * Minimum coverage (share of the planned rows answered) of the final estimate (default 0); below it the job
   * errs with `COORD_E_COVERAGE`, naming the depots that failed and why.
   */
  readonly minCoverage?: number;
  /**
   * Minimum number of answered blocks for the final estimate (default {@link DEFAULT_MIN_ANSWERED_BLOCKS} = 1, at
   * most the blocks planned); fewer is `COORD_E_COVERAGE` too. With the defaults a job fails only when no block
   * answered.
   */
  readonly minAnsweredBlocks?: number;
  readonly weighting?: Weighting;
  readonly signal?: AbortSignal;
  /** Emit a partial estimate every this many finished blocks (default: about 20 per job)… */
  readonly partialEvery?: number;
  /** …and at most once per this many ms (default {@link DEFAULT_PARTIAL_INTERVAL_MS}; 0 = no limit). */
  readonly partialIntervalMs?: number;
  /** Blocks of the dataset to use (default all): a streaming window. */
  readonly blocks?: readonly DatasetBlock[];
  /** Answers of earlier runs by block key (streaming); hits are reused, new answers stored. */
  readonly cache?: Map<string, OpAnswer>;
  /** Called for every finished attempt (metrics). */
  readonly onAttempt?: (depot: string, outcome: OpOutcome, latencyMs: number | undefined) => void;
}

/** @internal Key of a block's answer in a streaming cache: its index, row start and content hash. */
export const blockKey = (b: DatasetBlock): string => `${b.index}:${b.rowStart}:${b.summary?.hash ?? ''}`;

/**
 * Runs a job: one op per row block on a replica's depot (replicas on depots offering the op and with the
 * best history first), bounded concurrency globally and per depot, per-op timeouts, hedged retries on the
 * other replicas; emits partial estimates as blocks finish and then a final one (`final: true`) — after every
 * block finished, or at `deadlineMs` in deadline mode. Blocks whose replicas all failed, timed out or were
 * dropped at the deadline are missing samples for the estimator.
 *
 * @returns a cold observable; unsubscribing or aborting `signal` cancels outstanding ops and timers
 * @throws (as an observable error) CoordinatorError `COORD_E_COVERAGE` when the final coverage is below
 *   `minCoverage` or fewer than `minAnsweredBlocks` (default 1) blocks answered — its message and
 *   `details.depots` give each failing depot's count and last failure; `COORD_E_INVALID_ARGUMENT` for a block
 *   without a summary, or the runner's own `COORD_E_INVALID_ARGUMENT` for an op it cannot run (never recorded
 *   against a depot); `signal.reason` on abort
 * @example
 * runJob(columnMeansJob(dataset), { runner, reliability }).subscribe((e) => console.log(e.value, e.epsilon));
 */
export function runJob<V>(job: Job<V>, options: RunJobOptions): Observable<Estimate<V>> {
  return new Observable<Estimate<V>>((subscriber) => {
    const scheduler = options.scheduler ?? asyncScheduler;
    const blocks = options.blocks ?? job.dataset.blocks;
    const reliability = options.reliability;
    const now = (): number => scheduler.now();
    // Depot answer probabilities as of the job's start (each costs a Beta quantile): planning and partial
    // estimates use these; the final estimate reads the history again.
    const memo = new Map<string, Inclusion>();
    const depotInclusion = (id: string): Inclusion => {
      let inc = memo.get(id);
      if (inc === undefined) memo.set(id, (inc = reliability.inclusion('depot', id, now())));
      return inc;
    };
    for (const b of blocks) {
      if (b.summary === undefined) {
        subscriber.error(
          new CoordinatorError(
            CoordinatorErrorCode.INVALID_ARGUMENT,
            `invalid argument: block ${b.index} of ${job.dataset.name} has no ingest summary`,
            {
              details: { argument: 'dataset.blocks', value: b.index },
            },
          ),
        );
        return undefined;
      }
    }
    if (options.signal?.aborted === true) {
      subscriber.error(options.signal.reason);
      return undefined;
    }
    let deadlinePassed = false;
    let closed = false;
    const timers = new TimerQueue(scheduler);
    const failures = new DepotFailures();
    const suspects = options.suspects ?? new SuspectDepots();
    const onAttemptFailure = options.onAttemptFailure;
    const ctx: BlockContext = {
      dataset: job.dataset,
      op: job.op,
      runner: options.runner,
      gate: options.gate ?? new DepotGate(options.perDepotConcurrency ?? DEFAULT_PER_DEPOT_CONCURRENCY),
      reliability,
      scheduler,
      timers,
      opTimeoutMs: options.opTimeoutMs ?? DEFAULT_OP_TIMEOUT_MS,
      hedgeQuantile: options.hedgeQuantile ?? DEFAULT_HEDGE_QUANTILE,
      defaultHedgeMs: options.defaultHedgeMs ?? DEFAULT_HEDGE_MS,
      minHedgeMs: options.minHedgeMs ?? DEFAULT_MIN_HEDGE_MS,
      maxBusyRetries: options.maxBusyRetries ?? DEFAULT_MAX_BUSY_RETRIES,
      deadlinePassed: () => deadlinePassed,
      ...(job.validate === undefined ? {} : { validate: (b: DatasetBlock, out: Uint8Array) => job.validate!(b, out) }),
      ...(options.onAttempt === undefined ? {} : { onAttempt: options.onAttempt }),
      suspects,
      silent: new Set<string>(),
      ...(options.suspectWaitMs === undefined ? {} : { suspectWaitMs: options.suspectWaitMs }),
      onFailure: (depot, outcome, error, block) => {
        failures.add(depot, outcome, error);
        onAttemptFailure?.(block, depot, outcome, error);
      },
    };
    const combiner = job.combiner();
    const estimateOptions = {
      delta: options.delta ?? DEFAULT_DELTA,
      weighting: options.weighting ?? 'response-groups',
      ...(job.sketch === undefined ? {} : { sketch: job.sketch }),
    };
    const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
    const partialEvery = options.partialEvery ?? Math.max(1, Math.ceil(blocks.length / 20));
    const planned: PlannedBlock[] = [];
    const depotsUsed = new Set<string>();
    let finished = 0;
    let answered = 0;
    let answeredRows = 0;
    let unasked = 0;
    const partialIntervalMs = options.partialIntervalMs ?? DEFAULT_PARTIAL_INTERVAL_MS;
    let lastPartial = Number.NEGATIVE_INFINITY;
    // Blocks not started yet (in plan order) and the cancel functions of those running.
    let queue: { b: DatasetBlock; replicas: DatasetReplica[] }[] = [];
    let nextBlock = 0;
    const running = new Set<() => void>();
    let pumping = false;
    let deadlineAction: Subscription | undefined;
    let softAction: Subscription | undefined;
    let softPassed = false;

    const close = (): void => {
      if (closed) return;
      closed = true;
      for (const cancel of running) cancel();
      running.clear();
      timers.close();
      deadlineAction?.unsubscribe();
      softAction?.unsubscribe();
      options.signal?.removeEventListener('abort', onAbort);
    };
    const fail = (e: unknown): void => {
      if (closed) return;
      close();
      subscriber.error(e);
    };
    const estimate = (final: boolean): Estimate<V> => {
      const sources: SourceWeight[] = [...depotsUsed].map((id) => ({
        id,
        weight: 1,
        reliability: (final ? reliability.inclusion('depot', id, now()) : depotInclusion(id)).p,
      }));
      return combiner.estimate(planned, {
        ...estimateOptions,
        minCoverage: final ? (options.minCoverage ?? 0) : 0,
        sources,
        final,
      });
    };
    const coverageError = (why: string, cause?: CoordinatorError): CoordinatorError => {
      const notes = failures.text();
      if (unasked > 0) notes.push(`${unasked} block${unasked === 1 ? '' : 's'} had no replica to ask`);
      const late = deadlinePassed ? blocks.length - finished : 0;
      if (late > 0) notes.push(`${late} block${late === 1 ? '' : 's'} still running at the deadline`);
      return new CoordinatorError(
        CoordinatorErrorCode.COVERAGE,
        `${job.name}: ${why}${notes.length === 0 ? '' : `; ${notes.join('; ')}`}`,
        {
          ...(cause === undefined ? {} : { cause }),
          details: {
            ...(cause?.details ?? {}),
            blocksUsed: answered,
            blocksPlanned: blocks.length,
            minAnsweredBlocks: needed,
            minCoverage,
            depots: failures.summary(),
          },
        },
      );
    };
    const minCoverage = options.minCoverage ?? 0;
    const needed = Math.min(Math.max(0, options.minAnsweredBlocks ?? DEFAULT_MIN_ANSWERED_BLOCKS), blocks.length);
    const complete = (): void => {
      if (closed) return;
      let e: Estimate<V>;
      try {
        if (answered < needed) {
          const total = blocks.reduce((n, b) => n + b.rows, 0);
          const coverage = total > 0 ? answeredRows / total : 0;
          throw coverageError(
            `${answered} of ${blocks.length} blocks answered (coverage ${coverage.toFixed(4)}), at least ${needed} needed`,
          );
        }
        e = estimate(true);
        // Combiners check the coverage themselves; this catches one that does not.
        if (e.coverage < minCoverage) {
          throw coverageError(
            `coverage ${e.coverage.toFixed(4)} is below the minimum ${minCoverage} (${answered} of ${blocks.length} blocks answered)`,
          );
        }
      } catch (err) {
        const c = err as CoordinatorError;
        const wrapped =
          c instanceof CoordinatorError && c.code === CoordinatorErrorCode.COVERAGE && c.details['depots'] === undefined
            ? coverageError(c.message, c)
            : err;
        fail(wrapped);
        return;
      }
      close();
      subscriber.next(e);
      subscriber.complete();
    };
    const onOutcome = (o: BlockOutcome): void => {
      // The runner cannot run the op (a programming error): the job fails with the runner's typed error.
      if (o.opInvalid !== undefined) throw o.opInvalid;
      finished++;
      if (o.answer === undefined && o.attempts === 0) unasked++;
      if (o.answer !== undefined) {
        answered++;
        answeredRows += o.block.rows;
        combiner.add(o.block, o.answer.output, o.answer.wireBytes);
        depotsUsed.add(o.answer.ranOn);
        options.cache?.set(blockKey(o.block), o.answer);
      }
      if (o.block.source !== undefined)
        reliability.record('source', o.block.source, o.answer === undefined ? 'failure' : 'answer', undefined, now());
      // Past the soft deadline, the first time enough blocks have answered ends the job.
      if (softPassed && answered >= needed && finished < blocks.length) {
        endAtDeadline();
        return;
      }
      if (finished % partialEvery === 0 && finished < blocks.length && now() - lastPartial >= partialIntervalMs) {
        lastPartial = now();
        let e: Estimate<V> | undefined;
        try {
          e = estimate(false);
        } catch (err) {
          if ((err as CoordinatorError).code !== CoordinatorErrorCode.COVERAGE) throw err;
        }
        if (e !== undefined) subscriber.next(e);
      }
    };
    // Starts blocks while there is room; re-entered from outcomes that arrive synchronously.
    const pump = (): void => {
      if (pumping || closed) return;
      pumping = true;
      try {
        while (!closed && running.size < concurrency && nextBlock < queue.length) {
          const { b, replicas } = queue[nextBlock++]!;
          const hit = options.cache?.get(blockKey(b));
          if (hit !== undefined) {
            onOutcome({ block: b, answer: { ...hit, wireBytes: 0 }, attempts: 0 });
            continue;
          }
          // Filled once startBlock returns (a block may end synchronously inside it).
          const handle: { cancel?: () => void } = {};
          let ended = false;
          const cancel = startBlock(ctx, b, replicas, (o) => {
            ended = true;
            if (handle.cancel !== undefined) running.delete(handle.cancel);
            if (closed) return;
            try {
              onOutcome(o);
            } catch (err) {
              fail(err);
              return;
            }
            pump();
          });
          if (!ended) {
            handle.cancel = cancel;
            running.add(cancel);
          }
        }
      } catch (err) {
        fail(err);
      } finally {
        pumping = false;
      }
      if (!closed && finished === queue.length) complete();
    };
    const plan = (offers: ReadonlyMap<string, boolean>): void => {
      queue = blocks.map((b) => {
        const replicas = orderReplicas(b, offers, depotInclusion, suspects);
        planned.push({
          id: String(b.index),
          summary: b.summary!,
          group: replicas[0] === undefined ? '' : depotId(replicas[0].depot),
          inclusion: blockInclusion(replicas.map((r) => depotInclusion(depotId(r.depot)))),
        });
        return { b, replicas };
      });
      pump();
    };
    const onAbort = (): void => fail(options.signal!.reason);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    // Deadline mode: drop what still runs (recorded late) and answer with what arrived.
    const endAtDeadline = (): void => {
      if (closed) return;
      deadlinePassed = true;
      for (const cancel of running) cancel();
      running.clear();
      complete();
    };
    if (options.deadlineMs !== undefined) deadlineAction = scheduler.schedule(endAtDeadline, options.deadlineMs);
    if (options.softDeadlineMs !== undefined && (options.deadlineMs === undefined || options.softDeadlineMs < options.deadlineMs))
      softAction = scheduler.schedule(() => {
        softPassed = true;
        if (answered >= needed) endAtDeadline();
      }, options.softDeadlineMs);
    if (options.runner.offers === undefined) plan(new Map());
    else {
      options.runner.offers(uniqueDepots(blocks), job.op.name).then(
        (offers) => {
          if (!closed) plan(offers);
        },
        (e: unknown) => fail(e),
      );
    }
    return close;
  });
}

function uniqueDepots(blocks: readonly DatasetBlock[]): DatasetReplica['depot'][] {
  const seen = new Map<string, DatasetReplica['depot']>();
  for (const b of blocks) for (const r of b.replicas) seen.set(depotId(r.depot), r.depot);
  return [...seen.values()];
}

/**
 * Replicas on depots offering the op first, then those on depots not suspect (late earlier in the job), then
 * by answer probability (in steps of 0.05, so that noise does not pin every block to one depot); equal ones
 * rotate with the block index so blocks spread over their replicas' depots.
 */
function orderReplicas(
  block: DatasetBlock,
  offers: ReadonlyMap<string, boolean>,
  inclusion: (depot: string) => Inclusion,
  suspects: SuspectDepots,
): DatasetReplica[] {
  const n = block.replicas.length;
  const keyed = block.replicas.map((r, i) => {
    const id = depotId(r.depot);
    return {
      r,
      turn: (i + n - (block.index % Math.max(1, n))) % Math.max(1, n),
      offers: offers.get(id) !== false ? 1 : 0,
      prompt: suspects.has(id) ? 0 : 1,
      p: Math.round(inclusion(id).p * 20) / 20,
    };
  });
  keyed.sort((a, b) => b.offers - a.offers || b.prompt - a.prompt || b.p - a.p || a.turn - b.turn);
  return keyed.map((k) => k.r);
}

/** Per depot: failed attempts of a job by outcome, and the last failure's reason. */
class DepotFailures {
  readonly #byDepot = new Map<string, { counts: Map<string, number>; last: string }>();

  add(depot: string, outcome: OpOutcome, error: unknown): void {
    let e = this.#byDepot.get(depot);
    if (e === undefined) this.#byDepot.set(depot, (e = { counts: new Map(), last: '' }));
    e.counts.set(outcome, (e.counts.get(outcome) ?? 0) + 1);
    e.last = failureReason(error);
  }

  summary(): { depot: string; failures: Record<string, number>; last: string }[] {
    return [...this.#byDepot].map(([depot, e]) => ({ depot, failures: Object.fromEntries(e.counts), last: e.last }));
  }

  /** One line per depot: `127.0.0.1:6714: 12 failure (last: connect ECONNREFUSED 127.0.0.1:6714)`. */
  text(): string[] {
    return this.summary().map(
      (d) =>
        `${d.depot}: ${Object.entries(d.failures)
          .map(([k, n]) => `${n} ${k}`)
          .join(', ')} (last: ${d.last})`,
    );
  }
}

/** A failure's reason in one line: its message's first line (with the error code when the message lacks it). */
function failureReason(error: unknown): string {
  if (typeof error !== 'object' || error === null) return String(error);
  const { code, message } = error as { code?: unknown; message?: unknown };
  let line = typeof message === 'string' && message !== '' ? message.split('\n')[0]! : String(error);
  if (typeof code === 'string' && !line.includes(code)) line = `${code}: ${line}`;
  return line.length > 160 ? `${line.slice(0, 157)}…` : line;
}
