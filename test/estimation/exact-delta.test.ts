import { describe, expect, it } from 'vitest';
import {
  ColumnMomentsAccumulator,
  estimateCovariance,
  gramStatistic,
  MatrixAccumulator,
} from '../../framework/estimation/index.js';
import { plan, syntheticMatrix } from './synthetic.js';

const D = 4;
const blocks = syntheticMatrix(11, 10, 25, D, 3);
const planned = plan(blocks);
const totalRows = blocks.reduce((n, b) => n + b.rows, 0);

function estimates(answered: (i: number) => boolean) {
  const moments = new ColumnMomentsAccumulator(D);
  const gram = new MatrixAccumulator(gramStatistic(D));
  blocks.forEach((b, i) => {
    if (!answered(i)) return;
    moments.add(b.id, b.summary, 100);
    gram.add(b.id, b.gram);
  });
  const options = { delta: 0.05, final: true };
  const g = gram.estimate(planned, options);
  const means = moments.means(planned, options);
  return {
    sums: moments.sums(planned, options),
    means,
    variances: moments.variances(planned, options),
    gram: g,
    covariance: estimateCovariance(g, means, totalRows),
  };
}

describe('δ of an estimate exact up to rounding', () => {
  it('is 0 with every block answered and no sketch: column stats, Gram and covariance', () => {
    for (const [name, e] of Object.entries(estimates(() => true))) {
      expect(e.coverage, name).toBe(1);
      // (The covariance folds the means' rounding allowance into its sampling ε: only its δ is 0.)
      if (name !== 'covariance') expect(e.parts.sampling.epsilon, name).toBe(0);
      expect(e.parts.sampling.delta, name).toBe(0);
      expect(e.delta, name).toBe(0);
    }
  });

  it('stays the requested δ when blocks are missing', () => {
    for (const [name, e] of Object.entries(estimates((i) => i % 4 !== 1))) {
      expect(e.parts.sampling.epsilon, name).toBeGreaterThan(0);
      expect(e.delta, name).toBeGreaterThan(0);
      expect(e.delta, name).toBeLessThanOrEqual(0.1 + 1e-12);
    }
  });

  it('keeps a sketch part’s own δ at full coverage', () => {
    const moments = new ColumnMomentsAccumulator(D);
    for (const b of blocks) moments.add(b.id, b.summary, 100);
    const e = moments.sums(planned, { delta: 0.05, sketch: { epsilon: 0.5, delta: 0.01 } });
    expect(e.parts.sampling.delta).toBe(0);
    expect(e.delta).toBeCloseTo(0.01, 12);
  });
});
