import type { Prng } from './prng.js';

/** How big a run is: `short` for CI (well under a minute), `full` for `npm run test:chaos`. */
export type Scale = 'short' | 'full';

/** The figures every run reports; each scenario adds to them. Zero-figures must stay 0. */
export interface ZeroFigures {
  acked_lost: number;
  wrong_bytes: number;
  depot_crashes: number;
  forged_caps_accepted: number;
  hangs: number;
}

export type FigureValue = number | string | boolean | null;

/** The figures of a run: the zero-figures, the seed, and named measurements. */
export class Figures {
  readonly zero: ZeroFigures = { acked_lost: 0, wrong_bytes: 0, depot_crashes: 0, forged_caps_accepted: 0, hangs: 0 };
  readonly other: Record<string, FigureValue> = {};
  readonly skipped: string[] = [];
  /** Invariants a scenario checked beyond the zero-figures that did not hold, with what was seen. */
  readonly violations: string[] = [];

  constructor(readonly seed: number) {}

  count(key: keyof ZeroFigures, n: number): void {
    this.zero[key] += n;
  }

  set(key: string, value: FigureValue): void {
    this.other[key] = value;
  }

  add(key: string, n: number): void {
    const v = this.other[key];
    this.other[key] = (typeof v === 'number' ? v : 0) + n;
  }

  skip(scenario: string, reason: string): void {
    this.skipped.push(`${scenario}: ${reason}`);
  }

  violate(what: string): void {
    this.violations.push(what);
  }

  /** Whether every zero-figure is 0 and no invariant was violated. */
  get clean(): boolean {
    return Object.values(this.zero).every((v) => v === 0) && this.violations.length === 0;
  }

  toJSON(): Record<string, unknown> {
    return { ...this.zero, seed: this.seed, ...this.other, violations: this.violations, skipped: this.skipped };
  }
}

/** What a scenario gets: its own random stream, a scratch directory, the scale, and the figures. */
export interface ScenarioContext {
  readonly rand: Prng;
  readonly scale: Scale;
  /** A directory of its own, removed after the run. */
  readonly dir: string;
  readonly figures: Figures;
  log(message: string): void;
}

export interface Scenario {
  readonly name: string;
  /** It measures latency or timing: when scenarios run side by side (`lanes` > 1), it runs alone. */
  readonly exclusive?: boolean;
  run(ctx: ScenarioContext): Promise<void>;
}

/** Median of a list (0 when empty). */
export function median(xs: readonly number[]): number {
  return quantile(xs, 0.5);
}

/** The q-quantile (nearest rank) of a list (0 when empty). */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

/** Rounds for printing. */
export const round = (x: number, digits = 2): number => Number(x.toFixed(digits));
