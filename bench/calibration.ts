/**
 * Calibration of the (ε, δ) bounds: seeded trials on matrices with known truth, depot failures injected at
 * controlled rates, independent per block or correlated per depot (a failed depot loses all its blocks). For
 * each method, nominal δ, failure rate and failure mode: the observed fraction of trials whose true error exceeds
 * ε (goal ≤ δ, within binomial noise) and the median ε / true error (goal ≤ 3).
 *
 * Methods and the quantity ε bounds (the true error is computed from the full matrix, the same quantity):
 * - column means (Hájek): max_j |mean̂_j − mean_j|. A depot with no answer is taken from its blocks' summaries, which
 *   hold their column sums, so with correlated failures (a depot answers all its blocks or none) they are exact;
 * - Gram (HT difference estimator, matrix Bennett): ‖Ĝ − AᵀA‖₂;
 * - PCA (rank 3, centred, in-locus rsvd): ‖Ã − ÃVVᵀ‖₂, Ã the matrix centred by its exact column means;
 * - least squares (sketch-preconditioned CG in locus): ‖x − x*‖₂, x* the solution on all rows. Two targets: the
 *   matrix's last column, a linear function of the others plus 5 % of its own column (an almost exact fit), and
 *   (`least-squares-noisy`) the same linear function plus Gaussian noise of 10 % of its standard deviation over
 *   the rows (an ordinary noisy regression). Ingest records each block's exact centred scatter (8 columns ≤ 32), so
 *   a missing block's Gram is known and x is the full-data solution to rounding (ε its rounding allowance, δ 0;
 *   the table prints `exact`). `least-squares-bounded` and `least-squares-noisy-bounded` run the same problems with
 *   the scatters removed from the summaries (as an exNode written before ingest recorded them): the missing blocks
 *   are then bounded from the other summary fields.
 *
 * Every trial draws a new matrix (same spectrum) and, per failure setting, a new failure pattern; one trial's
 * estimate is evaluated at every δ (the estimate does not depend on δ, its bound is computed per δ). Trials run
 * in process (the depots' kernels, failures injected), interleaved over the cells so that an overall time limit
 * leaves every cell with the same number of trials.
 *
 * Usage: node dist/bench/calibration.js [--json] [--trials N (default 1000)] [--max-minutes M (default 120)]
 *   [--methods column-means,gram,pca,least-squares,least-squares-noisy,least-squares-bounded,least-squares-noisy-bounded]
 * With --json the last line is {"rows":[{method, delta, failure_rate, failure_mode, trials, refused,
 * violations, violation_rate, violation_limit, bound_over_error, epsilon_over_truth, strict_violations}, …]} (and the table
 * goes to stderr);
 * violation_limit is the largest violation rate a correct bound exceeds with probability ≤ 1 % (binomial upper
 * quantile); bound_over_error is null where every error is at the rounding level (exact statistics);
 * epsilon_over_truth is the median ε / ‖truth‖ (so an `exact` cell shows how small its ε is, not only its error);
 * strict_violations counts the trials with error > ε without the rounding slack (for estimates whose ε includes
 * its rounding allowance, such as least squares and the Gram filled from exact scatters, this checks that too).
 */
import { Matrix, SingularValueDecomposition, QrDecomposition } from 'ml-matrix';
import { final, InProcessLocus, inMemoryDataset, leastSquares, pca, runnerContext } from '../algorithms/index.js';
import {
  ReliabilityStore,
  columnStatsJob,
  gramJob,
  type BlockSummary,
  type CoordinatorDataset,
  type PlannedBlock,
} from '../framework/index.js';
import { benchArgs } from './lib/args.js';
import {
  BLOCK_ROWS,
  BLOCKS,
  D,
  DEPOTS,
  N,
  failures,
  matrix,
  mulberry,
  noisyRegression,
  withoutExactScatter,
  type Mode,
} from './lib/calibration-data.js';

const { args, json, flag } = benchArgs();
const TRIALS = flag('--trials', 1000);
const MAX_MINUTES = flag('--max-minutes', 120);
const DELTAS = [0.1, 0.05, 0.01] as const;
const RATES = [0, 0.1, 0.3, 0.5] as const;

type Method =
  | 'column-means'
  | 'gram'
  | 'pca'
  | 'least-squares'
  | 'least-squares-noisy'
  | 'least-squares-bounded'
  | 'least-squares-noisy-bounded';
