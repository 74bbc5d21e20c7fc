import {
  CoordinatorError,
  CoordinatorErrorCode,
  MatrixAccumulator,
  gramNormBound,
  robustQualityWeights,
  scatterBounds,
  scatterTrace,
  type CoordinatorDataset as Dataset,
  type CoordinatorDatasetBlock as DatasetBlock,
  type Estimate,
  type PlannedBlock,
  type SourceWeight,
  symmetricEigenvalues,
} from '../framework/index.js';
import {
  chiSquareQuantile,
  cholesky,
  gaussianMatrix,
  leadingColumns,
  mul,
  orthonormalize,
  svd,
  transpose,
  upperInverse,
  bytesOf,
} from './dense.js';
import {
  affineX,
  centredFrob2,
  checkAborted,
  gramStatistic,
  pinnedTo,
  round,
  summaryMeans,
  type LocusContext,
} from './engine.js';

/** RNG streams of the algorithms' coordinator-side random matrices (distinct from the kernels' streams). */
export const ALGORITHM_STREAMS = { RANGE: 101, PROBES: 102, HUTCH: 103, LSQ: 104 } as const;

/** Options of {@link rsvdCore}. */
export interface RsvdOptions {
  /** Components k (1 … cols). */
  readonly rank: number;
  /** Extra columns of the range finder p (default 10); the sketch has l = min(k + p, cols) columns. */
  readonly oversampling?: number;
  /** Power (subspace) iterations q, each re-orthonormalised by distributed CholeskyQR2 (default 2). */
  readonly powerIterations?: number;
  readonly seed?: number;
  /** Subtract the column means (from the ingest summaries) first: PCA. Default false. */
  readonly centre?: boolean;
  /** Failure probability of the whole estimate (split between the probes and the sampling bound). Default 0.05. */
  readonly delta?: number;
  /** Also compute the bound at these failure probabilities (`value.boundsAt`; the estimate is the same). */
  readonly boundDeltas?: readonly number[];
  /**
   * Rank selection: grow k (doubling, up to `maxRank`) until the certified residual ‖A − AVVᵀ‖₂ is at most
   * `tolerance`·σ̂₁. Default: none (k as given).
   */
  readonly tolerance?: number;
  readonly maxRank?: number;
  /** Gaussian probes of the residual test (default 20; more probes give a tighter bound). */
  readonly probes?: number;
  /** Robust PCA: reweighting iterations by source quality (0 = plain). Default 0. */
  readonly robustIterations?: number;
  /** Overall deadline (ms from the start); rounds still running then answer with what arrived. */
  readonly deadlineMs?: number;
  readonly signal?: AbortSignal;
}

/** What rsvd and pca estimate. */
export interface SpectralResult {
  /** k. */
  readonly rank: number;
  readonly rows: number;
  readonly cols: number;
  /** Right singular vectors / principal axes, `cols × k` row-major (column t is component t). */
  readonly components: Float64Array;
  /** σ̂₁ ≥ … ≥ σ̂_k of the (centred, weighted) matrix. */
  readonly singularValues: Float64Array;
  /** Interval of each true σ_t: [lower_t, upper_t], holding together with probability ≥ 1 − δ. */
  readonly singularValueLower: Float64Array;
  readonly singularValueUpper: Float64Array;
  /** σ̂²/(n − 1): variance along each component (PCA). */
  readonly explainedVariance: Float64Array;
  /** explainedVariance / total variance (total exact from the summaries). */
  readonly explainedVarianceRatio: Float64Array;
  /** Column means subtracted (PCA), else undefined. */
  readonly mean: Float64Array | undefined;
  /**
   * Certified bound on ‖A − AVVᵀ‖₂ (the estimate's ε; its `parts`, sketch + sampling, add up to it). With blocks
   * missing it is the smaller of {@link residuals}' two.
   */
  readonly residualBound: number;
  /**
   * With blocks missing: the two bounds on ‖A − AVVᵀ‖₂, `sampled` √(λ_max(P⊥ĜP⊥) + t) (holding with probability
   * ≥ 1 − δ) and `fromSummaries` (deterministic: the answered rows' residual and the missing blocks' summaries).
   */
  readonly residuals?: { readonly sampled: number; readonly fromSummaries: number };
  /** Source weights used (robust PCA), by source id. */
  readonly sourceWeights: ReadonlyMap<string, number>;
  /** The bound ε at each of the options' `boundDeltas` (same estimate, other failure probabilities). */
  readonly boundsAt: readonly { readonly delta: number; readonly epsilon: number }[];
}

