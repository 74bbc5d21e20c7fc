/**
 * Calibration of the (ε, δ) bounds: seeded trials on matrices with known truth, depot failures injected at
 * controlled rates, independent per block or correlated per depot (a failed depot loses all its blocks). For
 * each method, nominal δ and failure rate: the observed fraction of trials whose true error exceeds ε (goal ≤ δ,
 * within binomial noise) and the median ε / true error (goal ≤ 3).
 *
 * Methods: column means (Hájek), Gram (HT, matrix Bernstein), PCA (rank 3, in-locus rsvd), least squares
 * (preconditioned, in locus). Every trial draws a new matrix (same spectrum) and a new failure pattern.
 *
 * Usage: node dist/bench/calibration.js [--json] [--trials N (default 1000)] [--max-seconds S per cell (default 30)]
 *   [--methods column-means,gram,pca,least-squares]
 * With --json the last line is {"rows":[{method, delta, failure_rate, correlated, trials, violation_rate, bound_over_error}, …]}.
 */
import { Matrix, SingularValueDecomposition, QrDecomposition } from 'ml-matrix';
import { final, InProcessLocus, inMemoryDataset, leastSquares, pca, runnerContext } from '../algorithms/index.js';
import {
  ReliabilityStore,
  columnStatsJob,
  gramJob,
  summarizeBlock,
  type BlockSummary,
  type CoordinatorDataset,
  type PlannedBlock,
} from '../framework/index.js';
import { normals } from '../nfu-kernels/index.js';
import { benchArgs } from './lib/args.js';

const { args, json, flag } = benchArgs();
const TRIALS = flag('--trials', 1000);
const MAX_SECONDS = flag('--max-seconds', 30);
const DELTAS = [0.1, 0.05, 0.01];
const RATES = [0, 0.1, 0.3, 0.5];
const N = 480;
const D = 8;
const BLOCK_ROWS = 20; // 24 blocks
const DEPOTS = 6;

type Method = 'column-means' | 'gram' | 'pca' | 'least-squares';
const ALL: Method[] = ['column-means', 'gram', 'pca', 'least-squares'];
const only = args.indexOf('--methods');
const METHODS: Method[] = only >= 0 ? (args[only + 1]!.split(',') as Method[]).filter((m) => ALL.includes(m)) : ALL;

/** A seeded matrix: rank-3 signal (σ ≈ 40, 20, 10 per √row) plus noise, a mean offset, and an LS target column. */
function matrix(seed: number): Float64Array {
  const A = new Float64Array(N * D);
  normals(seed, 1, 0, 0, A);
  const W = new Float64Array(3 * D);
  normals(seed, 2, 0, 0, W);
  const Z = new Float64Array(N * 3);
  normals(seed, 3, 0, 0, Z);
  for (let i = 0; i < N; i++)
    for (let j = 0; j < D; j++) {
      let s = 0.3 * A[i * D + j]! + 1 + j;
      for (let t = 0; t < 3; t++) s += Z[i * 3 + t]! * W[t * D + j]! * [4, 2, 1][t]!;
      A[i * D + j] = s;
    }
  // The last column: a linear function of the others plus noise (least squares).
  for (let i = 0; i < N; i++) {
    let s = 0;
    for (let j = 0; j < D - 1; j++) s += (j % 3) * A[i * D + j]! * 0.5;
    A[i * D + D - 1] = s + A[i * D + D - 1]! * 0.05;
  }
  return A;
}

