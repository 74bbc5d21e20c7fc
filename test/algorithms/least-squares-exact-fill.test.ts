import { readFileSync } from 'node:fs';
import { Matrix, SingularValueDecomposition } from 'ml-matrix';
import { describe, expect, it } from 'vitest';
import { final, InProcessLocus, inMemoryDataset, leastSquares, runnerContext } from '../../algorithms/index.js';
import { ReliabilityStore, type CoordinatorDataset } from '../../framework/index.js';
import { normals } from '../../nfu-kernels/index.js';
import { farColumnProblem } from './far-column-problem.js';
import { withoutExactScatter } from './without-exact-scatter.js';
import {
  BLOCK_ROWS,
  D,
  DEPOTS,
  N,
  failures,
  matrix,
  mulberry,
  noisyRegression,
  type Mode,
} from '../../bench/lib/calibration-data.js';

/** x* = argmin ‖Ax − b‖ over every row (SVD, b the last column), and ‖Ax − b‖ at a point. */
function solution(M: Float64Array, n: number, cols: number): number[] {
  const A = Matrix.from1DArray(n, cols, Array.from(M));
  return new SingularValueDecomposition(A.subMatrix(0, n - 1, 0, cols - 2))
    .solve(A.subMatrix(0, n - 1, cols - 1, cols - 1))
    .to1DArray();
}
function residualOf(M: Float64Array, n: number, cols: number, x: ArrayLike<number>): number {
  let r2 = 0;
  for (let i = 0; i < n; i++) {
    let r = -M[i * cols + cols - 1]!;
    for (let j = 0; j < cols - 1; j++) r += M[i * cols + j]! * x[j]!;
    r2 += r * r;
  }
  return Math.sqrt(r2);
}
const dist = (a: ArrayLike<number>, b: ArrayLike<number>) =>
  Math.sqrt(Array.from(a).reduce((s, v, i) => s + (v - b[i]!) ** 2, 0));

async function solve(ds: CoordinatorDataset, bytes: Map<string, Uint8Array>, failed: ReadonlySet<number>, seed: number) {
  const ctx = runnerContext(new InProcessLocus(bytes, { fail: (a) => failed.has(a.block.index) }), {
    store: new ReliabilityStore({ clock: { now: () => 0 } }),
  });
  return final(leastSquares(ds, ctx, { seed, delta: 0.1, boundDeltas: [0.05, 0.01] }));
}

/** [A b] with b = A·x₀ + noise, column scales 1 … 10^decades (ill-conditioned for decades ≥ 3). */
function scaledProblem(n: number, d: number, seed: number, decades: number): Float64Array {
  const M = new Float64Array(n * (d + 1));
  const A = new Float64Array(n * d);
  normals(seed, 1, 0, 0, A);
  const noise = new Float64Array(n);
  normals(seed, 2, 0, 0, noise);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) {
      const a = A[i * d + j]! * 10 ** ((decades * j) / (d - 1)) + 0.5 * j;
      M[i * (d + 1) + j] = a;
      s += a * (1 + j);
    }
    M[i * (d + 1) + d] = s + 0.5 * noise[i]!;
  }
  return M;
}

