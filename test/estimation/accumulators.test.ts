import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ColumnMomentsAccumulator,
  CoordinatorError,
  CoordinatorErrorCode,
  estimateCovariance,
  gramStatistic,
  magnitudeBounded,
  MatrixAccumulator,
  projectionStatistic,
  VectorAccumulator,
  columnSums,
  type PlannedBlock,
} from '../../framework/estimation/index.js';
import { plan, spectralNorm, syntheticMatrix } from './synthetic.js';

const D = 4;
const blocks = syntheticMatrix(7, 12, 20, D, 3);
const planned = plan(blocks);
const totalRows = blocks.reduce((n, b) => n + b.rows, 0);
const exactSums = new Float64Array(D);
const exactGram = new Float64Array(D * D);
for (const b of blocks) {
  for (let j = 0; j < D; j++) exactSums[j]! += b.summary.colSums[j]!;
  for (let k = 0; k < D * D; k++) exactGram[k]! += b.gram[k]!;
}

function moments(answered: (i: number) => boolean): ColumnMomentsAccumulator {
  const acc = new ColumnMomentsAccumulator(D);
  blocks.forEach((b, i) => {
    if (answered(i)) acc.add(b.id, b.summary, 100);
  });
  return acc;
}

describe('VectorAccumulator / ColumnMomentsAccumulator', () => {
  it('with every block answered gives the exact statistic and a zero sampling error', () => {
    const acc = moments(() => true);
    const sums = acc.sums(planned, { delta: 0.05, final: true });
    Array.from(sums.value).forEach((v, j) => expect(v).toBeCloseTo(exactSums[j]!, 9));
    expect(sums.parts.sampling).toEqual({ epsilon: 0, delta: 0 }); // exact: no δ
    expect(sums).toMatchObject({ coverage: 1, blocksUsed: 12, blocksMissing: 0, bytesMoved: 1200, norm: 'linf', final: true });
    const means = acc.means(planned, { delta: 0.05 });
    Array.from(means.value).forEach((v, j) => expect(v).toBeCloseTo(exactSums[j]! / totalRows, 12));
    expect(means.parts.sampling.epsilon).toBe(0); // every block answered: only the rounding allowance is left
    expect(means.epsilon).toBe(means.parts.rounding?.epsilon ?? 0);
    const f = acc.squaredFrobenius(planned, { delta: 0.05 });
    expect(f.value).toBeCloseTo(
      blocks.reduce((s, b) => s + b.summary.frob2, 0),
      6,
    );
    expect(f.norm).toBe('abs');
  });

  it('property: any answered subset — all answered ⇒ exact; ε is monotone in δ; the bound names its parts', () => {
    fc.assert(
      fc.property(
        fc.array(fc.boolean(), { minLength: 12, maxLength: 12 }),
        fc.double({ min: 0.001, max: 0.3, noNaN: true }),
        (mask, delta) => {
          const acc = moments((i) => mask[i]!);
          const sketch = { epsilon: 0.5, delta: 0.01 };
          const loose = acc.sums(planned, { delta, sketch });
          const tight = acc.sums(planned, { delta: delta * 2, sketch });
          expect(tight.parts.sampling.epsilon).toBeLessThanOrEqual(loose.parts.sampling.epsilon + 1e-9);
          expect(loose.epsilon).toBeCloseTo(loose.parts.sampling.epsilon + 0.5, 9);
          expect(loose.delta).toBeCloseTo((loose.parts.sampling.epsilon > 0 ? delta : 0) + 0.01, 12);
          expect(loose.blocksUsed + loose.blocksMissing).toBe(12);
          if (mask.every(Boolean)) expect(loose.parts.sampling.epsilon).toBe(0);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('is incremental: blocks not yet added are missing, coverage grows, the final estimate is exact', () => {
    const acc = new ColumnMomentsAccumulator(D);
    let lastCoverage = -1;
    const seen: number[] = [];
    blocks.forEach((b, i) => {
      acc.add(b.id, b.summary);
      if (i >= 2) {
        const e = acc.sums(planned, { delta: 0.1 });
        expect(e.coverage).toBeGreaterThan(lastCoverage);
        lastCoverage = e.coverage;
        seen.push(e.parts.sampling.epsilon);
        expect(e.epsilon).toBe(e.parts.sampling.epsilon + (e.parts.rounding?.epsilon ?? 0));
      }
    });
    expect(seen[seen.length - 1]).toBe(0);
    expect(seen[0]).toBeGreaterThan(0);
  });

  it('ends below the minimum coverage with COORD_E_COVERAGE naming coverage and minimum', () => {
    const acc = moments((i) => i < 3);
    let err: unknown;
    try {
      acc.means(planned, { delta: 0.05, minCoverage: 0.6 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CoordinatorError);
    const ce = err as CoordinatorError;
    expect(ce.code).toBe(CoordinatorErrorCode.COVERAGE);
    expect(ce.details).toMatchObject({ minCoverage: 0.6, blocksUsed: 3, blocksPlanned: 12 });
    expect(ce.message).toBe(
      `coverage ${(ce.details['coverage'] as number).toFixed(4)} is below the minimum 0.6 (3 of 12 blocks answered)`,
    );
    expect(() => new ColumnMomentsAccumulator(D).means(planned, { delta: 0.05 })).toThrow(
      expect.objectContaining({ code: CoordinatorErrorCode.COVERAGE }),
    );
  });

  it('a response group with no answer adds a deterministic bound and the estimate still holds', () => {
    const acc = moments((i) => blocks[i]!.depot !== 'd0');
    const e = acc.sums(planned, { delta: 0.05 });
    for (let j = 0; j < D; j++) expect(Math.abs(e.value[j]! - exactSums[j]!)).toBeLessThanOrEqual(e.epsilonPerCoordinate![j]!);
  });

  it('variances match the exact per-row variances within the bound', () => {
    const full = moments(() => true).variances(planned, { delta: 0.05 });
    const sumSq = new Float64Array(D);
    for (const b of blocks) for (let j = 0; j < D; j++) sumSq[j]! += b.summary.colSumSq[j]!;
    for (let j = 0; j < D; j++) {
      const m = exactSums[j]! / totalRows;
      expect(full.value[j]).toBeCloseTo(sumSq[j]! / totalRows - m * m, 9);
    }
    const part = moments((i) => i % 4 !== 0).variances(planned, { delta: 0.05 });
    for (let j = 0; j < D; j++) {
      const m = exactSums[j]! / totalRows;
      expect(Math.abs(part.value[j]! - (sumSq[j]! / totalRows - m * m))).toBeLessThanOrEqual(part.epsilonPerCoordinate![j]!);
    }
  });

  it('inclusion weighting uses 1/π and needs π on every planned block', () => {
    const withPi: PlannedBlock[] = planned.map((b) => ({ ...b, inclusion: { p: 0.8, pLower: 0.7 } }));
    const acc = new VectorAccumulator(D, columnSums);
    acc.add(blocks[0]!.id, blocks[0]!.summary.colSums);
    const e = acc.estimateSum(withPi, { delta: 0.1, weighting: 'inclusion' });
    expect(e.value[0]).toBeCloseTo(blocks[0]!.summary.colSums[0]! / 0.8, 12);
    expect(e.method).toMatch(/reliability history/);
    expect(() => acc.estimateSum(planned, { delta: 0.1, weighting: 'inclusion' })).toThrow(
      'invalid argument: `planned[0].inclusion` must be set with weighting "inclusion" (got undefined)',
    );
  });

  it('refuses bad input and changes nothing', () => {
    const acc = new VectorAccumulator(D, columnSums);
    expect(() => acc.add('x', [1, 2])).toThrow(expect.objectContaining({ code: CoordinatorErrorCode.INVALID_ARGUMENT }));
    expect(() => acc.add('x', [1, 2, NaN, 4])).toThrow(/value\[2\]/);
    expect(acc.size).toBe(0);
    expect(acc.add('x', [1, 2, 3, 4], 10)).toBe(true);
    expect(acc.add('x', [9, 9, 9, 9], 10)).toBe(false); // hedged duplicate: first answer kept, bytes counted
    expect(acc.valueOf('x')![0]).toBe(1);
    expect(acc.bytesMoved).toBe(20);
    expect(() => acc.estimateSum(planned, { delta: 0 })).toThrow('invalid argument: `delta` must be a number in (0, 1) (got 0)');
    expect(() => acc.estimateSum([planned[0]!, planned[0]!], { delta: 0.1 })).toThrow(/planned\[1\]\.id/);
    expect(() => acc.estimateSum([], { delta: 0.1 })).toThrow(/`planned`/);
  });

  it('a column-moments answer with a bad field records nothing', () => {
    const acc = new ColumnMomentsAccumulator(2);
    expect(() => acc.add('b', { colSums: [1, NaN], colSumSq: [1, 1] })).toThrow(
      'invalid argument: `colSums[1]` must be finite (got NaN)',
    );
    expect(() => acc.add('b', { colSums: [1, 1], colSumSq: [1, -1] })).toThrow(/colSumSq\[1\]/);
    expect(acc.size).toBe(0);
    expect(acc.add('b', { colSums: [1, 1], colSumSq: [1, 1] })).toBe(true);
  });

  it('magnitude-bounded statistics bound missing blocks by ±U_b', () => {
    const stat = magnitudeBounded('row-sums-total', 1, (s) => [Math.sqrt(s.rows * s.cols * s.frob2)]);
    const acc = new VectorAccumulator(1, stat);
    blocks.forEach((b, i) => {
      if (i % 3) acc.add(b.id, [b.summary.colSums.reduce((a, x) => a + x, 0)]);
    });
    const e = acc.estimateSum(planned, { delta: 0.05 });
    const exact = exactSums.reduce((a, x) => a + x, 0);
    expect(Math.abs(e.value[0]! - exact)).toBeLessThanOrEqual(e.epsilon);
    expect(e.norm).toBe('abs');
  });
});

describe('MatrixAccumulator', () => {
  it('Gram with every block answered is exact with zero sampling error', () => {
    const acc = new MatrixAccumulator(gramStatistic(D));
    for (const b of blocks) acc.add(b.id, b.gram);
    const e = acc.estimate(planned, { delta: 0.05 });
    Array.from(e.value).forEach((v, k) => expect(v).toBeCloseTo(exactGram[k]!, 6));
    expect(e.parts.sampling.epsilon).toBe(0);
    expect(e.norm).toBe('spectral');
  });

  it('Gram with missing blocks: error within ε, ε monotone in δ; inclusion weighting too', () => {
    const acc = new MatrixAccumulator(gramStatistic(D));
    blocks.forEach((b, i) => {
      if (i % 4 !== 1) acc.add(b.id, b.gram);
    });
    const e = acc.estimate(planned, { delta: 0.05 });
    const err = spectralNorm(
      e.value.map((v, k) => v - exactGram[k]!),
      D,
    );
    expect(err).toBeLessThanOrEqual(e.epsilon);
    // Non-increasing in δ (equal when the deterministic bound of the groups' missing blocks is the tighter one).
    expect(acc.estimate(planned, { delta: 0.2 }).epsilon).toBeLessThanOrEqual(e.epsilon);
    const withPi = planned.map((b) => ({ ...b, inclusion: { p: 2 / 3, pLower: 0.6 } }));
    const ei = acc.estimate(withPi, { delta: 0.05, weighting: 'inclusion' });
    expect(ei.epsilon).toBeGreaterThan(0);
    expect(ei.blocksUsed).toBe(9);
  });

  it('Aᵀ(AX) for a known X', () => {
    const k = 2;
    const X = Float64Array.from({ length: D * k }, (_, i) => (i % 3) - 1);
    const xNorm = Math.sqrt(X.reduce((s, x) => s + x * x, 0));
    const acc = new MatrixAccumulator(projectionStatistic(D, k, xNorm));
    const gx = (g: Float64Array) => {
      const out = new Float64Array(D * k);
      for (let i = 0; i < D; i++)
        for (let c = 0; c < k; c++) for (let j = 0; j < D; j++) out[i * k + c]! += g[i * D + j]! * X[j * k + c]!;
      return out;
    };
    blocks.forEach((b, i) => {
      if (i !== 5) acc.add(b.id, gx(b.gram));
    });
    const e = acc.estimate(planned, { delta: 0.05 });
    const exact = gx(exactGram);
    const diff = e.value.map((v, i) => v - exact[i]!);
    expect(Math.sqrt(diff.reduce((s, x) => s + x * x, 0))).toBeLessThanOrEqual(e.epsilon + 1e-9);
    expect(() => acc.add('bad', new Float64Array(3))).toThrow(/value\.length/);
  });

  it('covariance from Gram and means holds within its bound', () => {
    const acc = new MatrixAccumulator(gramStatistic(D));
    const mom = new ColumnMomentsAccumulator(D);
    blocks.forEach((b, i) => {
      if (i % 4 !== 2) {
        acc.add(b.id, b.gram);
        mom.add(b.id, b.summary);
      }
    });
    // Summaries without the exact scatter: the missing blocks' Grams are bounded, with δ (see exact-scatter tests).
    const bounded = planned.map((p) => {
      const summary = { ...p.summary };
      delete summary.exactScatter;
      return { ...p, summary };
    });
    const cov = estimateCovariance(acc.estimate(bounded, { delta: 0.025 }), mom.means(planned, { delta: 0.025 }), totalRows);
    const mu = exactSums.map((s) => s / totalRows);
    const exact = exactGram.map((g, k) => (g - totalRows * mu[Math.floor(k / D)]! * mu[k % D]!) / (totalRows - 1));
    expect(
      spectralNorm(
        cov.value.map((v, k) => v - exact[k]!),
        D,
      ),
    ).toBeLessThanOrEqual(cov.epsilon);
    expect(cov.delta).toBeCloseTo(0.05, 12);
  });
});
