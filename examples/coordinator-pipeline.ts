/**
 * A pipeline over four loopback depots started here: store a matrix as row blocks, then run column means and
 * the covariance through the coordinator, print each estimate as it refines, and compare with the exact answer.
 * Blocks 2, 6, 10, … have a single replica on depot 2; the others two replicas on the other depots. The first
 * run has every depot answering: the sampling error is 0 and ε is only the floating-point rounding allowance.
 * Then depot 2 is stopped (SIGSTOP): its blocks go missing, and the estimates treat them as missing samples
 * (coverage < 1, ε grows) — failures as sampling.
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
  type Estimate,
} from '../framework/index.js';
import { formatCapability } from '../ibp/index.js';

const BLOCKS = 32;
const ROWS = 200;
const COLS = 6;
const PAUSED = 2;

/** Σ xs with Neumaier's compensated summation: the exact reference to compare with (error ≈ u·|Σ|). */
function accurateSum(xs: Iterable<number>): number {
  let s = 0;
  let c = 0;
  for (const x of xs) {
    const t = s + x;
    c += Math.abs(s) >= Math.abs(x) ? s - t + x : x - t + s;
    s = t;
  }
  return s + c;
}

const line = (e: Estimate<Float64Array>): string =>
  `${e.final ? 'final  ' : 'partial'} blocks ${e.blocksUsed}/${BLOCKS} answered (${e.blocksMissing} ${e.final ? 'missing' : 'pending or missing'}) ` +
  `coverage=${e.coverage.toFixed(3)} ε=${e.epsilon.toExponential(2)} (sampling ${e.parts.sampling.epsilon.toExponential(2)}, rounding ${(e.parts.rounding?.epsilon ?? 0).toExponential(2)})`;

const depots = await startLoopbackDepots(4, { capacity: '64MiB' });
const client = new IbpClient({ timeoutMs: 10_000 });
try {
  // 1. Data in place: each row block stored with its ingest summary; blocks b ≡ 2 (mod 4) only on depot 2.
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
    const placement =
      b % 4 === PAUSED
        ? [depots.depots[PAUSED]!]
        : [depots.depots[b % 4]!, depots.depots[(b + 1) % 4 === PAUSED ? 3 : (b + 1) % 4]!];
    const replicas = await Promise.all(
      placement.map(async (depot) => {
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
  const n = all.length;
  const exactMeans = Array.from({ length: COLS }, (_, j) => accurateSum(all.map((r) => r[j]!)) / n);
  const exactCov = Array.from({ length: COLS * COLS }, (_, k) => {
    const [p, q] = [Math.floor(k / COLS), k % COLS];
    return accurateSum(all.map((r) => (r[p]! - exactMeans[p]!) * (r[q]! - exactMeans[q]!))) / (n - 1);
  });
  const maxError = (v: Float64Array, exact: number[]) => Math.max(...exact.map((x, k) => Math.abs(x - v[k]!)));

  // 2. A coordinator with an in-memory reliability history.
  const coordinator = await Coordinator.open({
    client,
    reliabilityPath: null,
    reliability: new ReliabilityStore({ clock: Date }),
  });
  const options = { opTimeoutMs: 500, concurrency: 4, partialIntervalMs: 0 };

  // 3. Column means with every depot answering: exact up to floating-point rounding, which ε allows for.
  const all4 = await lastValueFrom(coordinator.run(columnStatsJob(dataset, 'means'), options));
  console.log(line(all4));
  const e0 = maxError(all4.value, exactMeans);
  console.log(`means, all depots: max error ${e0.toExponential(2)} ≤ ε ${all4.epsilon.toExponential(2)}: ${e0 <= all4.epsilon}`);

  // 4. Depot 2 stops answering: its single-replica blocks go missing (the others are asked on their second
  //    replica); the estimate reweights what arrived and widens ε.
  depots.pause(PAUSED);
  const means = await lastValueFrom(
    coordinator.run(columnStatsJob(dataset, 'means'), options).pipe(tap((e) => console.log(line(e)))),
  );
  const e1 = maxError(means.value, exactMeans);
  console.log(
    `means, depot ${PAUSED} stopped: ${means.blocksMissing} of ${BLOCKS} blocks missing, coverage ${means.coverage.toFixed(3)}; ` +
      `max error ${e1.toExponential(2)} ≤ ε ${means.epsilon.toExponential(2)}: ${e1 <= means.epsilon}`,
  );

  // 5. Covariance from in-locus Gram matrices, depot 2 still stopped.
  const cov = await lastValueFrom(coordinator.run(covarianceJob(dataset), { opTimeoutMs: 500 }));
  const e2 = maxError(cov.value, exactCov);
  console.log(
    `covariance, depot ${PAUSED} stopped: ${cov.blocksMissing} of ${BLOCKS} blocks missing, coverage ${cov.coverage.toFixed(3)}, ` +
      `max entry error ${e2.toExponential(2)} ≤ ε ${cov.epsilon.toExponential(2)} (${cov.norm}): ${e2 <= cov.epsilon}; ${cov.bytesMoved} bytes moved`,
  );
  console.log(`the data itself: ${BLOCKS * ROWS * COLS * 8} bytes, never moved`);
  depots.resume(PAUSED);
  await coordinator.close();
} finally {
  client.close();
  await depots.stop();
}
