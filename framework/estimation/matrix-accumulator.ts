import { bernsteinRadius } from './bernstein.js';
import { buildEstimate, MAR, weightingText } from './estimate-builder.js';
import { invalidArgument } from './errors.js';
import { groupOf } from './horvitz-thompson.js';
import { coverageOf, resolvePlan } from './plan.js';
import { frobeniusNorm, symmetricEigenvalues } from './symmetric-eigen.js';
import type { BlockSummary, Estimate, EstimateOptions, PlannedBlock } from './types.js';

/** Largest symmetric matrix whose spectral norms are computed exactly (Jacobi); above it, Frobenius norms. */
export const DEFAULT_EXACT_NORM_MAX_DIM = 64;

/** An additive matrix statistic T = Σ_b T_b (rows × cols, row-major) and what a summary says about T_b. */
export interface MatrixStatistic {
  readonly name: string;
  readonly rows: number;
  readonly cols: number;
  /** Every T_b is symmetric positive semidefinite (e.g. A_bᵀA_b). */
  readonly psd: boolean;
  /** Upper bound on ‖T_b‖₂ from the summary alone. */
  normBound(summary: BlockSummary): number;
  /** psd only: lower bound on λ_min(T_b) from the summary (0 if unknown). */
  eigMinBound?(summary: BlockSummary): number;
}

/** Gram A_bᵀA_b (d × d, PSD): ‖A_bᵀA_b‖ = σ_max(A_b)² ≤ ‖A_b‖_F² = f_b, or `gramEigMax` when recorded. */
export function gramStatistic(d: number): MatrixStatistic {
  return {
    name: 'gram',
    rows: d,
    cols: d,
    psd: true,
    normBound: (s) => s.gramEigMax ?? s.frob2,
    eigMinBound: (s) => s.gramEigMin ?? 0,
  };
}

/**
 * Aᵀ(AX) = Σ_b A_bᵀA_b X for a known d × k matrix X: ‖A_bᵀA_b X‖ ≤ ‖A_bᵀA_b‖·‖X‖₂.
 * @param xNorm - an upper bound on ‖X‖₂ (e.g. its Frobenius norm)
 */
export function projectionStatistic(d: number, k: number, xNorm: number): MatrixStatistic {
  return { name: 'gram-times-x', rows: d, cols: k, psd: false, normBound: (s) => (s.gramEigMax ?? s.frob2) * xNorm };
}

/**
 * A sketch SA = Σ_b S_b A_b (k × d): ‖S_b A_b‖ ≤ ‖S_b‖·‖A_b‖₂ ≤ ‖S_b‖·√f_b. The sketch's own norm bound
 * `sketchNorm(summary)` is the caller's (e.g. a Gaussian S_b's high-probability bound, whose failure
 * probability then belongs in the estimate's `sketch` part).
 */
export function sketchStatistic(k: number, d: number, sketchNorm: (summary: BlockSummary) => number): MatrixStatistic {
  return {
    name: 'sketch',
    rows: k,
    cols: d,
    psd: false,
    normBound: (s) => sketchNorm(s) * Math.sqrt(s.gramEigMax ?? s.frob2),
  };
}

/**
 * Incremental Horvitz–Thompson estimation of an additive matrix statistic with a matrix Bernstein bound in
 * the spectral norm (Tropp 2015, Thm 6.1.1; for response groups the draws are without replacement, whose
 * trace-MGF is dominated by sampling with replacement: Gross & Nesme 2010, arXiv:1001.2738).
 */
export class MatrixAccumulator {
  readonly #values = new Map<string, { t: Float64Array; norm: number }>();
  #bytesMoved = 0;

  constructor(readonly statistic: MatrixStatistic) {
    for (const f of ['rows', 'cols'] as const) {
      if (!Number.isInteger(statistic[f]) || statistic[f] < 1)
        throw invalidArgument(`statistic.${f}`, 'a positive integer', statistic[f]);
    }
    if (statistic.psd && statistic.rows !== statistic.cols)
      throw invalidArgument('statistic.psd', 'only for square statistics', true);
  }

