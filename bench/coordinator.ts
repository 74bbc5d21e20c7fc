/**
 * Coordinator overhead and ingest rate over 16 loopback depots, small blocks.
 *
 * - `coordinator_ops_per_s`: column-stats NFU ops per second through `Coordinator.run` (one op per block).
 * - `raw_ops_per_s`: the same ops from a plain loop of `runKernel` calls with the same concurrency, same run.
 * - `ingest_rows_per_s`: rows per second stored as row blocks with their ingest summaries computed.
 * - `raw_store_rows_per_s`: the same rows per second as raw STOREs.
 * - `engine_us_per_block`: the coordinator's own cost per block (planning, attempt bookkeeping, timers,
 *   reliability, metrics, estimator) with an in-process runner answering precomputed outputs — no network,
 *   so it does not depend on how busy the depots are.
 * Rounds run both forms (alternating which goes first) until `--seconds` (default 6) per measure are spent;
 * `overhead_ratio` is over the totals, `overhead_ratio_median` the median of the per-round ratios.
 * Usage: node dist/bench/coordinator.js [--json] [--seconds N] [--blocks N]
 */
import { from, lastValueFrom } from 'rxjs';
import { columnStats } from '../nfu-kernels/index.js';
import {
  Coordinator,
  IbpClient,
  IbpOpRunner,
  ReliabilityStore,
  columnStatsJob,
  depotId,
  runKernel,
  summarizeBlock,
  type CoordinatorDataset,
  type CoordinatorDatasetBlock,
  type DepotAddress,
  type OpAnswer,
  type OpAttempt,
  type OpRunner,
} from '../framework/index.js';
import { formatCapability } from '../ibp/index.js';
import { startDepotProcess } from './lib/depot-process.js';
import { benchArgs } from './lib/args.js';

const { json, flag } = benchArgs();
const SECONDS = flag('--seconds', 6);
const BLOCKS = flag('--blocks', 512);
const DEPOTS = 16;
const ROWS = 64;
const COLS = 8;
const CONCURRENCY = 64;
const PER_DEPOT = 8;
/** Per-op timeout of the coordinator runs: as patient as the plain loop's client (a busy machine is slow, not down). */
const OP_TIMEOUT_MS = 30_000;

function rowBlock(b: number): Float64Array {
  const d = new Float64Array(ROWS * COLS);
  for (let i = 0; i < d.length; i++) d[i] = Math.sin(b * 7919 + i);
  return d;
}

