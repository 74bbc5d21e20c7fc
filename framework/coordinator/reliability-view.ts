import type { Inclusion } from '../estimation/index.js';

/** What became of one op attempt on a depot, or of one block of a source. */
export type OpOutcome = 'answer' | 'failure' | 'late';

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
