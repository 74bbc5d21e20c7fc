import { CoordinatorError, CoordinatorErrorCode, type CoordinatorDataset as Dataset, type Estimate } from '../framework/index.js';
import { bytesOf, gaussianMatrix, mul, orthonormalize, transpose } from './dense.js';
import { affineX, checkAborted, pinnedTo, round, summaryMeans, type LocusContext } from './engine.js';
import { ALGORITHM_STREAMS, requireRows } from './rsvd.js';

/** Options of {@link traceCore}. */
export interface TraceOptions {
  /** p in tr(Cᵖ), C = AᵀA/(n − 1) (centred when `centre`); 1 … 4. Default 2 (= ‖C‖_F²). */
  readonly power?: number;
  /**
   * Products with Cᵖ spent. From `cols` up, the trace is exact: Cᵖ applied to the identity (`cols` products,
   * cheaper than any Hutch++ run with as many). Below, Hutch++ with m a multiple of 3: a third sketch the range,
   * a third are probes, a third apply Cᵖ to the range; the probes must exceed 4·ln(2/δ) (see
   * {@link minHutchMatvecs}). Default: exact when `cols` ≤ 3·max(10, ⌈8·ln(2/δ)⌉) (90 for δ = 0.05), else
   * Hutch++ with that many.
   */
  readonly matvecs?: number;
  /** Subtract the column means (from the summaries) first. Default true. */
  readonly centre?: boolean;
  readonly delta?: number;
  readonly seed?: number;
  readonly deadlineMs?: number;
  readonly signal?: AbortSignal;
}

/** What {@link traceCore} estimates. */
export interface TraceResult {
  readonly power: number;
  /** tr(Cᵖ). */
  readonly trace: number;
  /** tr(QᵀCᵖQ), exact for the range found, and the probes' estimate of the rest. */
  readonly deflated: number;
  readonly residual: number;
  /**
   * An effective rank of the centred covariance C (not the stable rank ‖A‖_F²/σ₁² of the uncentred A that
   * `spectralNorm` reports): ((tr C)ᵖ / tr(Cᵖ))^(1/(p − 1)) for p ≥ 2 (the participation ratio (tr C)²/tr(C²) for p = 2),
   * tr C exact from the summaries. For p = 1 the participation ratio (tr C)²/‖C‖_F² when the trace was exact (C
   * itself was formed, so tr(C²) = ‖C‖_F² too); undefined with Hutch++ (nothing estimates tr(C²) then).
   */
  readonly effectiveRank: number | undefined;
}

function invalid(argument: string, rule: string, value: unknown): CoordinatorError {
  return new CoordinatorError(
    CoordinatorErrorCode.INVALID_ARGUMENT,
    `invalid argument: ${argument} must be ${rule} (got ${String(value)})`,
    { details: { argument, value: value as never } },
  );
}

/** Hutch++'s default products for δ: 3·max(10, ⌈8·ln(2/δ)⌉). */
function defaultHutchMatvecs(delta: number): number {
  return 3 * Math.max(10, Math.ceil(8 * Math.log(2 / delta)));
}

/** The fewest products Hutch++ accepts for δ: a multiple of 3 whose third exceeds 4·ln(2/δ) (and ≥ 6). */
function minHutchMatvecs(delta: number): number {
  return 3 * Math.max(2, Math.floor(4 * Math.log(2 / delta)) + 1);
}

/**
 * tr(Cᵖ) by Hutch++ (Meyer, Musco, Musco, Woodruff 2021): Q = orth(Cᵖ S) for a Gaussian S (m/3 columns), the
 * top part tr(QᵀCᵖQ) exactly, the rest by Gaussian Hutchinson on (I − QQᵀ)Cᵖ(I − QQᵀ) with ℓ = m/3 probes. Every
 * product CX = Σ_b (A_b − 1μᵀ)ᵀ(A_b − 1μᵀ)X/(n − 1) runs in locus (affine-product kept at the depot, then
 * transpose-product); only d × m/3 matrices travel.
 *
 * Bound, a posteriori: the probe estimate H of T = tr(M'), M' PSD, is a weighted χ² sum; by Laurent–Massart (2000,
 * Lemma 1) with x = ln(2/δ), |H − T| ≤ 2‖M'‖_F√(x/ℓ) + 2‖M'‖₂x/ℓ ≤ T·(2√(x/ℓ) + 2x/ℓ) with probability ≥ 1 − δ,
 * and T ≤ H/(1 − 2√(x/ℓ)) from the lower tail. Hutch++'s deflation makes T (the tail of the spectrum) small.
 * Every block must answer every round (COORD_E_COVERAGE otherwise).
 */