async function pool<T>(items: readonly T[], limit: number, fn: (t: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

/** Microseconds of coordinator work per block, with an in-process runner answering at once. */
async function engineMicrosPerBlock(dataset: CoordinatorDataset, data: Float64Array[], seconds: number): Promise<number> {
  const outputs = data.map((d) => {
    const out = columnStats({ dtype: 'float64', rows: ROWS, cols: COLS, k: 1, seed: 0, rowOffset: 0, s: 1, blockId: 0 }, d);
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  });
  const execute = (a: OpAttempt): Promise<OpAnswer> =>
    Promise.resolve({ output: outputs[a.block.index]!, wireBytes: 0, ranOn: depotId(a.replica.depot), transferred: false });
  const runner: OpRunner = { run: (a) => from(execute(a)), execute };
  const coordinator = await Coordinator.open({
    runner,
    reliabilityPath: null,
    reliability: new ReliabilityStore({ clock: { now: () => Date.now() } }),
    perDepotConcurrency: PER_DEPOT,
  });
  const job = columnStatsJob(dataset, 'sums');
  for (let i = 0; i < 10; i++) await lastValueFrom(coordinator.run(job, { concurrency: CONCURRENCY }));
  let blocks = 0;
  const t = performance.now();
  while (performance.now() - t < seconds * 1000) {
    await lastValueFrom(coordinator.run(job, { concurrency: CONCURRENCY }));
    blocks += dataset.blocks.length;
  }
  return ((performance.now() - t) * 1000) / blocks;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : (s[(s.length - 1) >> 1]! + s[s.length >> 1]!) / 2;
}

async function main(): Promise<void> {
  // A few at a time: sixteen processes starting together on a small machine miss the start timeout.
  const procs: Awaited<ReturnType<typeof startDepotProcess>>[] = [];
  for (let i = 0; i < DEPOTS; i += 4) {
    procs.push(...(await Promise.all(Array.from({ length: 4 }, () => startDepotProcess(['--capacity', '256MiB'])))));
  }
  const depots: DepotAddress[] = procs.map((p) => p.addr);
  const client = new IbpClient({ timeoutMs: 30_000, maxIdlePerDepot: PER_DEPOT });
  try {
    // Ingest: row blocks with summaries vs raw STOREs of the same bytes.
    const data = Array.from({ length: BLOCKS }, (_, b) => rowBlock(b));
    const bytes = data.map((d) => new Uint8Array(d.buffer));
    const caps = await Promise.all(
      depots.map((d) => client.allocate(d, { size: (BLOCKS / DEPOTS + 1) * ROWS * COLS * 8 * 8, durationSec: 3600 })),
    );
    const blocks: CoordinatorDatasetBlock[] = [];
    const offsets = new Array<number>(DEPOTS).fill(0);
    let ingestRows = 0;
    let ingestMs = 0;
    let rawRows = 0;
    let rawMs = 0;
    // Placement (not timed): each depot's blocks appended one after another, so that the offsets recorded
    // hold them (concurrent STOREs to one allocation land in completion order, not in issue order).
    await Promise.all(
      depots.map(async (depot, at) => {
        for (let b = at; b < BLOCKS; b += DEPOTS) {
          const offset = offsets[at]!;
          offsets[at] = offset + bytes[b]!.length;
          await client.store(caps[at]!.write, bytes[b]!);
          blocks[b] = {
            index: b,
            rowStart: b * ROWS,
            rows: ROWS,
            bytes: bytes[b]!.length,
            replicas: [{ depot, read: formatCapability(caps[at]!.read), allocOffset: offset, length: bytes[b]!.length }],
            summary: summarizeBlock(data[b]!, ROWS, COLS),
          };
        }
      }),
    );
    // At most 3 rounds: the allocations hold 8 copies of their blocks (placement + 2 per round).
    for (let round = 0; round < 2 || (ingestMs < SECONDS * 500 && round < 3); round++) {
      const indices = data.map((_, b) => b);
      let t = performance.now();
      let mass = 0;
      await pool(indices, CONCURRENCY, async (b) => {
        mass += summarizeBlock(data[b]!, ROWS, COLS).frob2;
        await client.store(caps[b % DEPOTS]!.write, bytes[b]!);
      });
      if (!(mass > 0)) throw new Error('ingest summaries are empty');
      ingestMs += performance.now() - t;
      ingestRows += BLOCKS * ROWS;
      t = performance.now();
      await pool(indices, CONCURRENCY, (b) => client.store(caps[b % DEPOTS]!.write, bytes[b]!));
      rawMs += performance.now() - t;
      rawRows += BLOCKS * ROWS;
    }
    const dataset: CoordinatorDataset = { name: 'bench', dtype: 'float64', rows: BLOCKS * ROWS, cols: COLS, blocks };
    // The IBP runner, with the reasons of failed attempts counted (reported if a run misses blocks).
    const ibp = new IbpOpRunner(client);
    const failures = new Map<string, number>();
    const runner: OpRunner = {
      offers: (d, op) => ibp.offers(d, op),
      run: (a) => ibp.run(a),
      execute: (a) =>
        ibp.execute(a).catch((e: unknown) => {
          const why = `${(e as { code?: string }).code ?? (e as Error).name}: ${(e as Error).message}`.slice(0, 120);
          failures.set(why, (failures.get(why) ?? 0) + 1);
          throw e;
        }),
    };
    const coordinator = await Coordinator.open({
      runner,
      reliabilityPath: null,
      reliability: new ReliabilityStore({ clock: { now: () => Date.now() } }),
      perDepotConcurrency: PER_DEPOT,
    });
    const job = columnStatsJob(dataset, 'sums');
    // Warm-up (connections, the depots' advertised ops), not timed.
    await lastValueFrom(coordinator.run(job, { concurrency: CONCURRENCY, opTimeoutMs: OP_TIMEOUT_MS }));
    let coordOps = 0;
    let coordMs = 0;
    let rawOps = 0;
    let rawOpsMs = 0;
    let checksum = 0;
    const ratios: number[] = [];
    const coordRound = async (): Promise<number> => {
      const t = performance.now();
      const est = await lastValueFrom(coordinator.run(job, { concurrency: CONCURRENCY, opTimeoutMs: OP_TIMEOUT_MS }));
      const ms = performance.now() - t;
      if (!Number.isFinite(est.value[0]!) || est.blocksMissing !== 0) {
        throw new Error(
          `coordinator estimate is not whole: ${est.blocksMissing} blocks missing; failed attempts: ${JSON.stringify(Object.fromEntries(failures))}; ` +
            (await coordinator.metrics.registry.getSingleMetricAsString('anvil_coordinator_ops_total'))
              .split('\n')
              .filter((l) => !l.startsWith('#') && !l.includes('outcome="answer"'))
              .join('; '),
        );
      }
      return ms;
    };
    const rawRound = async (): Promise<number> => {
      const t = performance.now();
      await pool(blocks, CONCURRENCY, async (b) => {
        const r = b.replicas[0]!;
        const out = await runKernel(client, r.depot, 'column-stats', {
          attrs: { dtype: 'float64', rows: b.rows, cols: COLS },
          inputs: [{ cap: r.read, offset: r.allocOffset, length: r.length }],
          output: { returnBytes: 6 * COLS * 8 },
        });
        checksum += new Float64Array(out!.buffer, out!.byteOffset, 6 * COLS)[COLS]!;
      });
      return performance.now() - t;
    };
    // Rounds alternate which form goes first, so neither always follows the other's garbage and caches.
    for (let round = 0; coordMs < SECONDS * 500 || round < 2; round++) {
      let roundCoordMs: number;
      let roundRawMs: number;
      if (round % 2 === 0) {
        roundCoordMs = await coordRound();
        roundRawMs = await rawRound();
      } else {
        roundRawMs = await rawRound();
        roundCoordMs = await coordRound();
      }
      coordMs += roundCoordMs;
      coordOps += BLOCKS;
      rawOpsMs += roundRawMs;
      rawOps += BLOCKS;
      ratios.push(roundCoordMs / roundRawMs);
    }
    if (!Number.isFinite(checksum)) throw new Error('raw loop gave a non-finite result');
    const result = {
      bench: `coordinator:column-stats:depots=${DEPOTS},blocks=${BLOCKS},rows=${ROWS},cols=${COLS},f64,concurrency=${CONCURRENCY},perDepot=${PER_DEPOT}`,
      coordinator_ops_per_s: Math.round((coordOps / coordMs) * 1000),
      raw_ops_per_s: Math.round((rawOps / rawOpsMs) * 1000),
      overhead_ratio: Number((rawOps / rawOpsMs / (coordOps / coordMs)).toFixed(3)),
      overhead_ratio_median: Number(median(ratios).toFixed(3)),
      rounds: ratios.length,
      engine_us_per_block: Number((await engineMicrosPerBlock(dataset, data, Math.min(3, SECONDS / 2))).toFixed(1)),
      ingest_rows_per_s: Math.round((ingestRows / ingestMs) * 1000),
      raw_store_rows_per_s: Math.round((rawRows / rawMs) * 1000),
      ingest_form: 'raw client STOREs of row blocks with summaries',
    };
    if (!json) {
      for (const [k, v] of Object.entries(result)) console.log(`${k.padEnd(24)} ${v}`);
    }
    console.log(JSON.stringify(result));
    await coordinator.close();
  } finally {
    client.close();
    await Promise.all(procs.map((p) => p.stop()));
  }
}

await main();
