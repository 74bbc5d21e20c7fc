import { Matrix } from 'ml-matrix';
import { describe, expect, it } from 'vitest';
import { final, InProcessLocus, inMemoryDataset, runnerContext, traceEstimate } from '../../algorithms/index.js';
import { normals } from '../../nfu-kernels/index.js';

function data(n: number, d: number, seed: number): Float64Array {
  const A = new Float64Array(n * d);
  normals(seed, 1, 0, 0, A);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) A[i * d + j] = A[i * d + j]! / (1 + j) + 2;
  return A;
}

function exactTrace(A: Float64Array, n: number, d: number, p: number): number {
  const M = Matrix.from1DArray(n, d, Array.from(A));
  const mean = M.mean('column');
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) M.set(i, j, M.get(i, j) - mean[j]!);
  const base = M.transpose()
    .mmul(M)
    .div(n - 1);
  let C = base.clone();
  for (let k = 1; k < p; k++) C = C.mmul(base);
  return C.trace();
}

describe('trace defaults on narrow datasets', () => {
  const n = 2000;

  it('works with its defaults on 8 columns: the exact trace from d products, ε only rounding', async () => {
    const d = 8;
    const A = data(n, d, 5);
    const { dataset, blocks } = inMemoryDataset(A, n, d, { blockRows: 400 });
    for (const p of [1, 2, 3]) {
      const e = await final(traceEstimate(dataset, runnerContext(new InProcessLocus(blocks)), { power: p }));
      const truth = exactTrace(A, n, d, p);
      expect(Math.abs(e.value.trace - truth)).toBeLessThanOrEqual(e.epsilon);
      expect(e.epsilon).toBeLessThan(1e-4 * truth);
      expect(e.method).toMatch(/^exact/);
      expect(e.blocksMissing).toBe(0);
    }
  });

  it('power 1: the effective rank is (tr C)²/tr(C²) when exact (never the column count), absent with Hutch++', async () => {
    const d = 8;
    const A = data(n, d, 5);
    const { dataset, blocks } = inMemoryDataset(A, n, d, { blockRows: 400 });
    const pr = exactTrace(A, n, d, 1) ** 2 / exactTrace(A, n, d, 2);
    const one = await final(traceEstimate(dataset, runnerContext(new InProcessLocus(blocks)), { power: 1 }));
    expect(one.value.effectiveRank).toBeCloseTo(pr, 9);
    expect(one.value.effectiveRank).toBeLessThan(d - 1);
    const two = await final(traceEstimate(dataset, runnerContext(new InProcessLocus(blocks)), { power: 2 }));
    expect(two.value.effectiveRank).toBeCloseTo(pr, 9);
    const wide = data(n, 40, 6);
    const w = inMemoryDataset(wide, n, 40, { blockRows: 500 });
    const hutch = await final(
      traceEstimate(w.dataset, runnerContext(new InProcessLocus(w.blocks)), { power: 1, matvecs: 39, delta: 0.5, seed: 2 }),
    );
    expect(hutch.method).toMatch(/^Hutch\+\+/);
    expect(hutch.value.effectiveRank).toBeUndefined();
  });

  it('uses the exact trace whenever matvecs ≥ d, Hutch++ below', async () => {
    const d = 40;
    const A = data(n, d, 6);
    const { dataset, blocks } = inMemoryDataset(A, n, d, { blockRows: 500 });
    const truth = exactTrace(A, n, d, 2);
    const exact = await final(traceEstimate(dataset, runnerContext(new InProcessLocus(blocks)), { matvecs: 40, seed: 2 }));
    expect(exact.method).toMatch(/^exact/);
    expect(Math.abs(exact.value.trace - truth)).toBeLessThanOrEqual(exact.epsilon);
    const hutch = await final(
      traceEstimate(dataset, runnerContext(new InProcessLocus(blocks)), { matvecs: 39, delta: 0.5, seed: 2 }),
    );
    expect(hutch.method).toMatch(/^Hutch\+\+/);
    expect(Math.abs(hutch.value.trace - truth)).toBeLessThanOrEqual(hutch.epsilon);
  });

  it('refuses too few products with the user’s options in the message', async () => {
    const d = 8;
    const A = data(n, d, 7);
    const { dataset, blocks } = inMemoryDataset(A, n, d, { blockRows: 400 });
    const err = (await final(traceEstimate(dataset, runnerContext(new InProcessLocus(blocks)), { matvecs: 6 })).then(
      () => undefined,
      (e: unknown) => e,
    )) as Error & { code: string };
    expect(err).toMatchObject({ code: 'COORD_E_INVALID_ARGUMENT' });
    expect(err.message).toContain('at least 45 for δ = 0.05');
    expect(err.message).toContain('at least 8 (the number of columns) for the exact trace');
    expect(err.message).toContain('(got 6)');
  });
});
