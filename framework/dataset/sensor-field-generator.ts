import { SeededRandom } from './seeded-random.js';
import type { ResolvedSensorFieldOptions, SensorFault } from './sensor-field-options.js';

/** One simulated source: a sensor at a site, with its fault if it has one. */
export interface SensorSource {
  /** `site-i/sensor-j`. */
  readonly id: string;
  readonly site: string;
  readonly fault: SensorFault | undefined;
}

/** A faulty source of the ground truth: what goes wrong and over which time steps `[onsetRow, endRow)`. */
export interface FaultySource {
  readonly source: string;
  readonly fault: SensorFault;
  readonly onsetRow: number;
  /** First step after the fault (`Infinity` when it lasts to the end). */
  readonly endRow: number;
}

/**
 * The population model behind the clean rows: row `x_t = mean + drift·t/driftPeriodRows + W z_t + noise`
 * with `W = subspace · diag(factorScales)`, `z_t` a unit-variance AR(1) per site, noise N(0, noiseStd²),
 * so (drift aside) `covariance = W Wᵀ + noiseStd² I`.
 */
export interface SensorFieldModel {
  readonly channels: number;
  readonly factors: number;
  /** Channel means at step 0 (length channels). */
  readonly mean: Float64Array;
  /** Orthonormal basis of the latent subspace, channels × factors, row-major. */
  readonly subspace: Float64Array;
  readonly factorScales: readonly number[];
  readonly noiseStd: number;
  /** Population covariance of a clean row (without drift), channels × channels, row-major. */
  readonly covariance: Float64Array;
}

/** @internal Rows a source emitted over some steps. */
export interface SourceChunk {
  readonly times: Float64Array;
  readonly data: Float64Array;
}

/** @internal The simulator's state machine: one call to {@link steps} advances every site and source. */
export class SensorFieldGenerator {
  readonly sites: string[];
  readonly sources: SensorSource[];
  readonly faulty: FaultySource[];
  readonly model: SensorFieldModel;
  private readonly siteOf: number[];
  private readonly siteRng: SeededRandom[];
  private readonly sourceRng: SeededRandom[];
  private readonly drift: Float64Array[];
  private readonly loadings: Float64Array; // channels × factors
  private readonly channelStd: Float64Array;
  private readonly z: Float64Array[];
  private readonly frozen: Array<Float64Array | undefined>;
  private t = 0;

  constructor(readonly options: ResolvedSensorFieldOptions) {
    const o = options;
    const d = o.channels;
    const k = o.factors;
    const n = o.sites * o.sensorsPerSite;
    const root = SeededRandom.fromSeed(o.seed);
    const [setup, ...streams] = root.split(1 + o.sites + n);
    this.siteRng = streams.slice(0, o.sites);
    this.sourceRng = streams.slice(o.sites);
    const mean = Float64Array.from({ length: d }, () => o.meanScale * setup!.normal());
    const subspace = orthonormalColumns(setup!, d, k);
    this.loadings = new Float64Array(d * k);
    for (let c = 0; c < d; c++) for (let j = 0; j < k; j++) this.loadings[c * k + j] = subspace[c * k + j]! * o.factorScales[j]!;
    const covariance = new Float64Array(d * d);
    for (let a = 0; a < d; a++) {
      for (let b = 0; b < d; b++) {
        let s = a === b ? o.noiseStd * o.noiseStd : 0;
        for (let j = 0; j < k; j++) s += this.loadings[a * k + j]! * this.loadings[b * k + j]!;
        covariance[a * d + b] = s;
      }
    }
    this.channelStd = Float64Array.from({ length: d }, (_, c) => Math.sqrt(covariance[c * d + c]!));
    this.model = { channels: d, factors: k, mean, subspace, factorScales: o.factorScales, noiseStd: o.noiseStd, covariance };
    this.drift = Array.from({ length: n }, () => Float64Array.from({ length: d }, () => o.driftStd * setup!.normal()));

    // Faults: a seeded permutation of the sources, cut into runs of round(rate · n) per kind.
    const faultOf: Array<SensorFault | undefined> = new Array<SensorFault | undefined>(n).fill(undefined);
    const order = setup!.permutation(n);
    let next = 0;
    for (const f of ['stuck', 'spiking', 'dropout', 'garbage'] as const) {
      const count = Math.min(n - next, Math.round(o.faultRates[f] * n));
      for (let i = 0; i < count; i++) faultOf[order[next++]!] = f;
    }
    this.sites = Array.from({ length: o.sites }, (_, s) => `site-${s}`);
    this.siteOf = Array.from({ length: n }, (_, i) => Math.floor(i / o.sensorsPerSite));
    this.sources = faultOf.map((fault, i) => ({
      id: `site-${this.siteOf[i]}/sensor-${i % o.sensorsPerSite}`,
      site: this.sites[this.siteOf[i]!]!,
      fault,
    }));
    this.faulty = this.sources
      .filter((s) => s.fault !== undefined)
      .map((s) => ({
        source: s.id,
        fault: s.fault!,
        onsetRow: o.faultOnsetRow,
        endRow: s.fault === 'dropout' ? o.faultOnsetRow + o.dropoutRows : Infinity,
      }));
    this.z = Array.from({ length: o.sites }, () => new Float64Array(k));
    this.frozen = new Array<Float64Array | undefined>(n).fill(undefined);
  }

