import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lastValueFrom, tap } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IbpClient, formatCapability, type DepotAddress } from '../../ibp/index.js';
import { ReliabilityStore, summarizeBlock } from '../../framework/estimation/index.js';
import { startLoopbackDepots, type LoopbackDepots } from '../../framework/dataset/loopback-depots.js';
import { Coordinator } from '../../framework/coordinator/coordinator.js';
import { columnStatsJob } from '../../framework/coordinator/column-stats-job.js';
import { gramJob } from '../../framework/coordinator/gram-job.js';
import type { Dataset, DatasetBlock } from '../../framework/coordinator/dataset-shape.js';
import { tempDir } from '../helpers/temp-dir.js';
import { blockData, exact, maxAbsDiff } from './fixtures.js';

const COLS = 4;
const ROWS = 50;

/** Stores each block on the depots `placement(b)` and describes the dataset. */
async function upload(client: IbpClient, data: Float64Array[], placement: (b: number) => DepotAddress[]): Promise<Dataset> {
  const blocks: DatasetBlock[] = [];
  let rowStart = 0;
  for (const [index, d] of data.entries()) {
    const bytes = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
    const replicas = await Promise.all(
      placement(index).map(async (depot) => {
        const caps = await client.allocate(depot, { size: bytes.length, durationSec: 600 });
        await client.store(caps.write, bytes);
        return {
          depot,
          read: formatCapability(caps.read),
          manage: formatCapability(caps.manage),
          allocOffset: 0,
          length: bytes.length,
        };
      }),
    );
    blocks.push({ index, rowStart, rows: ROWS, bytes: bytes.length, replicas, summary: summarizeBlock(d, ROWS, COLS) });
    rowStart += ROWS;
  }
  return { name: 'loopback', dtype: 'float64', rows: rowStart, cols: COLS, blocks };
}

describe('coordinator against loopback depot processes', () => {
  const dir = tempDir('anvil-coord-');
  let depots: LoopbackDepots;
  let noNfu: LoopbackDepots;
  let client: IbpClient;
  const data = blockData(24, ROWS, COLS, 11);
  const truth = exact(data, COLS);

  beforeAll(async () => {
    const config = join(dir.path, 'no-nfu.toml');
    writeFileSync(config, '[nfu]\nenable = []\n');
    [depots, noNfu] = await Promise.all([
      startLoopbackDepots(4, { capacity: '16MiB' }),
      startLoopbackDepots(1, { capacity: '16MiB', extraArgs: ['--config', config] }),
    ]);
    client = new IbpClient({ timeoutMs: 5_000 });
  }, 30_000);
  afterAll(async () => {
    client?.close();
    await Promise.all([depots?.stop(), noNfu?.stop()]);
    dir.cleanup();
  });

  const open = (extra: { helpers?: DepotAddress[] } = {}) =>
    Coordinator.open({
      client,
      reliabilityPath: null,
      reliability: new ReliabilityStore({ clock: { now: () => Date.now() } }),
      ...extra,
    });

  it('column means and the Gram matrix equal the exact answer when every depot answers', async () => {
    const ds = await upload(client, data, (b) => [depots.depots[b % 4]!]);
    const coordinator = await open();
    const means = await lastValueFrom(coordinator.run(columnStatsJob(ds, 'means')));
    expect(means.final).toBe(true);
    expect(means.coverage).toBe(1);
    expect(means.blocksMissing).toBe(0);
    expect(maxAbsDiff(means.value, truth.means)).toBeLessThan(1e-12);
    const gram = await lastValueFrom(coordinator.run(gramJob(ds)));
    expect(maxAbsDiff(gram.value, truth.gram)).toBeLessThan(1e-9 * Math.max(...truth.gram));
    expect(gram.parts.sampling.epsilon).toBe(0); // every block answered: only the rounding allowance is left
    expect(gram.epsilon).toBe(gram.parts.rounding?.epsilon ?? 0);
    // Each op moves its attribute JSON, a cap, and the reply; the block itself never moves.
    expect(gram.bytesMoved).toBeGreaterThan(24 * COLS * COLS * 8);
    expect(gram.bytesMoved).toBeLessThan(24 * (COLS * COLS * 8 + 600));
    await coordinator.close();
  });

  it('transfers a block to a depot offering the op when its depot does not, and releases the copy', async () => {
    const ds = await upload(client, data.slice(0, 3), () => [noNfu.depots[0]!]);
    const coordinator = await open({ helpers: [depots.depots[0]!] });
    const before = (await client.status(depots.depots[0]!)).resources[0]!.usedBytes;
    const means = await lastValueFrom(coordinator.run(columnStatsJob(ds, 'sums')));
    expect(means.coverage).toBe(1);
    expect(maxAbsDiff(means.value, exact(data.slice(0, 3), COLS).sums)).toBeLessThan(1e-9);
    const blockBytes = ds.blocks.reduce((s, b) => s + b.bytes, 0);
    expect(means.bytesMoved).toBeGreaterThan(blockBytes);
    expect(means.sources.map((s) => s.id)).toEqual([`${depots.depots[0]!.host}:${depots.depots[0]!.port}`]);
    expect((await client.status(depots.depots[0]!)).resources[0]!.usedBytes).toBe(before);
    await coordinator.close();
  });

  it('completes when depots are killed and stopped mid-job; coverage shows the loss and the error is within ε', async () => {
    const ds = await upload(client, data, (b) => [depots.depots[b % 4]!]);
    const coordinator = await open();
    let hit = false;
    const job$ = coordinator
      .run(columnStatsJob(ds, 'means'), { opTimeoutMs: 1_000, concurrency: 2, partialEvery: 1, partialIntervalMs: 0 })
      .pipe(
        tap(() => {
          if (hit) return;
          hit = true;
          void depots.kill(2);
          depots.pause(3);
        }),
      );
    try {
      const final = await lastValueFrom(job$);
      expect(final.final).toBe(true);
      expect(final.blocksMissing).toBeGreaterThan(0);
      expect(final.coverage).toBeLessThan(1);
      expect(final.coverage).toBeGreaterThan(0);
      expect(final.blocksUsed + final.blocksMissing).toBe(24);
      expect(maxAbsDiff(final.value, truth.means)).toBeLessThanOrEqual(final.epsilon);
      expect(coordinator.store.depot(`127.0.0.1:${depots.depots[3]!.port}`).failures).toBeGreaterThan(0);
    } finally {
      depots.resume(3);
      await coordinator.close();
    }
  }, 20_000);
});