describe('least squares with the missing blocks filled exactly from their summaries', () => {
  const cases: { seed: number; noisy: boolean; rate: number; mode: Mode }[] = [];
  for (const seed of [1, 2, 3, 4, 5])
    for (const noisy of [false, true])
      for (const [rate, mode] of [
        [0.1, 'independent'],
        [0.3, 'independent'],
        [0.3, 'correlated'],
        [0.5, 'correlated'],
      ] as const)
        cases.push({ seed, noisy, rate, mode });

  it('returns the full-data solution to rounding, ε ≥ the true error and at the rounding level, δ = 0, the exact residual', async () => {
    let filled = 0;
    for (const { seed, noisy, rate, mode } of cases) {
      const A = noisy ? noisyRegression(matrix(seed), seed) : matrix(seed);
      const { dataset, blocks } = inMemoryDataset(A, N, D, { blockRows: BLOCK_ROWS, depotsOf: (b) => [9000 + (b % DEPOTS)] });
      const failed = failures(rate, mode, mulberry(seed * 7 + 1 + (mode === 'correlated' ? 1_000_003 : 0)));
      if (failed.size === 0 || failed.size === dataset.blocks.length) continue;
      filled++;
      const e = await solve(dataset, blocks, failed, seed);
      const xs = solution(A, N, D);
      const err = dist(e.value.coefficients, xs);
      const scale = Math.hypot(...xs);
      expect(e.blocksMissing).toBe(failed.size);
      expect(err).toBeLessThanOrEqual(1e-9 * scale);
      expect(e.epsilon).toBeGreaterThanOrEqual(err);
      expect(e.epsilon).toBeLessThan(1e-7 * scale);
      expect(e.delta).toBe(0);
      expect(e.parts.sampling).toEqual({ epsilon: 0, delta: 0 });
      expect(e.value.boundsAt.map((b) => b.epsilon)).toEqual([e.epsilon, e.epsilon]);
      expect(e.method).toMatch(/filled exactly/);
      const r = residualOf(A, N, D, e.value.coefficients);
      expect(Math.abs(e.value.residualNorm - r)).toBeLessThanOrEqual(1e-9 * r);
      expect(e.value.residualNormLower).toBeLessThanOrEqual(r);
      expect(e.value.residualNormUpper).toBeGreaterThanOrEqual(r);
      expect(e.value.residualNormUpper - e.value.residualNormLower).toBeLessThan(1e-7 * r);
    }
    expect(filled).toBeGreaterThanOrEqual(30);
  }, 60_000);

  it('covers the rounding of an ill-conditioned problem (the Gram route squares κ): ε ≥ error, and grows like κ(A)²', async () => {
    const n = 2000;
    const d = 6;
    for (const [seed, decades] of [
      [11, 3],
      [12, 4],
      [13, 5],
    ] as const) {
      const M = scaledProblem(n, d, seed, decades);
      const { dataset, blocks } = inMemoryDataset(M, n, d + 1, { blockRows: 50, depotsOf: (b) => [9000 + (b % 5)] });
      const failed = new Set(dataset.blocks.filter((b) => b.index % 5 === seed % 5).map((b) => b.index));
      const e = await solve(dataset, blocks, failed, seed);
      const xs = solution(M, n, d + 1);
      const err = dist(e.value.coefficients, xs);
      expect(e.delta).toBe(0);
      expect(e.epsilon).toBeGreaterThanOrEqual(err);
      // The allowance grows like κ(G) = κ(A)² (10^(2·decades)), from 5·10⁻⁷ of ‖x*‖ at 10³ to 5·10⁻³ at 10⁵.
      expect(e.epsilon).toBeLessThan(10 ** (2 * decades - 12) * Math.hypot(...xs));
    }
  }, 60_000);

  it('sketch-and-solve with the missing blocks filled: its certificate covers the error, δ = 0', async () => {
    for (const seed of [6, 7]) {
      const A = noisyRegression(matrix(seed), seed);
      const { dataset, blocks } = inMemoryDataset(A, N, D, { blockRows: BLOCK_ROWS, depotsOf: (b) => [9000 + (b % DEPOTS)] });
      const failed = new Set(dataset.blocks.filter((b) => b.index % DEPOTS === seed % DEPOTS).map((b) => b.index));
      const ctx = runnerContext(new InProcessLocus(blocks, { fail: (a) => failed.has(a.block.index) }));
      const e = await final(leastSquares(dataset, ctx, { seed, method: 'sketch-and-solve' }));
      const err = dist(e.value.coefficients, solution(A, N, D));
      expect(e.value.iterations).toBe(0);
      expect(e.delta).toBe(0);
      expect(err).toBeGreaterThan(0);
      expect(e.epsilon).toBeGreaterThanOrEqual(err);
    }
  });

  it('without the exact scatters (old exNodes) gives exactly what it gave before they were recorded', async () => {
    const golden = JSON.parse(readFileSync(new URL('fixtures/ls-bounded-golden.json', import.meta.url), 'utf8')) as {
      seed: number;
      noisy: boolean;
      rate: number;
      mode: Mode;
      failed: number[];
      refused?: string;
      coefficients?: number[];
      epsilon?: number;
      delta?: number;
      residualNorm?: number;
      residualNormLower?: number;
      residualNormUpper?: number;
      boundsAt?: { delta: number; epsilon: number }[];
      iterations?: number;
    }[];
    expect(golden.length).toBe(18);
    let objectiveCases = 0;
    for (const g of golden) {
      const A = g.noisy ? noisyRegression(matrix(g.seed), g.seed) : matrix(g.seed);
      const { dataset, blocks } = inMemoryDataset(A, N, D, { blockRows: BLOCK_ROWS, depotsOf: (b) => [9000 + (b % DEPOTS)] });
      const failed = failures(g.rate, g.mode, mulberry(g.seed * 7 + 1 + (g.mode === 'correlated' ? 1_000_003 : 0)));
      expect([...failed].sort((a, b) => a - b)).toEqual(g.failed);
      const run = solve(withoutExactScatter(dataset), blocks, failed, g.seed);
      if (g.refused !== undefined) {
        await expect(run).rejects.toMatchObject({ code: g.refused });
        continue;
      }
      const e = await run;
      expect(Array.from(e.value.coefficients)).toEqual(g.coefficients);
      expect(e.epsilon).toBe(g.epsilon);
      // δ is now 0 where ε is the sure objective bound (it was reported with the sampling δ before).
      expect([g.delta, 0]).toContain(e.delta);
      if (e.delta === 0 && g.delta !== 0) objectiveCases++;
      expect(e.value.residualNorm).toBe(g.residualNorm);
      expect(e.value.residualNormLower).toBe(g.residualNormLower);
      expect(e.value.residualNormUpper).toBe(g.residualNormUpper);
      expect(e.value.boundsAt).toEqual(g.boundsAt);
      expect(e.value.iterations).toBe(g.iterations);
      expect(e.method).not.toMatch(/filled exactly/);
    }
    // Some of these trials end on the objective bound (the bounded path's smallest in correlated cells).
    expect(objectiveCases).toBeGreaterThan(0);
  }, 60_000);

  it('falls back to the bounds when one missing block lacks its exact scatter', async () => {
    const seed = 3;
    const A = matrix(seed);
    const { dataset, blocks } = inMemoryDataset(A, N, D, { blockRows: BLOCK_ROWS, depotsOf: (b) => [9000 + (b % DEPOTS)] });
    const failed = new Set([1, 7, 13, 19]);
    const full = await solve(dataset, blocks, failed, seed);
    const oneOld = await solve(withoutExactScatter(dataset, new Set([13])), blocks, failed, seed);
    const allOld = await solve(withoutExactScatter(dataset), blocks, failed, seed);
    expect(full.delta).toBe(0);
    expect(oneOld.method).not.toMatch(/filled exactly/);
    expect(Array.from(oneOld.value.coefficients)).toEqual(Array.from(allOld.value.coefficients));
    expect(oneOld.epsilon).toBe(allOld.epsilon);
    const xs = solution(A, N, D);
    expect(dist(oneOld.value.coefficients, xs)).toBeLessThanOrEqual(oneOld.epsilon);
    expect(oneOld.epsilon).toBeGreaterThan(1e3 * full.epsilon);
    // An answered block without one changes nothing: only the missing blocks' scatters are read.
    const answeredOld = await solve(withoutExactScatter(dataset, new Set([0, 2])), blocks, failed, seed);
    expect(Array.from(answeredOld.value.coefficients)).toEqual(Array.from(full.value.coefficients));
    expect(answeredOld.epsilon).toBe(full.epsilon);
  }, 60_000);
});

