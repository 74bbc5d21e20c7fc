import type { Inclusion, ReliabilityStore } from '../estimation/index.js';
import type { OpOutcome, ReliabilityView } from './reliability-view.js';

/** Prefix of the store ids under which sources' block answers and failures are kept. */
export const SOURCE_ID_PREFIX = 'source:';

/**
 * The engine's {@link ReliabilityView} over the estimation {@link ReliabilityStore}: depot outcomes and
 * latencies as the store records them (a timed-out or dropped op is a failure with its latency), sources'
 * block outcomes as entries `source:<id>` of the same store. Time is the store's clock.
 */
export function storeReliability(store: ReliabilityStore): ReliabilityView {
  const key = (kind: 'depot' | 'source', id: string): string => (kind === 'source' ? SOURCE_ID_PREFIX + id : id);
  return {
    record(kind, id, outcome: OpOutcome, latencyMs) {
      if (outcome === 'answer') store.recordAnswer(key(kind, id), latencyMs ?? 0);
      else store.recordFailure(key(kind, id), latencyMs === undefined ? {} : { latencyMs });
    },
    inclusion(kind, id): Inclusion {
      const d = store.depot(key(kind, id));
      return { p: d.p, pLower: d.pLower };
    },
    latencyQuantile: (id, q) => store.latencyQuantile(id, q),
  };
}