export async function traceCore(ctx: LocusContext, dataset: Dataset, options: TraceOptions): Promise<Estimate<TraceResult>> {
  requireRows(dataset);
  const d = dataset.cols;
  const p = options.power ?? 2;
  const delta = options.delta ?? 0.05;
  if (!Number.isInteger(p) || p < 1 || p > 4) throw invalid('power', 'an integer from 1 to 4', p);
  if (!(delta > 0 && delta < 1)) throw invalid('delta', 'in (0, 1)', delta);
  const fallback = defaultHutchMatvecs(delta);
  const m = options.matvecs ?? (d <= fallback ? d : fallback);
  if (!Number.isInteger(m) || m < 1) throw invalid('matvecs', 'a positive integer', m);
  // From d products on, Cᵖ applied to the identity gives the trace exactly, for fewer products than Hutch++.
  const exact = m >= d;
  const least = minHutchMatvecs(delta);
  if (!exact && (m % 3 !== 0 || m < least))
    throw invalid(
      'matvecs',
      `a multiple of 3 of at least ${least} for δ = ${delta} (its m/3 Gaussian probes must exceed 4·ln(2/δ) = ` +
        `${(4 * Math.log(2 / delta)).toFixed(1)}), or at least ${d} (the number of columns) for the exact trace; ` +
        `choose such a matvecs, leave it unset for the default, or allow a larger δ`,
      m,
    );
  for (const b of dataset.blocks)
    if (b.summary === undefined) throw invalid(`blocks[${b.index}].summary`, 'present (ingest summary)', 'none');
  const third = exact ? 0 : m / 3;
  const x = Math.log(2 / delta);
  const seed = options.seed ?? 0;
  const mu = options.centre === false ? undefined : summaryMeans(dataset);
  const n = dataset.rows;
  const deadlineAt = options.deadlineMs === undefined ? undefined : Date.now() + options.deadlineMs;
  const roundOpts = {
    ...(deadlineAt === undefined ? {} : { deadlineAt }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  };
  let bytesMoved = 0;
  const short = (what: string, got: number): CoordinatorError =>
    new CoordinatorError(
      CoordinatorErrorCode.COVERAGE,
      `coverage too low for the trace estimate: ${got} of ${dataset.blocks.length} blocks answered the ${what} round (Hutch++ needs every block)`,
      { details: { coverage: got / Math.max(1, dataset.blocks.length), blocksUsed: got, blocksPlanned: dataset.blocks.length } },
    );
  /** C·X (d × k) in locus. */
  const apply = async (X: Float64Array, k: number): Promise<Float64Array> => {
    checkAborted(options.signal);
    const Xb = bytesOf(affineX(X, d, k, mu));
    const y = await round(
      ctx,
      dataset,
      'trace-product',
      (b) => ({
        kernel: 'affine-product',
        attrs: { dtype: dataset.dtype, rows: b.rows, cols: d, k },
        inputs: [{ kind: 'block' }, { kind: 'shared', name: 'X', data: Xb }],
        output: { store: 'H', bytes: b.rows * k * 8 },
      }),
      roundOpts,
    );
    bytesMoved += y.bytesMoved;
    if (y.outputs.size !== dataset.blocks.length) throw short('product', y.outputs.size);
    const z = await round(
      ctx,
      dataset,
      'trace-transpose',
      (b) => ({
        kernel: 'transpose-product',
        attrs: { dtype: dataset.dtype, rows: b.rows, cols: d, k },
        inputs: [{ kind: 'block' }, { kind: 'state', name: 'H' }],
        output: { returnBytes: (d + 1) * k * 8 },
      }),
      { ...roundOpts, blocks: pinnedTo(ctx, dataset, 'H') },
    );
    bytesMoved += z.bytesMoved;
    if (z.outputs.size !== dataset.blocks.length) throw short('transpose', z.outputs.size);
    const out = new Float64Array(d * k);
    const scale = 1 / Math.max(1, n - 1);
    for (const b of dataset.blocks) {
      const C = z.outputs.get(b.index)!;
      for (let j = 0; j < d; j++)
        for (let t = 0; t < k; t++) out[j * k + t]! += scale * (C[j * k + t]! - (mu === undefined ? 0 : mu[j]! * C[d * k + t]!));
    }
    return out;
  };
  const power = async (X: Float64Array, k: number): Promise<Float64Array> => {
    let Y = X;
    for (let i = 0; i < p; i++) Y = await apply(Y, k);
    return Y;
  };
  let trC = 0;
  for (const b of dataset.blocks) {
    const s = b.summary!;
    for (let j = 0; j < d; j++) {
      const mj = mu?.[j] ?? 0;
      trC += s.colSumSq[j]! - 2 * mj * s.colSums[j]! + s.rows * mj * mj;
    }
  }
  trC /= Math.max(1, n - 1);
  if (exact) {
    // Cᵖ = Cᵖ·I, column by column in locus: its diagonal sums to the trace (d products per power).
    const I = new Float64Array(d * d);
    for (let j = 0; j < d; j++) I[j * d + j] = 1;
    const Cp = await power(I, d);
    let trace = 0;
    for (let j = 0; j < d; j++) trace += Cp[j * d + j]!;
    // Rounding only. Each product Y ↦ CY is computed with an error ≤ γ·|Ã|ᵀ|Ã||Y| (γ = (n + d + 2)u/(1 − (n + d + 2)u),
    // Ã the centred blocks, its entries formed as a − μ), so ‖Ŷ_k − CY_{k−1}‖_F ≤ γ·S·‖Y_{k−1}‖_F with
    // S = Σ_ij (|a_ij| + |μ_j|)²/(n − 1) ≤ 2·Σ_j (Σ_i a_ij² + nμ_j²)/(n − 1) ≥ ‖C‖₂ (from the summaries); over p
    // products ‖Ĉᵖ − Cᵖ‖_F ≤ ((1 + γ)ᵖ − 1)·Sᵖ·√d, and the trace moves by at most √d times that, plus its own sum.
    let S = 0;
    for (const b of dataset.blocks) {
      const s = b.summary!;
      for (let j = 0; j < d; j++) S += s.colSumSq[j]! + s.rows * (mu?.[j] ?? 0) ** 2;
    }
    S = (2 * S) / Math.max(1, n - 1);
    // Unit roundoff: depots may accumulate float32 blocks in float32. γ_k = ku/(1 − ku).
    const u = dataset.dtype === 'float32' ? 2 ** -24 : 2 ** -53;
    const gamma = (k: number): number => (k * u < 1 ? (k * u) / (1 - k * u) : Infinity);
    const g = gamma(n + d + 2);
    const rounding = (d * ((1 + g) ** p - 1) * S ** p + gamma(d) * Math.abs(trace)) * (1 + 1e-6);
    await ctx.runner.release();
    return {
      value: {
        power: p,
        trace,
        deflated: trace,
        residual: 0,
        effectiveRank:
          p === 1
            ? trC ** 2 /
              Math.max(
                Cp.reduce((a, v) => a + v * v, 0),
                1e-300,
              )
            : (trC ** p / Math.max(trace, 1e-300)) ** (1 / (p - 1)),
      },
      epsilon: Number.isFinite(rounding) ? rounding : Infinity,
      delta: 0,
      coverage: 1,
      blocksUsed: dataset.blocks.length,
      blocksMissing: 0,
      bytesMoved,
      method: `exact: C${p === 1 ? '' : `^${p}`} applied to the identity (${d} products per power) in locus; no sampling error, ε bounds the rounding`,
      norm: 'abs',
      parts: { sampling: { epsilon: 0, delta: 0 }, sketch: { epsilon: 0, delta: 0 }, rounding: { epsilon: rounding, delta: 0 } },
      sources: [],
      final: true,
    };
  }
  // Range: Q = orth(Cᵖ S).
  const S = gaussianMatrix(seed, ALGORITHM_STREAMS.HUTCH, d, third);
  const Q = orthonormalize(await power(S, third), d, third);
  // Probes G, projected off Q; one batch of products gives CᵖQ and CᵖG' together.
  const G = gaussianMatrix(seed, ALGORITHM_STREAMS.HUTCH + 1000, d, third);
  const QtG = mul(transpose(Q, d, third), G, third, d, third);
  const Gp = G.slice();
  const QQtG = mul(Q, QtG, d, third, third);
  for (let i = 0; i < d * third; i++) Gp[i]! -= QQtG[i]!;
  const both = new Float64Array(d * 2 * third);
  for (let j = 0; j < d; j++) {
    both.set(Q.subarray(j * third, (j + 1) * third), j * 2 * third);
    both.set(Gp.subarray(j * third, (j + 1) * third), j * 2 * third + third);
  }
  const MB = await power(both, 2 * third);
  let top = 0;
  let probes = 0;
  for (let j = 0; j < d; j++)
    for (let t = 0; t < third; t++) {
      top += Q[j * third + t]! * MB[j * 2 * third + t]!;
      probes += Gp[j * third + t]! * MB[j * 2 * third + third + t]!;
    }
  // (I − QQᵀ)Gᵀ…: Gp already projected, and Cᵖ(Gp) projected on the left by Gpᵀ = Gᵀ(I − QQᵀ).
  const H = Math.max(0, probes / third);
  const r = Math.sqrt(x / third);
  // T = tr(M') = tr(Cᵖ) − tr(QᵀCᵖQ): for p = 1 exactly (tr C from the summaries), else from the lower tail.
  let T = H / (1 - 2 * r);
  if (p === 1) T = Math.min(T, Math.max(0, trC - top) * (1 + 1e-12));
  const eps = T * (2 * r + (2 * x) / third);
  const trace = top + H;
  await ctx.runner.release();
  return {
    value: {
      power: p,
      trace,
      deflated: top,
      residual: H,
      effectiveRank: p === 1 ? undefined : (trC ** p / Math.max(trace, 1e-300)) ** (1 / (p - 1)),
    },
    epsilon: eps,
    delta,
    coverage: 1,
    blocksUsed: dataset.blocks.length,
    blocksMissing: 0,
    bytesMoved,
    method:
      `Hutch++ (Meyer et al. 2021; ${m} products with C${p === 1 ? '' : `^${p}`}, ${third} for the range, ${third} Gaussian probes) in locus; ` +
      `ε a posteriori from Laurent–Massart χ² tails on the deflated part`,
    norm: 'abs',
    parts: { sampling: { epsilon: 0, delta: 0 }, sketch: { epsilon: eps, delta } },
    sources: [],
    final: true,
  };
}