function invalid(argument: string, rule: string, value: unknown): CoordinatorError {
  return new CoordinatorError(
    CoordinatorErrorCode.INVALID_ARGUMENT,
    `invalid argument: ${argument} must be ${rule} (got ${String(value)})`,
    {
      details: { argument, value: value as never },
    },
  );
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/**
 * Refuses a dataset without rows (an empty input ingested): `COORD_E_INVALID_ARGUMENT` naming the dataset, before
 * any op is planned.
 */
export function requireRows(dataset: Dataset): void {
  if (dataset.rows > 0 && dataset.blocks.length > 0) return;
  throw new CoordinatorError(
    CoordinatorErrorCode.INVALID_ARGUMENT,
    `invalid argument: the dataset "${dataset.name}" is empty (${dataset.rows} rows × ${plural(dataset.cols, 'column')}, ` +
      `${plural(dataset.blocks.length, 'block')}); there is nothing to estimate: ingest rows first`,
    { details: { argument: 'dataset', value: `${dataset.rows} × ${dataset.cols}` } },
  );
}

function check(dataset: Dataset, o: RsvdOptions): void {
  requireRows(dataset);
  const d = dataset.cols;
  if (!Number.isInteger(o.rank) || o.rank < 1 || o.rank > d) throw invalid('rank', `an integer from 1 to ${d}`, o.rank);
  if (o.oversampling !== undefined && (!Number.isInteger(o.oversampling) || o.oversampling < 0))
    throw invalid('oversampling', 'a non-negative integer', o.oversampling);
  if (
    o.powerIterations !== undefined &&
    (!Number.isInteger(o.powerIterations) || o.powerIterations < 0 || o.powerIterations > 50)
  )
    throw invalid('powerIterations', 'an integer from 0 to 50', o.powerIterations);
  if (o.delta !== undefined && !(o.delta > 0 && o.delta < 1)) throw invalid('delta', 'in (0, 1)', o.delta);
  for (const [i, v] of (o.boundDeltas ?? []).entries()) if (!(v > 0 && v < 1)) throw invalid(`boundDeltas[${i}]`, 'in (0, 1)', v);
  if (o.probes !== undefined && (!Number.isInteger(o.probes) || o.probes < 2 || o.probes > 200))
    throw invalid('probes', 'an integer from 2 to 200', o.probes);
  if (o.tolerance !== undefined && !(o.tolerance > 0)) throw invalid('tolerance', 'positive', o.tolerance);
  if (
    o.robustIterations !== undefined &&
    (!Number.isInteger(o.robustIterations) || o.robustIterations < 0 || o.robustIterations > 20)
  )
    throw invalid('robustIterations', 'an integer from 0 to 20', o.robustIterations);
  if (o.deadlineMs !== undefined && !(o.deadlineMs > 0)) throw invalid('deadlineMs', 'positive', o.deadlineMs);
  for (const b of dataset.blocks)
    if (b.summary === undefined) throw invalid(`blocks[${b.index}].summary`, 'present (ingest summary)', 'none');
}

/**
 * The weighted scatter Σ w_b·K_b (K_b = A_bᵀA_b − s_bs_bᵀ/n_b, the block's centred scatter) of the blocks whose
 * whole response group (depot) gave no answer, estimated by the ratio estimator on their traces (exact from the
 * summaries): Σ_missing w_b·tr(K_b) / Σ_answered w_a·tr(K_a) · Σ_answered w_a·K_a. The Horvitz–Thompson
 * difference estimator leaves those scatters out of its point estimate (it has no answer in their group to
 * weight) and charges them Σ w_b·λ_max(K_b) in its radius instead; so the estimate would stand for the answered
 * rows only. K̂ and K are both PSD, so ‖K̂ − K‖₂ ≤ max(‖K̂‖₂, ‖K‖₂): with ‖K̂‖₂ scaled down to at most
 * Σ w_b·λ_max(K_b) (the summaries' bound, already in the radius), the radius still holds for the filled estimate.
 * `rounding` bounds the arithmetic of K̂ (add it to the radius).
 */
function unansweredGroupsScatter(
  dataset: Dataset,
  planned: readonly PlannedBlock[],
  outputs: ReadonlyMap<number, Float64Array>,
  weight: (b: DatasetBlock) => number,
): { value: Float64Array; rounding: number; blocks: number } {
  const d = dataset.cols;
  const value = new Float64Array(d * d);
  const byIndex = new Map(dataset.blocks.map((b) => [String(b.index), b]));
  const answeredGroups = new Set<string>();
  for (const p of planned) if (outputs.has(Number(p.id))) answeredGroups.add(p.group ?? '');
  let missingTrace = 0;
  let missingNorm = 0;
  let blocks = 0;
  for (const p of planned) {
    const b = byIndex.get(p.id);
    if (b === undefined || answeredGroups.has(p.group ?? '') || b.summary === undefined) continue;
    missingTrace += weight(b) * scatterTrace(b.summary);
    missingNorm += weight(b) * scatterBounds(b.summary).eigMax;
    blocks++;
  }
  if (blocks === 0 || !(missingTrace > 0)) return { value, rounding: 0, blocks };
  const answered = new Float64Array(d * d);
  let magnitude = 0;
  for (const p of planned) {
    const b = byIndex.get(p.id);
    const G = outputs.get(Number(p.id));
    if (b === undefined || G === undefined || b.summary === undefined) continue;
    const w = weight(b);
    const s = b.summary.colSums;
    const n = Math.max(1, b.rows);
    for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) answered[i * d + j]! += w * (G[i * d + j]! - (s[i]! * s[j]!) / n);
    magnitude += w * b.summary.frob2;
  }
  let answeredTrace = 0;
  for (let j = 0; j < d; j++) answeredTrace += answered[j * d + j]!;
  if (!(answeredTrace > 0)) return { value, rounding: 0, blocks };
  let scale = missingTrace / answeredTrace;
  const top = Math.max(0, symmetricEigenvalues(answered, d)[d - 1]!) * scale;
  if (top > missingNorm) scale *= missingNorm / top;
  for (let i = 0; i < d * d; i++) value[i] = scale * answered[i]!;
  // The answered scatters' entries (each ≤ the blocks' ‖A_b‖_F² in size) formed with a few roundings per block,
  // then scaled; the eigenvalue used for the clipping is accurate to a few ulps of ‖·‖_F.
  const rounding = scale * magnitude * d * (planned.length + 8) * 2 ** -52;
  return { value, rounding, blocks };
}

/**
 * Robust PCA's first screen, from the summaries alone: each source's centred energy per row
 * Σ_b ‖A_b − 1μᵀ‖_F² / Σ_b n_b against its peers', robust z = (e − median)/max(1.4826·MAD, median), weight
 * (3/z)² above z = 3 (so only a source with more than 4× the median energy loses weight). A source that
 * dominates the data (garbage of a large amplitude) dominates the first fit too, which then follows it and
 * leaves it a smaller relative residual than its peers: the residual scores alone cannot name it, at any rank.
 * Sources with weight 1 are left out of the map.
 */
