import { checkInteger, checkNumber, invalidArgument } from './errors.js';

/** Ways a simulated source goes wrong: frozen value, spikes, gaps, unrelated values. */
export type SensorFault = 'stuck' | 'spiking' | 'dropout' | 'garbage';
export const SENSOR_FAULTS: readonly SensorFault[] = Object.freeze(['stuck', 'spiking', 'dropout', 'garbage']);

/** Options of the sensor-field simulator; every field has a default. */
export interface SensorFieldOptions {
  /** Seed of every random draw (default 1): same options and seed, same rows, bit for bit. */
  readonly seed?: number;
  /** Sites (default 3), named `site-0`, `site-1`, … */
  readonly sites?: number;
  /** Sensors per site (default 4); source ids are `site-i/sensor-j`. */
  readonly sensorsPerSite?: number;
  /** Channels per sensor = columns of the data matrix (default 8). */
  readonly channels?: number;
  /** Latent factors k (default 2), k < channels. */
  readonly factors?: number;
  /** Time steps per sensor (default 1000); `Infinity` only for {@link streamSensorField}. */
  readonly rowsPerSensor?: number;
  /** Standard deviation of each factor's contribution (default 3, 2, 1.5, 1.2, 1, 1, …), one per factor. */
  readonly factorScales?: readonly number[];
  /** Lag-one autocorrelation of the factors' AR(1) processes (default 0.95; 0 = white). */
  readonly factorCorrelation?: number;
  /** Standard deviation of the independent per-channel noise (default 0.1). */
  readonly noiseStd?: number;
  /** Standard deviation of the channel means (default 1). */
  readonly meanScale?: number;
  /** Per-sensor drift of the mean: N(0, driftStd²) per channel every `driftPeriodRows` steps (default 0.05). */
  readonly driftStd?: number;
  /** Steps over which a sensor's drift builds up (default: rowsPerSensor, or 1000 when unbounded). */
  readonly driftPeriodRows?: number;
  /** Fraction of sources with each fault (default 0 each; the sum at most 1). */
  readonly faultRates?: Readonly<Partial<Record<SensorFault, number>>>;
  /** Time step from which faults act (default 0). */
  readonly faultOnsetRow?: number;
  /** Chance that a row of a spiking source carries a spike (default 0.05). */
  readonly spikeProbability?: number;
  /** Spike size in standard deviations of the channel (default 50). */
  readonly spikeScale?: number;
  /** Garbage rows are uniform in ±garbageScale (default 100). */
  readonly garbageScale?: number;
  /** Steps a dropping-out source stays silent from the onset (default: half of rowsPerSensor, or 500). */
  readonly dropoutRows?: number;
}

/** Simulator options with every default applied, validated and frozen (what `SensorField.options` holds). */
export interface ResolvedSensorFieldOptions {
  readonly seed: number;
  readonly sites: number;
  readonly sensorsPerSite: number;
  readonly channels: number;
  readonly factors: number;
  readonly rowsPerSensor: number;
  readonly factorScales: readonly number[];
  readonly factorCorrelation: number;
  readonly noiseStd: number;
  readonly meanScale: number;
  readonly driftStd: number;
  readonly driftPeriodRows: number;
  readonly faultRates: Readonly<Record<SensorFault, number>>;
  readonly faultOnsetRow: number;
  readonly spikeProbability: number;
  readonly spikeScale: number;
  readonly garbageScale: number;
  readonly dropoutRows: number;
}

const KEYS = new Set([
  'seed',
  'sites',
  'sensorsPerSite',
  'channels',
  'factors',
  'rowsPerSensor',
  'factorScales',
  'factorCorrelation',
  'noiseStd',
  'meanScale',
  'driftStd',
  'driftPeriodRows',
  'faultRates',
  'faultOnsetRow',
  'spikeProbability',
  'spikeScale',
  'garbageScale',
  'dropoutRows',
]);
const DEFAULT_SCALES = [3, 2, 1.5, 1.2];
/** Largest field the simulator builds: sources × channels. */
export const MAX_SENSOR_FIELD_WIDTH = 1_000_000;

