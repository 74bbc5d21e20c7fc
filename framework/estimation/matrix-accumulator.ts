import { bennettRadiusTerms, type TailTerm } from './bernstein.js';
import { buildEstimate, MAR, weightingText } from './estimate-builder.js';
import { invalidArgument } from './errors.js';
import { groupOf, minimizeConvexAt } from './horvitz-thompson.js';
import { coverageOf, resolvePlan } from './plan.js';
import { FLOAT64_UNIT_ROUNDOFF, roundingAllowance } from './rounding.js';
import { frobeniusNorm, symmetricEigenvalues } from './symmetric-eigen.js';
import { exactGramOf, gramNormBound, scatterBounds, scatterTrace } from './block-summary.js';
import type { BlockSummary, Estimate, EstimateOptions, PlannedBlock } from './types.js';

/** Largest symmetric matrix whose spectral norms are computed exactly (Jacobi); above it, Frobenius norms. */
export const DEFAULT_EXACT_NORM_MAX_DIM = 64;

/** Up to this dimension the centre search evaluates every candidate exactly (a Jacobi solve each). */
const EXACT_SEARCH_MAX_DIM = 16;

/**
 * An additive matrix statistic T = Σ_b T_b (rows × cols, row-major) and what a summary says about T_b:
 * T_b = known_b + R_b with known_b computable from the summary (default 0) and ‖R_b‖₂ bounded.
 */
export interface MatrixStatistic {
  readonly name: string;
  readonly rows: number;
  readonly cols: number;
  /** Part of T_b the summary determines exactly (row-major), if any. */
  known?(summary: BlockSummary): Float64Array;
  /** The remainder R_b = T_b − known_b is symmetric positive semidefinite. */
  readonly psdRemainder: boolean;
  /** Upper bound on ‖R_b‖₂ from the summary alone. */
  remainderNormBound(summary: BlockSummary): number;
  /** psdRemainder only: lower bound on λ_min(R_b) (0 if unknown). */
  remainderEigMinBound?(summary: BlockSummary): number;
  /**
   * Optional: a ball the summary places R_b in — a matrix `centre` (row-major, rows × cols) and a `radius` with
   * ‖R_b − centre‖₂ ≤ radius — or undefined. Unlike the norm and eigenvalue bounds it carries orientation, so a
   * missing block's deviation from the estimate's centre is bounded by radius + ‖centre − C‖ (triangle
   * inequality) instead of by the spread of its spectrum.
   */
  remainderBall?(summary: BlockSummary): RemainderBall | undefined;
  /**
   * Optional, for the floating-point rounding allowance (`parts.rounding`): a bound `magnitude` on the Frobenius
   * norm of the matrix of Σ|terms| of T_b's entries and of known_b's (for the Gram: ‖A_b‖_F², since
   * Σ_i|a_ip·a_iq| ≤ √(Σa_ip²·Σa_iq²)), and the most roundings one term passes through in the block's op or in
   * `known` (`depth`). Without it the estimate has no rounding part.
   */
  rounding?(summary: BlockSummary): { magnitude: number; depth: number };
  /**
   * Optional: T_b itself when the summary determines it (e.g. the Gram from an exact scatter), with `error` ≥ the
   * spectral norm of its distance to the real T_b (its rounding); undefined when it does not. When every missing
   * block's T_b is so determined, the estimate adds them as they are: nothing is weighted or bounded, and the
   * sampling error is 0 (δ 0).
   */
  exact?(summary: BlockSummary): { value: Float64Array; error: number } | undefined;
}

/** A ball holding a block's remainder: ‖R_b − centre‖₂ ≤ radius (see {@link MatrixStatistic.remainderBall}). */
export interface RemainderBall {
  readonly centre: Float64Array;
  readonly radius: number;
}

/**
 * Gram A_bᵀA_b (d × d) = s_b s_bᵀ/n_b (known: s_b = column sums) + K_b (centred scatter, PSD), with
 * λ_max(K_b), λ_min(K_b) from the summary (see {@link scatterBounds}) and, when the summary records one, the
 * ball ‖K_b − tr(K_b)·Ref‖₂ ≤ scatterRadius around the dataset's reference scatter.
 */
