import { describe, expect, it } from 'vitest';
import { InProcessLocus, leastSquares, runnerContext, type LeastSquaresResult } from '../../algorithms/index.js';
import { ReliabilityStore, type Estimate } from '../../framework/index.js';
import { farColumnProblem } from './far-column-problem.js';

async function run(exactFill: boolean | undefined) {
  const { dataset, blocks } = farColumnProblem();
  const failed = new Set(Array.from({ length: 30 }, (_, b) => b).filter((b) => b % 3 === 1));
  let ops = 0;
  const locus = new InProcessLocus(blocks, {
    fail: (a) => {
      ops++;
      return failed.has(a.block.index);
    },
  });
  const ctx = runnerContext(locus, { store: new ReliabilityStore({ clock: { now: () => 0 } }) });
  const emitted: Estimate<LeastSquaresResult>[] = [];
  const last = await new Promise<Estimate<LeastSquaresResult>>((resolve, reject) => {
    let e: Estimate<LeastSquaresResult> | undefined;
    leastSquares(dataset, ctx, { seed: 3, delta: 0.1, ...(exactFill === undefined ? {} : { exactFill }) }).subscribe({
      next: (v) => {
        emitted.push(v);
        e = v;
      },
      error: reject,
      complete: () => resolve(e!),
    });
  });
  return { last, emitted, ops };
}

describe('least squares falling back from the exact fill', () => {
  it('reports the bytes both attempts moved, and its progress does not go back', async () => {
    const fell = await run(undefined);
    const direct = await run(false);
    expect(fell.last.method).toMatch(/could not certify/);

    console.log({
      opsFallback: fell.ops,
      opsDirect: direct.ops,
      bytesFallback: fell.last.bytesMoved,
      bytesDirect: direct.last.bytesMoved,
      iterationsEmitted: fell.emitted.map((e) => e.value.iterations),
      finiteDelta0: fell.emitted.filter((e) => Number.isFinite(e.epsilon) && e.delta === 0).length,
    });
    // The fallback ran every round twice; its bytesMoved should say so.
    expect(fell.ops).toBeGreaterThan(direct.ops);
    expect(fell.last.bytesMoved).toBeGreaterThan(direct.last.bytesMoved);
  }, 120_000);
});
