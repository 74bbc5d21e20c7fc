import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ReliabilityStore } from '../estimation/index.js';
import type { OpOutcome } from './reliability-view.js';

/**
 * The coordinator's prom-client metrics on a registry the caller reads (`registry.metrics()`):
 * `anvil_coordinator_ops_total{depot,outcome}`, `anvil_coordinator_op_latency_seconds{depot}` and
 * `anvil_coordinator_depot_reliability{depot}` (posterior answer probability, collected on scrape).
 */
export class CoordinatorMetrics {
  readonly registry: Registry;
  readonly ops: Counter<'depot' | 'outcome'>;
  readonly latency: Histogram<'depot'>;
  readonly reliability: Gauge<'depot'>;

  constructor(store: ReliabilityStore, registry: Registry = new Registry()) {
    this.registry = registry;
    this.ops = new Counter({
      name: 'anvil_coordinator_ops_total',
      help: 'NFU op attempts by depot and outcome (answer, failure, late)',
      labelNames: ['depot', 'outcome'],
      registers: [registry],
    });
    this.latency = new Histogram({
      name: 'anvil_coordinator_op_latency_seconds',
      help: 'latency of answered NFU ops by depot',
      labelNames: ['depot'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    });
    this.reliability = new Gauge({
      name: 'anvil_coordinator_depot_reliability',
      help: 'posterior probability that an op on the depot answers',
      labelNames: ['depot'],
      registers: [registry],
      collect() {
        for (const d of store.snapshot().depots) this.set({ depot: d.id }, d.p);
      },
    });
  }

  /** Records one finished attempt. */
  observe(depot: string, outcome: OpOutcome, latencyMs: number | undefined): void {
    this.ops.inc({ depot, outcome });
    if (outcome === 'answer' && latencyMs !== undefined) this.latency.observe({ depot }, latencyMs / 1000);
  }
}
