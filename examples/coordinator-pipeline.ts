/**
 * A pipeline over four loopback depots started here: store a matrix as row blocks (two replicas each), then
 * run column means and the covariance through the coordinator, print each estimate as it refines, and
 * compare with the exact answer. One depot is stopped (SIGSTOP) halfway to show failures as sampling.
 *
 * Run: npm run build && node dist/examples/coordinator-pipeline.js
 */
import { lastValueFrom, tap } from 'rxjs';
import {
  Coordinator,
  IbpClient,
  ReliabilityStore,
  columnStatsJob,
  covarianceJob,
  startLoopbackDepots,
  summarizeBlock,
  type CoordinatorDataset,
  type CoordinatorDatasetBlock,
} from '../framework/index.js';
import { formatCapability } from '../ibp/index.js';

const BLOCKS = 32;
const ROWS = 200;
const COLS = 6;

const depots = await startLoopbackDepots(4, { capacity: '64MiB' });
const client = new IbpClient({ timeoutMs: 10_000 });
try {
  // 1. Data in place: each row block stored on two depots, with its ingest summary.
  const blocks: CoordinatorDatasetBlock[] = [];
  const all: number[][] = [];
  for (let b = 0; b < BLOCKS; b++) {
    const data = new Float64Array(ROWS * COLS);
    for (let i = 0; i < ROWS; i++) {
      const t = b * ROWS + i;
      const row = Array.from({ length: COLS }, (_, j) => Math.sin(0.01 * t * (j + 1)) + 0.1 * j);
      data.set(row, i * COLS);
      all.push(row);
    }
    const bytes = new Uint8Array(data.buffer);
    const replicas = await Promise.all(
      [depots.depots[b % 4]!, depots.depots[(b + 1) % 4]!].map(async (depot) => {
        const caps = await client.allocate(depot, { size: bytes.length, durationSec: 600 });
        await client.store(caps.write, bytes);
        return { depot, read: formatCapability(caps.read), allocOffset: 0, length: bytes.length };
      }),
    );
    blocks.push({
      index: b,
      rowStart: b * ROWS,
      rows: ROWS,
      bytes: bytes.length,
      replicas,
      summary: summarizeBlock(data, ROWS, COLS),
    });
  }
  const dataset: CoordinatorDataset = { name: 'waves', dtype: 'float64', rows: BLOCKS * ROWS, cols: COLS, blocks };

  // 2. A coordinator with an in-memory reliability history.
  const coordinator = await Coordinator.open({
    client,
    reliabilityPath: null,
    reliability: new ReliabilityStore({ clock: Date }),
  });

  // 3. Column means, refined as blocks answer; a depot stops answering after the first partial estimate.
  let stopped = false;
  const means = await lastValueFrom(
    coordinator.run(columnStatsJob(dataset, 'means'), { opTimeoutMs: 500, concurrency: 4, partialIntervalMs: 0 }).pipe(
      tap((e) => {
        console.log(
          `${e.final ? 'final  ' : 'partial'} blocks ${e.blocksUsed}/${BLOCKS} ε=${e.epsilon.toExponential(2)} coverage=${e.coverage.toFixed(3)}`,
        );
        if (!stopped) {
          stopped = true;
          depots.pause(2);
        }
      }),
    ),
  );
  const exact = Array.from({ length: COLS }, (_, j) => all.reduce((s, r) => s + r[j]!, 0) / all.length);
  const err = Math.max(...exact.map((m, j) => Math.abs(m - means.value[j]!)));
  console.log(`means: max error ${err.toExponential(2)} ≤ ε ${means.epsilon.toExponential(2)}: ${err <= means.epsilon}`);

  // 4. Covariance from in-locus Gram matrices; hedging now asks the stopped depot's replicas elsewhere.
  const cov = await lastValueFrom(coordinator.run(covarianceJob(dataset), { opTimeoutMs: 500 }));
  console.log(
    `covariance: ε=${cov.epsilon.toExponential(2)} (${cov.norm}), coverage ${cov.coverage.toFixed(3)}, ${cov.bytesMoved} bytes moved`,
  );
  console.log(`the data itself: ${BLOCKS * ROWS * COLS * 8} bytes, never moved`);
  depots.resume(2);
  await coordinator.close();
} finally {
  client.close();
  await depots.stop();
}
