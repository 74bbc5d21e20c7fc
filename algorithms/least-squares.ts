import {
  CoordinatorError,
  CoordinatorErrorCode,
  EXACT_SCATTER_MAX_COLS,
  exactGramOf,
  MatrixAccumulator,
  scatterBounds,
  scatterTrace,
  symmetricEigenvalues,
  type CoordinatorDataset as Dataset,
  type CoordinatorDatasetBlock as DatasetBlock,
  type Estimate,
  type PlannedBlock,
  type BlockSummary,
} from '../framework/index.js';
import { bytesOf, mul, orthonormalize, svd, transpose, upperInverse } from './dense.js';
import { checkAborted, gramStatistic, pinnedTo, round, type LocusContext, type RoundResult } from './engine.js';
import { ALGORITHM_STREAMS } from './rsvd.js';

/** Options of {@link leastSquaresCore}. */
export interface LeastSquaresOptions {
  /** Column of the dataset holding b (default: the last); the other columns are A. */
  readonly target?: number;
  /**
   * `sketch-and-solve`: x = argmin ‖S(Ax − b)‖ for a sparse sign sketch S (one pass), certified by one gradient
   * pass. `preconditioned` (default): the sketch's R preconditions conjugate gradients on the normal equations
   * run in locus (CGLS, LSQR's equivalent in exact arithmetic; Blendenpik/LSRN style), until the certified
   * error is below `tolerance`·‖x‖.
   */
  readonly method?: 'sketch-and-solve' | 'preconditioned';
  /** Rows of the sketch (default max(4·d, d + 40)). */
  readonly sketchRows?: number;
  /** Relative accuracy goal of the solve (default 1e-10). */
  readonly tolerance?: number;
  /** Iterations of the preconditioned solve (default 30). */
  readonly maxIterations?: number;
  readonly seed?: number;
  /** Failure probability of the sampling bound (default 0.05). */
  readonly delta?: number;
  /** Also compute the bound at these failure probabilities (`value.boundsAt`; the estimate is the same). */
  readonly boundDeltas?: readonly number[];
  /**
   * Minimum coverage (answered mass / total mass from the summaries) below which the call ends with
   * `COORD_E_COVERAGE` (default: the context's job option, else 0).
   */
  readonly minCoverage?: number;
  /** Overall deadline (ms from the start). */
  readonly deadlineMs?: number;
  readonly signal?: AbortSignal;
  /**
   * Fill missing blocks exactly from their summaries' exact scatters when every one has it (default true). When
   * the fill's rounding allowance leaves the answered rows' λ_min nothing to certify with (float32 data, columns
   * of very different scales), the call falls back to the bounded path by itself.
   */
  readonly exactFill?: boolean;
}

/** What {@link leastSquaresCore} estimates. */
export interface LeastSquaresResult {
  /** x, one coefficient per column of A (`features` order). */
  readonly coefficients: Float64Array;
  /** Dataset columns of A, in coefficient order. */
  readonly features: readonly number[];
  readonly target: number;
  /**
   * ‖Ax − b‖ over every row of the dataset at the returned x. Exact (up to rounding) when every block answered, or
   * when every missing block's summary holds its exact scatter (its ‖A_bx − b_b‖² is then a quadratic form in the
   * Gram K_b + s_bs_bᵀ/n_b); with other blocks missing, an estimate: the answered rows' residual exactly plus each missing block's from its
   * summary (its mean part exactly, its scatter part like the answered rows', missing at random); see
   * `residualNormLower`/`residualNormUpper` for what the summaries guarantee.
   */
  readonly residualNorm: number;
  /** A sure lower bound on the whole dataset's ‖Ax − b‖ (the missing blocks' mean parts only). */
  readonly residualNormLower: number;
  /** A sure upper bound on the whole dataset's ‖Ax − b‖ (the missing blocks' scatter parts at their summary bounds). */
  readonly residualNormUpper: number;
  /** Preconditioned iterations run (0 for sketch-and-solve). */
  readonly iterations: number;
  /** Condition number of the preconditioned operator A·R⁻¹ (≈ 1 for a good sketch). */
  readonly preconditionedCondition: number;
  /** The bound ε at each of the options' `boundDeltas` (same estimate, other failure probabilities). */
  readonly boundsAt: readonly { readonly delta: number; readonly epsilon: number }[];
}

const U = Number.EPSILON / 2;

function invalid(argument: string, rule: string, value: unknown): CoordinatorError {
  return new CoordinatorError(
    CoordinatorErrorCode.INVALID_ARGUMENT,
    `invalid argument: ${argument} must be ${rule} (got ${String(value)})`,
    { details: { argument, value: value as never } },
  );
}

function check(dataset: Dataset, o: LeastSquaresOptions): void {
  const D = dataset.cols;
  if (D < 2) throw invalid('dataset.cols', 'at least 2 (features and a target)', D);
  if (o.target !== undefined && (!Number.isInteger(o.target) || o.target < 0 || o.target >= D))
    throw invalid('target', `a column from 0 to ${D - 1}`, o.target);
  if (o.method !== undefined && o.method !== 'sketch-and-solve' && o.method !== 'preconditioned')
    throw invalid('method', '`sketch-and-solve` or `preconditioned`', o.method);
  if (o.sketchRows !== undefined && (!Number.isInteger(o.sketchRows) || o.sketchRows < D - 1 || o.sketchRows > 1 << 16))
    throw invalid('sketchRows', `an integer from ${D - 1} (the features) to 65536`, o.sketchRows);
  if (o.tolerance !== undefined && !(o.tolerance > 0 && o.tolerance < 1)) throw invalid('tolerance', 'in (0, 1)', o.tolerance);
  if (o.maxIterations !== undefined && (!Number.isInteger(o.maxIterations) || o.maxIterations < 0 || o.maxIterations > 1000))
    throw invalid('maxIterations', 'an integer from 0 to 1000', o.maxIterations);
  if (o.delta !== undefined && !(o.delta > 0 && o.delta < 1)) throw invalid('delta', 'in (0, 1)', o.delta);
  for (const [i, v] of (o.boundDeltas ?? []).entries()) if (!(v > 0 && v < 1)) throw invalid(`boundDeltas[${i}]`, 'in (0, 1)', v);
  if (o.minCoverage !== undefined && !(o.minCoverage >= 0 && o.minCoverage <= 1))
    throw invalid('minCoverage', 'in [0, 1]', o.minCoverage);
  if (o.deadlineMs !== undefined && !(o.deadlineMs > 0)) throw invalid('deadlineMs', 'positive', o.deadlineMs);
  for (const b of dataset.blocks)
    if (b.summary === undefined) throw invalid(`blocks[${b.index}].summary`, 'present (ingest summary)', 'none');
}

/**
 * The missing blocks' exact Gram G_miss = Σ_missing (K_b + s_bs_bᵀ/n_b) from their summaries' exact scatters, with
 * `error` ≥ ‖G_miss as computed − the exact one‖₂ (each block's allowance from {@link exactGramOf} and the sum's
 * rounding); undefined when no block is missing or a missing block's summary has no exact scatter.
 */
export function missingExactGram(
  planned: readonly PlannedBlock[],
  answered: ReadonlySet<string>,
  D: number,
): { gram: Float64Array; error: number; frob2: number } | undefined {
  const missing = planned.filter((p) => !answered.has(p.id));
  if (missing.length === 0) return undefined;
  const gram = new Float64Array(D * D);
  let error = 0;
  let frob2 = 0;
  for (const p of missing) {
    if (p.summary.cols !== D) return undefined;
    const g = exactGramOf(p.summary);
    if (g === undefined) return undefined;
    for (let i = 0; i < D * D; i++) gram[i]! += g.gram[i]!;
    error += g.error;
    frob2 += p.summary.frob2;
  }
  // The sum over the missing blocks: ≤ γ_m·Σ_b ‖G_b‖_F ≤ γ_m·Σ frob2 (‖G_b‖_F ≤ ‖A_b‖_F²).
  error = (error + gammaOf(missing.length + 1) * frob2) * 1.01;
  return { gram, error, frob2 };
}

/**
 * The Horvitz–Thompson weights of the answered blocks (response groups: N_g/n_g) and K = Σ_planned known_b −
 * Σ_answered w_b·known_b (known_b = s_b s_bᵀ/n_b from the summaries), so that Σ_answered w_b M_bᵀM_b + K is
 * exactly the difference estimator {@link MatrixAccumulator} gives for the Gram.
 *
 * When blocks are missing and every missing block's summary holds its exact scatter, nothing is estimated: the
 * answered blocks keep weight 1 and K = G_miss, the missing blocks' exact Gram ({@link missingExactGram}), so
 * Σ_answered M_bᵀM_b + K is the whole dataset's Gram (to rounding); `exact` then carries G_miss.
 */
