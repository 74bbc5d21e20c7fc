import { describe, expect, it } from 'vitest';
import { final, InProcessLocus, inMemoryDataset, leastSquares, pca, runnerContext } from '../../algorithms/index.js';
import { ReliabilityStore } from '../../framework/index.js';
import { normals } from '../../nfu-kernels/index.js';

/**
 * The same seed and the same answering blocks give the same bits, whatever the reliability history says: the
 * history orders each block's replicas (and so its response group), which must not change any sum's order.
 */
describe('results do not depend on the history (replica order, response groups)', () => {
  const n = 4000;
  const d = 8;
  const A = new Float64Array(n * d);
  normals(21, 1, 0, 0, A);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) A[i * d + j] = A[i * d + j]! * (j === 0 ? 40 : j === 1 ? 9 : 1) + 100 * (j + 1);
    A[i * d + 7] = 0.5 * A[i * d]! - A[i * d + 1]! + 0.1 * A[i * d + 7]!;
  }
  const { dataset, blocks } = inMemoryDataset(A, n, d, {
    blockRows: 250,
    depotsOf: (b) => [9000 + (b % 3), 9000 + ((b + 1) % 3)],
  });
  /** A history in which depot `bad` failed often: blocks try their other replica first (another grouping). */
  const history = (bad: number | undefined): ReliabilityStore => {
    const store = new ReliabilityStore({ clock: { now: () => Date.now() } });
    for (let port = 9000; port < 9003; port++)
      for (let i = 0; i < 20; i++) {
        if (port === bad && i % 2 === 0) store.recordFailure(`127.0.0.1:${port}`);
        else store.recordAnswer(`127.0.0.1:${port}`, 5 + port - 9000);
      }
    return store;
  };

  /** A runner noting the depot each block was asked first (its response group). */
  const noted = (): { runner: InProcessLocus; first: Map<number, number> } => {
    const first = new Map<number, number>();
    const runner = new InProcessLocus(blocks, {
      fail: (a) => {
        if (!first.has(a.block.index)) first.set(a.block.index, a.replica.depot.port);
        return false;
      },
    });
    return { runner, first };
  };

  it('pca: the same bits with every history', async () => {
    const runs = [];
    const groupings = new Set<string>();
    for (const bad of [undefined, 9000, 9001, 9002]) {
      const { runner, first } = noted();
      const ctx = runnerContext(runner, { store: history(bad) });
      const e = await final(pca(dataset, ctx, { rank: 3, seed: 3 }));
      expect(e.blocksMissing).toBe(0);
      runs.push(
        JSON.stringify([
          e.epsilon,
          Array.from(e.value.singularValues),
          Array.from(e.value.components),
          Array.from(e.value.singularValueUpper),
        ]),
      );
      groupings.add(JSON.stringify([...first]));
    }
    // The histories did group the blocks differently…
    expect(groupings.size).toBeGreaterThan(1);
    // …and the results are the same bits.
    expect(new Set(runs).size).toBe(1);
  });

  it('least squares: the same bits with every history', async () => {
    const runs = [];
    for (const bad of [undefined, 9000, 9001, 9002]) {
      const ctx = runnerContext(new InProcessLocus(blocks), { store: history(bad) });
      const e = await final(leastSquares(dataset, ctx, { seed: 3 }));
      expect(e.blocksMissing).toBe(0);
      runs.push(JSON.stringify([e.epsilon, Array.from(e.value.coefficients)]));
    }
    expect(new Set(runs).size).toBe(1);
  });
});