const ALL: Method[] = [
  'column-means',
  'gram',
  'pca',
  'least-squares',
  'least-squares-noisy',
  'least-squares-bounded',
  'least-squares-noisy-bounded',
];
const NOISY: readonly Method[] = ['least-squares-noisy', 'least-squares-noisy-bounded'];
const BOUNDED: readonly Method[] = ['least-squares-bounded', 'least-squares-noisy-bounded'];

const only = args.indexOf('--methods');
const METHODS: Method[] = only >= 0 ? (args[only + 1]!.split(',') as Method[]).filter((m) => ALL.includes(m)) : ALL;
if (!(TRIALS >= 1) || !(MAX_MINUTES > 0) || METHODS.length === 0) {
  process.stderr.write('usage: calibration [--json] [--trials N ≥ 1] [--max-minutes M > 0] [--methods list]\n');
  process.exit(2);
}

/** The least-squares truth of a matrix: its in-memory dataset and the solution on all rows. */
interface LsTruth {
  readonly dataset: CoordinatorDataset;
  readonly bytes: Map<string, Uint8Array>;
  readonly lsSolution: number[];
}

function lsTruthOf(A: Float64Array): LsTruth {
  const { dataset, blocks: bytes } = inMemoryDataset(A, N, D, {
    blockRows: BLOCK_ROWS,
    depotsOf: (b) => [9000 + (b % DEPOTS)],
  });
  const M = Matrix.from1DArray(N, D, Array.from(A));
  const lsSolution = new QrDecomposition(M.subMatrix(0, N - 1, 0, D - 2)).solve(M.subMatrix(0, N - 1, D - 1, D - 1)).to1DArray();
  return { dataset, bytes, lsSolution };
}

function spectralNorm(M: Matrix): number {
  return new SingularValueDecomposition(M, { computeLeftSingularVectors: false, computeRightSingularVectors: false })
    .diagonal[0]!;
}

/** The truth of one matrix, computed once per trial and shared by every failure setting. */
interface Truth {
  readonly A: Float64Array;
  /** The dataset as ingest makes it (summaries with each block's exact scatter, the reference scatter and its radius). */
  readonly dataset: CoordinatorDataset;
  readonly bytes: Map<string, Uint8Array>;
  readonly summaries: BlockSummary[];
  readonly planned: PlannedBlock[];
  readonly means: Float64Array;
  readonly gram: Matrix;
  readonly blockGrams: Float64Array[];
  readonly centred: Matrix;
  readonly lsSolution: number[];
  /** The noisy-regression variant (only when its method runs). */
  readonly noisy: LsTruth | undefined;
}

function truthOf(seed: number): Truth {
  const A = matrix(seed);
  const { dataset, blocks: bytes } = inMemoryDataset(A, N, D, {
    blockRows: BLOCK_ROWS,
    depotsOf: (b) => [9000 + (b % DEPOTS)],
  });
  const summaries: BlockSummary[] = dataset.blocks.map((b) => b.summary!);
  const planned: PlannedBlock[] = summaries.map((summary, b) => ({ id: String(b), summary, group: `depot${b % DEPOTS}` }));
  const M = Matrix.from1DArray(N, D, Array.from(A));
  const means = Float64Array.from(M.mean('column'));
  const gram = M.transpose().mmul(M);
  const blockGrams: Float64Array[] = [];
  for (let b = 0; b < BLOCKS; b++) {
    const Mb = M.subMatrix(b * BLOCK_ROWS, (b + 1) * BLOCK_ROWS - 1, 0, D - 1);
    blockGrams.push(Float64Array.from(Mb.transpose().mmul(Mb).to1DArray()));
  }
  const centred = M.clone();
  for (let i = 0; i < N; i++) for (let j = 0; j < D; j++) centred.set(i, j, centred.get(i, j) - means[j]!);
  const X = M.subMatrix(0, N - 1, 0, D - 2);
  const y = M.subMatrix(0, N - 1, D - 1, D - 1);
  const lsSolution = new QrDecomposition(X).solve(y).to1DArray();
  const noisy = METHODS.some((m) => NOISY.includes(m)) ? lsTruthOf(noisyRegression(A, seed)) : undefined;
  return { A, dataset, bytes, summaries, planned, means, gram, blockGrams, centred, lsSolution, noisy };
}

/** One outcome per δ: [true error, ε, scale of the truth (rounding)], or undefined when the method refused (coverage). */
type Outcome = readonly [number, number, number] | undefined;

