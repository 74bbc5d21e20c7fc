import { lastValueFrom } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IbpClient, formatCapability, type DepotAddress } from '../../ibp/index.js';
import { CoordinatorErrorCode, ReliabilityStore, summarizeBlock } from '../../framework/estimation/index.js';
import { startLoopbackDepots, type LoopbackDepots } from '../../framework/dataset/loopback-depots.js';
import { Coordinator } from '../../framework/coordinator/coordinator.js';
import { columnStatsJob } from '../../framework/coordinator/column-stats-job.js';
import { gramJob } from '../../framework/coordinator/gram-job.js';
import type { Dataset, DatasetBlock } from '../../framework/coordinator/dataset-shape.js';
import { IbpLocus, InProcessLocus } from '../../algorithms/locus.js';
import { blockData, exact, maxAbsDiff } from './fixtures.js';

const COLS = 3;
const ROWS = 40;

async function upload(client: IbpClient, data: Float64Array[], depots: readonly DepotAddress[]): Promise<Dataset> {
  const blocks: DatasetBlock[] = [];
  let rowStart = 0;
  for (const [index, d] of data.entries()) {
    const bytes = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
    const depot = depots[index % depots.length]!;
    const caps = await client.allocate(depot, { size: bytes.length, durationSec: 600 });
    await client.store(caps.write, bytes);
    const replicas = [{ depot, read: formatCapability(caps.read), allocOffset: 0, length: bytes.length }];
    blocks.push({ index, rowStart, rows: ROWS, bytes: bytes.length, replicas, summary: summarizeBlock(d, ROWS, COLS) });
    rowStart += ROWS;
  }
  return { name: 'locus', dtype: 'float64', rows: rowStart, cols: COLS, blocks };
}

describe('a coordinator opened with the locus runner (as docs/algorithms.md shows)', () => {
  let depots: LoopbackDepots;
  let client: IbpClient;
  let dataset: Dataset;
  const data = blockData(6, ROWS, COLS, 5);
  const truth = exact(data, COLS);

  beforeAll(async () => {
    depots = await startLoopbackDepots(2, { capacity: '8MiB' });
    client = new IbpClient({ timeoutMs: 5_000 });
    dataset = await upload(client, data, depots.depots);
  }, 30_000);
  afterAll(async () => {
    client?.close();
    await depots?.stop();
  });

  it('runs the ordinary catalogue jobs (column stats, Gram) and records no failure', async () => {
    const store = new ReliabilityStore({ clock: { now: () => Date.now() } });
    const coordinator = await Coordinator.open({ runner: new IbpLocus(client), reliability: store, reliabilityPath: null });
    const means = await lastValueFrom(coordinator.run(columnStatsJob(dataset, 'means')));
    expect(means.blocksUsed).toBe(6);
    expect(maxAbsDiff(means.value, truth.means)).toBeLessThanOrEqual(1e-12);
    const g = await lastValueFrom(coordinator.run(gramJob(dataset)));
    expect(g.blocksUsed).toBe(6);
    expect(maxAbsDiff(g.value, truth.gram)).toBeLessThanOrEqual(1e-9 * Math.max(...truth.gram));
    for (const d of depots.depots) expect(store.depot(`${d.host}:${d.port}`).failures).toBe(0);
    await coordinator.close();
  });

  it('a runner that cannot run plain ops fails the job with COORD_E_INVALID_ARGUMENT, not as depot failures', async () => {
    const store = new ReliabilityStore({ clock: { now: () => Date.now() } });
    const coordinator = await Coordinator.open({
      runner: new InProcessLocus(new Map()),
      reliability: store,
      reliabilityPath: null,
    });
    await expect(lastValueFrom(coordinator.run(gramJob(dataset)))).rejects.toMatchObject({
      code: CoordinatorErrorCode.INVALID_ARGUMENT,
      message: expect.stringContaining('is not an algorithms op'),
    });
    for (const d of depots.depots) expect(store.depot(`${d.host}:${d.port}`).failures).toBe(0);
    await coordinator.close();
  });
});