function htWeights(planned: readonly PlannedBlock[], answered: ReadonlySet<string>, D: number, useFill = true) {
  const exact = useFill ? missingExactGram(planned, answered, D) : undefined;
  if (exact !== undefined) {
    const w = new Map<string, number>();
    for (const p of planned) if (answered.has(p.id)) w.set(p.id, 1);
    return { w, K: Float64Array.from(exact.gram), exact };
  }
  const groups = new Map<string, { N: number; n: number }>();
  for (const p of planned) {
    const g = groups.get(p.group ?? '') ?? { N: 0, n: 0 };
    g.N++;
    if (answered.has(p.id)) g.n++;
    groups.set(p.group ?? '', g);
  }
  const w = new Map<string, number>();
  const K = new Float64Array(D * D);
  const known = gramStatistic(D).known!;
  for (const p of planned) {
    const g = groups.get(p.group ?? '')!;
    const wb = answered.has(p.id) ? g.N / g.n : 0;
    if (wb > 0) w.set(p.id, wb);
    const kb = known(p.summary);
    for (let i = 0; i < D * D; i++) K[i]! += (1 - wb) * kb[i]!;
  }
  return { w, K, exact };
}

/**
 * Least squares min ‖Ax − b‖ over the row-distributed dataset [A b], in locus.
 *
 * Bounds (in the ℓ2 norm of the coefficients, against the solution x* of the full problem):
 * - *solve*: with Ĝ the Gram estimate and ĝ = Ĝ_AA x − Ĝ_Ab the gradient at x (computed in locus as
 *   Σ_b w_b A_bᵀ(A_b x − b_b) plus the summaries' exact part), ‖x − x̂‖ ≤ ‖ĝ‖/λ_min(Ĝ_AA) (plus rounding),
 *   deterministic — x̂ the exact solution of the estimated problem;
 * - *sampling*: with E = Ĝ − G, G_AA(x̂ − x*) = G_AA x̂ − G_Ab = −[E·z]_A for z = [x̂; −1] (because
 *   Ĝ_AA x̂ = Ĝ_Ab), so ‖x̂ − x*‖ ≤ ‖[E z]_A‖/λ_min(G_AA). The numerator is at most ‖E‖₂‖z‖ ≤ t‖z‖ (matrix
 *   Bernstein/Bennett radius t, probability ≥ 1 − δ), and also, deterministically, E = Σ_answered (w_b − 1)R_b −
 *   Σ_missing R_b (R_b = M_bᵀM_b minus its summary-known part), so ‖[E z]_A‖ ≤ ‖[Σ_ans (w_b − 1)R_b z]_A‖ +
 *   ‖z‖·Σ_missing ‖R_b‖ (the first term computed exactly, the second from the summaries); the smaller is used.
 *   The denominator: λ_min(G_AA) ≥ λ_min(Ĝ_AA) − t (Weyl) and, deterministically, λ_min(G_AA) ≥ λ_min(Σ_answered
 *   A_bᵀA_b) (G_AA is that plus PSD terms); the larger is used. So the bound is finite whenever the answered
 *   rows have full column rank: with blocks missing, x is the solution of the reweighted answered rows and ε
 *   bounds its distance to the full solution. Everything is on the column-scaled problem (D·G·D). 0 when every
 *   block answered.
 * - *objective* (deterministic, for the returned x, used when smaller than the two above together):
 *   ‖x − x*‖² ≤ (F_ans(x) − min F_ans + Σ_missing ‖M_b[x; −1]‖²)/λ_min(G_ans,AA), F the squared residual over
 *   all rows (F(x) − F(x*) = (x − x*)ᵀG_AA(x − x*) and F(x*) ≥ min F_ans), the missing blocks' residuals bounded
 *   from their summaries; or, when smaller, by the normal equations, ‖x − x*‖ ≤ ‖ĝ_ans‖/λ_min(G_ans,AA) +
 *   √(Σ_missing ‖M_b[x; −1]‖²/(4λ_min(G_ans,AA))), ĝ_ans the answered rows' own gradient at x; or, when smaller,
 *   by the missing blocks' gradient taken through the dataset's reference scatter (their Grams are s_bs_bᵀ/n_b +
 *   tr(K_b)·Ref plus a deviation bounded by the summaries' ρ_b or r_b), which keeps the cancellation of residuals
 *   that do not line up with the features. See {@link missingBlockBounds}.
 * Missing blocks are assumed to fail independently of their values (MAR).
 *
 * *Exact fill*: when every missing block's summary holds its exact centred scatter K_b (ingest records it for
 * cols ≤ `EXACT_SCATTER_MAX_COLS`), none of the above is needed: a missing block's Gram G_b = K_b + s_bs_bᵀ/n_b is
 * known, so the answered blocks keep weight 1, the missing ones enter the normal equations through Σ G_b (and the
 * sketch as D virtual rows F, FᵀF = Σ G_b), and CG solves the whole dataset's problem. ε is then the solve
 * certificate alone, (‖ĝ‖ + rounding)/(λ_min(Ĝ_AA) − ‖Ĝ − G‖₂), with the rounding of the summaries' scatters, the
 * depots' Grams and the products bounded by γ_k terms (it grows like κ(G) = κ(A)²: the Gram route), δ = 0, and the
 * residual norm is exact. MAR is not needed. If any missing block lacks the scatter, the bounds above are used.
 */