async function trial(method: Method, truth: Truth, failed: Set<number>, seed: number): Promise<Outcome[]> {
  const { summaries, planned } = truth;
  const refused = DELTAS.map(() => undefined);
  try {
    if (method === 'column-means' || method === 'gram') {
      if (failed.size === BLOCKS) return refused;
      // The coordinator's own combiners (as `anvil run` uses them), fed the ops' outputs of the answered blocks.
      const ds = truth.dataset;
      if (method === 'column-means') {
        const c = columnStatsJob(ds, 'means').combiner();
        for (let b = 0; b < BLOCKS; b++) {
          if (failed.has(b)) continue;
          const t = new Float64Array(6 * D);
          t.set(summaries[b]!.colSums, D);
          t.set(summaries[b]!.colSumSq, 2 * D);
          for (let j = 0; j < D; j++) t[j] = BLOCK_ROWS;
          c.add(ds.blocks[b]!, new Uint8Array(t.buffer), 0);
        }
        return DELTAS.map((delta) => {
          const e = c.estimate(planned, { delta, weighting: 'response-groups' });
          let err = 0;
          let scale = 0;
          for (let j = 0; j < D; j++) {
            err = Math.max(err, Math.abs(e.value[j]! - truth.means[j]!));
            scale = Math.max(scale, Math.abs(truth.means[j]!));
          }
          return [err, e.epsilon, scale] as const;
        });
      }
      const c = gramJob(ds).combiner();
      for (let b = 0; b < BLOCKS; b++)
        if (!failed.has(b)) c.add(ds.blocks[b]!, new Uint8Array(Float64Array.from(truth.blockGrams[b]!).buffer), 0);
      const scale = spectralNorm(truth.gram);
      return DELTAS.map((delta) => {
        const e = c.estimate(planned, { delta, weighting: 'response-groups' });
        return [spectralNorm(Matrix.from1DArray(D, D, Array.from(e.value)).sub(truth.gram)), e.epsilon, scale] as const;
      });
    }
    const ls = NOISY.includes(method) ? truth.noisy! : truth;
    const { bytes } = ls;
    const dataset = BOUNDED.includes(method) ? withoutExactScatter(ls.dataset) : ls.dataset;
    const ctx = runnerContext(new InProcessLocus(bytes, { fail: (a) => failed.has(a.block.index) }), {
      store: new ReliabilityStore({ clock: { now: () => 0 } }),
    });
    const [first, ...rest] = DELTAS;
    if (method === 'pca') {
      const e = await final(pca(dataset, ctx, { rank: 3, seed, delta: first, boundDeltas: rest }));
      const M = truth.centred;
      const V = Matrix.from1DArray(D, 3, Array.from(e.value.components));
      const err = spectralNorm(M.sub(M.mmul(V).mmul(V.transpose())));
      const scale = spectralNorm(M);
      const byDelta = new Map(e.value.boundsAt.map((b) => [b.delta, b.epsilon]));
      return DELTAS.map((delta) => [err, delta === first ? e.epsilon : byDelta.get(delta)!, scale] as const);
    }
    const e = await final(leastSquares(dataset, ctx, { seed, delta: first, boundDeltas: rest }));
    const xs = ls.lsSolution;
    const err = Math.sqrt(xs.reduce((s, v, i) => s + (v - e.value.coefficients[i]!) ** 2, 0));
    const scale = Math.hypot(...xs);
    const byDelta = new Map(e.value.boundsAt.map((b) => [b.delta, b.epsilon]));
    return DELTAS.map((delta) => [err, delta === first ? e.epsilon : byDelta.get(delta)!, scale] as const);
  } catch (e) {
    if ((e as { code?: string }).code === 'COORD_E_COVERAGE') return refused;
    throw e;
  }
}

/** The smallest v with P(Binomial(n, p) > v) ≤ 0.01: more violations than v are evidence against the bound. */
function binomialLimit(n: number, p: number): number {
  let cdf = 0;
  let pmf = (1 - p) ** n;
  for (let v = 0; v <= n; v++) {
    cdf += pmf;
    if (1 - cdf <= 0.01) return v;
    pmf *= ((n - v) / (v + 1)) * (p / (1 - p));
  }
  return n;
}

interface Cell {
  readonly method: Method;
  readonly rate: number;
  readonly mode: Mode;
  trials: number;
  refused: number;
  readonly violations: number[]; // per δ
  readonly strict: number[]; // per δ: error > ε, no slack
  readonly ratios: number[][]; // per δ
  readonly relative: number[][]; // per δ: ε / scale of the truth
}

interface Row {
  method: Method;
  delta: number;
  failure_rate: number;
  failure_mode: Mode;
  trials: number;
  refused: number;
  violations: number;
  strict_violations: number;
  violation_rate: number;
  violation_limit: number;
  bound_over_error: number | null;
  epsilon_over_truth: number | null;
}

