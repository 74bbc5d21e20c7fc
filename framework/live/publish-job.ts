import { Observable, type Subscription } from 'rxjs';
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';
import type { Estimate } from '../estimation/index.js';
import type { LiveHub } from './live-hub.js';
import { LIVE_PROTOCOL_VERSION, type DepotState, type LiveEstimate, type LiveSeriesPoint } from './messages.js';

/** Turns an estimate's value into the numbers the dashboard plots. */
export type Summarizer<V> = (value: V, estimate: Estimate<V>) => LiveSeriesPoint[];

export interface PublishedJob {
  jobId: string;
  name: string;
  dataset?: { rows: number; cols: number; blocks: number };
  /** Clock for message times (default `Date.now`). */
  now?: () => number;
}

/** The compact, JSON-safe form of an estimate. */
export function toLiveEstimate<V>(e: Estimate<V>, series: LiveSeriesPoint[]): LiveEstimate {
  return {
    series,
    epsilon: e.epsilon,
    delta: e.delta,
    norm: e.norm,
    coverage: e.coverage,
    blocksUsed: e.blocksUsed,
    blocksMissing: e.blocksMissing,
    bytesMoved: e.bytesMoved,
    method: e.method,
    parts: e.parts,
    final: e.final,
  };
}

/**
 * Publishes a job's estimates to a hub as they flow through: `job-started` on subscription, one
 * `estimate` per value, `source-weight` when a source's weight changes, then `job-done` or
 * `job-failed` (with the error's stable code). Returns the same estimates, so it composes with any
 * pipeline: `publishJob(hub, info, coordinator.run(job), spectrumSeries(d, 3)).subscribe(...)`.
 */
export function publishJob<V>(
  hub: LiveHub,
  info: PublishedJob,
  estimates$: Observable<Estimate<V>>,
  summarize: Summarizer<V>,
): Observable<Estimate<V>> {
  const now = info.now ?? Date.now;
  return new Observable<Estimate<V>>((subscriber) => {
    const started = {
      v: LIVE_PROTOCOL_VERSION,
      type: 'job-started',
      jobId: info.jobId,
      name: info.name,
      at: now(),
    } as const;
    hub.publish(info.dataset === undefined ? started : { ...started, dataset: info.dataset });
    let seq = 0;
    const weights = new Map<string, number>();
    let ended = false;
    const sub: Subscription = estimates$.subscribe({
      next: (e) => {
        hub.publish({
          v: 1,
          type: 'estimate',
          jobId: info.jobId,
          seq: ++seq,
          at: now(),
          estimate: toLiveEstimate(e, summarize(e.value, e)),
        });
        for (const s of e.sources) {
          if (weights.get(s.id) === s.weight) continue;
          weights.set(s.id, s.weight);
          hub.publish({ v: 1, type: 'source-weight', source: s.id, weight: s.weight, reliability: s.reliability, at: now() });
        }
        subscriber.next(e);
      },
      error: (err: unknown) => {
        ended = true;
        const code = typeof (err as { code?: unknown }).code === 'string' ? (err as { code: string }).code : 'INTERNAL';
        hub.publish({
          v: 1,
          type: 'job-failed',
          jobId: info.jobId,
          at: now(),
          code,
          message: (err as Error).message ?? String(err),
        });
        subscriber.error(err);
      },
      complete: () => {
        ended = true;
        hub.publish({ v: 1, type: 'job-done', jobId: info.jobId, at: now() });
        subscriber.complete();
      },
    });
    return () => {
      sub.unsubscribe();
      if (!ended) hub.publish({ v: 1, type: 'job-failed', jobId: info.jobId, at: now(), code: 'CANCELLED', message: 'stopped' });
    };
  });
}

/**
 * The first `max` coordinates of a vector estimate, each with its band (`epsilonPerCoordinate` when the
 * estimate has it, else ±ε). `names` labels them (default `label[j]`).
 */
export function vectorSeries(label: string, max = 6, names?: readonly string[]): Summarizer<ArrayLike<number>> {
  return (value, e) => {
    const out: LiveSeriesPoint[] = [];
    const per = e.epsilonPerCoordinate;
    for (let j = 0; j < Math.min(max, value.length); j++) {
      const eps = per?.[j] ?? e.epsilon;
      const v = value[j]!;
      out.push({ name: names?.[j] ?? `${label}[${j}]`, value: v, lo: v - eps, hi: v + eps });
    }
    return out;
  };
}

/**
 * The `k` largest eigenvalues of a symmetric d × d estimate (Gram or covariance: the principal components'
 * variances), each with the band ±ε: by Weyl's inequality an error of spectral norm ε moves every
 * eigenvalue by at most ε, so the band holds with the estimate's own probability 1 − δ.
 */
export function spectrumSeries(d: number, k = 3): Summarizer<ArrayLike<number>> {
  return (value, e) => {
    const values = topEigenvalues(value, d, k);
    const eps = e.norm === 'spectral' ? e.epsilon : Number.POSITIVE_INFINITY;
    return values.map((v, i) => ({
      name: `λ${i + 1}`,
      value: v,
      ...(Number.isFinite(eps) ? { lo: v - eps, hi: v + eps } : {}),
    }));
  };
}

/** The `k` largest eigenvalues of a symmetric d × d row-major matrix, descending (ml-matrix EVD). */
export function topEigenvalues(s: ArrayLike<number>, d: number, k: number): number[] {
  const m = new Matrix(d, d);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) m.set(i, j, 0.5 * (s[i * d + j]! + s[j * d + i]!));
  const evd = new EigenvalueDecomposition(m, { assumeSymmetric: true });
  return [...evd.realEigenvalues].sort((a, b) => b - a).slice(0, k);
}

/**
 * Turns the coordinator's per-attempt outcomes into `depot-health` messages, sent only on a change of
 * state: `failed` after an attempt that errs or times out, `slow` after one answered later than the
 * job wanted (`late`), `up` after an answer.
 */
export class DepotHealthTracker {
  readonly #states = new Map<string, DepotState>();

  constructor(
    private readonly hub: LiveHub,
    private readonly reliability: (depot: string) => number,
    private readonly now: () => number = Date.now,
  ) {}

  /** One attempt's outcome on `depot`. */
  observe(depot: string, outcome: 'answer' | 'failure' | 'late', reason?: string): void {
    const state: DepotState = outcome === 'answer' ? 'up' : outcome === 'late' ? 'slow' : 'failed';
    this.set(depot, state, reason);
  }

  /** Sets a depot's state directly (e.g. `up` for every depot at the start of a job). */
  set(depot: string, state: DepotState, reason?: string): void {
    if (this.#states.get(depot) === state) return;
    this.#states.set(depot, state);
    this.hub.publish({
      v: 1,
      type: 'depot-health',
      depot,
      state,
      reliability: this.reliability(depot),
      at: this.now(),
      ...(reason === undefined ? {} : { reason }),
    });
  }

  state(depot: string): DepotState | undefined {
    return this.#states.get(depot);
  }
}
