import { randomBytes } from 'node:crypto';
import { readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { betaQuantile } from './beta.js';
import { CoordinatorError, CoordinatorErrorCode, checkOpenUnit, checkPositive, invalidArgument } from './errors.js';
import { blockInclusion, DEFAULT_PI_MIN } from './inclusion.js';
import { LATENCY_BUCKETS, LatencyHistogram } from './latency-histogram.js';
import { robustQualityWeights, type QualityScore } from './quality.js';
import type { Clock, Inclusion, SourceWeight } from './types.js';

/** Default half-life of reliability history: 6 hours. */
export const DEFAULT_RELIABILITY_HALF_LIFE_MS = 6 * 3_600_000;
/** Default half-life of data-quality history: 10 minutes (a recovered source regains weight quickly). */
export const DEFAULT_QUALITY_HALF_LIFE_MS = 10 * 60_000;
/** Default lower posterior quantile used as the conservative answer probability. */
export const DEFAULT_LOWER_QUANTILE = 0.05;
const STATE_VERSION = 1;

/** Options of a {@link ReliabilityStore}; validated once at construction. */
export interface ReliabilityStoreOptions {
  clock: Clock;
  halfLifeMs?: number;
  qualityHalfLifeMs?: number;
  /** Beta prior pseudo-counts (answers, failures). Default 1, 1 (uniform). */
  priorAnswers?: number;
  priorFailures?: number;
  lowerQuantile?: number;
  piMin?: number;
  /** Robust z up to which a source keeps full weight. Default 3. */
  zFull?: number;
}

/** A depot's reliability now. */
export interface DepotReliability {
  id: string;
  /** Decayed counts. */
  answers: number;
  failures: number;
  late: number;
  /** Posterior mean answer probability. */
  p: number;
  /** Lower posterior quantile (`lowerQuantile`) of the answer probability. */
  pLower: number;
  latencyP50Ms: number | undefined;
  latencyP95Ms: number | undefined;
}

/** What `snapshot()` shows (CLI, metrics). */
export interface ReliabilitySnapshot {
  at: number;
  depots: DepotReliability[];
  sources: (QualityScore & { observations: number })[];
}

interface DepotState {
  answers: number;
  failures: number;
  late: number;
  at: number;
  latency: LatencyHistogram;
}

interface SourceState {
  residualSum: number;
  residualWeight: number;
  observations: number;
  at: number;
}

/**
 * Per-depot and per-source history with exponential time decay: answers, failures, late
 * answers and latency per depot; a data-quality residual per source. Gives each depot a Beta posterior
 * Beta(α₀ + answers, β₀ + failures) of its answer probability (decayed counts: old evidence counts less, so
 * the posterior follows a depot that changed), the block inclusion probabilities derived from it, hedging
 * delays from latency quantiles, and source weights from robust z-scores. Persists as one JSON file,
 * written atomically.
 */
export class ReliabilityStore {
  readonly options: Readonly<Required<ReliabilityStoreOptions>>;
  readonly #depots = new Map<string, DepotState>();
  readonly #sources = new Map<string, SourceState>();

  constructor(options: ReliabilityStoreOptions) {
    if (typeof options.clock?.now !== 'function') throw invalidArgument('clock', 'an object with now()', options.clock);
    const o = {
      clock: options.clock,
      halfLifeMs: options.halfLifeMs ?? DEFAULT_RELIABILITY_HALF_LIFE_MS,
      qualityHalfLifeMs: options.qualityHalfLifeMs ?? DEFAULT_QUALITY_HALF_LIFE_MS,
      priorAnswers: options.priorAnswers ?? 1,
      priorFailures: options.priorFailures ?? 1,
      lowerQuantile: options.lowerQuantile ?? DEFAULT_LOWER_QUANTILE,
      piMin: options.piMin ?? DEFAULT_PI_MIN,
      zFull: options.zFull ?? 3,
    };
    checkPositive('halfLifeMs', o.halfLifeMs);
    checkPositive('qualityHalfLifeMs', o.qualityHalfLifeMs);
    checkPositive('priorAnswers', o.priorAnswers);
    checkPositive('priorFailures', o.priorFailures);
    checkOpenUnit('lowerQuantile', o.lowerQuantile);
    checkOpenUnit('piMin', o.piMin);
    checkPositive('zFull', o.zFull);
    this.options = Object.freeze(o);
  }

  /** A depot answered (in time unless `late`) after `latencyMs`. */
  recordAnswer(depotId: string, latencyMs: number, options: { late?: boolean } = {}): void {
    if (!Number.isFinite(latencyMs) || latencyMs < 0) throw invalidArgument('latencyMs', 'finite and ≥ 0', latencyMs);
    const d = this.#depot(depotId);
    d.answers += 1;
    if (options.late) d.late += 1;
    d.latency.add(latencyMs);
  }

  /** A depot failed (error, timeout, unreachable); a latency, if known (a timeout's), enters the histogram. */
  recordFailure(depotId: string, options: { latencyMs?: number } = {}): void {
    const d = this.#depot(depotId);
    d.failures += 1;
    if (options.latencyMs !== undefined) {
      if (!Number.isFinite(options.latencyMs) || options.latencyMs < 0) {
        throw invalidArgument('latencyMs', 'finite and ≥ 0', options.latencyMs);
      }
      d.latency.add(options.latencyMs);
    }
  }

  /** Reliability of a depot now (prior only for an unknown depot). */
  depot(depotId: string): DepotReliability {
    const d = this.#depots.get(depotId);
    if (d) this.#decayDepot(d);
    const answers = d?.answers ?? 0;
    const failures = d?.failures ?? 0;
    const a = this.options.priorAnswers + answers;
    const b = this.options.priorFailures + failures;
    return {
      id: depotId,
      answers,
      failures,
      late: d?.late ?? 0,
      p: a / (a + b),
      pLower: betaQuantile(this.options.lowerQuantile, a, b),
      latencyP50Ms: d?.latency.quantile(0.5),
      latencyP95Ms: d?.latency.quantile(0.95),
    };
  }

  /** Inclusion probability of a block held by these replica depots (hedged over all of them). */
  inclusion(replicaDepotIds: readonly string[]): Inclusion {
    return blockInclusion(
      replicaDepotIds.map((id) => this.depot(id)),
      this.options.piMin,
    );
  }

  /** Latency q-quantile of a depot (upper bucket edge, ms), e.g. the delay before hedging; undefined without history. */
  latencyQuantile(depotId: string, q: number): number | undefined {
    checkOpenUnit('q', q);
    const d = this.#depots.get(depotId);
    if (!d) return undefined;
    this.#decayDepot(d);
    return d.latency.quantile(q);
  }

  /** Records a source's data-quality residual (e.g. ‖a − VVᵀa‖/‖a‖ of its rows, or disagreement with a replica). */
  recordResidual(sourceId: string, residual: number): void {
    if (!Number.isFinite(residual) || residual < 0) throw invalidArgument('residual', 'finite and ≥ 0', residual);
    const s = this.#source(sourceId);
    s.residualSum += residual;
    s.residualWeight += 1;
    s.observations += 1;
  }

  /** Quality scores and weights of every known source (robust z-score against the peers). */
  sourceScores(): QualityScore[] {
    const residuals = new Map<string, number>();
    for (const [id, s] of this.#sources) {
      this.#decaySource(s);
      if (s.residualWeight > 0) residuals.set(id, s.residualSum / s.residualWeight);
    }
    return robustQualityWeights(residuals, { zFull: this.options.zFull });
  }

  /** Weights for an estimate's `sources` (reliability = weight). */
  sourceWeights(): SourceWeight[] {
    return this.sourceScores().map((s) => ({ id: s.id, weight: s.weight, reliability: s.weight }));
  }

  /** Weight of one source (1 when unknown). */
  sourceWeight(sourceId: string): number {
    return this.sourceScores().find((s) => s.id === sourceId)?.weight ?? 1;
  }

  /** Everything, decayed to now, sorted by id (for `anvil reliability` and metrics). */
  snapshot(): ReliabilitySnapshot {
    const observations = new Map([...this.#sources].map(([id, s]) => [id, s.observations]));
    return {
      at: this.options.clock.now(),
      depots: [...this.#depots.keys()].sort().map((id) => this.depot(id)),
      sources: this.sourceScores().map((s) => ({ ...s, observations: observations.get(s.id) ?? 0 })),
    };
  }

  /** Plain JSON state (what `save` writes). */
  toJSON(): ReliabilityStateJson {
    const depots: ReliabilityStateJson['depots'] = {};
    for (const [id, d] of this.#depots) {
      this.#decayDepot(d);
      depots[id] = { answers: d.answers, failures: d.failures, late: d.late, at: d.at, latency: Array.from(d.latency.counts) };
    }
    const sources: ReliabilityStateJson['sources'] = {};
    for (const [id, s] of this.#sources) {
      this.#decaySource(s);
      sources[id] = { ...s };
    }
    return { version: STATE_VERSION, depots, sources };
  }

  /**
   * A store from a JSON state (see {@link toJSON}).
   * @throws CoordinatorError `COORD_E_RELIABILITY_STATE` naming the malformed field
   */
  static fromJSON(json: unknown, options: ReliabilityStoreOptions): ReliabilityStore {
    const store = new ReliabilityStore(options);
    const bad = (field: string, value: unknown): CoordinatorError =>
      new CoordinatorError(
        CoordinatorErrorCode.RELIABILITY_STATE,
        `reliability state: \`${field}\` is malformed (got ${JSON.stringify(value)?.slice(0, 80)})`,
        { details: { field } },
      );
    if (typeof json !== 'object' || json === null) throw bad('(root)', json);
    const root = json as Record<string, unknown>;
    if (root['version'] !== STATE_VERSION) throw bad('version', root['version']);
    const num = (o: Record<string, unknown>, k: string, path: string): number => {
      const v = o[k];
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw bad(`${path}.${k}`, v);
      return v;
    };
    const table = (k: string): Record<string, unknown> => {
      const v = root[k];
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(k, v);
      return v as Record<string, unknown>;
    };
    const entry = (v: unknown, path: string): Record<string, unknown> => {
      if (typeof v !== 'object' || v === null) throw bad(path, v);
      return v as Record<string, unknown>;
    };
    for (const [id, raw] of Object.entries(table('depots'))) {
      const path = `depots.${id}`;
      const o = entry(raw, path);
      const latency = o['latency'];
      if (
        !Array.isArray(latency) ||
        latency.length !== LATENCY_BUCKETS ||
        !latency.every((x) => typeof x === 'number' && Number.isFinite(x) && x >= 0)
      ) {
        throw bad(`${path}.latency`, latency);
      }
      store.#depots.set(id, {
        answers: num(o, 'answers', path),
        failures: num(o, 'failures', path),
        late: num(o, 'late', path),
        at: num(o, 'at', path),
        latency: new LatencyHistogram(latency as number[]),
      });
    }
    for (const [id, raw] of Object.entries(table('sources'))) {
      const path = `sources.${id}`;
      const o = entry(raw, path);
      store.#sources.set(id, {
        residualSum: num(o, 'residualSum', path),
        residualWeight: num(o, 'residualWeight', path),
        observations: num(o, 'observations', path),
        at: num(o, 'at', path),
      });
    }
    return store;
  }

  /** Writes the state to `path` atomically (temporary file in the same directory, then rename). */
  async save(path: string): Promise<void> {
    const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await writeFile(tmp, JSON.stringify(this.toJSON()) + '\n', { mode: 0o600 });
      await rename(tmp, path);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Loads a store from `path`; a missing file gives an empty store.
   * @throws CoordinatorError `COORD_E_RELIABILITY_STATE` for unreadable or malformed content
   */
  static async load(path: string, options: ReliabilityStoreOptions): Promise<ReliabilityStore> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new ReliabilityStore(options);
      throw new CoordinatorError(CoordinatorErrorCode.RELIABILITY_STATE, `reliability state: cannot read ${path}`, {
        cause: err,
        details: { path },
      });
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new CoordinatorError(CoordinatorErrorCode.RELIABILITY_STATE, `reliability state: ${path} is not valid JSON`, {
        cause: err,
        details: { path },
      });
    }
    return ReliabilityStore.fromJSON(json, options);
  }

  #depot(id: string): DepotState {
    let d = this.#depots.get(id);
    if (!d) {
      d = { answers: 0, failures: 0, late: 0, at: this.options.clock.now(), latency: new LatencyHistogram() };
      this.#depots.set(id, d);
    } else this.#decayDepot(d);
    return d;
  }

  #source(id: string): SourceState {
    let s = this.#sources.get(id);
    if (!s) {
      s = { residualSum: 0, residualWeight: 0, observations: 0, at: this.options.clock.now() };
      this.#sources.set(id, s);
    } else this.#decaySource(s);
    return s;
  }

  /** Counts decay by 2^(−Δt/half-life); a clock that steps back decays nothing. */
  #decayDepot(d: DepotState): void {
    const now = this.options.clock.now();
    const f = decayFactor(now - d.at, this.options.halfLifeMs);
    if (f < 1) {
      d.answers *= f;
      d.failures *= f;
      d.late *= f;
      d.latency.decay(f);
    }
    d.at = Math.max(d.at, now);
  }

  #decaySource(s: SourceState): void {
    const now = this.options.clock.now();
    const f = decayFactor(now - s.at, this.options.qualityHalfLifeMs);
    s.residualSum *= f;
    s.residualWeight *= f;
    s.at = Math.max(s.at, now);
  }
}

function decayFactor(elapsedMs: number, halfLifeMs: number): number {
  return elapsedMs > 0 ? 2 ** (-elapsedMs / halfLifeMs) : 1;
}

/** JSON form of a {@link ReliabilityStore}. */
export interface ReliabilityStateJson {
  version: number;
  depots: Record<string, { answers: number; failures: number; late: number; at: number; latency: number[] }>;
  sources: Record<string, { residualSum: number; residualWeight: number; observations: number; at: number }>;
}