async function main(): Promise<void> {
  const cells: Cell[] = [];
  for (const method of METHODS)
    for (const rate of RATES)
      for (const mode of rate === 0 ? (['independent'] as const) : (['independent', 'correlated'] as const))
        cells.push({
          method,
          rate,
          mode,
          trials: 0,
          refused: 0,
          violations: DELTAS.map(() => 0),
          strict: DELTAS.map(() => 0),
          ratios: DELTAS.map(() => []),
          relative: DELTAS.map(() => []),
        });
  const stopAt = Date.now() + MAX_MINUTES * 60_000;
  const started = Date.now();
  let done = 0;
  for (let t = 0; t < TRIALS && Date.now() < stopAt; t++) {
    const seed = 1 + t;
    const truth = truthOf(seed);
    for (const cell of cells) {
      const failed = failures(cell.rate, cell.mode, mulberry(seed * 7 + 1 + (cell.mode === 'correlated' ? 1_000_003 : 0)));
      const outcomes = await trial(cell.method, truth, failed, seed);
      cell.trials++;
      if (outcomes[0] === undefined) {
        cell.refused++;
        continue;
      }
      outcomes.forEach((o, i) => {
        const [err, eps, scale] = o!;
        // Every block answered: the error is floating-point rounding alone. The column statistics' ε is then their
        // rounding allowance, the algorithms' ε may omit it; either way such a trial calibrates no sampling bound, so
        // errors at the rounding level are neither violations nor ratios (the table prints `exact`).
        const rounding = 1e-9 * scale;
        if (err > eps + rounding) cell.violations[i]!++;
        if (err > eps) cell.strict[i]!++;
        if (err > rounding) cell.ratios[i]!.push(eps / err);
        if (scale > 0) cell.relative[i]!.push(eps / scale);
      });
    }
    done++;
    if (!json && done % 50 === 0)
      process.stderr.write(`${done} trials per cell, ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
  }
  const rows: Row[] = [];
  for (const cell of cells)
    DELTAS.forEach((delta, i) => {
      const ratios = cell.ratios[i]!.slice().sort((a, b) => a - b);
      const relative = cell.relative[i]!.slice().sort((a, b) => a - b);
      const n = cell.trials - cell.refused;
      rows.push({
        method: cell.method,
        delta,
        failure_rate: cell.rate,
        failure_mode: cell.mode,
        trials: cell.trials,
        refused: cell.refused,
        violations: cell.violations[i]!,
        strict_violations: cell.strict[i]!,
        violation_rate: n > 0 ? cell.violations[i]! / n : 0,
        violation_limit: n > 0 ? binomialLimit(n, delta) / n : 0,
        bound_over_error: ratios.length === 0 ? null : ratios[Math.floor(ratios.length / 2)]!,
        epsilon_over_truth: relative.length === 0 ? null : relative[Math.floor(relative.length / 2)]!,
      });
    });
  rows.sort((a, b) => ALL.indexOf(a.method) - ALL.indexOf(b.method) || b.delta - a.delta);
  // With --json the table goes to stderr and the rows are the last line of stdout.
  const out = json ? process.stderr : process.stdout;
  out.write(
    `${done} trials per cell in ${((Date.now() - started) / 1000).toFixed(0)} s\n` +
      'method                      δ      fail  mode          trials refused  violations  limit(1%)  median ε/err  median ε/‖truth‖  strict\n',
  );
  for (const r of rows) {
    const ratio = r.bound_over_error === null ? 'exact' : r.bound_over_error.toPrecision(3);
    const flagBad = r.violation_rate > r.violation_limit ? '  ← over' : '';
    out.write(
      `${r.method.padEnd(27)} ${String(r.delta).padEnd(6)} ${String(r.failure_rate).padEnd(5)} ${r.failure_mode.padEnd(12)}  ` +
        `${String(r.trials).padStart(6)} ${String(r.refused).padStart(7)}  ${r.violation_rate.toFixed(4).padStart(10)}  ` +
        `${r.violation_limit.toFixed(4).padStart(9)}  ${ratio.padStart(12)}  ` +
        `${(r.epsilon_over_truth === null ? '-' : r.epsilon_over_truth.toExponential(2)).padStart(16)}  ` +
        `${String(r.strict_violations).padStart(6)}${flagBad}\n`,
    );
  }
  out.write(
    'median ε/err: over the trials whose error is above the rounding level, 10⁻⁹ of the truth ("exact": none is); ' +
      'median ε/‖truth‖: over every trial, exact ones included; strict: violations with no rounding slack\n',
  );
  if (json) process.stdout.write(`${JSON.stringify({ rows })}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