  /**
   * Records block `blockId`'s T_b (row-major). A duplicate is ignored (`false`); its bytes are counted.
   * @throws CoordinatorError `COORD_E_INVALID_ARGUMENT` for a wrong length or a non-finite entry
   */
  add(blockId: string, value: ArrayLike<number>, bytesMoved = 0): boolean {
    const { rows, cols } = this.statistic;
    if (!Number.isFinite(bytesMoved) || bytesMoved < 0) throw invalidArgument('bytesMoved', 'finite and ≥ 0', bytesMoved);
    if (value.length !== rows * cols) throw invalidArgument('value.length', `${rows * cols}`, value.length);
    for (let j = 0; j < value.length; j++) {
      if (!Number.isFinite(value[j]!)) throw invalidArgument(`value[${j}]`, 'finite', value[j]);
    }
    this.#bytesMoved += bytesMoved;
    if (this.#values.has(blockId)) return false;
    const t = Float64Array.from(value);
    this.#values.set(blockId, { t, norm: this.#norm(t) });
    return true;
  }

  has(blockId: string): boolean {
    return this.#values.has(blockId);
  }

  get size(): number {
    return this.#values.size;
  }

  get bytesMoved(): number {
    return this.#bytesMoved;
  }

  /**
   * HT estimate of T = Σ_b T_b over `planned` (row-major), ε in the spectral norm.
   * @throws CoordinatorError `COORD_E_COVERAGE` below `minCoverage`; `COORD_E_INVALID_ARGUMENT` for a bad plan
   */
  estimate(planned: readonly PlannedBlock[], options: EstimateOptions): Estimate<Float64Array> {
    const resolved = resolvePlan(planned, options);
    const { rows, cols } = this.statistic;
    const answered = (id: string): boolean => this.#values.has(id);
    const groups = new Map<string, PlannedBlock[]>();
    for (const b of planned) {
      const list = groups.get(groupOf(b));
      if (list) list.push(b);
      else groups.set(groupOf(b), [b]);
    }
    const value = new Float64Array(rows * cols);
    let variance = 0;
    let range = 0;
    let deterministic = 0;
    let used = 0;
    for (const members of groups.values()) {
      const got = members.filter((b) => answered(b.id));
      used += got.length;
      if (resolved.weighting === 'inclusion') {
        for (const b of got) addScaled(value, this.#values.get(b.id)!.t, 1 / b.inclusion!.p);
        // Independent terms (I_b/π_b − 1)·T_b: range max(1/π − 1, 1)·‖T_b‖, variance (1/π − 1)·‖T_b‖² (ESTIMATION §2).
        for (const b of members) {
          const r = 1 / b.inclusion!.pLower - 1;
          if (r <= 0) continue;
          const norm = this.#values.get(b.id)?.norm ?? this.statistic.normBound(b.summary);
          variance += r * norm * norm;
          range = Math.max(range, Math.max(r, 1) * norm);
        }
        continue;
      }
      const N = members.length;
      const n = got.length;
      const m = N - n;
      if (n === 0) {
        for (const b of members) deterministic += this.statistic.normBound(b.summary);
        continue;
      }
      const w = N / n;
      for (const b of got) addScaled(value, this.#values.get(b.id)!.t, w);
      if (m === 0) continue;
      // Centre C = mean of the answered T_b; dev_b ≥ ‖T_b − C‖₂ (exact for answered, from the summary else).
      const centre = new Float64Array(rows * cols);
      for (const b of got) addScaled(centre, this.#values.get(b.id)!.t, 1 / n);
      const centreInfo = this.#centreInfo(centre);
      let sumDev = 0;
      let sumDev2 = 0;
      let maxDev = 0;
      for (const b of members) {
        const v = this.#values.get(b.id);
        const dev = v ? this.#norm(subtract(v.t, centre)) : this.#missingDeviation(b.summary, centreInfo);
        sumDev += dev;
        sumDev2 += dev * dev;
        maxDev = Math.max(maxDev, dev);
      }
      // Population mean μ: ‖C − μ‖ ≤ mean dev, so ‖T_b − μ‖ ≤ max dev + mean dev; σ² ≤ mean dev² (any centre).
      // Error = −w·Σ_{k draws}(T − μ), k = min(n, m) (the answered set or its complement).
      const k = Math.min(n, m);
      variance += w * w * k * (sumDev2 / N);
      range = Math.max(range, w * (maxDev + sumDev / N));
    }
    const sampling = bernsteinRadius(variance, range, resolved.delta, rows + cols) + deterministic;
    return buildEstimate(value, sampling, resolved, options, {
      coverage: coverageOf(planned, answered),
      blocksUsed: used,
      blocksPlanned: planned.length,
      bytesMoved: this.#bytesMoved,
      method: `horvitz-thompson(${this.statistic.name}); ${weightingText(resolved)}; matrix bernstein (Tropp 2015 Thm 6.1.1), spectral norm; ${MAR}`,
      norm: 'spectral',
    });
  }

  /** ‖T‖₂ exactly for symmetric T up to DEFAULT_EXACT_NORM_MAX_DIM, else ‖T‖_F (an upper bound). */
  #norm(t: Float64Array): number {
    const { rows, cols } = this.statistic;
    if (rows === cols && rows <= DEFAULT_EXACT_NORM_MAX_DIM && isSymmetric(t, rows)) {
      const eig = symmetricEigenvalues(t, rows);
      return Math.max(Math.abs(eig[0]!), Math.abs(eig[rows - 1]!)) + 1e-12 * frobeniusNorm(t);
    }
    return frobeniusNorm(t);
  }

  #centreInfo(centre: Float64Array): { norm: number; eigMin: number; eigMax: number } {
    const { rows } = this.statistic;
    if (this.statistic.psd && rows <= DEFAULT_EXACT_NORM_MAX_DIM) {
      const eig = symmetricEigenvalues(centre, rows);
      const slack = 1e-12 * frobeniusNorm(centre);
      return { norm: eig[rows - 1]! + slack, eigMin: eig[0]! - slack, eigMax: eig[rows - 1]! + slack };
    }
    const norm = this.#norm(centre);
    return { norm, eigMin: this.statistic.psd ? 0 : -norm, eigMax: norm };
  }

  /** Bound on ‖T_b − C‖₂ for a block known only by its summary. */
  #missingDeviation(summary: BlockSummary, c: { norm: number; eigMin: number; eigMax: number }): number {
    const bound = this.statistic.normBound(summary);
    if (!this.statistic.psd) return bound + c.norm;
    // Both PSD: by Weyl, λ_max(T − C) ≤ λ_max(T) − λ_min(C) and λ_min(T − C) ≥ λ_min(T) − λ_max(C).
    const eigMin = this.statistic.eigMinBound?.(summary) ?? 0;
    return Math.max(0, bound - c.eigMin, c.eigMax - eigMin);
  }
}

function addScaled(into: Float64Array, t: Float64Array, w: number): void {
  for (let k = 0; k < t.length; k++) into[k]! += w * t[k]!;
}

function subtract(a: Float64Array, b: Float64Array): Float64Array {
  const out = new Float64Array(a.length);
  for (let k = 0; k < a.length; k++) out[k] = a[k]! - b[k]!;
  return out;
}

function isSymmetric(t: Float64Array, n: number): boolean {
  const tol = 1e-12 * frobeniusNorm(t);
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) if (Math.abs(t[i * n + j]! - t[j * n + i]!) > tol) return false;
  return true;
}
