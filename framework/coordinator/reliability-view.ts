import type { Inclusion } from '../estimation/index.js';

/**
 * What became of one op attempt on a depot, or of one block of a source: answered, failed (error,
 * unreachable), late (timed out or dropped at the deadline), invalid (answered with an output the job's
 * plausibility check rejected — a failure, shown apart in the metrics), or busy (the depot's NFU admission
 * answered `-66 <retry>`; the engine retries the same replica and never records it in the reliability
 * history — it only reaches the `onAttempt` metrics hook).
 */
export type OpOutcome = 'answer' | 'failure' | 'late' | 'invalid' | 'busy';

/**
 * The reliability history the engine reads and feeds: per depot and per source, decayed
 * counts of answers, failures and late answers, and the depots' latencies.
 */
export interface ReliabilityView {
  /** Records one outcome at time `now` (ms); `latencyMs` for answers. */
  record(kind: 'depot' | 'source', id: string, outcome: OpOutcome, latencyMs: number | undefined, now: number): void;
  /** Answer probability of a depot or source: posterior mean and a lower quantile. */
  inclusion(kind: 'depot' | 'source', id: string, now: number): Inclusion;
  /** The `q`-quantile of a depot's answer latency (ms), undefined without history. */
  latencyQuantile(id: string, q: number, now: number): number | undefined;
}
