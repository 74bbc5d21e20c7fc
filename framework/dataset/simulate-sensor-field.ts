import { SensorFieldGenerator, type FaultySource, type SensorFieldModel, type SensorSource } from './sensor-field-generator.js';
import { resolveSensorFieldOptions, type ResolvedSensorFieldOptions, type SensorFieldOptions } from './sensor-field-options.js';

/** The rows one source emitted: `rows × channels`, row-major, with the time step of each row. */
export interface SourceRows {
  readonly source: string;
  readonly site: string;
  readonly rows: number;
  /** Time step of each row (a dropping-out source skips steps). */
  readonly times: Float64Array;
  readonly data: Float64Array;
}

/** Exact statistics of the rows the healthy sources emitted (what a robust estimate should recover). */
export interface CleanStatistics {
  /** The healthy sources. */
  readonly sources: readonly string[];
  readonly rows: number;
  /** Σ rows (length channels). */
  readonly colSums: Float64Array;
  /** Σ x xᵀ, channels × channels row-major. */
  readonly gram: Float64Array;
  /** colSums / rows. */
  readonly mean: Float64Array;
  /** (1/rows) Σ (x − mean)(x − mean)ᵀ, channels × channels row-major. */
  readonly covariance: Float64Array;
}

/** What the tests know and an estimator should find: the model, the faulty sources, the clean statistics. */
export interface SensorFieldTruth extends SensorFieldModel {
  readonly faulty: readonly FaultySource[];
  readonly clean: CleanStatistics;
}

/** A simulated sensor field: sites, sources, every source's rows and the ground truth. */
export interface SensorField {
  readonly options: ResolvedSensorFieldOptions;
  readonly sites: readonly string[];
  readonly sources: readonly SensorSource[];
  /** One entry per source, in the order of `sources`. */
  readonly rows: readonly SourceRows[];
  readonly truth: SensorFieldTruth;
}

/** The field's layout and population truth without generating any row (see {@link streamSensorField}). */
export interface SensorFieldDescription {
  readonly options: ResolvedSensorFieldOptions;
  readonly sites: readonly string[];
  readonly sources: readonly SensorSource[];
  readonly model: SensorFieldModel;
  readonly faulty: readonly FaultySource[];
}

/**
 * Simulates a sensor field, seeded: `sites × sensorsPerSite` sources, each emitting one row of `channels`
 * values per time step, `x_t = mean + drift_s·t/driftPeriodRows + W z_t + noise` with a few latent factors
 * `z_t` (an AR(1) per site, shared by the site's sensors) spanning a known subspace; a seeded share of the
 * sources is faulty (stuck, spiking, dropping out, sending garbage) from `faultOnsetRow`.
 *
 * @param options - see {@link SensorFieldOptions}; all have defaults
 * @returns every source's rows and the ground truth (model, faulty sources, exact clean statistics)
 * @throws DatasetError `DATA_E_INVALID_ARGUMENT` for an unknown or out-of-range option
 * @example
 * const field = simulateSensorField({ seed: 7, sites: 2, faultRates: { garbage: 0.25 } });
 * field.truth.faulty; // [{ source: 'site-1/sensor-2', fault: 'garbage', onsetRow: 0, endRow: Infinity }, …]
 */
export function simulateSensorField(options: SensorFieldOptions = {}): SensorField {
  const gen = new SensorFieldGenerator(resolveSensorFieldOptions(options));
  const chunks = gen.steps(gen.options.rowsPerSensor);
  const rows = gen.sources.map((s, i) => ({
    source: s.id,
    site: s.site,
    rows: chunks[i]!.times.length,
    times: chunks[i]!.times,
    data: chunks[i]!.data,
  }));
  const clean = cleanStatistics(
    rows.filter((_, i) => gen.sources[i]!.fault === undefined),
    gen.options.channels,
  );
  return {
    options: gen.options,
    sites: gen.sites,
    sources: gen.sources,
    rows,
    truth: { ...gen.model, faulty: gen.faulty, clean },
  };
}

/**
 * The layout and population model of a field (sources, sites, subspace, faulty sources) for the same
 * options, without generating rows — what a streaming consumer of {@link streamSensorField} knows upfront.
 * @throws DatasetError `DATA_E_INVALID_ARGUMENT` for an unknown or out-of-range option
 */
export function describeSensorField(options: SensorFieldOptions = {}): SensorFieldDescription {
  const gen = new SensorFieldGenerator(resolveSensorFieldOptions(options, true));
  return { options: gen.options, sites: gen.sites, sources: gen.sources, model: gen.model, faulty: gen.faulty };
}

function cleanStatistics(rows: readonly SourceRows[], d: number): CleanStatistics {
  const colSums = new Float64Array(d);
  const gram = new Float64Array(d * d);
  let n = 0;
  for (const r of rows) {
    for (let i = 0; i < r.rows; i++) {
      const base = i * d;
      for (let a = 0; a < d; a++) {
        const xa = r.data[base + a]!;
        colSums[a]! += xa;
        for (let b = 0; b < d; b++) gram[a * d + b]! += xa * r.data[base + b]!;
      }
    }
    n += r.rows;
  }
  const mean = colSums.map((s) => (n === 0 ? 0 : s / n));
  const covariance = new Float64Array(d * d);
  if (n > 0)
    for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) covariance[a * d + b] = gram[a * d + b]! / n - mean[a]! * mean[b]!;
  return { sources: rows.map((r) => r.source), rows: n, colSums, gram, mean, covariance };
}