function sourceEnergyWeights(dataset: Dataset): Map<string, number> {
  const mu = summaryMeans(dataset);
  const per = new Map<string, { energy: number; rows: number }>();
  for (const b of dataset.blocks) {
    if (b.source === undefined || b.summary === undefined) continue;
    const e = per.get(b.source) ?? { energy: 0, rows: 0 };
    e.energy += centredFrob2(b, mu);
    e.rows += b.rows;
    per.set(b.source, e);
  }
  const energies = new Map([...per].filter(([, v]) => v.rows > 0).map(([id, v]) => [id, v.energy / v.rows]));
  const out = new Map<string, number>();
  for (const sc of robustQualityWeights(energies, { minRelativeScale: 1 })) if (sc.weight < 1) out.set(sc.id, sc.weight);
  return out;
}

interface Pass {
  readonly V: Float64Array; // d × l right singular vectors
  readonly s: Float64Array;
  readonly l: number;
  readonly bytesMoved: number;
  readonly blocksMissing: number;
}

/**
 * Randomized subspace iteration (Halko–Martinsson–Tropp 2011, Alg. 4.4) on the row-distributed (centred,
 * weighted) matrix: Y_b = A_b·W kept at the depot, CholeskyQR2 over the blocks (only l × l Grams travel), the
 * orthonormal Q_b = Y_b·R⁻¹ written in place, then AᵀQ = Σ_b A_bᵀQ_b (d × l) back and orthonormalised here.
 */
async function subspacePass(
  ctx: LocusContext,
  dataset: Dataset,
  l: number,
  q: number,
  seed: number,
  mu: Float64Array | undefined,
  weight: (b: DatasetBlock) => number,
  deadlineAt: number | undefined,
  signal: AbortSignal | undefined,
): Promise<Pass> {
  const d = dataset.cols;
  let W = gaussianMatrix(seed, ALGORITHM_STREAMS.RANGE, d, l);
  let bytesMoved = 0;
  let missing = 0;
  const roundOpts = { ...(deadlineAt === undefined ? {} : { deadlineAt }), ...(signal === undefined ? {} : { signal }) };
  // Small matrices go to each depot once per round (a shared input), not once per block.
  const stateCall = (b: DatasetBlock, kernel: 'gram' | 'affine-gram' | 'affine-product', X?: Uint8Array) => ({
    kernel,
    attrs: { dtype: 'float64' as const, rows: b.rows, cols: l, k: l },
    inputs: [
      { kind: 'state' as const, name: 'Y' },
      ...(X === undefined ? [] : [{ kind: 'shared' as const, name: 'X', data: X }]),
    ],
    output: kernel === 'affine-product' ? { store: 'Y', bytes: b.rows * l * 8 } : { returnBytes: l * l * 8 },
  });
  // The stored Y_b are of the unweighted (centred) block; the weights w_b apply here. Sums go in block order,
  // not in order of arrival: the same seed gives the same bits on every run.
  const sum = (outs: Map<number, Float64Array>, n: number): Float64Array => {
    const s = new Float64Array(n);
    for (const b of dataset.blocks) {
      const v = outs.get(b.index);
      const w = weight(b);
      if (v !== undefined) for (let i = 0; i < n; i++) s[i]! += w * v[i]!;
    }
    return s;
  };
  let Z = new Float64Array(d * l);
  for (let it = 0; it <= q; it++) {
    checkAborted(signal);
    const X = bytesOf(affineX(W, d, l, mu));
    const active = dataset.blocks.filter((b) => weight(b) > 0);
    const r1 = await round(
      ctx,
      dataset,
      'range',
      (b) => ({
        kernel: 'affine-product',
        attrs: { dtype: dataset.dtype, rows: b.rows, cols: d, k: l },
        inputs: [{ kind: 'block' }, { kind: 'shared', name: 'X', data: X }],
        output: { store: 'Y', bytes: b.rows * l * 8 },
      }),
      { ...roundOpts, blocks: active },
    );
    bytesMoved += r1.bytesMoved;
    const pinned = pinnedTo(ctx, { ...dataset, blocks: active }, 'Y').filter((b) => r1.outputs.has(b.index));
    // CholeskyQR2: R1 from Σ Y_bᵀY_b, R2 from Σ (Y_b R1⁻¹)ᵀ(Y_b R1⁻¹); Q_b = Y_b (R2 R1)⁻¹ in place.
    const g1 = await round(ctx, dataset, 'cholqr-1', (b) => stateCall(b, 'gram'), { ...roundOpts, blocks: pinned });
    const R1 = cholesky(sum(g1.outputs, l * l), l);
    const R1inv = upperInverse(R1, l);
    const X1 = bytesOf(affineX(R1inv, l, l, undefined));
    const g2 = await round(ctx, dataset, 'cholqr-2', (b) => stateCall(b, 'affine-gram', X1), { ...roundOpts, blocks: pinned });
    const R2inv = upperInverse(cholesky(sum(g2.outputs, l * l), l), l);
    const Rinv = mul(R1inv, R2inv, l, l, l);
    const XQ = bytesOf(affineX(Rinv, l, l, undefined));
    const qRound = await round(ctx, dataset, 'cholqr-q', (b) => stateCall(b, 'affine-product', XQ), {
      ...roundOpts,
      blocks: pinned,
    });
    const pinnedQ = pinnedTo(ctx, dataset, 'Y').filter((b) => qRound.outputs.has(b.index));
    // Z = Σ_b w_b (A_b − 1μᵀ)ᵀ Q_b = w_b (A_bᵀQ_b − μ·1ᵀQ_b), Q_b the unweighted factor stored at the depot.
    const zRound = await round(
      ctx,
      dataset,
      'project',
      (b) => ({
        kernel: 'transpose-product',
        attrs: { dtype: dataset.dtype, rows: b.rows, cols: d, k: l },
        inputs: [{ kind: 'block' }, { kind: 'state', name: 'Y' }],
        output: { returnBytes: (d + 1) * l * 8 },
      }),
      { ...roundOpts, blocks: pinnedQ },
    );
    bytesMoved += g1.bytesMoved + g2.bytesMoved + qRound.bytesMoved + zRound.bytesMoved;
    missing = Math.max(missing, dataset.blocks.length - zRound.outputs.size);
    Z = new Float64Array(d * l);
    for (const b of dataset.blocks) {
      const C = zRound.outputs.get(b.index);
      if (C === undefined) continue;
      const w = weight(b);
      for (let j = 0; j < d; j++)
        for (let t = 0; t < l; t++) Z[j * l + t]! += w * (C[j * l + t]! - (mu === undefined ? 0 : mu[j]! * C[d * l + t]!));
    }
    if (it < q) W = orthonormalize(Z, d, l);
  }
  // B = QᵀA = Zᵀ (l × d): its right singular vectors and values are A's estimates.
  const { s, V } = svd(transpose(Z, d, l), l, d);
  return { V, s, l, bytesMoved, blocksMissing: missing };
}

