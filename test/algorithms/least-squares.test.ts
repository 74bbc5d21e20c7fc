import { Matrix, QrDecomposition } from 'ml-matrix';
import { describe, expect, it } from 'vitest';
import { final, InProcessLocus, inMemoryDataset, leastSquares, runnerContext } from '../../algorithms/index.js';
import { normals } from '../../nfu-kernels/index.js';
import { withoutExactScatter } from './without-exact-scatter.js';

/** [A b] with b = A·x₀ + noise, column scales 1 … 10^decades (ill-conditioned for decades = 4). */
function problem(n: number, d: number, seed: number, decades = 4) {
  const A = new Float64Array(n * d);
  normals(seed, 1, 0, 0, A);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) A[i * d + j]! *= 10 ** ((decades * j) / (d - 1));
  const x0 = Float64Array.from({ length: d }, (_, j) => 1 + j);
  const noise = new Float64Array(n);
  normals(seed, 2, 0, 0, noise);
  const M = new Float64Array(n * (d + 1));
  const b = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += A[i * d + j]! * x0[j]!;
    b[i] = s + 0.5 * noise[i]!;
    M.set(A.subarray(i * d, (i + 1) * d), i * (d + 1));
    M[i * (d + 1) + d] = b[i]!;
  }
  const exact = new QrDecomposition(Matrix.from1DArray(n, d, Array.from(A))).solve(Matrix.columnVector(Array.from(b)));
  return { M, xStar: Float64Array.from(exact.to1DArray()) };
}

const dist = (a: ArrayLike<number>, b: ArrayLike<number>) =>
  Math.sqrt(Array.from(a).reduce((s, v, i) => s + (v - b[i]!) ** 2, 0));

describe('least squares in locus', () => {
  const n = 4000;
  const d = 12;
  const { M, xStar } = problem(n, d, 5);

  it('preconditioned CG in locus reaches the exact solution and certifies it', async () => {
    const { dataset, blocks } = inMemoryDataset(M, n, d + 1, { blockRows: 500 });
    const e = await final(leastSquares(dataset, runnerContext(new InProcessLocus(blocks)), { seed: 2 }));
    expect(e.final).toBe(true);
    expect(e.norm).toBe('l2');
    const err = dist(e.value.coefficients, xStar);
    expect(err).toBeLessThanOrEqual(e.epsilon);
    expect(err).toBeLessThan(1e-8 * Math.hypot(...xStar));
    // Worst-case rounding (γ_n bounds) dominates the certificate.
    expect(e.epsilon).toBeLessThan(1e-4 * Math.hypot(...xStar));
    expect(e.value.preconditionedCondition).toBeLessThan(3);
    expect(e.value.iterations).toBeLessThanOrEqual(30);
    expect(e.blocksMissing).toBe(0);
    expect(e.bytesMoved).toBeLessThan(0.5 * n * (d + 1) * 8);
  });

  it('sketch-and-solve is close and its bound holds', async () => {
    const { dataset, blocks } = inMemoryDataset(M, n, d + 1, { blockRows: 500 });
    const e = await final(
      leastSquares(dataset, runnerContext(new InProcessLocus(blocks)), { method: 'sketch-and-solve', seed: 2 }),
    );
    const err = dist(e.value.coefficients, xStar);
    expect(e.value.iterations).toBe(0);
    expect(err).toBeGreaterThan(0);
    expect(err).toBeLessThanOrEqual(e.epsilon);
  });

  it('with blocks failing, the bound against the full solution still holds', async () => {
    // Well conditioned: the sampling bound is in the absolute spectral norm of the Gram (see docs).
    const { M, xStar } = problem(n, d, 6, 0.5);
    // Summaries without the exact scatters (an older exNode): the missing blocks are bounded, not filled.
    const { dataset: full, blocks } = inMemoryDataset(M, n, d + 1, { blockRows: 20 });
    const dataset = withoutExactScatter(full);
    const ctx = runnerContext(new InProcessLocus(blocks, { fail: (a) => a.block.index % 40 === 3 }));
    const e = await final(leastSquares(dataset, ctx, { seed: 3 }));
    expect(e.blocksMissing).toBe(5);
    expect(e.parts.sampling.epsilon).toBeGreaterThan(0);
    expect(dist(e.value.coefficients, xStar)).toBeLessThanOrEqual(e.epsilon);
  });

  it('with half the blocks failing it still answers with a finite bound that holds; below minCoverage it refuses', async () => {
    const { M, xStar } = problem(2000, 6, 7, 1);
    const { dataset: full, blocks } = inMemoryDataset(M, 2000, 7, { blockRows: 50 });
    const dataset = withoutExactScatter(full);
    const fail = (a: { block: { index: number } }) => a.block.index % 2 === 1;
    const e = await final(
      leastSquares(dataset, runnerContext(new InProcessLocus(blocks, { fail })), { seed: 4, boundDeltas: [0.01] }),
    );
    expect(e.blocksMissing).toBe(20);
    expect(Number.isFinite(e.epsilon)).toBe(true);
    expect(dist(e.value.coefficients, xStar)).toBeLessThanOrEqual(e.epsilon);
    expect(e.value.boundsAt[0]!.delta).toBe(0.01);
    expect(e.value.boundsAt[0]!.epsilon).toBeGreaterThanOrEqual(e.epsilon);
    await expect(
      final(leastSquares(dataset, runnerContext(new InProcessLocus(blocks, { fail })), { seed: 4, minCoverage: 0.9 })),
    ).rejects.toMatchObject({ code: 'COORD_E_COVERAGE' });
  });

  it('refuses a target outside the columns', async () => {
    const { dataset, blocks } = inMemoryDataset(M, n, d + 1, { blockRows: 500 });
    await expect(
      final(leastSquares(dataset, runnerContext(new InProcessLocus(blocks)), { target: d + 1 })),
    ).rejects.toMatchObject({
      code: 'COORD_E_INVALID_ARGUMENT',
    });
  });
});
