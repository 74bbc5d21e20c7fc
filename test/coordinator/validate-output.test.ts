import { lastValueFrom } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { ReliabilityStore } from '../../framework/estimation/index.js';
import { Coordinator } from '../../framework/coordinator/coordinator.js';
import { columnStatsJob } from '../../framework/coordinator/column-stats-job.js';
import { covarianceJob, gramJob } from '../../framework/coordinator/gram-job.js';
import { sketchJob, type SketchKind } from '../../framework/coordinator/sketch-job.js';
import { projectionJob } from '../../framework/coordinator/projection-job.js';
import type { Job } from '../../framework/coordinator/job.js';
import type { OpAttempt } from '../../framework/coordinator/op-runner.js';
import { LocalKernelRunner, blockData, exact, fakeDataset, maxAbsDiff, seeded } from './fixtures.js';

const COLS = 5;
const ROWS = 40;

/** The honest op output of a block, from the in-process kernel. */
async function honest(job: Job<Float64Array>, data: (Float64Array | Float32Array)[], b: number): Promise<Uint8Array> {
  const runner = new LocalKernelRunner(data);
  const block = job.dataset.blocks[b]!;
  const attempt: OpAttempt = { dataset: job.dataset, block, replica: block.replicas[0]!, op: job.op, timeoutMs: 1000 };
  return (await runner.execute(attempt)).output;
}

/** Float32 copies of float64 blocks with a wide dynamic range (rounding in float32 kernels shows). */
function float32Data(blocks: number, seed: number): Float32Array[] {
  const rand = seeded(seed);
  return Array.from({ length: blocks }, () =>
    Float32Array.from({ length: ROWS * COLS }, (_, i) => (i % COLS === 0 ? 1e4 : 1) * (rand() - 0.3)),
  );
}

const jobs = (ds: ReturnType<typeof fakeDataset>): [string, Job<Float64Array>][] => [
  ['column-stats', columnStatsJob(ds, 'sums')],
  ['gram', gramJob(ds)],
  ['covariance', covarianceJob(ds)],
  [
    'projection',
    projectionJob(
      ds,
      Float64Array.from({ length: COLS * 2 }, (_, i) => i - 3),
      2,
    ),
  ],
  ...(['gaussian', 'sparse-sign', 'count-sketch', 'srht'] as SketchKind[]).map((kind): [string, Job<Float64Array>] => [
    `sketch ${kind}`,
    sketchJob(ds, { kind, k: 8, seed: 3, s: 2 }),
  ]),
];