describe('least squares when the exact fill cannot certify (a column far from zero)', () => {
  it('falls back to the bounded path: an answer whose ε holds, never a false "rank-deficient" refusal', async () => {
    const { M, n, d, dataset, blocks } = farColumnProblem();
    // One depot of three down: 10 of 30 blocks missing, every summary with its exact scatter.
    const failed = new Set(Array.from({ length: 30 }, (_, b) => b).filter((b) => b % 3 === 1));
    expect(dataset.blocks.every((b) => b.summary?.exactScatter !== undefined)).toBe(true);
    const e = await solve(dataset, blocks, failed, 3);
    const xStar = solution(M, n, d + 1);
    const err = dist(e.value.coefficients, xStar);
    expect(Number.isFinite(e.epsilon)).toBe(true);
    expect(err).toBeLessThanOrEqual(e.epsilon);
    expect(e.method).toMatch(/not filled: their summaries' exact scatters could not certify x/);
  });

  it('says why missing blocks are bounded when the summaries hold no exact scatter (more than 32 columns)', async () => {
    const n = 2000;
    const cols = 35;
    const M = new Float64Array(n * cols);
    normals(8, 1, 0, 0, M);
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < cols - 1; j++) s += M[i * cols + j]! * 0.01 * (j + 1);
      M[i * cols + cols - 1] = s + 0.1 * M[i * cols + cols - 1]!;
    }
    const { dataset, blocks } = inMemoryDataset(M, n, cols, { blockRows: 200, depotsOf: (b) => [9000 + (b % 5)] });
    expect(dataset.blocks.some((b) => b.summary?.exactScatter !== undefined)).toBe(false);
    const e = await solve(dataset, blocks, new Set([3, 8]), 4);
    expect(e.method).toMatch(/not filled: their summaries hold no exact scatter \(more than 32 columns/);
    expect(dist(e.value.coefficients, solution(M, n, cols))).toBeLessThanOrEqual(e.epsilon);
  });
});