/** @internal Validates simulator options once; errors name the option, the rule and the value. */
export function resolveSensorFieldOptions(o: SensorFieldOptions, unbounded = false): ResolvedSensorFieldOptions {
  for (const k of Object.keys(o)) if (!KEYS.has(k)) throw invalidArgument(k, `one of the options ${[...KEYS].join(', ')}`, k);
  const seed = checkInteger('seed', o.seed ?? 1, -(2 ** 31), 2 ** 31 - 1);
  const sites = checkInteger('sites', o.sites ?? 3, 1, 10_000);
  const sensorsPerSite = checkInteger('sensorsPerSite', o.sensorsPerSite ?? 4, 1, 100_000);
  const channels = checkInteger('channels', o.channels ?? 8, 2, 100_000);
  const factors = checkInteger('factors', o.factors ?? 2, 1, channels - 1);
  if (sites * sensorsPerSite * channels > MAX_SENSOR_FIELD_WIDTH) {
    throw invalidArgument(
      'sites · sensorsPerSite · channels',
      `at most ${MAX_SENSOR_FIELD_WIDTH}`,
      sites * sensorsPerSite * channels,
    );
  }
  const rows = o.rowsPerSensor ?? 1000;
  const rowsPerSensor =
    unbounded && rows === Infinity
      ? Infinity
      : checkInteger('rowsPerSensor', rows, 1, unbounded ? Number.MAX_SAFE_INTEGER : 100_000_000);
  const bounded = Number.isFinite(rowsPerSensor);
  const factorScales = o.factorScales ?? Array.from({ length: factors }, (_, i) => DEFAULT_SCALES[i] ?? 1);
  if (!Array.isArray(factorScales) || factorScales.length !== factors) {
    throw invalidArgument('factorScales', `a list of ${factors} numbers (one per factor)`, factorScales);
  }
  factorScales.forEach((s, i) => checkNumber(`factorScales[${i}]`, s, 0));
  const faultRates = {} as Record<SensorFault, number>;
  const rates = o.faultRates ?? {};
  for (const k of Object.keys(rates)) {
    if (!SENSOR_FAULTS.includes(k as SensorFault))
      throw invalidArgument(`faultRates.${k}`, `one of ${SENSOR_FAULTS.join(', ')}`, k);
  }
  let total = 0;
  for (const f of SENSOR_FAULTS) {
    faultRates[f] = checkNumber(`faultRates.${f}`, rates[f] ?? 0, 0, 1);
    total += faultRates[f];
  }
  if (total > 1) throw invalidArgument('faultRates', 'rates that sum to at most 1', total);
  return Object.freeze({
    seed,
    sites,
    sensorsPerSite,
    channels,
    factors,
    rowsPerSensor,
    factorScales: Object.freeze([...factorScales]),
    factorCorrelation: checkNumber('factorCorrelation', o.factorCorrelation ?? 0.95, 0, 0.999_999),
    noiseStd: checkNumber('noiseStd', o.noiseStd ?? 0.1, 0),
    meanScale: checkNumber('meanScale', o.meanScale ?? 1, 0),
    driftStd: checkNumber('driftStd', o.driftStd ?? 0.05, 0),
    driftPeriodRows: checkInteger('driftPeriodRows', o.driftPeriodRows ?? (bounded ? rowsPerSensor : 1000), 1),
    faultRates: Object.freeze(faultRates),
    faultOnsetRow: checkInteger('faultOnsetRow', o.faultOnsetRow ?? 0, 0),
    spikeProbability: checkNumber('spikeProbability', o.spikeProbability ?? 0.05, 0, 1),
    spikeScale: checkNumber('spikeScale', o.spikeScale ?? 50, 0),
    garbageScale: checkNumber('garbageScale', o.garbageScale ?? 100, 0),
    dropoutRows: checkInteger('dropoutRows', o.dropoutRows ?? (bounded ? Math.floor(rowsPerSensor / 2) : 500), 0),
  });
}