  /** Time steps generated so far. */
  get step(): number {
    return this.t;
  }

  /** Advances `count` steps; returns what each source emitted (in source order). */
  steps(count: number): SourceChunk[] {
    const o = this.options;
    const d = o.channels;
    const n = this.sources.length;
    const data = Array.from({ length: n }, () => new Float64Array(count * d));
    const times = Array.from({ length: n }, () => new Float64Array(count));
    const emitted = new Int32Array(n);
    const innov = Math.sqrt(1 - o.factorCorrelation * o.factorCorrelation);
    for (let s = 0; s < count; s++, this.t++) {
      const t = this.t;
      for (let site = 0; site < o.sites; site++) {
        const z = this.z[site]!;
        const rng = this.siteRng[site]!;
        for (let j = 0; j < z.length; j++) z[j] = t === 0 ? rng.normal() : o.factorCorrelation * z[j]! + innov * rng.normal();
      }
      for (let i = 0; i < n; i++) {
        const row = data[i]!.subarray(emitted[i]! * d, (emitted[i]! + 1) * d);
        if (this.emit(i, t, row)) times[i]![emitted[i]!++] = t;
      }
    }
    return data.map((buf, i) => ({
      times: times[i]!.slice(0, emitted[i]!),
      data: emitted[i]! === count ? buf : buf.slice(0, emitted[i]! * d),
    }));
  }

  /** Writes source `i`'s row of step `t` into `row`; false when the source is silent. */
  private emit(i: number, t: number, row: Float64Array): boolean {
    const o = this.options;
    const d = o.channels;
    const k = o.factors;
    const rng = this.sourceRng[i]!;
    const z = this.z[this.siteOf[i]!]!;
    const drift = this.drift[i]!;
    const mean = this.model.mean;
    const phase = t / o.driftPeriodRows;
    for (let c = 0; c < d; c++) {
      let v = mean[c]! + drift[c]! * phase + o.noiseStd * rng.normal();
      for (let j = 0; j < k; j++) v += this.loadings[c * k + j]! * z[j]!;
      row[c] = v;
    }
    const fault = this.sources[i]!.fault;
    if (fault === undefined || t < o.faultOnsetRow) return true;
    switch (fault) {
      case 'stuck':
        this.frozen[i] ??= row.slice();
        row.set(this.frozen[i]!);
        return true;
      case 'spiking':
        if (rng.uniform() < o.spikeProbability) {
          const c = rng.below(d);
          row[c]! += (rng.uniform() < 0.5 ? -1 : 1) * o.spikeScale * this.channelStd[c]!;
        }
        return true;
      case 'dropout':
        return t >= o.faultOnsetRow + o.dropoutRows;
      case 'garbage':
        for (let c = 0; c < d; c++) row[c] = (2 * rng.uniform() - 1) * o.garbageScale;
        return true;
    }
  }
}

/** A random d × k matrix with orthonormal columns (modified Gram–Schmidt of a Gaussian one), row-major. */
function orthonormalColumns(rng: SeededRandom, d: number, k: number): Float64Array {
  const q = Float64Array.from({ length: d * k }, () => rng.normal());
  for (let j = 0; j < k; j++) {
    for (let p = 0; p < j; p++) {
      let dot = 0;
      for (let c = 0; c < d; c++) dot += q[c * k + j]! * q[c * k + p]!;
      for (let c = 0; c < d; c++) q[c * k + j]! -= dot * q[c * k + p]!;
    }
    let norm = 0;
    for (let c = 0; c < d; c++) norm += q[c * k + j]! ** 2;
    norm = Math.sqrt(norm);
    for (let c = 0; c < d; c++) q[c * k + j]! /= norm;
  }
  return q;
}