/**
 * Randomized SVD / PCA in locus (see {@link RsvdOptions}), with the a-posteriori test of HMT §4.3 run at the
 * depots: r Gaussian probes ω_i, ‖A(I − VVᵀ)ω_i‖² = Σ_b ‖A_b(I − VVᵀ)ω_i‖² from one `affine-gram` per block
 * (a (k + r)² Gram also giving VᵀAᵀAV for the singular values and each block's residual for quality weights).
 * Emits one estimate per pass (robust iterations, rank growth); the last is final.
 */
export async function rsvdCore(
  ctx: LocusContext,
  dataset: Dataset,
  options: RsvdOptions,
  emit: (e: Estimate<SpectralResult>) => void = () => {},
): Promise<Estimate<SpectralResult>> {
  check(dataset, options);
  const d = dataset.cols;
  const started = Date.now();
  const deadlineAt = options.deadlineMs === undefined ? undefined : started + options.deadlineMs;
  const delta = options.delta ?? 0.05;
  // Residual test: r Gaussian probes; ‖R‖₂ ≤ ‖RΩ‖₂/√q with q the δ/2 quantile of χ²_r (see below).
  const r = options.probes ?? 20;
  const deltaProbes = delta / 2;
  const deltaSampling = delta - deltaProbes;
  const q2 = chiSquareQuantile(r, deltaProbes);
  const seed = options.seed ?? 0;
  const q = options.powerIterations ?? 2;
  const robust = options.robustIterations ?? 0;
  const weights = new Map<string, number>();
  // Robust PCA on a growing dataset: each call starts from the quality weights the history holds (a call per
  // dataset version keeps refining them).
  const energyWeights = robust > 0 ? sourceEnergyWeights(dataset) : new Map<string, number>();
  for (const [id, w] of energyWeights) weights.set(id, w);
  if (robust > 0 && ctx.store !== undefined)
    for (const b of dataset.blocks)
      if (b.source !== undefined) {
        const w = Math.min(ctx.store.sourceWeight(b.source), energyWeights.get(b.source) ?? 1);
        if (w < 1) weights.set(b.source, w);
      }
  const weight = (b: DatasetBlock): number => (b.source === undefined ? 1 : (weights.get(b.source) ?? 1));
  let k = options.rank;
  let last: Estimate<SpectralResult> | undefined;
  let bytesMoved = 0;
  for (let pass = 0; ; pass++) {
    checkAborted(options.signal);
    const mu = options.centre === true ? summaryMeans(dataset, weight) : undefined;
    const l = Math.min(d, k + (options.oversampling ?? 10));
    const p = await subspacePass(ctx, dataset, l, q, seed + pass, mu, weight, deadlineAt, options.signal);
    bytesMoved += p.bytesMoved;
    const kk = Math.min(k, p.l);
    const V = leadingColumns(p.V, d, p.l, kk);
    // Probes projected off span(V): P⊥Ω = Ω − V(VᵀΩ).
    // With no more columns than probes, P⊥ = I − VVᵀ itself goes in place of the probes (d ≤ r columns, no
    // more work): the test then returns the whole Gram (G = [V, I]·WᵀGW·[V, I]ᵀ as VVᵀ + P⊥ = I), and σ and
    // ‖ÃP⊥‖₂ follow exactly, up to rounding, without probability.
    const exactBasis = d <= r;
    const rp = exactBasis ? d : r;
    let Pperp: Float64Array;
    if (exactBasis) {
      Pperp = new Float64Array(d * d);
      for (let i = 0; i < d; i++)
        for (let j = 0; j <= i; j++) {
          let v = i === j ? 1 : 0;
          for (let t = 0; t < kk; t++) v -= V[i * kk + t]! * V[j * kk + t]!;
          Pperp[i * d + j] = v;
          Pperp[j * d + i] = v;
        }
    } else {
      const Om = gaussianMatrix(seed + pass, ALGORITHM_STREAMS.PROBES, d, r);
      Pperp = Om.slice();
      const VtO = mul(transpose(V, d, kk), Om, kk, d, r);
      const VVtO = mul(V, VtO, d, kk, r);
      for (let i = 0; i < d * r; i++) Pperp[i]! -= VVtO[i]!;
    }
    const m = kk + rp;
    const W = new Float64Array(d * m);
    for (let j = 0; j < d; j++) {
      for (let t = 0; t < kk; t++) W[j * m + t] = V[j * kk + t]!;
      for (let t = 0; t < rp; t++) W[j * m + kk + t] = Pperp[j * rp + t]!;
    }
    const XT = bytesOf(affineX(W, d, m, mu));
    const test = await round(
      ctx,
      dataset,
      'a-posteriori',
      (b) => ({
        kernel: 'affine-gram',
        attrs: { dtype: dataset.dtype, rows: b.rows, cols: d, k: m },
        inputs: [{ kind: 'block' }, { kind: 'shared', name: 'X', data: XT }],
        output: { returnBytes: m * m * 8 },
      }),
      {
        ...(deadlineAt === undefined ? {} : { deadlineAt: Math.max(deadlineAt, Date.now() + 1) }),
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      },
    );
    bytesMoved += test.bytesMoved;
    const muZero = mu ?? new Float64Array(d);
    // The (k + r)² Gram WᵀÃᵀÃW, W = [V, P⊥Ω] (orthogonal blocks: ‖W‖₂² = max(1, ‖P⊥Ω‖₂²)), by Horvitz–Thompson
    // over the answered blocks with a matrix-Bernstein radius t; a missing block's share is bounded by
    // w_b·‖A_b − 1μᵀ‖_F²·‖W‖₂² from its summary.
    const wNorm2 = Math.max(1, svd(Pperp, d, rp).s[0]! ** 2);
    const acc = new MatrixAccumulator({
      name: 'probe-gram',
      rows: m,
      cols: m,
      psdRemainder: true,
      remainderNormBound: (s) => {
        const b = dataset.blocks.find((x) => x.summary === s);
        return (b === undefined ? gramNormBound(s) : weight(b) * centredFrob2(b, muZero)) * wNorm2 * (1 + 1e-12);
      },
    });
    const residualBySource = new Map<string, { res: number; tot: number }>();
    for (const b of dataset.blocks) {
      const G = test.outputs.get(b.index);
      const w = weight(b);
      if (G === undefined) continue;
      acc.add(
        String(b.index),
        G.map((v) => w * v),
      );
      if (b.source !== undefined) {
        let tr = 0;
        for (let i = 0; i < kk; i++) tr += G[i * m + i]!;
        const f = centredFrob2(b, muZero);
        const e = residualBySource.get(b.source) ?? { res: 0, tot: 0 };
        e.res += Math.max(0, f - tr);
        e.tot += f;
        residualBySource.set(b.source, e);
      }
    }
    const planned = test.planned.length > 0 ? test.planned : [];
    const full = acc.estimate(planned, { delta: deltaSampling, weighting: 'response-groups', final: true });
    // t bounds the error of every principal submatrix too.
    const eG = full.epsilon;
    const part = (from: number, size: number): Float64Array => {
      const out = new Float64Array(size * size);
      for (let i = 0; i < size; i++) for (let j = 0; j < size; j++) out[i * size + j] = full.value[(from + i) * m + from + j]!;
      return out;
    };
    const g = { ...full, value: part(0, kk) };
    // ‖R‖₂ for R = Ã(I − VVᵀ): with v₁ its top right singular vector, ‖RΩ‖₂ ≥ ‖u₁ᵀRΩ‖ = ‖R‖₂·‖Ωᵀv₁‖ and
    // ‖Ωᵀv₁‖² ~ χ²_r (Ω Gaussian, drawn after V): ‖R‖₂ ≤ ‖RΩ‖₂/√q with probability ≥ 1 − δ_p, q the δ_p-quantile.
    // ‖RΩ‖₂² = λ_max(ΩᵀRᵀRΩ) ≤ λ_max(estimate) + t.
    const probeTop = Math.max(0, ...symmetricEigenvalues(part(kk, rp), rp));
    const active = dataset.blocks.filter((b) => weight(b) > 0);
    const incomplete = active.some((b) => !test.outputs.has(b.index));
    // Every block answered: the probe Gram is exact (t = 0) and the bound is the probes' alone.
    let residualBound = Math.sqrt((probeTop + eG) / q2);
    let boundAt = (dl: number): number => {
      const dp = dl / 2;
      const t = acc.estimate(planned, { delta: dl - dp, weighting: 'response-groups', final: true }).epsilon;
      return Math.sqrt((probeTop + t) / chiSquareQuantile(r, dp));
    };
    let kGram = g.value;
    let sigmaLower = (_t: number, ritzT: number): number => ritzT - eG;
    let sigmaUpper = (_t: number, ritzT: number): number => ritzT + eG + residualBound ** 2;
    let parts = { sampling: { epsilon: eG, delta: deltaSampling }, sketch: { epsilon: residualBound, delta: deltaProbes } };
    let deltaUsed = deltaProbes + deltaSampling;
    let boundText =
      `ε bounds ‖A − AVVᵀ‖₂ by ${r} Gaussian probes: ‖R‖₂ ≤ ‖RΩ‖₂/√q, q the ${deltaProbes}-quantile of χ²_${r} ` +
      `(${q2.toFixed(2)}), ‖RΩ‖₂² from the probe Gram; σ intervals: Weyl`;
    let residuals: { sampled: number; fromSummaries: number } | undefined;
    // σ̂² when known better than by the Ritz values of V (the whole Gram at hand), in descending order.
    let sigma2: Float64Array | undefined;
    if (exactBasis && dataset.blocks.every((b) => test.outputs.has(b.index))) {
      // Every block answered and W = [V, P⊥]: M = WᵀGW exactly but for rounding, and G = XMXᵀ with X = [V, I].
      // Rounding: the depots form M's entries as sums over a block's rows of products of (a − μ)·W terms, the
      // coordinator adds the blocks; every entry is off by at most γ_(n_b + B + 4d + 16)·S·‖W‖_F² with
      // S = 2Σ w_b(‖A_b‖_F² + n_b‖μ‖²) ≥ Σ w_b Σ (|a| + |μ|)²; ‖X‖₂² ≤ 2 + 10⁻¹², VVᵀ + P⊥ = I to k·d ulps
      // (its error moves XMXᵀ by 3‖E‖‖G‖ ≤ S·kd·u), and the eigenvalues are accurate to a few ulps of ‖·‖_F.
      const u = dataset.dtype === 'float32' ? 2 ** -24 : 2 ** -53;
      let S = 0;
      let rowsMax = 0;
      let mu2 = 0;
      for (let j = 0; j < d; j++) mu2 += (mu?.[j] ?? 0) ** 2;
      for (const b of dataset.blocks) {
        S += 2 * weight(b) * (b.summary!.frob2 + b.rows * mu2);
        rowsMax = Math.max(rowsMax, b.rows);
      }
      const X = new Float64Array(d * m);
      for (let i = 0; i < d; i++) {
        for (let t = 0; t < kk; t++) X[i * m + t] = V[i * kk + t]!;
        X[i * m + kk + i] = 1;
      }
      const Grec = mul(mul(X, full.value, d, m, m), transpose(X, d, m), d, m, d);
      const k = rowsMax + dataset.blocks.length + 4 * d + 16;
      const gamma = k * u < 0.5 ? (k * u) / (1 - k * u) : Infinity;
      const frobG = Math.sqrt(Grec.reduce((a, v) => a + v * v, 0));
      const tol = (8 * gamma * S * (m + 2) + 4 * kk * d * u * S + 64 * d * u * frobG) * (1 + 1e-6);
      const eig = symmetricEigenvalues(Grec, d);
      sigma2 = Float64Array.from({ length: kk }, (_, t) => Math.max(0, eig[d - 1 - t]!));
      residualBound = Math.sqrt(probeTop + tol);
      const fixed = residualBound;
      boundAt = () => fixed;
      sigmaLower = (t) => sigma2![t]! - tol;
      sigmaUpper = (t) => sigma2![t]! + tol;
      parts = { sampling: { epsilon: 0, delta: 0 }, sketch: { epsilon: residualBound, delta: 0 } };
      deltaUsed = 0;
      boundText =
        `every block answered and d ≤ ${r}: P⊥ = I − VVᵀ in place of probes, so the test gives the whole Gram; ` +
        `ε = ‖A − AVVᵀ‖₂ and the σ intervals are exact up to rounding (δ = 0)`;
    }
    if (incomplete) {
      // Blocks missing. V was fitted to the blocks that answered, so a bound on the probe Gram's error for this
      // V alone would depend on which blocks failed; instead the error of the whole (centred, weighted) Gram
      // estimate is bounded, which holds for every V at once. One `gram` op per answered block (d × d each, only
      // when blocks are missing). With Ĝ the HT difference estimate (summary-known parts exact) and ‖Ĝ − G‖₂ ≤ t
      // (matrix Bennett on the blocks' scatters; centring by the exact μ shifts Ĝ and G alike):
      //   ‖Ã(I − VVᵀ)‖₂² = λ_max(P⊥GP⊥) ≤ λ_max(P⊥ĜP⊥) + t,                                    (probability ≥ 1 − δ)
      // and deterministically, G = Σ_answered w_bÃ_bᵀÃ_b + Σ_missing w_bÃ_bᵀÃ_b with Ã_bᵀÃ_b = K_b + c_bc_bᵀ/n_b
      // (c_b = s_b − n_bμ, K_b the block's scatter, λ_max(K_b) from its summary):
      //   λ_max(P⊥GP⊥) ≤ λ_max(P⊥G_ansP⊥) + Σ_missing w_b(λ_max(K_b) + ‖P⊥c_b‖²/n_b).
      // The smaller is ε² (no probes: all of δ goes to the sampling bound). σ_t²: λ_t(VᵀĜV) ∓ t (Weyl, interlacing),
      // also ≥ λ_t(VᵀG_ansV) (G ⪰ G_ans), and ≤ λ_t(VᵀGV) + ε² (Weyl on ÃÃᵀ = ÃVVᵀÃᵀ + ÃP⊥Ãᵀ).
      const gr = await round(
        ctx,
        dataset,
        'residual-gram',
        (b) => ({
          kernel: 'gram',
          attrs: { dtype: dataset.dtype, rows: b.rows, cols: d, k: 1 },
          inputs: [{ kind: 'block' }],
          output: { returnBytes: d * d * 8 },
        }),
        {
          blocks: active,
          ...(deadlineAt === undefined ? {} : { deadlineAt: Math.max(deadlineAt, Date.now() + 1) }),
          ...(options.signal === undefined ? {} : { signal: options.signal }),
        },
      );
      bytesMoved += gr.bytesMoved;
      const wOf = new Map<unknown, number>(dataset.blocks.map((b) => [b.summary, weight(b)]));
      const base = gramStatistic(d);
      const wt = (sm: unknown): number => wOf.get(sm) ?? 1;
      const gacc = new MatrixAccumulator({
        name: 'weighted gram',
        rows: d,
        cols: d,
        known: (sm) => base.known!(sm).map((v) => v * wt(sm)),
        psdRemainder: true,
        remainderNormBound: (sm) => wt(sm) * base.remainderNormBound(sm),
        remainderEigMinBound: (sm) => wt(sm) * (base.remainderEigMinBound?.(sm) ?? 0),
      });
      // Centring: Ã_bᵀÃ_b = A_bᵀA_b − μs_bᵀ − s_bμᵀ + n_bμμᵀ.
      const centre = (G: Float64Array, sums: ArrayLike<number>, rows: number, w: number): Float64Array => {
        const out = new Float64Array(d * d);
        for (let i = 0; i < d; i++)
          for (let j = 0; j < d; j++)
            out[i * d + j] = w * (G[i * d + j]! - muZero[i]! * sums[j]! - sums[i]! * muZero[j]! + rows * muZero[i]! * muZero[j]!);
        return out;
      };
      const Gans = new Float64Array(d * d);
      for (const b of active) {
        const G = gr.outputs.get(b.index);
        if (G === undefined) continue;
        gacc.add(
          String(b.index),
          G.map((v) => weight(b) * v),
        );
        const c = centre(G, b.summary!.colSums, b.rows, weight(b));
        for (let i = 0; i < d * d; i++) Gans[i]! += c[i]!;
      }
      const gPlanned = gr.planned;
      const gEst = gacc.estimate(gPlanned, { delta, weighting: 'response-groups', final: true });
      const filled = unansweredGroupsScatter(dataset, gPlanned, gr.outputs, weight);
      let sW = new Float64Array(d);
      let nW = 0;
      for (const b of active) {
        nW += weight(b) * b.rows;
        sW = sW.map((v, j) => v + weight(b) * b.summary!.colSums[j]!);
      }
      const Ghat = centre(
        gEst.value.map((v, i) => v + filled.value[i]!),
        sW,
        nW,
        1,
      );
      const P = new Float64Array(d * d);
      for (let i = 0; i < d; i++) {
        P[i * d + i] = 1;
        for (let j = 0; j < d; j++) for (let t = 0; t < kk; t++) P[i * d + j]! -= V[i * kk + t]! * V[j * kk + t]!;
      }
      const top = (M: Float64Array): number => {
        const e = symmetricEigenvalues(M, d);
        return Math.max(0, e[d - 1]!) + 1e-12 * Math.max(Math.abs(e[0]!), Math.abs(e[d - 1]!));
      };
      const sandwich = (X: Float64Array, M: Float64Array, rowsX: number): Float64Array =>
        mul(mul(X, M, rowsX, d, d), transpose(X, rowsX, d), rowsX, d, rowsX);
      const perpHat = top(sandwich(P, Ghat, d));
      const perpAns = top(sandwich(P, Gans, d));
      // Missing blocks, two ways (the smaller total is used): block by block, ‖XᵀÃ_bᵀÃ_bX‖ ≤ λ_max(K_b) +
      // ‖Xᵀc_b‖²/n_b; or, where the summary places K_b in a ball ‖K_b − tr(K_b)·Ref‖₂ ≤ r_b around the dataset's
      // reference scatter, all together: λ_max(Xᵀ(Σ w_b(tr(K_b)·Ref + c_bc_bᵀ/n_b))X) + Σ w_b r_b (X = P⊥ or V);
      // or, where it records the relative bound K_b − tr(K_b)·Ref ⪯ ρ_b(Ref + τ_bI), all together in the Loewner
      // order: Σ w_bÃ_bᵀÃ_b ⪯ Σ w_b((tr(K_b) + ρ_b)·Ref + ρ_bτ_b·I + c_bc_bᵀ/n_b), one λ_max of the combined matrix
      // (blocks without ρ_b enter it by their ball or by λ_max(K_b)·I). A radius adds up over the missing blocks
      // whatever the directions; ρ_b·Ref is small where Ref is, which is off the subspace.
      const VT = transpose(V, d, kk);
      let missPerp = 0;
      let missV = 0;
      const known = new Float64Array(d * d);
      let ballScalar = 0;
      const loewner = new Float64Array(d * d);
      let loewnerScalar = 0;
      for (const b of active) {
        if (gr.outputs.has(b.index)) continue;
        const sm = b.summary!;
        const w = weight(b);
        const c = Float64Array.from({ length: d }, (_, j) => sm.colSums[j]! - sm.rows * muZero[j]!);
        const pc = mul(P, c, d, d, 1);
        const vc = mul(VT, c, kk, d, 1);
        const k2 = scatterBounds(sm).eigMax;
        const nb = Math.max(1, sm.rows);
        missPerp += w * (k2 + pc.reduce((a, x) => a + x * x, 0) / nb);
        missV += w * (k2 + vc.reduce((a, x) => a + x * x, 0) / nb);
        const ref = sm.scatterReference;
        const ball = sm.scatterRadius !== undefined && ref !== undefined && ref.cols === d;
        const tr = scatterTrace(sm);
        for (let i = 0; i < d; i++)
          for (let j = 0; j < d; j++) known[i * d + j]! += w * ((ball ? tr * ref.matrix[i * d + j]! : 0) + (c[i]! * c[j]!) / nb);
        ballScalar += w * (ball ? sm.scatterRadius! : k2);
        const rho = ball ? sm.scatterRho : undefined;
        const tau = sm.scatterRhoTau;
        if (rho !== undefined && tau !== undefined) {
          const scale = tr + rho;
          for (let i = 0; i < d; i++) {
            for (let j = 0; j < d; j++) loewner[i * d + j]! += w * (scale * ref!.matrix[i * d + j]! + (c[i]! * c[j]!) / nb);
            loewner[i * d + i]! += w * rho * tau;
          }
        } else {
          for (let i = 0; i < d; i++)
            for (let j = 0; j < d; j++)
              loewner[i * d + j]! += w * ((ball ? tr * ref.matrix[i * d + j]! : 0) + (c[i]! * c[j]!) / nb);
          loewnerScalar += w * (ball ? sm.scatterRadius! : k2);
        }
      }
      const topK = (M: Float64Array, n: number): number => {
        const e = symmetricEigenvalues(M, n);
        return Math.max(0, e[n - 1]!) + 1e-12 * Math.max(Math.abs(e[0]!), Math.abs(e[n - 1]!));
      };
      // Rounding of the sandwich of a matrix whose signal part is large: ≤ γ_{2d}‖P‖²‖M‖_F, ‖P‖, ‖V‖ ≤ 1 + 10⁻¹².
      const roundOf = (M: Float64Array): number => 4 * d * 2 ** -53 * Math.sqrt(M.reduce((a, v) => a + v * v, 0));
      missPerp =
        Math.min(
          missPerp,
          top(sandwich(P, known, d)) + ballScalar + roundOf(known),
          top(sandwich(P, loewner, d)) + loewnerScalar + roundOf(loewner),
        ) *
        (1 + 1e-12);
      missV =
        Math.min(
          missV,
          topK(sandwich(VT, known, kk), kk) + ballScalar + roundOf(known),
          topK(sandwich(VT, loewner, kk), kk) + loewnerScalar + roundOf(loewner),
        ) *
        (1 + 1e-12);
      const detPerp = perpAns + missPerp;
      kGram = sandwich(VT, Ghat, kk);
      const ansV = svd(sandwich(VT, Gans, kk), kk, kk).s;
      const tK = gEst.epsilon + filled.rounding;
      const eps2 = (t: number): number => Math.min(perpHat + t, detPerp);
      residualBound = Math.sqrt(eps2(tK));
      boundAt = (dl: number) =>
        Math.sqrt(
          eps2(gacc.estimate(gPlanned, { delta: dl, weighting: 'response-groups', final: true }).epsilon + filled.rounding),
        );
      const res2 = residualBound ** 2;
      sigmaLower = (t, ritzT) => Math.max(ritzT - tK, ansV[t]!);
      sigmaUpper = (t, ritzT) => Math.min(ritzT + tK, ansV[t]! + missV) + res2;
      // Parts that add up to ε, by the route that gave it: sampled, √(λ_max(P⊥ĜP⊥)) (the sketch's residual as Ĝ
      // sees it) plus what t adds; from the summaries, √(λ_max(P⊥G_ansP⊥)) (the residual of the answered rows)
      // plus what the missing blocks' bounds add.
      const sampled = Math.sqrt(perpHat + tK);
      const fromSummaries = Math.sqrt(detPerp);
      const sketchPart = Math.sqrt(sampled <= fromSummaries ? perpHat : perpAns);
      parts = {
        sampling: { epsilon: Math.max(0, residualBound - sketchPart), delta: sampled <= fromSummaries ? delta : 0 },
        sketch: { epsilon: sketchPart, delta: 0 },
      };
      residuals = { sampled, fromSummaries };
      deltaUsed = delta;
      boundText =
        `blocks missing: ε² = min(λ_max(P⊥ĜP⊥) + t, λ_max(P⊥G_answeredP⊥) + Σ_missing λ_max(Ã_bᵀÃ_b) bounds from the ` +
        `summaries), Ĝ the weighted Gram's ${gEst.method}, t its radius (uniform in V); σ intervals: Weyl`;
    }
    const ritz = sigma2 ?? svd(kGram, kk, kk).s; // eigenvalues of the PSD estimate (its singular values)
    const sv = new Float64Array(kk);
    const lower = new Float64Array(kk);
    const upper = new Float64Array(kk);
    for (let t = 0; t < kk; t++) {
      sv[t] = Math.sqrt(Math.max(0, ritz[t]!));
      lower[t] = Math.sqrt(Math.max(0, sigmaLower(t, ritz[t]!)));
      upper[t] = Math.sqrt(Math.max(0, sigmaUpper(t, ritz[t]!)));
      // The point estimate inside its own interval (with blocks missing the deterministic side can be the tighter
      // one): wherever σ_t lies in the interval, as it does with probability ≥ 1 − δ, this only moves σ̂ towards it.
      sv[t] = Math.min(Math.max(sv[t]!, lower[t]!), upper[t]!);
    }
    // Components: eigenvectors of the k × k Gram rotate V (Rayleigh–Ritz).
    const rr = svd(kGram, kk, kk);
    const comps = mul(V, rr.U, d, kk, kk);
    const boundsAt = (options.boundDeltas ?? []).map((dl) => ({ delta: dl, epsilon: boundAt(dl) }));
    let n = 0;
    let total = 0;
    for (const b of dataset.blocks) {
      n += weight(b) * b.rows;
      total += weight(b) * centredFrob2(b, muZero);
    }
    const ev = sv.map((s) => (s * s) / Math.max(1, n - 1));
    const evr = sv.map((s) => (s * s) / Math.max(total, 1e-300));
    // Every source (sensor) of the dataset: the weight this estimate gave it, and its quality weight in the history.
    const sourceIds = [...new Set(dataset.blocks.flatMap((b) => (b.source === undefined ? [] : [b.source])))].sort();
    const sources: SourceWeight[] = sourceIds.map((id) => ({
      id,
      weight: weights.get(id) ?? 1,
      reliability: ctx.store?.sourceWeight(id) ?? weights.get(id) ?? 1,
    }));
    const estimate: Estimate<SpectralResult> = {
      value: {
        rank: kk,
        rows: dataset.rows,
        cols: d,
        components: comps,
        singularValues: sv,
        singularValueLower: lower,
        singularValueUpper: upper,
        explainedVariance: ev,
        explainedVarianceRatio: evr,
        mean: mu,
        residualBound,
        ...(residuals === undefined ? {} : { residuals }),
        sourceWeights: new Map(weights),
        boundsAt,
      },
      epsilon: residualBound,
      delta: deltaUsed,
      coverage: g.coverage,
      blocksUsed: test.outputs.size,
      blocksMissing: dataset.blocks.length - test.outputs.size,
      bytesMoved,
      method:
        `randomized subspace iteration (HMT 2011 Alg. 4.4; l = ${p.l}, q = ${q}, CholeskyQR2 in locus)${mu ? ', centred' : ''}` +
        `${robust > 0 ? ', source-reweighted' : ''}; ${boundText}`,
      norm: 'spectral',
      parts,
      sources,
      final: false,
    };
    last = estimate;
    // Robust PCA: record each source's relative residual, reweigh from the history (robust z-scores).
    if (pass < robust && residualBySource.size > 0 && ctx.store !== undefined) {
      for (const [id, e] of residualBySource) ctx.store.recordResidual(id, e.tot > 0 ? e.res / e.tot : 0);
      for (const sc of ctx.store.sourceScores())
        if (residualBySource.has(sc.id)) weights.set(sc.id, Math.min(sc.weight, energyWeights.get(sc.id) ?? 1));
      emit(estimate);
      continue;
    }
    const wantsMore =
      options.tolerance !== undefined &&
      residualBound > options.tolerance * (sv[0] ?? 0) &&
      k < Math.min(d, options.maxRank ?? d);
    const late = deadlineAt !== undefined && Date.now() >= deadlineAt;
    if (wantsMore && !late) {
      emit(estimate);
      k = Math.min(2 * k, options.maxRank ?? d, d);
      continue;
    }
    break;
  }
  await ctx.runner.release();
  return { ...last, final: true, bytesMoved };
}
