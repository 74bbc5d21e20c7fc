import { describe, expect, it } from 'vitest';
import {
  ColumnMomentsAccumulator,
  estimateCovariance,
  gramStatistic,
  MatrixAccumulator,
} from '../../framework/estimation/index.js';
import { plan, syntheticMatrix } from './synthetic.js';
import { lastValueFrom, of } from 'rxjs';
import { ReliabilityStore } from '../../framework/estimation/index.js';
import { runJob } from '../../framework/coordinator/run-job.js';
import { columnStatsJob } from '../../framework/coordinator/column-stats-job.js';
import { covarianceJob, gramJob } from '../../framework/coordinator/gram-job.js';
import { storeReliability } from '../../framework/coordinator/store-reliability.js';
import type { Job } from '../../framework/coordinator/job.js';
import type { OpAnswer, OpRunner } from '../../framework/coordinator/op-runner.js';
import { blockData, columnStatsBytes, fakeDataset, gramBytes } from '../coordinator/fixtures.js';

const D = 4;
const blocks = syntheticMatrix(11, 10, 25, D, 3);
const planned = plan(blocks);
// The same plan as summaries without the exact scatter (older exNodes): a missing block's Gram is then bounded.
const plannedBounded = planned.map((p) => {
  const summary = { ...p.summary };
  delete summary.exactScatter;
  return { ...p, summary };
});
const totalRows = blocks.reduce((n, b) => n + b.rows, 0);

function estimates(answered: (i: number) => boolean, planned = plannedBounded) {
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

  it('is 0 for the Gram when blocks are missing but every missing summary holds its exact scatter', () => {
    const e = estimates((i) => i % 4 !== 1, planned);
    expect(e.gram.blocksMissing).toBeGreaterThan(0);
    expect(e.gram.parts.sampling).toEqual({ epsilon: 0, delta: 0 });
    expect(e.gram.delta).toBe(0);
    expect(e.gram.parts.rounding!.epsilon).toBeGreaterThan(0);
    // The means of the missing blocks are still weighted here: the covariance keeps their δ only.
    expect(e.covariance.delta).toBe(e.means.delta);
  });

  it('keeps a sketch part’s own δ at full coverage', () => {
    const moments = new ColumnMomentsAccumulator(D);
    for (const b of blocks) moments.add(b.id, b.summary, 100);
    const e = moments.sums(planned, { delta: 0.05, sketch: { epsilon: 0.5, delta: 0.01 } });
    expect(e.parts.sampling.delta).toBe(0);
    expect(e.delta).toBeCloseTo(0.01, 12);
  });
});

describe('δ of the coordinator jobs at full coverage', () => {
  const COLS = 3;
  const data = blockData(12, 5, COLS, 7);
  const runner: OpRunner = {
    run: (attempt) =>
      of<OpAnswer>({
        output:
          attempt.op.name === 'gram'
            ? gramBytes(data[attempt.block.index]!, COLS)
            : columnStatsBytes(data[attempt.block.index]!, COLS),
        wireBytes: 10,
        ranOn: `127.0.0.1:${attempt.replica.depot.port}`,
        transferred: false,
      }),
  };
  const dataset = fakeDataset(data, COLS, (b) => [7001 + (b % 2)]);
  const jobs: [string, Job<Float64Array>][] = [
    ['covariance', covarianceJob(dataset)],
    ['gram', gramJob(dataset)],
    ['column sums', columnStatsJob(dataset, 'sums')],
    ['column means', columnStatsJob(dataset, 'means')],
    ['column variances', columnStatsJob(dataset, 'variances')],
  ];
  for (const [name, job] of jobs) {
    it(`${name}: every block answered, δ 0`, async () => {
      const store = new ReliabilityStore({ clock: { now: () => Date.now() } });
      const e = await lastValueFrom(runJob(job, { runner, reliability: storeReliability(store), defaultHedgeMs: 1 }));
      expect(e.coverage).toBe(1);
      expect(e.parts.sampling.delta).toBe(0);
      expect(e.delta).toBe(0);
    });
  }
});
