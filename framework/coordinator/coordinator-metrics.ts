import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ReliabilityStore } from '../estimation/index.js';
import type { OpOutcome } from './reliability-view.js';
import { isSourceEntry } from './store-reliability.js';

/** Attempts kept per depot before they are folded into the prom-client metrics (or at the next scrape). */
const FLUSH_EVERY = 4096;

interface Pending {
  readonly counts: Record<OpOutcome, number>;
  readonly latencies: number[];
}

/**
 * The coordinator's prom-client metrics on a registry the caller reads (`registry.metrics()`):
 * `anvil_coordinator_ops_total{depot,outcome}` (outcome `answer`, `failure`, `late`, `invalid` or `busy`),
 * `anvil_coordinator_op_latency_seconds{depot}` and `anvil_coordinator_depot_reliability{depot}` (posterior
 * answer probability, collected on scrape; depots only, not the per-source entries of the history).
 * Attempts are counted in plain per-depot tallies and folded into the metrics on scrape (or every
 * {@link FLUSH_EVERY} attempts), so the per-op path does no label hashing.
 */
export class CoordinatorMetrics {
  readonly registry: Registry;
  readonly ops: Counter<'depot' | 'outcome'>;
  readonly latency: Histogram<'depot'>;
  readonly reliability: Gauge<'depot'>;
  readonly #pending = new Map<string, Pending>();
  #pendingCount = 0;

  constructor(store: ReliabilityStore, registry: Registry = new Registry()) {
    this.registry = registry;
    const flush = (): void => this.flush();
    this.ops = new Counter({
      name: 'anvil_coordinator_ops_total',
      help: 'NFU op attempts by depot and outcome (answer, failure, late, invalid, busy)',
      labelNames: ['depot', 'outcome'],
      registers: [registry],
      collect: flush,
    });
    this.latency = new Histogram({
      name: 'anvil_coordinator_op_latency_seconds',
      help: 'latency of answered NFU ops by depot',
      labelNames: ['depot'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
      collect: flush,
    });
    this.reliability = new Gauge({
      name: 'anvil_coordinator_depot_reliability',
      help: 'posterior probability that an op on the depot answers',
      labelNames: ['depot'],
      registers: [registry],
      collect() {
        for (const d of store.snapshot().depots) if (!isSourceEntry(d.id)) this.set({ depot: d.id }, d.p);
      },
    });
  }

  /** Records one finished attempt. */
  observe(depot: string, outcome: OpOutcome, latencyMs: number | undefined): void {
    let p = this.#pending.get(depot);
    if (p === undefined) {
      p = { counts: { answer: 0, failure: 0, late: 0, invalid: 0, busy: 0 }, latencies: [] };
      this.#pending.set(depot, p);
    }
    p.counts[outcome]++;
    if (outcome === 'answer' && latencyMs !== undefined) p.latencies.push(latencyMs / 1000);
    if (++this.#pendingCount >= FLUSH_EVERY) this.flush();
  }

  /** Folds the tallies into the prom-client metrics (done on every scrape). */
  flush(): void {
    for (const [depot, p] of this.#pending) {
      for (const outcome of ['answer', 'failure', 'late', 'invalid', 'busy'] as const) {
        const n = p.counts[outcome];
        if (n > 0) this.ops.inc({ depot, outcome }, n);
      }
      if (p.latencies.length > 0) {
        const h = this.latency.labels({ depot });
        for (const s of p.latencies) h.observe(s);
      }
    }
    this.#pending.clear();
    this.#pendingCount = 0;
  }
}