describe('plausibility checks of op outputs against the ingest summaries', () => {
  for (const [dtype, data] of [
    ['float64', blockData(6, ROWS, COLS, 21)],
    ['float32', float32Data(6, 22)],
  ] as const) {
    const ds = fakeDataset(data, COLS, () => [100]);
    for (const [name, job] of jobs(ds)) {
      it(`accepts every honest ${name} output of ${dtype} blocks`, async () => {
        for (let b = 0; b < data.length; b++) expect(job.validate!(ds.blocks[b]!, await honest(job, data, b))).toBeUndefined();
      });
    }
  }

  it('rejects every byte flip of a Gram output that moves a value beyond rounding', async () => {
    const data = blockData(2, ROWS, COLS, 5);
    const ds = fakeDataset(data, COLS, () => [100]);
    const job = gramJob(ds);
    const out = await honest(job, data, 1);
    const values = new Float64Array(out.buffer.slice(0));
    const scale = Math.max(...values.map(Math.abs));
    let rejected = 0;
    for (let byte = 0; byte < out.length; byte++) {
      for (const mask of [0x01, 0x10, 0x80, 0xff]) {
        const bad = out.slice();
        bad[byte]! ^= mask;
        const changed = new Float64Array(bad.buffer);
        const i = Math.floor(byte / 8);
        const moved = Math.abs(changed[i]! - values[i]!);
        const verdict = job.validate!(ds.blocks[1]!, bad);
        // Anything that moves an entry by more than 1e-12 of the matrix scale must be caught.
        if (!(moved <= 1e-12 * scale)) expect(verdict, `byte ${byte} mask ${mask}`).toBeDefined();
        if (verdict !== undefined) rejected++;
      }
    }
    expect(rejected).toBeGreaterThan(out.length * 2);
  });

  it('rejects every byte flip of the column sums, sums of squares, counts and centred sums of squares', async () => {
    const data = blockData(1, ROWS, COLS, 6);
    const ds = fakeDataset(data, COLS, () => [100]);
    const job = columnStatsJob(ds, 'variances');
    const out = await honest(job, data, 0);
    const values = new Float64Array(out.buffer.slice(0));
    for (let byte = 0; byte < out.length; byte++) {
      const i = Math.floor(byte / 8);
      const row = Math.floor(i / COLS);
      // min and max (rows 3, 4) are only bounded by ±maxAbs; the estimators never use them.
      if (row === 3 || row === 4) continue;
      for (const mask of [0x01, 0x40, 0x80, 0xff]) {
        const bad = out.slice();
        bad[byte]! ^= mask;
        const moved = Math.abs(new Float64Array(bad.buffer)[i]! - values[i]!);
        if (!(moved <= 1e-12 * Math.abs(values[i]!))) expect(job.validate!(ds.blocks[0]!, bad), `byte ${byte}`).toBeDefined();
      }
    }
  });

  it('rejects a sketch whose column norms exceed ‖S_b‖·‖a_j‖, non-finite values and wrong lengths', async () => {
    const data = blockData(1, ROWS, COLS, 7);
    const ds = fakeDataset(data, COLS, () => [100]);
    const job = sketchJob(ds, { kind: 'count-sketch', k: 8, seed: 1 });
    const out = await honest(job, data, 0);
    const big = new Float64Array(out.buffer.slice(0));
    big[3]! *= 1e3;
    expect(job.validate!(ds.blocks[0]!, new Uint8Array(big.buffer))).toMatch(/column 3 has norm/);
    const nan = new Float64Array(out.buffer.slice(0));
    nan[0] = Number.NaN;
    expect(job.validate!(ds.blocks[0]!, new Uint8Array(nan.buffer))).toMatch(/not finite/);
    expect(job.validate!(ds.blocks[0]!, out.subarray(0, 16))).toMatch(/bytes, expected/);
  });
});

describe('the engine treats an implausible answer as a failed attempt', () => {
  const data = blockData(12, ROWS, COLS, 31);
  const truth = exact(data, COLS);

  const open = (runner: LocalKernelRunner) =>
    Coordinator.open({
      runner,
      reliabilityPath: null,
      reliability: new ReliabilityStore({ clock: { now: () => Date.now() } }),
    });

  it('retries a block whose reply was corrupted on another replica; the answer is exact', async () => {
    // Every block on depots 100 and 101; replies from 100 have a flipped byte.
    const ds = fakeDataset(data, COLS, (b) => (b % 2 === 0 ? [100, 101] : [101, 100]));
    const runner = new LocalKernelRunner(data, (port) => port === 100, 9);
    const coordinator = await open(runner);
    const gram = await lastValueFrom(coordinator.run(gramJob(ds), { defaultHedgeMs: 10_000 }));
    expect(runner.corrupted.length).toBeGreaterThan(0);
    expect(gram.coverage).toBe(1);
    expect(gram.parts.sampling.epsilon).toBe(0); // every block answered: only the rounding allowance is left
    expect(gram.epsilon).toBe(gram.parts.rounding?.epsilon ?? 0);
    expect(maxAbsDiff(gram.value, truth.gram)).toBeLessThan(1e-9 * Math.max(...truth.gram));
    expect(coordinator.store.depot('127.0.0.1:100').failures).toBeGreaterThan(0);
    expect(coordinator.store.depot('127.0.0.1:101').failures).toBe(0);
    const metrics = await coordinator.metrics.registry.getSingleMetricAsString('anvil_coordinator_ops_total');
    expect(metrics).toMatch(/depot="127\.0\.0\.1:100",outcome="invalid"} [1-9]/);
    await coordinator.close();
  });

  it('a block whose only replica answers garbage is missing, and the bound covers the loss', async () => {
    const ds = fakeDataset(data, COLS, (b) => [b < 3 ? 200 : 201]);
    const runner = new LocalKernelRunner(data, (port) => port === 200, 10);
    const coordinator = await open(runner);
    const gram = await lastValueFrom(coordinator.run(gramJob(ds)));
    expect(gram.blocksMissing).toBe(3);
    expect(gram.coverage).toBeLessThan(1);
    expect(maxAbsDiff(gram.value, truth.gram)).toBeLessThanOrEqual(gram.epsilon);
    await coordinator.close();
  });
});