export function gramStatistic(d: number): MatrixStatistic {
  return {
    name: 'gram',
    rows: d,
    cols: d,
    known: (s) => {
      const out = new Float64Array(d * d);
      if (s.rows === 0) return out;
      for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) out[i * d + j] = (s.colSums[i]! * s.colSums[j]!) / s.rows;
      return out;
    },
    psdRemainder: true,
    remainderNormBound: (s) => scatterBounds(s).eigMax,
    remainderEigMinBound: (s) => scatterBounds(s).eigMin,
    // A_bᵀA_b entries: a product and `rows` additions per term; known: column sums (rows) then ·, /.
    rounding: (s) => ({ magnitude: s.frob2, depth: s.rows + 2 }),
    remainderBall: (s) => {
      const ref = s.scatterReference;
      if (s.scatterRadius === undefined || ref === undefined || ref.cols !== d) return undefined;
      const t = scatterTrace(s);
      return { centre: ref.matrix.map((v) => t * v), radius: s.scatterRadius };
    },
    exact: (s) => {
      const g = s.cols === d ? exactGramOf(s) : undefined;
      return g === undefined ? undefined : { value: g.gram, error: g.error };
    },
  };
}

/**
 * Aᵀ(AX) = Σ_b A_bᵀA_b X for a known d × k matrix X: ‖A_bᵀA_b X‖ ≤ ‖A_bᵀA_b‖·‖X‖₂ ({@link gramNormBound}).
 * @param xNorm - an upper bound on ‖X‖₂ (e.g. its Frobenius norm)
 */
export function projectionStatistic(d: number, k: number, xNorm: number): MatrixStatistic {
  return { name: 'gram-times-x', rows: d, cols: k, psdRemainder: false, remainderNormBound: (s) => gramNormBound(s) * xNorm };
}

/**
 * A sketch SA = Σ_b S_b A_b (k × d): ‖S_b A_b‖ ≤ ‖S_b‖·‖A_b‖₂ = ‖S_b‖·√‖A_bᵀA_b‖. The sketch's own norm bound
 * `sketchNorm(summary)` is the caller's (e.g. a Gaussian S_b's high-probability bound, whose failure
 * probability then belongs in the estimate's `sketch` part).
 */
export function sketchStatistic(k: number, d: number, sketchNorm: (summary: BlockSummary) => number): MatrixStatistic {
  return {
    name: 'sketch',
    rows: k,
    cols: d,
    psdRemainder: false,
    remainderNormBound: (s) => sketchNorm(s) * Math.sqrt(gramNormBound(s)),
  };
}

/**
 * Incremental Horvitz–Thompson estimation of an additive matrix statistic with a matrix Bernstein bound in
 * the spectral norm (Tropp 2015, Thm 6.1.1; for response groups the draws are without replacement, whose
 * trace-MGF is dominated by sampling with replacement: Gross & Nesme 2010, arXiv:1001.2738).
 */
export class MatrixAccumulator {
  readonly #values = new Map<string, { t: Float64Array }>();
  /** Spectrum of an answered block's remainder, kept between estimates (it depends on the block and its summary). */
  readonly #spectra = new Map<string, { summary: BlockSummary; lo: number; hi: number }>();
  #bytesMoved = 0;

