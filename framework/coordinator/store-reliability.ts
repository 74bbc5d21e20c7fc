import type { DepotReliability, Inclusion, ReliabilityStore } from '../estimation/index.js';
import type { OpOutcome, ReliabilityView } from './reliability-view.js';

/** Prefix of the store ids under which sources' block answers and failures are kept. */
export const SOURCE_ID_PREFIX = 'source:';

/** Whether a reliability-store id is a source's block-outcome entry (`source:<id>`), not a depot. */
export function isSourceEntry(id: string): boolean {
  return id.startsWith(SOURCE_ID_PREFIX);
}

/**
 * The engine's {@link ReliabilityView} over the estimation {@link ReliabilityStore}: depot outcomes and
 * latencies as the store records them (a timed-out, dropped or invalid op is a failure with its latency; a
 * busy answer is not recorded),
 * sources' block outcomes as entries `source:<id>` of the same store (so they persist with it; listings
 * separate them with {@link reliabilityReport}). Time is the store's clock.
 */
export function storeReliability(store: ReliabilityStore): ReliabilityView {
  const key = (kind: 'depot' | 'source', id: string): string => (kind === 'source' ? SOURCE_ID_PREFIX + id : id);
  return {
    record(kind, id, outcome: OpOutcome, latencyMs) {
      // A busy answer says the depot is loaded, not that it fails: nothing to record.
      if (outcome === 'busy') return;
      if (kind === 'source') {
        // A block's outcome has no latency of its own: counts only.
        if (outcome === 'answer') store.recordAnswer(key(kind, id), 0);
        else store.recordFailure(key(kind, id));
      } else if (outcome === 'answer') store.recordAnswer(id, latencyMs ?? 0);
      else store.recordFailure(id, latencyMs === undefined ? {} : { latencyMs });
    },
    inclusion(kind, id): Inclusion {
      const d = store.depot(key(kind, id));
      return { p: d.p, pLower: d.pLower };
    },
    latencyQuantile: (id, q) => store.latencyQuantile(id, q),
  };
}

/** A source in a {@link ReliabilityReport}: its blocks' decayed answer/failure counts and its data quality. */
export interface SourceReliability {
  id: string;
  /** Decayed counts of the source's blocks that answered / went missing (0 without history). */
  answers: number;
  failures: number;
  /** Posterior probability that a block of the source answers. */
  p: number;
  /** Quality weight from the source's residuals (1 without quality history). */
  weight: number;
  /** Robust z-score of its residual against its peers, when it has quality history. */
  z: number | undefined;
  /** Quality observations (residuals recorded). */
  observations: number;
}

/** The history as listings show it: depots (no source entries) and sources (outcomes and quality joined). */
export interface ReliabilityReport {
  at: number;
  depots: DepotReliability[];
  sources: SourceReliability[];
}

/**
 * Splits a store's snapshot into depots and sources: the `source:<id>` outcome entries leave the depot
 * list and join the sources' quality scores. What `anvil reliability` prints and the metrics export.
 */
export function reliabilityReport(store: ReliabilityStore): ReliabilityReport {
  const snap = store.snapshot();
  const depots = snap.depots.filter((d) => !isSourceEntry(d.id));
  const sources = new Map<string, SourceReliability>();
  const entry = (id: string): SourceReliability => {
    let s = sources.get(id);
    if (s === undefined) {
      s = { id, answers: 0, failures: 0, p: Number.NaN, weight: 1, z: undefined, observations: 0 };
      sources.set(id, s);
    }
    return s;
  };
  for (const d of snap.depots) {
    if (!isSourceEntry(d.id)) continue;
    const s = entry(d.id.slice(SOURCE_ID_PREFIX.length));
    s.answers = d.answers;
    s.failures = d.failures;
    s.p = d.p;
  }
  for (const q of snap.sources) {
    const s = entry(q.id);
    s.weight = q.weight;
    s.z = q.z;
    s.observations = q.observations;
  }
  // A source with quality history but no outcome entry has the prior's answer probability.
  for (const s of sources.values()) if (Number.isNaN(s.p)) s.p = store.depot(SOURCE_ID_PREFIX + s.id).p;
  return { at: snap.at, depots, sources: [...sources.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)) };
}