function mulberry(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Which blocks fail in this trial. */
function failures(rate: number, correlated: boolean, blocks: number, rand: () => number): Set<number> {
  const out = new Set<number>();
  if (correlated) {
    const down = Array.from({ length: DEPOTS }, () => rand() < rate);
    for (let b = 0; b < blocks; b++) if (down[b % DEPOTS]) out.add(b);
  } else for (let b = 0; b < blocks; b++) if (rand() < rate) out.add(b);
  return out;
}

function spectralNorm(M: Matrix): number {
  return new SingularValueDecomposition(M, { computeLeftSingularVectors: false, computeRightSingularVectors: false })
    .diagonal[0]!;
}

/** One trial: [true error, ε, scale of the truth (for rounding)], or undefined when the method refused (coverage). */
async function trial(
  method: Method,
  delta: number,
  rate: number,
  correlated: boolean,
  seed: number,
): Promise<[number, number, number] | undefined> {
  const A = matrix(seed);
  const blocks = N / BLOCK_ROWS;
  const failed = failures(rate, correlated, blocks, mulberry(seed * 7 + 1));
  const summaries: BlockSummary[] = [];
  for (let b = 0; b < blocks; b++)
    summaries.push(summarizeBlock(A.subarray(b * BLOCK_ROWS * D, (b + 1) * BLOCK_ROWS * D), BLOCK_ROWS, D));
  const planned: PlannedBlock[] = summaries.map((summary, b) => ({ id: String(b), summary, group: `depot${b % DEPOTS}` }));
  try {
    if (method === 'column-means' || method === 'gram') {
      if (failed.size === blocks) return undefined;
      // The coordinator's own combiners (as `anvil run` uses them), fed the ops' outputs of the answered blocks.
      const { dataset } = inMemoryDataset(A, N, D, { blockRows: BLOCK_ROWS });
      const ds: CoordinatorDataset = dataset;
      if (method === 'column-means') {
        const c = columnStatsJob(ds, 'means').combiner();
        for (let b = 0; b < blocks; b++) {
          if (failed.has(b)) continue;
          const t = new Float64Array(6 * D);
          t.set(summaries[b]!.colSums, D);
          t.set(summaries[b]!.colSumSq, 2 * D);
          for (let j = 0; j < D; j++) t[j] = BLOCK_ROWS;
          c.add(ds.blocks[b]!, new Uint8Array(t.buffer), 0);
        }
        const e = c.estimate(planned, { delta, weighting: 'response-groups' });
        let err = 0;
        let scale = 0;
        for (let j = 0; j < D; j++) {
          let s = 0;
          for (let i = 0; i < N; i++) s += A[i * D + j]!;
          err = Math.max(err, Math.abs(e.value[j]! - s / N));
          scale = Math.max(scale, Math.abs(s / N));
        }
        return [err, e.epsilon, scale];
      }
      const c = gramJob(ds).combiner();
      const G = new Matrix(D, D);
      for (let b = 0; b < blocks; b++) {
        const M = Matrix.from1DArray(BLOCK_ROWS, D, Array.from(A.subarray(b * BLOCK_ROWS * D, (b + 1) * BLOCK_ROWS * D)));
        const Gb = M.transpose().mmul(M);
        G.add(Gb);
        if (!failed.has(b)) c.add(ds.blocks[b]!, new Uint8Array(Float64Array.from(Gb.to1DArray()).buffer), 0);
      }
      const e = c.estimate(planned, { delta, weighting: 'response-groups' });
      return [spectralNorm(Matrix.from1DArray(D, D, Array.from(e.value)).sub(G)), e.epsilon, spectralNorm(G)];
    }
    const { dataset, blocks: bytes } = inMemoryDataset(A, N, D, {
      blockRows: BLOCK_ROWS,
      depotsOf: (b) => [9000 + (b % DEPOTS)],
    });
    const ctx = runnerContext(new InProcessLocus(bytes, { fail: (a) => failed.has(a.block.index) }), {
      store: new ReliabilityStore({ clock: { now: () => 0 } }),
    });
    if (method === 'pca') {
      const e = await final(pca(dataset, ctx, { rank: 3, seed, delta }));
      const M = Matrix.from1DArray(N, D, Array.from(A));
      const mean = M.mean('column');
      for (let i = 0; i < N; i++) for (let j = 0; j < D; j++) M.set(i, j, M.get(i, j) - mean[j]!);
      const V = Matrix.from1DArray(D, 3, Array.from(e.value.components));
      return [spectralNorm(M.sub(M.mmul(V).mmul(V.transpose()))), e.epsilon, spectralNorm(M)];
    }
    const e = await final(leastSquares(dataset, ctx, { seed, delta }));
    const X = new Matrix(N, D - 1);
    const y = new Matrix(N, 1);
    for (let i = 0; i < N; i++) {
      for (let j = 0; j < D - 1; j++) X.set(i, j, A[i * D + j]!);
      y.set(i, 0, A[i * D + D - 1]!);
    }
    const xs = new QrDecomposition(X).solve(y).to1DArray();
    const err = Math.sqrt(xs.reduce((s, v, i) => s + (v - e.value.coefficients[i]!) ** 2, 0));
    return [err, e.epsilon, Math.hypot(...xs)];
  } catch (e) {
    if ((e as { code?: string }).code === 'COORD_E_COVERAGE') return undefined;
    throw e;
  }
}

interface Row {
  method: Method;
  delta: number;
  failure_rate: number;
  correlated: boolean;
  trials: number;
  refused: number;
  violation_rate: number;
  bound_over_error: number;
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  if (!json) process.stdout.write('method         δ      fail  corr  trials refused  violations  median ε/err\n');
  for (const method of METHODS)
    for (const delta of DELTAS)
      for (const rate of RATES)
        for (const correlated of rate === 0 ? [false] : [false, true]) {
          const started = Date.now();
          let n = 0;
          let refused = 0;
          let violations = 0;
          const ratios: number[] = [];
          for (let t = 0; t < TRIALS && Date.now() - started < MAX_SECONDS * 1000; t++) {
            const r = await trial(method, delta, rate, correlated, 1 + t);
            n++;
            if (r === undefined) {
              refused++;
              continue;
            }
            const [err, eps, scale] = r;
            // Errors at the rounding level (every block answered: ε = 0 for exact statistics) are no violation.
            const rounding = 1e-9 * scale;
            if (err > eps + rounding) violations++;
            if (err > rounding) ratios.push(eps / err);
          }
          ratios.sort((a, b) => a - b);
          const median = ratios.length === 0 ? NaN : ratios[Math.floor(ratios.length / 2)]!;
          const row: Row = {
            method,
            delta,
            failure_rate: rate,
            correlated,
            trials: n,
            refused,
            violation_rate: n - refused > 0 ? violations / (n - refused) : 0,
            bound_over_error: median,
          };
          rows.push(row);
          if (!json)
            process.stdout.write(
              `${method.padEnd(14)} ${String(delta).padEnd(6)} ${String(rate).padEnd(5)} ${correlated ? 'yes ' : 'no  '}  ${String(n).padStart(6)} ${String(refused).padStart(7)}  ${row.violation_rate.toFixed(4).padStart(10)}  ${median.toPrecision(3).padStart(12)}\n`,
            );
        }
  if (json) process.stdout.write(`${JSON.stringify({ rows })}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
