import { lastValueFrom } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { ReliabilityStore, summarizeBlock } from '../../framework/estimation/index.js';
import { simulateSensorField } from '../../framework/dataset/index.js';
import { Coordinator } from '../../framework/coordinator/coordinator.js';
import { RobustPcaState, TRUST_WEIGHT, robustCovarianceJob } from '../../framework/coordinator/robust-covariance-job.js';
import type { Dataset, DatasetBlock } from '../../framework/coordinator/dataset-shape.js';
import { LocalKernelRunner, maxAbsDiff } from './fixtures.js';

const BLOCK_ROWS = 100;

/** Every source's rows as blocks of BLOCK_ROWS rows (source recorded), a site's blocks on one fake depot. */
function fieldDataset(field: ReturnType<typeof simulateSensorField>): { dataset: Dataset; data: Float64Array[] } {
  const d = field.options.channels;
  const data: Float64Array[] = [];
  const blocks: DatasetBlock[] = [];
  let rowStart = 0;
  for (const r of field.rows) {
    const port = 100 + field.sites.indexOf(r.site);
    for (let start = 0; start < r.rows; start += BLOCK_ROWS) {
      const rows = Math.min(BLOCK_ROWS, r.rows - start);
      const block = r.data.slice(start * d, (start + rows) * d);
      data.push(block);
      blocks.push({
        index: blocks.length,
        rowStart,
        rows,
        bytes: block.byteLength,
        replicas: [
          {
            depot: { host: '127.0.0.1', port },
            read: `ibp://127.0.0.1:${port}/0#b${blocks.length}/0/READ`,
            allocOffset: 0,
            length: block.byteLength,
          },
        ],
        summary: summarizeBlock(block, rows, d),
        source: r.source,
      });
      rowStart += rows;
    }
  }
  return { dataset: { name: 'field', dtype: 'float64', rows: rowStart, cols: d, blocks }, data };
}

/** The sample covariance (G − s sᵀ/n)/(n − 1) of the clean rows, the covariance job's convention. */
function cleanCovariance(field: ReturnType<typeof simulateSensorField>): Float64Array {
  const { gram, colSums, rows } = field.truth.clean;
  const d = field.options.channels;
  return Float64Array.from({ length: d * d }, (_, i) => {
    const p = Math.floor(i / d);
    const q = i % d;
    return (gram[i]! - (colSums[p]! * colSums[q]!) / rows) / (rows - 1);
  });
}

describe('a source sending garbage loses weight over iterations and the estimate converges to the clean answer', () => {
  it('robust covariance over a simulated sensor field with garbage sources', async () => {
    const field = simulateSensorField({
      seed: 11,
      sites: 2,
      sensorsPerSite: 5,
      channels: 6,
      factors: 2,
      rowsPerSensor: 600,
      faultRates: { garbage: 0.2 },
      faultOnsetRow: 0,
    });
    const garbage = field.truth.faulty.filter((f) => f.fault === 'garbage').map((f) => f.source);
    expect(garbage.length).toBeGreaterThan(0);
    expect(field.truth.faulty.length).toBe(garbage.length);
    const { dataset, data } = fieldDataset(field);
    let now = 0;
    const store = new ReliabilityStore({ clock: { now: () => now } });
    const coordinator = await Coordinator.open({
      runner: new LocalKernelRunner(data),
      reliabilityPath: null,
      reliability: store,
    });
    const state = new RobustPcaState(store, 2);
    const truth = cleanCovariance(field);
    const scale = Math.max(...truth.map(Math.abs));
    const errors: number[] = [];
    const weights: number[][] = [];
    let last;
    for (let i = 0; i < 4; i++) {
      last = await lastValueFrom(coordinator.run(robustCovarianceJob(dataset, state)));
      errors.push(maxAbsDiff(last.value, truth) / scale);
      weights.push(garbage.map((s) => store.sourceWeight(s)));
      now += 1_000;
    }
    // The first run trusts everyone: the garbage is in the estimate.
    expect(errors[0]).toBeGreaterThan(0.1);
    // The garbage sources' weights fall below the trust threshold and stay there…
    for (const w of weights.slice(1)) for (const x of w) expect(x).toBeLessThan(TRUST_WEIGHT);
    // …while every healthy source keeps its weight.
    for (const s of field.sources.map((x) => x.id).filter((id) => !garbage.includes(id))) {
      expect(store.sourceWeight(s)).toBeGreaterThanOrEqual(TRUST_WEIGHT);
    }
    // Then the estimate is the clean sources' covariance (to rounding), and it names what it left out.
    expect(errors[3]).toBeLessThan(1e-9);
    expect(last!.method).toContain(`left out ${garbage.length} source(s)`);
    for (const s of garbage) expect(last!.method).toContain(s);
    await coordinator.close();
  });
});
