import { Matrix } from 'ml-matrix';
import { describe, expect, it } from 'vitest';
import { final, InProcessLocus, inMemoryDataset, runnerContext, traceEstimate } from '../../algorithms/index.js';
import { normals } from '../../nfu-kernels/index.js';

describe('Hutch++ trace estimation in locus', () => {
  const n = 3000;
  const d = 60;
  const A = new Float64Array(n * d);
  normals(4, 1, 0, 0, A);
  // A decaying spectrum plus an offset (the centring must remove it).
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) A[i * d + j] = A[i * d + j]! / (1 + j) ** 0.7 + 3;
  const exact = (p: number): number => {
    const M = Matrix.from1DArray(n, d, Array.from(A));
    const mean = M.mean('column');
    const Cn = M.clone();
    for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) Cn.set(i, j, Cn.get(i, j) - mean[j]!);
    let C = Cn.transpose()
      .mmul(Cn)
      .div(n - 1);
    const base = C.clone();
    for (let k = 1; k < p; k++) C = C.mmul(base);
    return C.trace();
  };

  it('estimates tr(C²) within its bound, and tr(C) exactly', async () => {
    const { dataset, blocks } = inMemoryDataset(A, n, d, { blockRows: 500 });
    const ctx = runnerContext(new InProcessLocus(blocks));
    const e = await final(traceEstimate(dataset, ctx, { power: 2, seed: 1 }));
    const truth = exact(2);
    expect(Math.abs(e.value.trace - truth)).toBeLessThanOrEqual(e.epsilon);
    expect(e.epsilon).toBeLessThan(0.2 * truth);
    expect(e.value.effectiveRank).toBeGreaterThan(1);
    expect(e.value.effectiveRank).toBeLessThan(d);
    const one = await final(traceEstimate(dataset, ctx, { power: 1, seed: 1 }));
    expect(Math.abs(one.value.trace - exact(1))).toBeLessThanOrEqual(one.epsilon + 1e-9 * exact(1));
  });

  it('ends with COORD_E_COVERAGE when a block does not answer', async () => {
    const { dataset, blocks } = inMemoryDataset(A, n, d, { blockRows: 500 });
    const ctx = runnerContext(new InProcessLocus(blocks, { fail: (a) => a.block.index === 1 }));
    await expect(final(traceEstimate(dataset, ctx, { seed: 1 }))).rejects.toMatchObject({ code: 'COORD_E_COVERAGE' });
  });

  it('refuses too few products for δ', async () => {
    const { dataset, blocks } = inMemoryDataset(A, n, d, { blockRows: 500 });
    await expect(final(traceEstimate(dataset, runnerContext(new InProcessLocus(blocks)), { matvecs: 9 }))).rejects.toMatchObject({
      code: 'COORD_E_INVALID_ARGUMENT',
    });
  });
});