export async function leastSquaresCore(
  ctx: LocusContext,
  dataset: Dataset,
  options: LeastSquaresOptions,
  emit: (e: Estimate<LeastSquaresResult>) => void = () => {},
  /** On the call that replaces one whose exact fill could not certify (see the end): what that one moved. */
  fellBack?: { readonly bytesMoved: number },
): Promise<Estimate<LeastSquaresResult>> {
  check(dataset, options);
  const D = dataset.cols;
  const d = D - 1;
  const target = options.target ?? D - 1;
  const features = Array.from({ length: D }, (_, j) => j).filter((j) => j !== target);
  const delta = options.delta ?? 0.05;
  const boundDeltas = options.boundDeltas ?? [];
  const minCoverage = options.minCoverage ?? ctx.jobOptions?.minCoverage ?? 0;
  const tolerance = options.tolerance ?? 1e-10;
  const maxIterations = options.method === 'sketch-and-solve' ? 0 : (options.maxIterations ?? 30);
  const k = options.sketchRows ?? Math.max(4 * d, d + 40);
  const seed = options.seed ?? 0;
  const deadlineAt = options.deadlineMs === undefined ? undefined : Date.now() + options.deadlineMs;
  const roundOpts = {
    ...(deadlineAt === undefined ? {} : { deadlineAt }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  };
  let bytesMoved = fellBack?.bytesMoved ?? 0;
  const count = (r: RoundResult): RoundResult => {
    bytesMoved += r.bytesMoved;
    return r;
  };
  // 1. Gram of every block (D × D each): the estimate Ĝ and its Bernstein radius, λ_min for the certificates.
  const gram = count(
    await round(
      ctx,
      dataset,
      'ls-gram',
      (b) => ({
        kernel: 'gram',
        attrs: { dtype: dataset.dtype, rows: b.rows, cols: D, k: 1 },
        inputs: [{ kind: 'block' }],
        output: { returnBytes: D * D * 8 },
      }),
      roundOpts,
    ),
  );
  const planned = gram.planned;
  let set = dataset.blocks.filter((b) => gram.outputs.has(b.index));
  // 2. Sketch of the blocks that answered: SM = Σ_b √w_b S_b M_b (sparse sign embedding, disjoint columns by rowOffset).
  const sketch = count(
    await round(
      ctx,
      dataset,
      'ls-sketch',
      (b) => ({
        kernel: 'sparse-sign-sketch',
        attrs: {
          dtype: dataset.dtype,
          rows: b.rows,
          cols: D,
          k,
          seed: seed * 1000 + ALGORITHM_STREAMS.LSQ,
          rowOffset: b.rowStart,
          s: 8,
        },
        inputs: [{ kind: 'block' }],
        output: { returnBytes: k * D * 8 },
      }),
      { ...roundOpts, blocks: set },
    ),
  );
  set = set.filter((b) => sketch.outputs.has(b.index));
  const ids = (blocks: readonly DatasetBlock[]) => new Set(blocks.map((b) => String(b.index)));
  const useFill = options.exactFill !== false;
  let { w, K, exact: fill } = htWeights(planned, ids(set), D, useFill);
  // With the missing blocks' Gram known exactly (fill), they enter the sketch as D virtual rows F with FᵀF = G_miss
  // (F = Λ^½Vᵀ from G_miss = VΛVᵀ): ‖M_b z‖² summed over them is ‖Fz‖², so [S·M_answered; F] sketches the whole
  // problem and R preconditions it.
  const virtual = fill === undefined ? 0 : D;
  const kk = k + virtual;
  const SM = new Float64Array(kk * D);
  for (const b of set) {
    const v = sketch.outputs.get(b.index)!;
    const s = Math.sqrt(w.get(String(b.index))!);
    for (let i = 0; i < k * D; i++) SM[i]! += s * v[i]!;
  }
  if (fill !== undefined) SM.set(gramFactor(fill.gram, D), k * D);
  // SA = QR; sketch-and-solve x₀ = R⁻¹Qᵀ(Sb); R preconditions the iteration.
  const SA = new Float64Array(kk * d);
  const Sb = new Float64Array(kk);
  for (let i = 0; i < kk; i++) {
    features.forEach((j, t) => (SA[i * d + t] = SM[i * D + j]!));
    Sb[i] = SM[i * D + target]!;
  }
  const Q = orthonormalize(SA, kk, d);
  const R = mul(transpose(Q, kk, d), SA, d, kk, d);
  for (let i = 0; i < d; i++) for (let j = 0; j < i; j++) R[i * d + j] = 0;
  for (let i = 0; i < d; i++) if (!(Math.abs(R[i * d + i]!) > 0)) R[i * d + i] = Number.MIN_VALUE * 1e10;
  const Rinv = upperInverse(R, d);
  const x = mul(Rinv, mul(transpose(Q, kk, d), Sb, d, kk, 1), d, d, 1);

  // One in-locus pass: H = Ĝ·[x̃ p̃] with x̃ = [x; −1], p̃ = [p; 0] in dataset column order, Ĝ = Σ w_b M_bᵀM_b + K.
  const embed = (v: Float64Array, t: number): Float64Array => {
    const out = new Float64Array(D);
    features.forEach((j, i) => (out[j] = v[i]!));
    out[target] = t;
    return out;
  };
  const pass = async (
    xs: Float64Array,
    p: Float64Array | undefined,
  ): Promise<{ g: Float64Array; q?: Float64Array; xg: number; restart: boolean }> => {
    const cols = p === undefined ? 1 : 2;
    const xt = embed(xs, -1);
    const pt = p === undefined ? undefined : embed(p, 0);
    const X = new Float64Array((D + 1) * cols);
    for (let j = 0; j < D; j++) {
      X[j * cols] = xt[j]!;
      if (pt !== undefined) X[j * cols + 1] = pt[j]!;
    }
    const Xb = bytesOf(X);
    const ap = count(
      await round(
        ctx,
        dataset,
        'ls-product',
        (b) => ({
          kernel: 'affine-product',
          attrs: { dtype: dataset.dtype, rows: b.rows, cols: D, k: cols },
          inputs: [{ kind: 'block' }, { kind: 'shared', name: 'X', data: Xb }],
          output: { store: 'LS', bytes: b.rows * cols * 8 },
        }),
        { ...roundOpts, blocks: set },
      ),
    );
    const on = pinnedTo(ctx, { ...dataset, blocks: set }, 'LS').filter((b) => ap.outputs.has(b.index));
    const atr = count(
      await round(
        ctx,
        dataset,
        'ls-transpose',
        (b) => ({
          kernel: 'transpose-product',
          attrs: { dtype: dataset.dtype, rows: b.rows, cols: D, k: cols },
          inputs: [{ kind: 'block' }, { kind: 'state', name: 'LS' }],
          output: { returnBytes: (D + 1) * cols * 8 },
        }),
        { ...roundOpts, blocks: on },
      ),
    );
    const before = set.length;
    set = set.filter((b) => atr.outputs.has(b.index));
    if (set.length !== before) ({ w, K, exact: fill } = htWeights(planned, ids(set), D, useFill));
    const H = new Float64Array(D * cols);
    for (const b of set) {
      const C = atr.outputs.get(b.index)!;
      const wb = w.get(String(b.index))!;
      for (let i = 0; i < D * cols; i++) H[i]! += wb * C[i]!;
    }
    const KX = mul(K, pt === undefined ? xt : interleave(xt, pt, D), D, D, cols);
    for (let i = 0; i < D * cols; i++) H[i]! += KX[i]!;
    const g = Float64Array.from(features, (j) => H[j * cols]!);
    let xg = 0;
    for (let j = 0; j < D; j++) xg += xt[j]! * H[j * cols]!;
    const out: { g: Float64Array; q?: Float64Array; xg: number } = { g, xg };
    if (pt !== undefined) out.q = Float64Array.from(features, (j) => H[j * cols + 1]!);
    return { ...out, restart: set.length !== before };
  };

  // 3. Preconditioned CG on Ĝ_AA x = Ĝ_Ab with preconditioner (RᵀR)⁻¹; each pass also gives the true gradient at x.
  const precond = (r: Float64Array): Float64Array => mul(Rinv, mul(transpose(Rinv, d, d), r, d, d, 1), d, d, 1);
  let cur = await pass(x, undefined);
  let r = cur.g.map((v) => -v);
  let z = precond(r);
  let p = z.slice();
  let rz = dot(r, z);
  let iterations = 0;
  let lambdaMin = 0;
  let acc: ReturnType<MatrixAccumulator['estimate']> | undefined;
  let lambdaMax = 0;
  // The sampling bound is taken on the column-scaled Gram D·Ĝ·D, D = diag(1/√Σ_b colSumSq_j) from the summaries of
  // every planned block (fixed before any block answers), so columns of very different scales do not make it
  // vacuous; λ_min(D_A Ĝ_AA D_A) − t then bounds the scaled problem's conditioning.
  const scale = new Float64Array(D);
  for (const b of dataset.blocks) for (let j = 0; j < D; j++) scale[j]! += b.summary!.colSumSq[j]!;
  for (let j = 0; j < D; j++) scale[j] = scale[j]! > 0 ? 1 / Math.sqrt(scale[j]!) : 1;
  const scaledPlan = planned.map((p) => ({ ...p, summary: scaledSummary(p.summary, scale) }));
  let lambdaMinScaled = 0;
  let Ghat = new Float64Array(D * D);
  let accumulator: MatrixAccumulator | undefined;
  // Deterministic parts of the sampling bound (scaled): E_ans = Σ_answered (w_b − 1)R_b, Σ_missing ‖R_b‖ from the
  // summaries, and λ_min of the answered rows' own (unweighted) Gram of A.
  let Eans = new Float64Array(D * D);
  let EansNorm = 0;
  let missingNorm = 0;
  let lambdaAnsScaled = 0;
  // The answered rows' own Gram (unscaled) and the missing blocks' summaries: the deterministic objective bound.
  let GansRaw = new Float64Array(D * D);
  let missingSummaries: BlockSummary[] = [];
  // With every missing block's exact scatter: G_miss, and gramError ≥ ‖Ĝ − G‖₂ for Ĝ = G_ans + G_miss as computed.
  let exactFill: ReturnType<typeof missingExactGram>;
  let gramError = 0;
  const certify = () => {
    const stat = gramStatistic(D);
    const a = new MatrixAccumulator(stat);
    const answered = ids(set);
    const weights = htWeights(planned, answered, D, useFill).w;
    const Gans = new Float64Array(D * D);
    GansRaw = new Float64Array(D * D);
    Eans = new Float64Array(D * D);
    const scaledOf = new Map(scaledPlan.map((p) => [p.id, p.summary]));
    for (const b of set) {
      const G = gram.outputs.get(b.index)!;
      const Gs = G.map((v, i) => v * scale[Math.floor(i / D)]! * scale[i % D]!);
      a.add(String(b.index), Gs);
      const known = stat.known!(scaledOf.get(String(b.index)) ?? scaledSummary(b.summary!, scale));
      const wb = weights.get(String(b.index)) ?? 1;
      for (let i = 0; i < D * D; i++) {
        GansRaw[i]! += G[i]!;
        Gans[i]! += Gs[i]!;
        Eans[i]! += (wb - 1) * (Gs[i]! - known[i]!);
      }
    }
    missingNorm = 0;
    for (const p of scaledPlan) if (!answered.has(p.id)) missingNorm += stat.remainderNormBound(p.summary) * (1 + 1e-12);
    missingSummaries = planned.filter((p) => !answered.has(p.id)).map((p) => p.summary);
    const eE = symmetricEigenvalues(Eans, D);
    EansNorm = Math.max(Math.abs(eE[0]!), Math.abs(eE[D - 1]!));
    accumulator = a;
    acc = a.estimate(scaledPlan, { delta, weighting: 'response-groups', final: true, minCoverage });
    Ghat = acc.value.map((v, i) => v / (scale[Math.floor(i / D)]! * scale[i % D]!));
    exactFill = useFill ? missingExactGram(planned, answered, D) : undefined;
    gramError = 0;
    if (exactFill !== undefined) {
      // Nothing estimated: Ĝ = G_ans + G_miss. Its error: the depots' Grams (n_b products per entry, ≤ γ_{n_b}·frob2_b
      // in Frobenius norm, in the dataset's arithmetic), their sum over the answered blocks and the addition of G_miss
      // (γ_{|answered|+1}·Σ frob2), and G_miss's own allowance.
      const uData = dataset.dtype === 'float32' ? 2 ** -24 : U;
      let ansFrob = 0;
      let maxRows = 1;
      for (const b of set) {
        ansFrob += b.summary!.frob2;
        maxRows = Math.max(maxRows, b.rows);
      }
      const g = (m: number, u: number) => (m * u) / (1 - m * u);
      gramError =
        (g(maxRows + 1, uData) * ansFrob + gammaOf(set.length + 2) * (ansFrob + exactFill.frob2) + exactFill.error) * 1.01;
      Ghat = GansRaw.map((v, i) => v + exactFill!.gram[i]!);
    }
    const sub = (M: Float64Array) => {
      const out = new Float64Array(d * d);
      features.forEach((i, s) => features.forEach((j, t) => (out[s * d + t] = M[i * D + j]!)));
      return out;
    };
    const eig = symmetricEigenvalues(sub(Ghat), d);
    lambdaMin = Math.min(...eig);
    lambdaMax = Math.max(...eig);
    lambdaMinScaled = Math.min(...symmetricEigenvalues(sub(acc.value), d));
    // Rounding of the eigen solve: a relative 1e-12 of the largest eigenvalue.
    const eAns = symmetricEigenvalues(sub(Gans), d);
    lambdaAnsScaled = Math.max(0, Math.min(...eAns) - 1e-12 * Math.max(...eAns.map(Math.abs)));
    let trace = 0;
    for (let j = 0; j < D; j++) trace += Math.abs(Ghat[j * D + j]!);
    return { trace };
  };
  let { trace } = certify();
  // Rounding in the gradient computed in locus (Higham 2002, §3.1, γ_n = nu/(1 − nu)): r = M x̃ has
  // ‖δr‖ ≤ γ_D‖M‖_F‖x̃‖, and ‖Aᵀδr‖ ≤ ‖A‖₂‖δr‖; forming Aᵀr adds ≤ γ_rows‖A‖_F‖r‖.
  const gamma = (m: number): number => (m * U) / (1 - m * U);
  const roundingOf = (): number => {
    const F = Math.sqrt(trace);
    return (
      2 * gamma(D + 1) * Math.sqrt(lambdaMax) * F * norm(embed(x, -1)) +
      2 * gamma(Math.max(1, dataset.rows)) * F * Math.sqrt(Math.max(0, cur.xg))
    );
  };
  // With the missing blocks filled exactly, the gradient's H also holds G_miss·x̃: its rounding (G_miss's allowance,
  // the product's γ_{D+1}, and the sum with the answered blocks' outputs, each ≤ frob2_b·‖x̃‖: γ_{B+D+3}·2·tr G),
  // and λ_min(G_AA) ≥ λ_min(Ĝ_AA) − ‖Ĝ − G‖₂ − the eigen solve's 10⁻¹²·λ_max (Weyl).
  const fillRounding = (): number =>
    exactFill === undefined
      ? 0
      : (exactFill.error + gammaOf(dataset.blocks.length + D + 3) * 2 * trace) * 1.01 * norm(embed(x, -1));
  const solveError = (g: Float64Array): number => {
    if (exactFill === undefined) return lambdaMin > 0 ? (norm(g) + roundingOf()) / lambdaMin : Infinity;
    const lam = lambdaMin - gramError - 1e-12 * Math.abs(lambdaMax);
    return lam > 0 ? ((norm(g) + roundingOf() + fillRounding()) / lam) * (1 + 1e-12) : Infinity;
  };
  // Done when the certificate meets the tolerance, or when the gradient is down to the rounding level (the in-locus
  // products' allowance: G_miss's own rounding is a fixed offset of the problem that further steps cannot reduce).
  const done = (g: Float64Array): boolean => {
    const inLocus = lambdaMin > 0 ? (norm(g) + roundingOf()) / lambdaMin : Infinity;
    return inLocus <= tolerance * norm(x) || norm(g) <= roundingOf();
  };
  const late = (): boolean => deadlineAt !== undefined && Date.now() >= deadlineAt;
  let fresh = true; // cur.g is the gradient at the current x
  while (!done(cur.g) && iterations < maxIterations && !late()) {
    checkAborted(options.signal);
    // One pass gives the true gradient at x (the certificate) and q = Ĝ_AA·p (the step).
    const step = await pass(x, p);
    cur = step;
    fresh = true;
    if (step.restart === true) {
      // A block stopped answering: the weighted problem changed; restart CG on it.
      ({ trace } = certify());
      r = step.g.map((v) => -v);
      z = precond(r);
      p = z.slice();
      rz = dot(r, z);
      iterations++;
      continue;
    }
    if (done(cur.g)) break;
    const q = step.q!;
    const pq = dot(p, q);
    if (!(pq > 0)) break;
    const alpha = rz / pq;
    for (let i = 0; i < d; i++) x[i]! += alpha * p[i]!;
    fresh = false;
    r = r.map((v, i) => v - alpha * q[i]!);
    z = precond(r);
    const rzNew = dot(r, z);
    const beta = rzNew / rz;
    rz = rzNew;
    p = z.map((v, i) => v + beta * p[i]!);
    iterations++;
    if (iterations % 5 === 0) emit({ ...build(), epsilon: Infinity });
  }
  if (!fresh) {
    cur = await pass(x, undefined);
    if (cur.restart === true) ({ trace } = certify());
  }

  // With the missing blocks filled exactly: F(x) = zᵀĜz over every row, widened by ‖Ĝ − G‖₂·‖z‖² and its own rounding.
  function exactResidual(zt: Float64Array): FullResidual {
    const base = fullResidual({ gram: Ghat, cols: D, target, missing: [], answered: set.map((b) => b.summary!), x });
    let z2 = 0;
    for (const v of zt) z2 += v * v;
    const extra = gramError * z2 * 1.01;
    return {
      estimate: base.estimate,
      lower: Math.sqrt(Math.max(0, base.lower ** 2 - extra)) * (1 - 1e-15),
      upper: Math.sqrt(base.upper ** 2 + extra) * (1 + 1e-15),
    };
  }

  function build(): Estimate<LeastSquaresResult> {
    const a = acc!;
    const t = a.epsilon;
    const eSolve = solveError(cur.g);
    // ‖x̂ − x*‖ ≤ max_A(D)·t·‖D⁻¹[x̂; −1]‖/(λ_min(D_A Ĝ_AA D_A) − t).
    let dMax = 0;
    let scaledX2 = 0;
    const xt = embed(x, -1);
    for (let j = 0; j < D; j++) {
      if (j !== target) dMax = Math.max(dMax, scale[j]!);
      scaledX2 += (Math.abs(xt[j]!) + (j === target ? 0 : eSolve)) ** 2 / scale[j]! ** 2;
    }
    let invScaleMax = 0;
    for (const j of features) invScaleMax = Math.max(invScaleMax, 1 / scale[j]!);
    // Deterministic numerator at u = D⁻¹[x; −1] (x within eSolve of the weighted problem's exact solution).
    const u = xt.map((v, j) => v / scale[j]!);
    const Eu = mul(Eans, u, D, D, 1);
    let EuA = 0;
    for (const j of features) EuA += Eu[j]! ** 2;
    const numDet = Math.sqrt(EuA) * (1 + 1e-12) + EansNorm * eSolve * invScaleMax + missingNorm * Math.sqrt(scaledX2);
    // Every block answered, or every missing block filled exactly from its summary: nothing is estimated.
    const exact = exactFill !== undefined || (missingNorm === 0 && EansNorm === 0);
    const sampling = (tt: number): number => {
      if (exact || tt === 0) return 0;
      const den = Math.max(lambdaMinScaled - tt, lambdaAnsScaled);
      return den > 0 ? (dMax * Math.min(tt * Math.sqrt(scaledX2), numDet)) / den : Infinity;
    };
    const eObjective =
      exactFill !== undefined
        ? Infinity
        : Math.min(
            ...Object.values(
              missingBlockBounds({
                gram: GansRaw,
                cols: D,
                target,
                missing: missingSummaries,
                answered: set.map((b) => b.summary!),
                x,
              }),
            ),
          );
    const eSampling = sampling(t);
    const boundsAt = boundDeltas.map((dl) => ({
      delta: dl,
      epsilon:
        exactFill !== undefined
          ? eSolve
          : Math.min(
              eObjective,
              eSolve +
                sampling(
                  accumulator!.estimate(scaledPlan, { delta: dl, weighting: 'response-groups', final: true, minCoverage })
                    .epsilon,
                ),
            ),
    }));
    // The whole dataset's residual at x (not the reweighted problem's x̃ᵀĜx̃, which leaves out what the weights miss).
    const residual =
      exactFill !== undefined
        ? exactResidual(xt)
        : fullResidual({
            gram: GansRaw,
            cols: D,
            target,
            missing: missingSummaries,
            answered: set.map((b) => b.summary!),
            x,
          });
    // Condition of A·R⁻¹ from Ĝ: eigenvalues of R⁻ᵀĜ_AA R⁻¹.
    const GAA = new Float64Array(d * d);
    features.forEach((i, s) => features.forEach((j, u) => (GAA[s * d + u] = Ghat[i * D + j]!)));
    const P = mul(transpose(Rinv, d, d), mul(GAA, Rinv, d, d, d), d, d, d);
    const pe = symmetricEigenvalues(P, d);
    const cond = Math.sqrt(Math.max(...pe) / Math.max(Math.min(...pe), 1e-300));
    return {
      value: {
        coefficients: x.slice(),
        features,
        target,
        residualNorm: residual.estimate,
        residualNormLower: residual.lower,
        residualNormUpper: residual.upper,
        iterations,
        preconditionedCondition: cond,
        boundsAt,
      },
      epsilon: Math.min(eObjective, eSolve + eSampling),
      // The objective bound is sure: when it is the smaller, nothing is left to chance.
      delta: t === 0 || exactFill !== undefined || eObjective <= eSolve + eSampling ? 0 : a.parts.sampling.delta,
      coverage: a.coverage,
      blocksUsed: set.length,
      blocksMissing: dataset.blocks.length - set.length,
      bytesMoved,
      method:
        exactFill !== undefined
          ? `every missing block (${missingSummaries.length}) filled exactly from its summary's centred scatter ` +
            `(G_b = K_b + s_bs_bᵀ/n_b, in the sketch as virtual rows and in the normal equations): nothing is estimated; ` +
            `${maxIterations === 0 ? 'sketch-and-solve' : `sketch-preconditioned CG on the whole dataset's normal equations (CGLS; ${iterations} iterations)`}` +
            ` with a ${k}-row sparse sign sketch; ε = (‖ĝ‖ + rounding)/(λ_min(Ĝ) − ‖Ĝ − G‖), the certificate of x against ` +
            `the whole dataset's solution from the gradient computed in locus, with the rounding of the depots' Grams and ` +
            `the summaries' scatters; δ = 0`
          : (missingSummaries.length === 0
              ? ''
              : fellBack !== undefined
                ? `missing blocks bounded, not filled: their summaries' exact scatters could not certify x (the fill's ` +
                  `rounding allowance exceeds λ_min of the answered rows' Gram: float32 data or columns far from zero); `
                : missingSummaries.some((m) => m.exactScatter === undefined)
                  ? `missing blocks bounded, not filled: their summaries hold no exact scatter (more than ` +
                    `${EXACT_SCATTER_MAX_COLS} columns, or an exNode from before it was recorded); `
                  : '') +
            `${maxIterations === 0 ? 'sketch-and-solve' : `sketch-preconditioned CG on the normal equations in locus (CGLS; ${iterations} iterations)`}` +
            ` with a ${k}-row sparse sign sketch; solve error ‖ĝ‖/λ_min(Ĝ) from the gradient computed in locus; ` +
            `sampling error min(t‖z‖, ‖Σ_ans (w − 1)R z‖ + ‖z‖Σ_miss ‖R_b‖)/max(λ_min(Ĝ) − t, λ_min(answered rows' Gram)), ` +
            `z = D⁻¹[x; −1], on the column-scaled Gram, t its ${a.method}; or, when smaller, the objective bound ` +
            `√((F_ans(x) − min F_ans + Σ_missing ‖M_b[x; −1]‖² bound)/λ_min(answered rows' Gram)), its normal-equations ` +
            `form, or the missing gradient through the reference scatter (s_bs_bᵀ/n_b + tr(K_b)·Ref, the deviation within the summaries' ρ_b and K_b ⪰ 0, or r_b)`,
      norm: 'l2',
      parts: {
        sampling: {
          epsilon: Math.min(eSampling, eObjective),
          delta: t === 0 || exactFill !== undefined || eObjective <= eSolve + eSampling ? 0 : a.parts.sampling.delta,
        },
        sketch: { epsilon: eSolve, delta: 0 },
      },
      sources: [],
      final: false,
    };
  }
  const result = build();
  if (!Number.isFinite(result.epsilon) && exactFill !== undefined) {
    // The exact fill's rounding allowance is larger than what the answered rows can certify with: the bounded path
    // (which needs only the answered rows' own λ_min) answers instead.
    await ctx.runner.release();
    // Within the same deadline, counting the first attempt's traffic.
    const rest = deadlineAt === undefined ? {} : { deadlineMs: Math.max(0, deadlineAt - Date.now()) };
    return leastSquaresCore(ctx, dataset, { ...options, ...rest, exactFill: false }, emit, { bytesMoved });
  }
  if (!Number.isFinite(result.epsilon))
    throw new CoordinatorError(
      CoordinatorErrorCode.COVERAGE,
      `coverage too low for least squares: the answered blocks (${set.length} of ${dataset.blocks.length}) do not determine x (their rows are rank-deficient)`,
      { details: { coverage: result.coverage, blocksUsed: set.length, blocksPlanned: dataset.blocks.length } },
    );
  await ctx.runner.release();
  return { ...result, final: true };
}

/**
 * F (D × D, row-major) with FᵀF = G for a symmetric positive semidefinite G: F = Λ^½Vᵀ from G = VΛVᵀ (negative
 * eigenvalues from rounding are taken as 0). Its rows stand for the rows G came from in a sketch.
 */
function gramFactor(G: Float64Array, D: number): Float64Array {
  const e = svd(G, D, D);
  const F = new Float64Array(D * D);
  for (let i = 0; i < D; i++) {
    // G symmetric PSD: U = V up to the sign of null directions; λ_i = s_i·(u_i·v_i).
    let c = 0;
    for (let j = 0; j < D; j++) c += e.U[j * D + i]! * e.V[j * D + i]!;
    const r = Math.sqrt(Math.max(0, e.s[i]! * Math.sign(c)));
    for (let j = 0; j < D; j++) F[i * D + j] = r * e.V[j * D + i]!;
  }
  return F;
}

/** γ_k = k·u/(1 − k·u) (Higham 2002, §3.1), u the float64 unit roundoff: the relative error of k roundings. */
function gammaOf(k: number): number {
  return (k * U) / (1 - k * U);
}

/** Inputs of {@link missingBlockBounds}. */
export interface MissingBlockBoundsInput {
  /** Σ_answered M_bᵀM_b (cols × cols, row-major, dataset column order), as the depots computed it. */
  readonly gram: Float64Array;
  readonly cols: number;
  /** Column of b; the others are A, in order. */
  readonly target: number;
  /** The missing blocks' summaries. */
  readonly missing: readonly BlockSummary[];
  /** The answered blocks' summaries (for the rounding allowance of their Grams). */
  readonly answered: readonly BlockSummary[];
  /** The point y bounded (one coefficient per column of A). */
  readonly x: Float64Array;
}

/** The deterministic bounds of {@link missingBlockBounds} on ‖y − x*‖ (each sound alone; Infinity where not available). */
export interface MissingBlockBounds {
  /** √((F_ans(y) − min F_ans + F_miss(y))/λ_min(G_ans,AA)). */
  readonly objective: number;
  /** ‖ĝ_ans(y)‖/λ_min(G_ans,AA) + √(F_miss(y)/(4λ_min(G_ans,AA))), at y and at the answered rows' solution. */
  readonly normalEquations: number;
  /** The missing gradient through the reference scatter, at y and at the reference-imputed solution. */
  readonly referenceGradient: number;
}

/**
 * @internal What a missing block's summary says of its squared residual ‖M_bz‖² at z = [y; −1] (dataset column
 * order): ‖M_bz‖² = (s_bᵀz)²/n_b + zᵀK_bz with K_b ⪰ 0 its centred scatter, so `lower` = (s_bᵀz)²/n_b and `upper`
 * adds the bound on zᵀK_bz of {@link missingBlockBounds} (λ_max, the diagonal, the reference ball or relative bound).
 */
function missingResidualRange(sm: BlockSummary, zt: Float64Array): { lower: number; upper: number; meanPart: number } {
  const D = zt.length;
  let z2 = 0;
  for (const v of zt) z2 += v * v;
  const nb = Math.max(1, sm.rows);
  let sz = 0;
  let diag = 0;
  for (let j = 0; j < D; j++) {
    sz += sm.colSums[j]! * zt[j]!;
    diag += Math.abs(zt[j]!) * Math.sqrt(Math.max(0, sm.colSumSq[j]! - (sm.colSums[j]! * sm.colSums[j]!) / nb));
  }
  let quad = Math.min(scatterBounds(sm).eigMax * z2, diag * diag);
  const ref = sm.scatterReference;
  if (sm.scatterRadius !== undefined && ref !== undefined && ref.cols === D) {
    const Rz = mul(ref.matrix, zt, D, D, 1);
    // Rounding of zᵀRef z: ≤ γ_{2D}·‖Ref‖_F·‖z‖² (tr Ref = 1, so ‖Ref‖_F ≤ 1 + rounding).
    const zRz = Math.max(0, dot(zt, Rz)) + 4 * D * 2 ** -53 * z2;
    const tr = scatterTrace(sm);
    quad = Math.min(quad, tr * zRz + sm.scatterRadius * z2);
    const rho = sm.scatterRho;
    const tau = sm.scatterRhoTau;
    if (rho !== undefined && tau !== undefined) quad = Math.min(quad, (tr + rho) * zRz + rho * tau * z2);
  }
  const meanPart = (sz * sz) / nb;
  // The mean part rounded: relative γ_{D+2} of Σ|s_j z_j| squared.
  let abs = 0;
  for (let j = 0; j < D; j++) abs += Math.abs(sm.colSums[j]! * zt[j]!);
  const roundMean = (gammaOf(D + 2) * abs * (2 * Math.abs(sz) + gammaOf(D + 2) * abs)) / nb;
  return { lower: Math.max(0, meanPart - roundMean), upper: (meanPart + quad) * (1 + 1e-12) + roundMean, meanPart };
}

/** The whole dataset's residual norm at a point: {@link fullResidual}. */
interface FullResidual {
  /** The estimate of ‖Ax − b‖ over every row. */
  readonly estimate: number;
  /** Sure bounds from the answered rows' Grams and the missing blocks' summaries (equal to it when none is missing). */
  readonly lower: number;
  readonly upper: number;
}

/**
 * @internal ‖Ay − b‖ over every row of the dataset, F(y) = F_ans(y) + Σ_missing ‖M_bz‖² (z = [y; −1]): F_ans(y) =
 * zᵀG_ans z exact from the answered rows' Gram, and each missing block's (s_bᵀz)²/n_b + zᵀK_bz with its scatter
 * part estimated like the answered rows', zᵀK_bz ≈ tr(K_b)·zᵀK_ans z/tr(K_ans) (K_ans = Σ_ans K_a; missing at
 * random: a missing block's residual spreads like the answered ones' per unit of scatter), kept within what its
 * summary allows ({@link missingResidualRange}). `lower`/`upper` hold surely (widened by the rounding of zᵀG z).
 */
function fullResidual(input: MissingBlockBoundsInput): FullResidual {
  const { gram, cols: D, target, missing, answered, x } = input;
  const zt = new Float64Array(D);
  let i = 0;
  for (let j = 0; j < D; j++) zt[j] = j === target ? -1 : x[i++]!;
  const Gz = mul(gram, zt, D, D, 1);
  let fAns = 0;
  let fAbs = 0;
  for (let j = 0; j < D; j++) {
    fAns += zt[j]! * Gz[j]!;
    for (let k = 0; k < D; k++) fAbs += Math.abs(zt[j]! * gram[j * D + k]! * zt[k]!);
  }
  // Rounding of zᵀGz (2D products and sums) and of the Grams themselves (each entry a sum over the block's rows).
  let rows = 1;
  for (const sm of answered) rows = Math.max(rows, sm.rows);
  const roundAns = gammaOf(2 * D + rows) * fAbs;
  fAns = Math.max(0, fAns);
  if (missing.length === 0) {
    const r = Math.sqrt(fAns);
    return { estimate: r, lower: Math.sqrt(Math.max(0, fAns - roundAns)), upper: Math.sqrt(fAns + roundAns) };
  }
  // Answered rows' centred part per unit of scatter trace: zᵀK_ans z / tr(K_ans).
  let centred = fAns;
  let traceAns = 0;
  for (const sm of answered) {
    centred -= missingResidualRange(sm, zt).meanPart;
    traceAns += scatterTrace(sm);
  }
  const perTrace = traceAns > 0 ? Math.max(0, centred) / traceAns : 0;
  let est = fAns;
  let lower = Math.max(0, fAns - roundAns);
  let upper = fAns + roundAns;
  for (const sm of missing) {
    const r = missingResidualRange(sm, zt);
    est += Math.min(r.upper, Math.max(r.lower, r.meanPart + scatterTrace(sm) * perTrace));
    lower += r.lower;
    upper += r.upper;
  }
  return { estimate: Math.sqrt(est), lower: Math.sqrt(lower), upper: Math.sqrt(upper) };
}

/**
 * @internal Deterministic bounds on ‖y − x*‖ for any y, x* the least-squares solution on all rows, from the
 * answered rows' Gram and the missing blocks' summaries only (the missing blocks may hold any rows consistent
 * with their summaries). Infinity for each when no block is missing (the solve certificate is then the bound).
 *
 * *Objective*: with F(x) = ‖Ax − b‖² over all rows, F(y) − F(x*) = (y − x*)ᵀG_AA(y − x*) ≥ λ_min(G_ans,AA)‖y − x*‖²,
 * and F(x*) ≥ min F_ans, so ‖y − x*‖² ≤ (F_ans(y) − min F_ans + F_miss(y))/λ_min(G_ans,AA). F_ans(y) − min F_ans =
 * (y − x_ans)ᵀG_ans,AA(y − x_ans) is exact; a missing block's ‖M_b z‖² = (s_bᵀz)²/n_b + zᵀK_bz (z = [y; −1], K_b its
 * centred scatter) with zᵀK_bz ≤ min(λ_max(K_b)‖z‖², (Σ_j |z_j|√K_b,jj)²) from its summary (|K_ij| ≤ √(K_ii K_jj)
 * for a PSD K), and with a ball ‖K_b − tr(K_b)·Ref‖₂ ≤ r_b around the dataset's reference scatter, zᵀK_bz ≤
 * tr(K_b)·zᵀRef z + r_b‖z‖², and with the relative bound K_b − tr(K_b)·Ref ⪯ ρ_b(Ref + τ_bI), zᵀK_bz ≤
 * (tr(K_b) + ρ_b)·zᵀRef z + ρ_bτ_b‖z‖².
 *
 * *Normal equations*: G_AA(x* − y) = −ĝ_ans(y) − Σ_missing A_bᵀr_b (ĝ_ans(y) = G_ans,AA y − g_ans,Ab, r_b = M_bz), and
 * with X = Σ_missing A_bᵀA_b, G_AA = G_ans,AA + X: ‖G_AA⁻¹Σ A_bᵀr_b‖ ≤ √(λ_max(G_AA⁻¹XG_AA⁻¹))·‖r_miss‖
 * (Cauchy–Schwarz over the rows), and G_AA⁻¹XG_AA⁻¹ ⪯ G_ans,AA⁻¹/4 (Y(I + Y)⁻² ⪯ I/4 for Y ⪰ 0). So ‖y − x*‖ ≤
 * ‖ĝ_ans(y)‖/λ_min(G_ans,AA) + √(F_miss(y)/(4λ_min(G_ans,AA))), ĝ_ans widened by its rounding; at y, and at x_ans as
 * computed plus ‖y − x_ans‖.
 *
 * *Reference gradient* (needs every missing block's summary to carry the dataset's reference scatter Ref and a
 * ball r_b or relative bound ρ_b, τ_b): the Cauchy–Schwarz step above assumes a missing block's residuals line up
 * with its features, which the summaries allow but a block like the others does not do. Write every missing
 * block's Gram as G_b = s_bs_bᵀ/n_b + tr(K_b)·Ref + C_b + (E_b − C_b), E_b = K_b − tr(K_b)·Ref unknown but bounded
 * around a known centre C_b, and G = G₀ + Σ_missing (E_b − C_b) + F with the known G₀ = G_ans + Σ_missing
 * (s_bs_bᵀ/n_b + tr(K_b)·Ref + C_b) (as computed) and F its rounding, ‖F‖₂ ≤ φ. Then, exactly, G_AA(y − x*) =
 * [Gz]_A = v + Σ_missing [(E_b − C_b)z]_A + [Fz]_A with v = [G₀z]_A computed. Let L ⪯ G_AA be a known positive
 * definite lower bound (below); G_AA⁻² ⪯ λ_min(L)⁻¹·L⁻¹, so ‖G_AA⁻¹u‖ ≤ √(uᵀL⁻¹u/λ_min(L)) for every u, and:
 * - ‖G_AA⁻¹v‖ ≤ √(vᵀL⁻¹v/λ_min(L)) (v widened by the rounding of G₀z);
 * - the relative bound is one-sided, E_b ⪯ ρ_bP_b (P_b = Ref + τ_bI ≻ 0), and K_b ⪰ 0 gives E_b ⪰ −tr(K_b)·Ref, so
 *   with C_b = ((ρ_b − t_b)/2)·Ref + (ρ_bτ_b/2)·I and H_b = ((ρ_b + t_b)/2)·Ref + (ρ_bτ_b/2)·I (t_b = tr(K_b)),
 *   −H_b ⪯ E_b − C_b ⪯ H_b: E_b − C_b = H_b^½CH_b^½ with ‖C‖₂ ≤ 1, and ‖G_AA⁻¹[(E_b − C_b)z]_A‖ ≤
 *   ‖G_AA⁻¹Π_AH_b^½‖·‖H_b^½z‖ ≤ √((h_bμ + η_b/λ_min(L))/λ_min(L))·√(h_b·zᵀRef z + η_b‖z‖²), H_b = h_b·Ref + η_bI,
 *   μ = λ_max(L^-½Ref_AA L^-½), Π_A the rows of A (this is the worst case over the interval); with the ball
 *   ‖E_b‖₂ ≤ r_b, ≤ (r_b‖z‖ + ‖C_bz‖)/λ_min(L) (the smaller is used per block; C_b = 0 without ρ_b);
 * - ‖G_AA⁻¹[Fz]_A‖ ≤ φ‖z‖/λ_min(L).
 * The lower bound: G_b ⪰ s_bs_bᵀ/n_b (K_b ⪰ 0), and ⪰ s_bs_bᵀ/n_b + tr(K_b)·Ref − r_bI (the ball); L is G_ans,AA
 * plus one of these per missing block, minus φ and the rounding of L itself, and the bound is the smallest over
 * two choices (the first for every block; the ball where tr(K_b) > r_b). Since Ref is the dataset's normalized
 * scatter, zᵀRef z is about the residual's share of the variance at a good y: the bound follows the missing
 * blocks' typical residual instead of its worst alignment, with the weak directions of G_AA weighed by L⁻¹ rather
 * than by λ_min alone. Evaluated at y, and at the reference-imputed solution x₀ = (G₀,AA)⁻¹G₀,Ab as computed plus
 * ‖y − x₀‖ (v ≈ 0 there). With a lower relative bound as well (−ρ⁻_bP_b ⪯ E_b, not recorded by ingest today) the
 * interval would shrink from about tr(K_b)/2 to about ρ_b.
 *
 * Rounding: a symmetric eigen or singular value solve of an n × n matrix of condition κ ≤ 10⁶ is accurate to
 * κ·O(u) ≤ 10⁻⁹ relatively; every quantity derived from one is widened by a relative 10⁻⁶, and κ above 10⁶ makes
 * the bound Infinity. Sums and products of the summaries' and Grams' entries are widened by γ_k (Higham 2002,
 * Lemma 3.1) of the magnitudes involved.
 */
export function missingBlockBounds(input: MissingBlockBoundsInput): MissingBlockBounds {
  const { gram: GansRaw, cols: D, target, missing: missingSummaries, x } = input;
  const none = { objective: Infinity, normalEquations: Infinity, referenceGradient: Infinity };
  if (missingSummaries.length === 0) return none;
  const d = D - 1;
  const features = Array.from({ length: D }, (_, j) => j).filter((j) => j !== target);
  const embed = (v: Float64Array, t: number): Float64Array => {
    const out = new Float64Array(D);
    features.forEach((j, i) => (out[j] = v[i]!));
    out[target] = t;
    return out;
  };
  const xt = embed(x, -1);
  const GAA = new Float64Array(d * d);
  const gAb = new Float64Array(d);
  features.forEach((i, s2) => {
    features.forEach((j, u2) => (GAA[s2 * d + u2] = GansRaw[i * D + j]!));
    gAb[s2] = GansRaw[i * D + target]!;
  });
  const e = svd(GAA, d, d);
  const sMax = e.s[0] ?? 0;
  const sMin = e.s[d - 1] ?? 0;
  const reference = referenceGradientBound(input, features, embed);
  // Condition above 10⁶: the rounding allowance below would not cover the computed x_ans; not used.
  if (!(sMin > 1e-6 * sMax)) return { ...none, referenceGradient: reference };
  // x_ans = G⁻¹g by the SVD of the symmetric PSD G (U = V).
  const Utg = mul(transpose(e.U, d, d), gAb, d, d, 1).map((v, i) => v / e.s[i]!);
  const xAns = mul(e.V, Utg, d, d, 1);
  const diff = x.map((v, i) => v - xAns[i]!);
  const Gd = mul(GAA, diff, d, d, 1);
  let zz = 0;
  for (const v of xt) zz += v * v;
  // Rounding of x_ans (relative error ≤ κ·O(u) ≤ 10⁻⁹ for κ ≤ 10⁶) and of the quadratic form: a relative
  // allowance and an absolute one of 10⁻⁸·‖G‖·‖z‖².
  const excess = Math.max(0, dot(diff, Gd)) * (1 + 1e-6) + 1e-8 * sMax * zz;
  // Σ_missing ‖M_bz‖² ≤ this, from the summaries, at z = [y; −1].
  const missAt = (zt: Float64Array): number => {
    let miss = 0;
    for (const sm of missingSummaries) miss += missingResidualRange(sm, zt).upper;
    return miss;
  };
  const miss = missAt(xt);
  const gamma = gammaOf(d + 2);
  const lam = sMin * (1 - 1e-9);
  const normalEqAt = (y: Float64Array, zt: Float64Array): number => {
    const Gy = mul(GAA, y, d, d, 1);
    let g2 = 0;
    let gRound2 = 0;
    for (let i = 0; i < d; i++) {
      g2 += (Gy[i]! - gAb[i]!) ** 2;
      let ab = Math.abs(gAb[i]!);
      for (let j = 0; j < d; j++) ab += Math.abs(GAA[i * d + j]! * y[j]!);
      gRound2 += (gamma * ab) ** 2;
    }
    return ((Math.sqrt(g2) + Math.sqrt(gRound2)) * 1.01) / lam + Math.sqrt(missAt(zt) / (4 * lam));
  };
  let diff2 = 0;
  for (const v of diff) diff2 += v * v;
  // At x_ans as computed plus ‖y − x_ans‖ (a y that solves a reweighted problem has a large gradient on the answered rows).
  const viaAns = Math.sqrt(diff2) * (1 + 1e-12) + normalEqAt(xAns, embed(xAns, -1));
  return {
    objective: Math.sqrt((excess + miss) / (sMin * (1 - 1e-12))),
    normalEquations: Math.min(normalEqAt(x, xt), viaAns),
    referenceGradient: reference,
  };
}

/**
 * The centre C_b = centre·Ref + diagonal·I and half-width H_b = half·Ref + halfDiagonal·I of a missing block's
 * scatter deviation E_b = K_b − tr(K_b)·Ref: with its relative bound E_b ⪯ ρ_b(Ref + τ_bI) and K_b ⪰ 0, −H_b ⪯
 * E_b − C_b ⪯ H_b. Zero (no centre, no width from it) without ρ_b: the ball ‖E_b‖₂ ≤ r_b is centred at 0.
 */
function centreOf(sm: BlockSummary): { centre: number; diagonal: number; half: number; halfDiagonal: number } {
  const rho = sm.scatterRho;
  const tau = sm.scatterRhoTau;
  if (rho === undefined || tau === undefined) return { centre: 0, diagonal: 0, half: 0, halfDiagonal: 0 };
  const t = scatterTrace(sm);
  // Rounded up (half) and as computed (centre, diagonal: any centre works, the one used in G₀ is this one).
  return {
    centre: (rho - t) / 2,
    diagonal: (rho * tau) / 2,
    half: ((rho + t) / 2) * (1 + 4 * U),
    halfDiagonal: ((rho * tau) / 2) * (1 + 4 * U),
  };
}

/** The reference-gradient bound of {@link missingBlockBounds} (Infinity when a missing block lacks what it needs). */
function referenceGradientBound(
  input: MissingBlockBoundsInput,
  features: readonly number[],
  embed: (v: Float64Array, t: number) => Float64Array,
): number {
  const { gram, cols: D, target, missing, x } = input;
  const d = D - 1;
  const ref = missing[0]?.scatterReference;
  if (ref === undefined || ref.cols !== D) return Infinity;
  for (const sm of missing)
    if (sm.scatterReference?.id !== ref.id || (sm.scatterRadius === undefined && sm.scatterRho === undefined)) return Infinity;
  const Ref = ref.matrix;
  const sub = (M: ArrayLike<number>): Float64Array => {
    const out = new Float64Array(d * d);
    features.forEach((i, s) => features.forEach((j, t) => (out[s * d + t] = M[i * D + j]!)));
    return out;
  };
  const frob = (M: ArrayLike<number>): number => {
    let f = 0;
    for (let i = 0; i < M.length; i++) f += M[i]! * M[i]!;
    return Math.sqrt(f);
  };
  // G₀ = G_ans + Σ_missing (s_bs_bᵀ/n_b + tr(K_b)·Ref + C_b), and the lower bounds' parts per missing block. With ρ_b:
  // −tr(K_b)·Ref ⪯ E_b ⪯ ρ_bP_b (K_b ⪰ 0, and the certificate), so E_b − C_b lies between ∓H_b with the centre
  // C_b = ((ρ_b − t_b)/2)·Ref + (ρ_bτ_b/2)·I and H_b = ((ρ_b + t_b)/2)·Ref + (ρ_bτ_b/2)·I, t_b = tr(K_b); without, C_b = 0.
  const G0 = Float64Array.from(gram);
  const means = new Float64Array(D * D); // Σ_missing s_bs_bᵀ/n_b
  let traceSum = 0;
  let diagonalSum = 0;
  let maxRows = 1;
  let missingFrob = 0;
  for (const sm of missing) {
    const nb = Math.max(1, sm.rows);
    maxRows = Math.max(maxRows, sm.rows);
    const t = scatterTrace(sm);
    const { centre, diagonal } = centreOf(sm);
    traceSum += t + Math.abs(centre);
    diagonalSum += diagonal;
    for (let i = 0; i < D; i++)
      for (let j = 0; j < D; j++) {
        const m = (sm.colSums[i]! * sm.colSums[j]!) / nb;
        means[i * D + j]! += m;
        G0[i * D + j]! += m + (t + centre) * Ref[i * D + j]! + (i === j ? diagonal : 0);
      }
    missingFrob += sm.frob2;
  }
  // φ ≥ ‖G₀ as computed − the exact one‖₂ (Frobenius norms of entrywise bounds): the depots' Grams (n_b roundings
  // per entry, ‖A_bᵀA_b‖_F ≤ frob2_b) and their sum, the summaries' column sums in s_bs_bᵀ/n_b (‖·‖_F ≤ frob2_b, the
  // sums' own rounding at most as much again) and the sums above.
  let answeredFrob = 0;
  for (const sm of input.answered) {
    answeredFrob += sm.frob2;
    maxRows = Math.max(maxRows, sm.rows);
  }
  const refF = frob(Ref);
  const phi =
    gammaOf(maxRows + input.answered.length + missing.length + 2 * D + 8) *
    (2 * answeredFrob + 4 * missingFrob + traceSum * refF + diagonalSum * Math.sqrt(D)) *
    1.01;
  const z = embed(x, -1);
  // Lower bounds L ⪯ G_AA: the missing blocks' part s_bs_bᵀ/n_b (K_b ⪰ 0), or s_bs_bᵀ/n_b + t_b·Ref − r_bI (the ball).
  const choices: Float64Array[] = [];
  for (const kind of ['psd', 'ball'] as const) {
    const part = Float64Array.from(means);
    let used = false;
    let mag = frob(gram) + frob(means);
    for (const sm of missing) {
      const t = scatterTrace(sm);
      if (kind === 'ball' && sm.scatterRadius !== undefined && t > sm.scatterRadius) {
        used = true;
        for (let i = 0; i < D; i++)
          for (let j = 0; j < D; j++) part[i * D + j]! += t * Ref[i * D + j]! - (i === j ? sm.scatterRadius : 0);
        mag += t * refF + sm.scatterRadius * Math.sqrt(D);
      }
    }
    if (kind !== 'psd' && !used) continue;
    const L = new Float64Array(D * D);
    for (let k = 0; k < L.length; k++) L[k] = gram[k]! + part[k]!;
    // Minus φ and the rounding of forming L (entries are sums of ≤ |missing| + 3 terms, magnitude ≤ mag in Frobenius).
    const LAA = sub(L);
    const shift = phi + gammaOf(missing.length + 4) * mag * 1.01;
    for (let i = 0; i < d; i++) LAA[i * d + i]! -= shift;
    choices.push(LAA);
  }
  // Exact products at z: v = [G₀z]_A with its rounding (γ_{D+1}·|G₀||z|, and the rounding of G₀'s entries is in φ),
  // zᵀRef z with ≤ γ_{2D}‖Ref‖_F‖z‖², ‖z‖.
  const at = (zt: Float64Array) => {
    let z2 = 0;
    for (const v of zt) z2 += v * v;
    const v = new Float64Array(d);
    let vRound2 = 0;
    features.forEach((i, s) => {
      let a = 0;
      let ab = 0;
      for (let j = 0; j < D; j++) {
        a += G0[i * D + j]! * zt[j]!;
        ab += Math.abs(G0[i * D + j]! * zt[j]!);
      }
      v[s] = a;
      vRound2 += (gammaOf(D + 1) * ab) ** 2;
    });
    const Rz = mul(Ref, zt, D, D, 1);
    const zRz = Math.max(0, dot(zt, Rz)) + gammaOf(2 * D) * refF * z2 * 1.01;
    const zNorm = Math.sqrt(z2) * (1 + 1e-15);
    // ‖Ref z‖ with its rounding (≤ γ_D‖Ref‖_F‖z‖).
    return { v, vRound: Math.sqrt(vRound2) * 1.01, zRz, zNorm, refZ: norm(Rz) * (1 + 1e-15) + gammaOf(D + 1) * refF * zNorm };
  };
  const atY = at(z);
  // x₀ = (G₀,AA)⁻¹G₀,Ab, computed (any point works: its distance to y is measured).
  const G0AA = sub(G0);
  const g0 = Float64Array.from(features, (i) => G0[i * D + target]!);
  const e0 = svd(G0AA, d, d);
  const atX0 =
    (e0.s[d - 1] ?? 0) > 1e-6 * (e0.s[0] ?? 0)
      ? (() => {
          const x0 = mul(
            e0.V,
            mul(transpose(e0.U, d, d), g0, d, d, 1).map((v, i) => v / e0.s[i]!),
            d,
            d,
            1,
          );
          let dist2 = 0;
          for (let i = 0; i < d; i++) dist2 += (x[i]! - x0[i]!) ** 2;
          return { shift: Math.sqrt(dist2) * (1 + 1e-12), ...at(embed(x0, -1)) };
        })()
      : undefined;
  let best = Infinity;
  const RefAA = sub(Ref);
  for (const L of choices) {
    const eig = svd(L, d, d);
    const lMax = eig.s[0] ?? 0;
    const lMin = eig.s[d - 1] ?? 0;
    // L must be positive definite (its SVD then is its eigen decomposition) and conditioned ≤ 10⁶.
    const ev = symmetricEigenvalues(L, d);
    if (!(ev[0]! > 0) || !(lMin > 1e-6 * lMax)) continue;
    const lam = Math.min(lMin, ev[0]!) * (1 - 1e-9);
    // L^-½ = U Λ^-½ Uᵀ; μ = λ_max(L^-½ Ref_AA L^-½).
    const half = new Float64Array(d * d);
    for (let i = 0; i < d; i++)
      for (let j = 0; j < d; j++) {
        let s = 0;
        for (let k = 0; k < d; k++) s += (eig.U[i * d + k]! * eig.U[j * d + k]!) / Math.sqrt(eig.s[k]!);
        half[i * d + j] = s;
      }
    const W = mul(half, mul(RefAA, half, d, d, d), d, d, d);
    for (let i = 0; i < d; i++) for (let j = 0; j < i; j++) W[i * d + j] = W[j * d + i] = 0.5 * (W[i * d + j]! + W[j * d + i]!);
    const we = symmetricEigenvalues(W, d);
    // Rounding of Ref_AA's congruence: γ_{2d+2}‖L^-½‖_F²‖Ref‖_F, and the eigen solves' relative 10⁻⁶.
    let h2 = 0;
    for (const v of half) h2 += v * v;
    const mu = (Math.max(0, we[d - 1]!) + gammaOf(2 * d + 2) * h2 * refF * 1.01) * (1 + 1e-6);
    const quadInv = (v: Float64Array): number => {
      const c = mul(transpose(eig.U, d, d), v, d, d, 1);
      let q = 0;
      for (let k = 0; k < d; k++) q += (c[k]! * c[k]!) / eig.s[k]!;
      return q * (1 + 1e-6);
    };
    const bound = (p: ReturnType<typeof at>): number => {
      let total = Math.sqrt(quadInv(p.v) / lam) + p.vRound / lam + (phi * p.zNorm) / lam;
      for (const sm of missing) {
        let term = Infinity;
        const { centre, diagonal, half: h, halfDiagonal: eta } = centreOf(sm);
        // ‖G_AA⁻¹Π_A H_b^½‖·‖H_b^½z‖ (−H_b ⪯ E_b − C_b ⪯ H_b).
        if (h > 0) term = Math.sqrt((h * mu + eta / lam) / lam) * Math.sqrt(h * p.zRz + eta * p.zNorm * p.zNorm);
        // The ball: ‖(E_b − C_b)z‖ ≤ r_b‖z‖ + ‖C_bz‖.
        if (sm.scatterRadius !== undefined)
          term = Math.min(term, (sm.scatterRadius * p.zNorm + Math.abs(centre) * p.refZ + diagonal * p.zNorm) / lam);
        total += term;
      }
      return total * (1 + 1e-9);
    };
    best = Math.min(best, bound(atY));
    if (atX0 !== undefined) best = Math.min(best, atX0.shift + bound(atX0));
  }
  return best;
}

/** The summary of the block with column j scaled by c_j (the scatter eigenvalue hints do not survive scaling). */
function scaledSummary(s: BlockSummary, c: Float64Array): BlockSummary {
  let frob2 = 0;
  let cMax = 0;
  const colSumSq = s.colSumSq.map((v, j) => v * c[j]! * c[j]!);
  for (let j = 0; j < s.cols; j++) {
    frob2 += colSumSq[j]!;
    cMax = Math.max(cMax, c[j]!);
  }
  return {
    rows: s.rows,
    cols: s.cols,
    colSums: s.colSums.map((v, j) => v * c[j]!),
    colSumSq,
    frob2,
    maxAbs: s.maxAbs * cMax,
    hash: s.hash,
  };
}

function interleave(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const out = new Float64Array(2 * n);
  for (let i = 0; i < n; i++) {
    out[2 * i] = a[i]!;
    out[2 * i + 1] = b[i]!;
  }
  return out;
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

function norm(a: Float64Array): number {
  return Math.sqrt(dot(a, a));
}