  constructor(readonly statistic: MatrixStatistic) {
    for (const f of ['rows', 'cols'] as const) {
      if (!Number.isInteger(statistic[f]) || statistic[f] < 1)
        throw invalidArgument(`statistic.${f}`, 'a positive integer', statistic[f]);
    }
    if (statistic.psdRemainder && statistic.rows !== statistic.cols) {
      throw invalidArgument('statistic.psdRemainder', 'only for square statistics', true);
    }
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
    this.#values.set(blockId, { t });
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
    const filled = this.#exactFill(planned, answered);
    if (filled !== undefined) {
      const weights = new Map(planned.filter((b) => answered(b.id)).map((b) => [b.id, 1]));
      return buildEstimate(filled.value, 0, resolved, options, {
        rounding: this.#rounding(planned, weights, options) + filled.error,
        coverage: coverageOf(planned, answered),
        blocksUsed: weights.size,
        blocksPlanned: planned.length,
        bytesMoved: this.#bytesMoved,
        method: `exact ${this.statistic.name}: the answered blocks' values plus every missing block's own from its summary (exact scatter); no sampling error`,
        norm: 'spectral',
      });
    }
    const groups = new Map<string, PlannedBlock[]>();
    for (const b of planned) {
      const list = groups.get(groupOf(b));
      if (list) list.push(b);
      else groups.set(groupOf(b), [b]);
    }
    // Difference estimator (Särndal, Swensson & Wretman 1992, §6.3): the summary-determined part of every
    // planned block is added exactly, HT weights apply to the remainders R_b = T_b − known_b only.
    const value = new Float64Array(rows * cols);
    const remainder = new Map<string, Float64Array>();
    for (const b of planned) {
      const known = this.statistic.known?.(b.summary);
      if (known) {
        if (known.length !== rows * cols)
          throw invalidArgument('statistic.known(summary).length', `${rows * cols}`, known.length);
        addScaled(value, known, 1);
      }
      const v = this.#values.get(b.id);
      if (v) remainder.set(b.id, known ? subtract(v.t, known) : v.t);
    }
    const terms: TailTerm[] = [];
    let deterministic = 0;
    let used = 0;
    // HT weights per answered block; the weighted remainders are summed in plan order below (not group by
    // group), so the same blocks give the same bits whatever the grouping (which depends on the history).
    const weightOf = new Map<string, number>();
    for (const members of groups.values()) {
      const got = members.filter((b) => answered(b.id));
      used += got.length;
      if (resolved.weighting === 'inclusion') {
        for (const b of got) weightOf.set(b.id, 1 / b.inclusion!.p);
        // Independent terms (I_b/π_b − 1)·R_b: range max(1/π − 1, 1)·‖R_b‖, variance (1/π − 1)·‖R_b‖².
        for (const b of members) {
          const r = 1 / b.inclusion!.pLower - 1;
          if (r <= 0) continue;
          const rb = remainder.get(b.id);
          const norm = rb ? this.#norm(rb) : this.statistic.remainderNormBound(b.summary);
          terms.push({ variance: r * norm * norm, range: Math.max(r, 1) * norm, bound: Math.max(r, 1) * norm });
        }
        continue;
      }
      const N = members.length;
      const n = got.length;
      const m = N - n;
      if (n === 0) {
        for (const b of members) deterministic += this.statistic.remainderNormBound(b.summary);
        continue;
      }
      const w = N / n;
      for (const b of got) weightOf.set(b.id, w);
      if (m === 0) continue;
      const k = Math.min(n, m);
      const { second, maxDraw, bound } = this.#groupMoments(
        got,
        got.map((b) => remainder.get(b.id)!),
        members.filter((b) => !answered(b.id)).map((b) => b.summary),
      );
      // Error = −w·Σ_{k draws}(R − μ), k = min(n, m) (the answered set or its complement).
      terms.push({ variance: w * w * k * (second / N), range: w * maxDraw, bound });
    }
    for (const b of planned) {
      const w = weightOf.get(b.id);
      if (w !== undefined) addScaled(value, remainder.get(b.id)!, w);
    }
    const sampling = bennettRadiusTerms(terms, resolved.delta, rows + cols) + deterministic * (1 + 1e-12);
    const rounding = this.#rounding(planned, weightOf, options);
    return buildEstimate(value, sampling, resolved, options, {
      rounding,
      coverage: coverageOf(planned, answered),
      blocksUsed: used,
      blocksPlanned: planned.length,
      bytesMoved: this.#bytesMoved,
      method: `horvitz-thompson difference estimator(${this.statistic.name}: summary part exact, HT on the rest); ${weightingText(resolved)}; matrix bennett (Tropp 2012 Thm 6.1), spectral norm; ${MAR}`,
      norm: 'spectral',
    });
  }

  /**
   * Σ_answered T_b + Σ_missing T_b(summary), in plan order, when blocks are missing and the statistic determines
   * every missing block's value from its summary ({@link MatrixStatistic.exact}); else undefined. `error` is the
   * sum of the summaries' allowances (the sum's own rounding is in {@link #rounding}).
   */
  #exactFill(
    planned: readonly PlannedBlock[],
    answered: (id: string) => boolean,
  ): { value: Float64Array; error: number } | undefined {
    const exact = this.statistic.exact;
    if (exact === undefined || planned.every((b) => answered(b.id))) return undefined;
    const { rows, cols } = this.statistic;
    const value = new Float64Array(rows * cols);
    let error = 0;
    for (const b of planned) {
      const v = this.#values.get(b.id);
      if (v !== undefined) {
        addScaled(value, v.t, 1);
        continue;
      }
      const e = exact(b.summary);
      if (e === undefined) return undefined;
      if (e.value.length !== rows * cols)
        throw invalidArgument('statistic.exact(summary).value.length', `${rows * cols}`, e.value.length);
      addScaled(value, e.value, 1);
      error += e.error;
    }
    return { value, error: error * 1.01 };
  }

  /**
   * Rounding allowance (spectral norm ≤ Frobenius norm of the entrywise bound) of the computed
   * Σ_planned known_b + Σ_ans w_b·(T_b − known_b) against its real value: every term's path has the block's
   * `depth` roundings, one for the difference, two for the weight and 2B for the two sums over the blocks;
   * the terms are known_b (all planned blocks) and w_b·T_b, w_b·known_b (answered ones).
   */
  #rounding(planned: readonly PlannedBlock[], weightOf: ReadonlyMap<string, number>, options: EstimateOptions): number {
    const r = this.statistic.rounding;
    if (r === undefined) return 0;
    let magnitude = 0;
    let depth = 0;
    for (const b of planned) {
      const { magnitude: m, depth: k } = r(b.summary);
      depth = Math.max(depth, k);
      magnitude += Math.abs(m) * (1 + 2 * Math.abs(weightOf.get(b.id) ?? 0));
    }
    return roundingAllowance(depth + 2 * planned.length + 4, magnitude, options.unitRoundoff ?? FLOAT64_UNIT_ROUNDOFF);
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

  /**
   * Second moment and per-draw range of one response group with answered remainders `got` (n of them) and
   * missing blocks known by their summaries (m of them), N = n + m, μ the group's mean remainder:
   * - `second` ≥ ‖Σ_b (R_b − μ)(R_b − μ)ᵀ‖ and ≥ ‖Σ_b (R_b − μ)ᵀ(R_b − μ)‖ (the caller divides by N);
   * - `maxDraw` ≥ max_b ‖R_b − μ‖;
   * - `bound` ≥ ‖Σ_miss (M − R_b)‖, which is the group's whole error (N/n)·Σ_ans R_b − Σ_b R_b, always.
   *
   * For every matrix C, Σ_b (R_b − μ)(R_b − μ)ᵀ ⪯ Σ_b (R_b − C)(R_b − C)ᵀ (the cross terms vanish about μ), so
   * any C gives a bound; answered blocks enter exactly and a missing block through a bound dev_b(C) on
   * ‖R_b − C‖ from its summary ((R_b − C)(R_b − C)ᵀ ⪯ dev_b²·I). C runs over the family β·M + α·I (M = mean of
   * the answered remainders; α = 0 unless the remainder is PSD): C = M is best when few blocks are missing,
   * a C with a narrower spectrum when many are, because a missing block's deviation is only known through
   * Weyl's inequality. The bound is convex in C, so α is found by golden-section search for each β. The
   * answered blocks' sums expand exactly: Σ_ans (R − C)(R − C)ᵀ = S + n(β² − 2β)·MMᵀ + 2nα(β − 1)·M + nα²·I
   * with S = Σ_ans R Rᵀ (for square statistics M is symmetric).
   */
  #groupMoments(
    gotBlocks: readonly PlannedBlock[],
    got: readonly Float64Array[],
    missing: readonly BlockSummary[],
  ): { second: number; maxDraw: number; bound: number } {
    const { rows, cols } = this.statistic;
    const n = got.length;
    const N = n + missing.length;
    const M = new Float64Array(rows * cols);
    for (const r of got) addScaled(M, r, 1 / n);
    const left = new Float64Array(rows * rows);
    const right = new Float64Array(cols * cols);
    for (const r of got) accumulateSquares(r, rows, cols, left, right);
    const mLeft = new Float64Array(rows * rows);
    const mRight = new Float64Array(cols * cols);
    accumulateSquares(M, rows, cols, mLeft, mRight);
    const psd = this.statistic.psdRemainder && rows <= DEFAULT_EXACT_NORM_MAX_DIM;
    // Spectrum of M (PSD case): λ(βM + αI) = βλ(M) + α.
    let mMin = 0;
    let mMax = 0;
    let mNorm: number;
    if (psd) {
      const eig = symmetricEigenvalues(M, rows);
      const slack = 1e-12 * frobeniusNorm(M);
      mMin = eig[0]! - slack;
      mMax = eig[rows - 1]! + slack;
      mNorm = Math.max(Math.abs(mMin), Math.abs(mMax));
    } else {
      mNorm = this.#norm(M);
    }
    // Per answered block: ‖R_b − M‖ exactly, and its spectrum (PSD case) for Weyl bounds against other C.
    const ansDevM: number[] = [];
    const ansEig: { lo: number; hi: number }[] = [];
    got.forEach((r, i) => {
      ansDevM.push(this.#norm(subtract(r, M)));
      if (psd) {
        const b = gotBlocks[i]!;
        let cached = this.#spectra.get(b.id);
        if (cached?.summary !== b.summary) {
          const eig = symmetricEigenvalues(r, rows);
          const slack = 1e-12 * frobeniusNorm(r);
          cached = { summary: b.summary, lo: eig[0]! - slack, hi: eig[rows - 1]! + slack };
          this.#spectra.set(b.id, cached);
        }
        ansEig.push({ lo: cached.lo, hi: cached.hi });
      }
    });
    const missBound = missing.map((s) => this.statistic.remainderNormBound(s));
    const missMin = missing.map((s) => this.statistic.remainderEigMinBound?.(s) ?? 0);
    // Balls around missing remainders: ‖R_b − C‖ ≤ radius + ‖P_b − βM − αI‖, with the spectrum of P_b − βM
    // (square statistics up to EXACT_SEARCH_MAX_DIM) or its Frobenius norm and trace (above; for rectangular
    // statistics α = 0 and the Frobenius norm) computed once per β.
    const balls = missing.map((s) => {
      const ball = this.statistic.remainderBall?.(s);
      if (ball === undefined) return undefined;
      if (ball.centre.length !== rows * cols)
        throw invalidArgument('statistic.remainderBall(summary).centre.length', `${rows * cols}`, ball.centre.length);
      if (!(ball.radius >= 0) || !Number.isFinite(ball.radius))
        throw invalidArgument('statistic.remainderBall(summary).radius', 'finite and ≥ 0', ball.radius);
      return ball;
    });
    const square = rows === cols;
    const spectralBalls = square && rows <= EXACT_SEARCH_MAX_DIM;
    const ballShapes = new Map<number, ({ lo: number; hi: number; f2: number; tr: number } | undefined)[]>();
    const ballShape = (beta: number): ({ lo: number; hi: number; f2: number; tr: number } | undefined)[] => {
      let shapes = ballShapes.get(beta);
      if (shapes !== undefined) return shapes;
      shapes = balls.map((ball) => {
        if (ball === undefined) return undefined;
        const x = new Float64Array(rows * cols);
        for (let q = 0; q < x.length; q++) x[q] = ball.centre[q]! - beta * M[q]!;
        const f = frobeniusNorm(x);
        let tr = 0;
        if (square) for (let i = 0; i < rows; i++) tr += x[i * cols + i]!;
        if (spectralBalls && isSymmetric(x, rows)) {
          // Jacobi symmetrises: widen by its accuracy and by what the tolerated asymmetry can add (≤ d·1e-12·‖X‖_F).
          const eig = symmetricEigenvalues(x, rows);
          const slack = (rows + 1) * 1e-12 * f;
          return { lo: eig[0]! - slack, hi: eig[rows - 1]! + slack, f2: f * f, tr };
        }
        return { lo: Number.NaN, hi: Number.NaN, f2: f * f, tr };
      });
      ballShapes.set(beta, shapes);
      return shapes;
    };
    /** ‖P_b − βM − αI‖₂ from the shape of P_b − βM. */
    const ballDistance = (shape: { lo: number; hi: number; f2: number; tr: number }, alpha: number): number => {
      if (!Number.isNaN(shape.lo)) return Math.max(Math.abs(shape.hi - alpha), Math.abs(shape.lo - alpha));
      if (!square) return Math.sqrt(shape.f2) * (1 + 1e-12);
      // ‖X − αI‖₂ ≤ ‖X − αI‖_F = √(‖X‖_F² − 2α·tr X + d·α²).
      const f2 = shape.f2 - 2 * alpha * shape.tr + rows * alpha * alpha;
      return Math.sqrt(Math.max(0, f2)) * (1 + 1e-12) + 1e-12 * Math.sqrt(shape.f2);
    };
    const scaleLeft = frobeniusNorm(left) + frobeniusNorm(right) + n * (frobeniusNorm(mLeft) + frobeniusNorm(mRight));
    const scaleM = frobeniusNorm(M);
    let bestDraw = Infinity;
    let bound = Infinity;
    // `baseMax` (PSD only): λ_max(S + n(β² − 2β)M²) for this β, computed once; then, by Weyl,
    // λ_max(Σ_ans (R − C)²) ≤ baseMax + λ_max(2nα(β − 1)·M) + nα², a cheaper bound used to search α.
    const evaluate = (beta: number, alpha: number, baseMax?: number): number => {
      // ‖M − C‖ = ‖(1 − β)M − αI‖.
      const shift = psd ? Math.max(Math.abs((1 - beta) * mMin - alpha), Math.abs((1 - beta) * mMax - alpha)) : (1 - beta) * mNorm;
      const cMin = beta * mMin + alpha;
      const cMax = beta * mMax + alpha;
      let missDev2 = 0;
      let missDev = 0;
      let maxDev = 0;
      const shapes = ballShape(beta);
      missing.forEach((_, i) => {
        // PSD: by Weyl, λ_max(R − C) ≤ λ_max(R) − λ_min(C) and λ_min(R − C) ≥ λ_min(R) − λ_max(C).
        let dev = psd ? Math.max(0, missBound[i]! - cMin, cMax - missMin[i]!) : missBound[i]! + beta * mNorm;
        const shape = shapes[i];
        if (shape !== undefined) dev = Math.min(dev, balls[i]!.radius + ballDistance(shape, psd ? alpha : 0));
        missDev += dev;
        missDev2 += dev * dev;
        maxDev = Math.max(maxDev, dev);
      });
      got.forEach((_, i) => {
        let dev = ansDevM[i]! + shift;
        if (psd) dev = Math.min(dev, Math.max(0, ansEig[i]!.hi - cMin, cMax - ansEig[i]!.lo));
        maxDev = Math.max(maxDev, dev);
      });
      if (beta === 1 && alpha === 0) {
        bound = missDev;
        if (psd) {
          // Weyl on the sum: λ_max(Σ_miss (M − R_b)) ≤ m·λ_max(M) − Σ_miss λ_min(R_b), and the other side alike.
          let loSum = 0;
          let hiSum = 0;
          missing.forEach((_, i) => {
            loSum += missMin[i]!;
            hiSum += missBound[i]!;
          });
          const m = missing.length;
          bound = Math.min(bound, Math.max(0, m * mMax - loSum, hiSum - m * mMin));
        }
        bound *= 1 + 1e-12;
      }
      // μ = C + (1/N)Σ_b (R_b − C): ‖C − μ‖ ≤ (n·‖M − C‖ + Σ_miss dev_b)/N.
      bestDraw = Math.min(bestDraw, maxDev + (n * shift + missDev) / N);
      const c2 = beta * beta - 2 * beta;
      if (baseMax !== undefined) {
        const c = 2 * n * alpha * (beta - 1);
        const sAns = baseMax + (c >= 0 ? c * mMax : c * mMin) + n * alpha * alpha;
        const rounding = 1e-12 * (scaleLeft * (1 + beta * beta) + 2 * n * Math.abs(alpha) * scaleM + n * alpha * alpha * rows);
        return Math.max(0, sAns) + rounding + missDev2;
      }
      const l = new Float64Array(rows * rows);
      for (let q = 0; q < l.length; q++) l[q] = left[q]! + n * c2 * mLeft[q]!;
      let sAns: number;
      if (psd) {
        for (let i = 0; i < rows; i++) {
          for (let j = 0; j < rows; j++) l[i * rows + j]! += 2 * n * alpha * (beta - 1) * M[i * rows + j]!;
          l[i * rows + i]! += n * alpha * alpha;
        }
        sAns = largestEigenvalue(l, rows);
      } else {
        const r = new Float64Array(cols * cols);
        for (let q = 0; q < r.length; q++) r[q] = right[q]! + n * c2 * mRight[q]!;
        sAns = Math.max(largestEigenvalue(l, rows), largestEigenvalue(r, cols));
      }
      // The expansion cancels large terms: widen by its rounding scale.
      const rounding = 1e-12 * (scaleLeft * (1 + beta * beta) + 2 * n * Math.abs(alpha) * scaleM + n * alpha * alpha * rows);
      return Math.max(0, sAns) + rounding + missDev2;
    };
    if (psd && missing.length > 0) {
      // Direct Weyl bounds against μ = (n·M + Σ_miss R_b)/N: λ_max(μ) ≤ (n·λ_max(M) + Σ_miss λ_max(R_b))/N and
      // λ_min(μ) ≥ (n·λ_min(M) + Σ_miss λ_min(R_b))/N, so ‖R_b − μ‖ ≤ max(λ_max(R_b) − λ_min(μ), λ_max(μ) − λ_min(R_b)).
      let muMax = n * mMax;
      let muMin = n * mMin;
      for (let i = 0; i < missing.length; i++) {
        muMax += missBound[i]!;
        muMin += missMin[i]!;
      }
      muMax /= N;
      muMin /= N;
      let draw = 0;
      for (let i = 0; i < missing.length; i++) draw = Math.max(draw, missBound[i]! - muMin, muMax - missMin[i]!);
      // Answered: the better of Weyl and ‖R_b − M‖ + ‖M − μ‖, ‖M − μ‖ ≤ (1/N)·Σ_miss ‖R_b − M‖.
      let missDevM = 0;
      for (let i = 0; i < missing.length; i++) missDevM += Math.max(0, missBound[i]! - mMin, mMax - missMin[i]!);
      for (let i = 0; i < n; i++) {
        const weyl = Math.max(ansEig[i]!.hi - muMin, muMax - ansEig[i]!.lo);
        draw = Math.max(draw, Math.min(weyl, ansDevM[i]! + missDevM / N));
      }
      bestDraw = Math.min(bestDraw, draw);
    }
    let second = evaluate(1, 0);
    if (missing.length > 0) {
      for (const beta of [0, 0.5, 1]) {
        if (!psd) {
          second = Math.min(second, evaluate(beta, 0));
          continue;
        }
        // α in a range that contains the minimiser: the missing blocks' and M's spectra bound it.
        let lo = Math.min(0, -beta * mMax);
        let hi = Math.max(0, -beta * mMin);
        for (let i = 0; i < missing.length; i++) {
          lo = Math.min(lo, missMin[i]! - beta * mMax);
          hi = Math.max(hi, missBound[i]! - beta * mMin);
          const shape = ballShape(beta)[i];
          if (shape !== undefined && !Number.isNaN(shape.lo)) {
            lo = Math.min(lo, shape.lo);
            hi = Math.max(hi, shape.hi);
          }
        }
        if (rows <= EXACT_SEARCH_MAX_DIM) {
          second = Math.min(second, minimizeConvexAt((a) => evaluate(beta, a), lo, hi, 16).value);
          continue;
        }
        // Wide statistics: search α on the cheaper Weyl bound, then evaluate exactly where it points.
        const base = new Float64Array(rows * rows);
        const c2 = beta * beta - 2 * beta;
        for (let q = 0; q < base.length; q++) base[q] = left[q]! + n * c2 * mLeft[q]!;
        const baseMax = largestEigenvalue(base, rows);
        const found = minimizeConvexAt((a) => evaluate(beta, a, baseMax), lo, hi, 40);
        second = Math.min(second, found.value, evaluate(beta, found.x));
      }
    }
    return { second, maxDraw: bestDraw, bound };
  }
}

/** left += X Xᵀ, right += Xᵀ X for a rows × cols X (row-major). */
function accumulateSquares(x: Float64Array, rows: number, cols: number, left: Float64Array, right: Float64Array): void {
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < rows; j++) {
      let acc = 0;
      for (let c = 0; c < cols; c++) acc += x[i * cols + c]! * x[j * cols + c]!;
      left[i * rows + j]! += acc;
    }
  }
  for (let i = 0; i < cols; i++) {
    for (let j = 0; j < cols; j++) {
      let acc = 0;
      for (let r = 0; r < rows; r++) acc += x[r * cols + i]! * x[r * cols + j]!;
      right[i * cols + j]! += acc;
    }
  }
}

/** λ_max of a symmetric PSD matrix: Jacobi up to DEFAULT_EXACT_NORM_MAX_DIM, else its trace (an upper bound). */
function largestEigenvalue(s: Float64Array, n: number): number {
  if (n <= DEFAULT_EXACT_NORM_MAX_DIM) {
    const eig = symmetricEigenvalues(s, n);
    return Math.max(0, eig[n - 1]!) + 1e-12 * frobeniusNorm(s);
  }
  let trace = 0;
  for (let i = 0; i < n; i++) trace += s[i * n + i]!;
  return trace;
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
