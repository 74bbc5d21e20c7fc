import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ColumnMomentsAccumulator,
  MatrixAccumulator,
  attachScatterRadius,
  centredScatter,
  makeScatterReference,
  VectorAccumulator,
  gramStatistic,
  magnitudeBounded,
  summarizeBlock,
  type PlannedBlock,
  type VectorStatistic,
} from '../../framework/estimation/index.js';
import { gram, mulberry32, normal, spectralNorm } from './synthetic.js';

// At δ = 1e-9 a valid bound fails on a given instance with probability at most 1e-9, so over a few hundred
// arbitrary instances (data, groups, answered sets — chosen adversarially by fast-check, not at random) any
// failure is a bug in the bound, not bad luck.
const DELTA = 1e-9;

interface Instance {
  d: number;
  blocks: { id: string; data: Float64Array; rows: number; group: string; answered: boolean }[];
}

const instance = fc
  .record({
    d: fc.integer({ min: 1, max: 4 }),
    seed: fc.integer({ min: 1, max: 1_000_000 }),
    count: fc.integer({ min: 2, max: 14 }),
    groups: fc.integer({ min: 1, max: 3 }),
    mask: fc.array(fc.boolean(), { minLength: 14, maxLength: 14 }),
    scales: fc.array(fc.double({ min: 0.01, max: 50, noNaN: true }), { minLength: 14, maxLength: 14 }),
    rows: fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 14, maxLength: 14 }),
    offset: fc.double({ min: -20, max: 20, noNaN: true }),
  })
  .map(({ d, seed, count, groups, mask, scales, rows, offset }): Instance => {
    const gauss = normal(mulberry32(seed));
    return {
      d,
      blocks: Array.from({ length: count }, (_, b) => {
        const data = Float64Array.from({ length: rows[b]! * d }, (_, k) => offset * (k % d) + scales[b]! * gauss());
        return { id: `b${b}`, data, rows: rows[b]!, group: `g${b % groups}`, answered: mask[b]! };
      }),
    };
  });

function planOf(inst: Instance): PlannedBlock[] {
  return inst.blocks.map((b) => ({ id: b.id, group: b.group, summary: summarizeBlock(b.data, b.rows, inst.d) }));
}

/**
 * For a 1-dimensional statistic whose block value is `value(data, rows, d)`: over arbitrary instances, the sum's
 * and (when some block answered) the Hájek mean's intervals hold the true total and mean.
 */
function checkScalarStatistic(stat: VectorStatistic, value: (data: Float64Array, rows: number, d: number) => number): void {
  fc.assert(
    fc.property(instance, (inst) => {
      const acc = new VectorAccumulator(1, stat);
      let total = 0;
      let rows = 0;
      for (const b of inst.blocks) {
        const t = value(b.data, b.rows, inst.d);
        total += t;
        rows += b.rows;
        if (b.answered) acc.add(b.id, [t]);
      }
      const planned = planOf(inst);
      const s = acc.estimateSum(planned, { delta: DELTA });
      expect(Math.abs(s.value[0]! - total)).toBeLessThanOrEqual(s.epsilon * (1 + 1e-9) + 1e-9 * (1 + Math.abs(total)));
      if (acc.size > 0) {
        const m = acc.estimateMean(planned, { delta: DELTA });
        expect(Math.abs(m.value[0]! - total / rows)).toBeLessThanOrEqual(m.epsilon * (1 + 1e-9) + 1e-9 * (1 + Math.abs(total)));
      }
    }),
    { numRuns: 300 },
  );
}

