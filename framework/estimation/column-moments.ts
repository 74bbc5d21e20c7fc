import { invalidArgument } from './errors.js';
import { columnSums, columnSumsOfSquares, squaredFrobenius, VectorAccumulator, maxOf } from './vector-accumulator.js';
import { gamma } from './rounding.js';
import type { Estimate, EstimateOptions, PlannedBlock } from './types.js';

/** Per-block column moments as an NFU op returns them. */
export interface ColumnMoments {
  colSums: ArrayLike<number>;
  colSumSq: ArrayLike<number>;
}

/**
 * Column sums, means, variances and ‖A‖_F² from per-block column moments, all from one stream of answers.
 * @example
 * const acc = new ColumnMomentsAccumulator(d);
 * acc.add('b0', { colSums, colSumSq }, bytes);
 * acc.means(planned, { delta: 0.05 });
 */
export class ColumnMomentsAccumulator {
  readonly #sums: VectorAccumulator;
  readonly #squares: VectorAccumulator;
  readonly #frob: VectorAccumulator;

  constructor(readonly dim: number) {
    this.#sums = new VectorAccumulator(dim, columnSums);
    this.#squares = new VectorAccumulator(dim, columnSumsOfSquares);
    this.#frob = new VectorAccumulator(1, squaredFrobenius);
  }

  /** Records a block's moments; a duplicate is ignored (`false`). */
  add(blockId: string, moments: ColumnMoments, bytesMoved = 0): boolean {
    // Validate everything before recording anything, so a bad answer changes nothing.
    for (const field of ['colSums', 'colSumSq'] as const) {
      const v = moments[field];
      if (v.length !== this.dim) throw invalidArgument(`${field}.length`, `${this.dim}`, v.length);
      for (let j = 0; j < v.length; j++) {
        if (!Number.isFinite(v[j]!) || (field === 'colSumSq' && v[j]! < 0)) {
          throw invalidArgument(`${field}[${j}]`, field === 'colSumSq' ? 'finite and ≥ 0' : 'finite', v[j]);
        }
      }
    }
    if (!Number.isFinite(bytesMoved) || bytesMoved < 0) throw invalidArgument('bytesMoved', 'finite and ≥ 0', bytesMoved);
    if (this.#sums.has(blockId)) {
      this.#sums.add(blockId, moments.colSums, bytesMoved);
      return false;
    }
    let f = 0;
    for (let j = 0; j < moments.colSumSq.length; j++) f += moments.colSumSq[j]!;
    this.#squares.add(blockId, moments.colSumSq);
    this.#frob.add(blockId, [f]);
    return this.#sums.add(blockId, moments.colSums, bytesMoved);
  }

  has(blockId: string): boolean {
    return this.#sums.has(blockId);
  }

  get size(): number {
    return this.#sums.size;
  }

  /** HT column sums (`linf`). */
  sums(planned: readonly PlannedBlock[], options: EstimateOptions): Estimate<Float64Array> {
    return this.#sums.estimateSum(planned, options);
  }

  /** HT ‖A‖_F² (`abs`). */
  squaredFrobenius(planned: readonly PlannedBlock[], options: EstimateOptions): Estimate<number> {
    const e = this.#frob.estimateSum(planned, options);
    return { ...e, value: e.value[0]! };
  }

  /** Hájek column means (`linf`). */
  means(planned: readonly PlannedBlock[], options: EstimateOptions): Estimate<Float64Array> {
    return this.#sums.estimateMean(planned, options);
  }

  /**
   * Per-row column variances v_j = (1/n)Σ_i a_ij² − m_j² from Hájek means of squares and of values:
   * |v̂ − v| ≤ ε_q + ε_m(2|m̂| + ε_m), each part at δ/2 (union bound).
   */
  variances(planned: readonly PlannedBlock[], options: EstimateOptions): Estimate<Float64Array> {
    const half = { ...options, delta: options.delta / 2 };
    const q = this.#squares.estimateMean(planned, half);
    const m = this.#sums.estimateMean(planned, { ...half, sketch: { epsilon: 0, delta: 0 } });
    const value = new Float64Array(this.dim);
    const eps = new Float64Array(this.dim);
    // Per coordinate with the means' rounding allowances, plus γ₃·(q̂ + m̂²) for computing q̂ − m̂².
    const rq = q.parts.rounding?.epsilon ?? 0;
    const rm = m.parts.rounding?.epsilon ?? 0;
    const epsQ = q.epsilonPerCoordinate ?? [q.parts.sampling.epsilon + rq];
    const epsM = m.epsilonPerCoordinate ?? [m.parts.sampling.epsilon + rm];
    const g3 = gamma(3, options.unitRoundoff);
    let worstSampling = 0;
    for (let j = 0; j < this.dim; j++) {
      const mean = m.value[j]!;
      value[j] = Math.max(0, q.value[j]! - mean * mean);
      eps[j] = (epsQ[j]! + epsM[j]! * (2 * Math.abs(mean) + epsM[j]!) + g3 * (Math.abs(q.value[j]!) + mean * mean)) * (1 + 1e-6);
      const sm = Math.max(0, epsM[j]! - rm);
      worstSampling = Math.max(worstSampling, Math.max(0, epsQ[j]! - rq) + sm * (2 * Math.abs(mean) + sm));
    }
    const total = maxOf(eps);
    const samplingEpsilon = Math.min(worstSampling, total);
    // Both parts exact (ε 0 surely): no δ, as for the means themselves.
    const sampling = { epsilon: samplingEpsilon, delta: samplingEpsilon > 0 ? options.delta : 0 };
    const sketch = q.parts.sketch;
    const out: Estimate<Float64Array> = {
      ...q,
      value,
      epsilon: total + sketch.epsilon,
      delta: sampling.delta + sketch.delta,
      method: `column variances from ${q.method} and ${m.method}`,
      parts: { sampling, sketch, rounding: { epsilon: total - sampling.epsilon, delta: 0 } },
    };
    if (this.dim > 1) out.epsilonPerCoordinate = eps;
    return out;
  }
}