describe('honesty: no bound is crossed on adversarial instances at δ = 1e-9', () => {
  it('Gram (spectral norm)', () => {
    fc.assert(
      fc.property(instance, (inst) => {
        const { d } = inst;
        const acc = new MatrixAccumulator(gramStatistic(d));
        const exact = new Float64Array(d * d);
        for (const b of inst.blocks) {
          const g = gram(b.data, b.rows, d);
          for (let k = 0; k < d * d; k++) exact[k]! += g[k]!;
          if (b.answered) acc.add(b.id, g);
        }
        const est = acc.estimate(planOf(inst), { delta: DELTA });
        const err = spectralNorm(
          est.value.map((v, k) => v - exact[k]!),
          d,
        );
        expect(err).toBeLessThanOrEqual(est.epsilon * (1 + 1e-7) + 1e-9 * spectralNorm(exact, d));
      }),
      { numRuns: 300 },
    );
  });

  it('Gram with summaries that place each scatter in a ball around a reference (pooled or arbitrary)', () => {
    fc.assert(
      fc.property(instance, fc.boolean(), fc.integer({ min: 1, max: 1_000_000 }), (inst, pooled, seed) => {
        const { d } = inst;
        // The reference: the pooled scatter of the blocks (plus a little of I, so its trace is positive), or a
        // random PSD matrix unrelated to the data.
        const ref = new Float64Array(d * d);
        if (pooled) for (const b of inst.blocks) centredScatter(b.data, b.rows, d).forEach((v, q) => (ref[q]! += v));
        else {
          const gauss = normal(mulberry32(seed));
          const g = Float64Array.from({ length: d * d }, () => gauss());
          for (let i = 0; i < d; i++)
            for (let j = 0; j < d; j++) for (let k = 0; k < d; k++) ref[i * d + j]! += g[i * d + k]! * g[j * d + k]!;
        }
        for (let i = 0; i < d; i++) ref[i * d + i]! += 1e-3;
        const reference = makeScatterReference(ref, d);
        const acc = new MatrixAccumulator(gramStatistic(d));
        const exact = new Float64Array(d * d);
        const planned: PlannedBlock[] = [];
        for (const b of inst.blocks) {
          const g = gram(b.data, b.rows, d);
          for (let k = 0; k < d * d; k++) exact[k]! += g[k]!;
          if (b.answered) acc.add(b.id, g);
          const summary = attachScatterRadius(summarizeBlock(b.data, b.rows, d), centredScatter(b.data, b.rows, d), reference);
          planned.push({ id: b.id, group: b.group, summary });
        }
        const est = acc.estimate(planned, { delta: DELTA });
        const err = spectralNorm(
          est.value.map((v, k) => v - exact[k]!),
          d,
        );
        expect(err).toBeLessThanOrEqual(est.epsilon * (1 + 1e-7) + 1e-9 * spectralNorm(exact, d));
      }),
      { numRuns: 300 },
    );
  });

  it('column sums and means', () => {
    fc.assert(
      fc.property(instance, (inst) => {
        const { d } = inst;
        const acc = new ColumnMomentsAccumulator(d);
        const planned = planOf(inst);
        const sums = new Float64Array(d);
        let rows = 0;
        planned.forEach((p, i) => {
          rows += p.summary.rows;
          for (let j = 0; j < d; j++) sums[j]! += p.summary.colSums[j]!;
          if (inst.blocks[i]!.answered) acc.add(p.id, p.summary);
        });
        const s = acc.sums(planned, { delta: DELTA });
        const scale = 1e-9 * (1 + Math.max(...Array.from(sums, Math.abs)));
        sums.forEach((v, j) => expect(Math.abs(s.value[j]! - v)).toBeLessThanOrEqual(s.epsilon + scale));
        if (acc.size > 0) {
          const m = acc.means(planned, { delta: DELTA });
          sums.forEach((v, j) => expect(Math.abs(m.value[j]! - v / rows)).toBeLessThanOrEqual(m.epsilon + scale / rows));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('a statistic whose summary interval is neither a point nor centred at 0 (Σ|a|; whole groups missing, unequal rows)', () => {
    // Σ_i |a_i0| ∈ [|Σ_i a_i0|, √(rows·Σ_i a_i0²)]: a group with no answer is taken at the interval's midpoint.
    const stat: VectorStatistic = {
      name: 'first-column-abs',
      dim: () => 1,
      interval: (s) => ({ lo: [Math.abs(s.colSums[0]!) * (1 - 1e-12)], hi: [Math.sqrt(s.rows * s.colSumSq[0]!) * (1 + 1e-12)] }),
    };
    checkScalarStatistic(stat, (data, rows, d) => {
      let t = 0;
      for (let i = 0; i < rows; i++) t += Math.abs(data[i * d]!);
      return t;
    });
  });

  it('a statistic known only in magnitude (sums and Hájek means, unequal rows)', () => {
    const stat = magnitudeBounded('first-column-signed', 1, (s) => [Math.sqrt(s.rows * s.colSumSq[0]!)]);
    checkScalarStatistic(stat, (data, rows, d) => {
      let t = 0;
      for (let i = 0; i < rows; i++) t += (i % 2 === 0 ? 1 : -1) * data[i * d]!;
      return t;
    });
  });
});
