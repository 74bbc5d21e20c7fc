import { createServer, type Socket } from 'node:net';
import { IbpClient, formatCapability, type DepotAddress } from '../../../ibp/index.js';
import type { Dataset, DatasetBlock } from '../../../framework/index.js';
import { summarizeBlock } from '../../../framework/estimation/index.js';
import { blockData, exact } from '../../coordinator/fixtures.js';
import { ChaosDepots } from '../lib/chaos-depots.js';
import { runBoundedJob, type JobOutcome } from '../lib/coordinator-job.js';
import { FaultProxy } from '../lib/fault-proxy.js';
import type { Prng } from '../lib/prng.js';
import type { Scenario } from '../lib/scenario.js';

const COLS = 4;
const ROWS = 50;
/** Blocks of the dataset (the short run uses fewer: every job is the same, only shorter). */
const BLOCKS = { short: 12, full: 24 } as const;
/** A job must have finished (or erred) this long after it started, or it counts as a hang. */
const JOB_BOUND_MS = 15_000;

/** A "depot" that answers every line with seeded garbage bytes. */
async function garbageDepot(rand: Prng): Promise<{ address: DepotAddress; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
    s.on('data', () => {
      const junk = rand.bytes(rand.int(1, 200));
      if (rand.chance(0.5)) s.write(Buffer.concat([Buffer.from(`1 ${rand.int(0, 5)} \n`), junk]));
      else s.write(junk);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    address: { host: '127.0.0.1', port: (server.address() as { port: number }).port },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Coordinator jobs (column means, Gram) under faults: depots killed, paused and partitioned mid-job, a
 * depot whose replies are corrupted on the way, and a source answering garbage. Each job either ends with
 * an estimate whose bound holds against the exact answer, or with an explicit error — within its bound.
 */
export const coordinatorFaults: Scenario = {
  name: 'coordinator-faults',
  async run(ctx) {
    const n = 4;
    const short = ctx.scale === 'short';
    const depots = await ChaosDepots.start(n, ctx.dir, { capacity: '32MiB' });
    const proxies = await Promise.all(depots.depots.map((d) => FaultProxy.start(d, ctx.rand.fork())));
    const garbage = await garbageDepot(ctx.rand.fork());
    const client = new IbpClient({ timeoutMs: short ? 1_500 : 3_000, connectTimeoutMs: 1_000 });
    const f = ctx.figures;
    const outcomes: Record<string, JobOutcome> = {};
    let corruptedChunks = 0;
    const nBlocks = BLOCKS[ctx.scale];
    const data = blockData(nBlocks, ROWS, COLS, ctx.rand.int(1, 1_000_000));
    const truth = exact(data, COLS);
    try {
      // Two replicas per block on neighbouring depots, reached through the proxies; the caps name the depots.
      const blocks: DatasetBlock[] = [];
      for (const [index, d] of data.entries()) {
        const bytes = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
        const replicas = await Promise.all(
          [index % n, (index + 1) % n].map(async (i) => {
            const caps = await client.allocate(depots.depots[i]!, { size: bytes.length, durationSec: 3600 });
            await client.store(caps.write, bytes);
            return { depot: proxies[i]!.address, read: formatCapability(caps.read), allocOffset: 0, length: bytes.length };
          }),
        );
        blocks.push({
          index,
          rowStart: index * ROWS,
          rows: ROWS,
          bytes: bytes.length,
          replicas,
          summary: summarizeBlock(d, ROWS, COLS),
        });
      }
      const ds: Dataset = { name: 'chaos', dtype: 'float64', rows: nBlocks * ROWS, cols: COLS, blocks };
      // The garbage source: every block has a third replica there, tried like any other.
      const withGarbage: Dataset = {
        ...ds,
        blocks: blocks.map((b) => ({ ...b, replicas: [{ ...b.replicas[0]!, depot: garbage.address }, ...b.replicas] })),
      };

      // The short run times ops out sooner: the same faults, found in less time.
      const job = async (
        name: string,
        dataset: Dataset,
        gram: boolean,
        fault: () => Promise<void> | void,
        heal: () => Promise<void> | void,
        at: 'mid' | 'start' = 'mid',
      ) => {
        const out = await runBoundedJob({
          client,
          dataset,
          gram,
          want: gram ? truth.gram : truth.means,
          opTimeoutMs: short ? 500 : 1_000,
          hangMs: JOB_BOUND_MS,
          rand: ctx.rand,
          fault,
          heal,
          at,
        });
        outcomes[name] = out;
        ctx.log(`${name}: ${out.kind} (${out.detail})`);
      };

      const nop = () => undefined;
      await job('clean-means', ds, false, nop, nop);
      await job(
        'pause-means',
        ds,
        false,
        () => depots.pause(2),
        () => depots.resume(2),
      );
      await job(
        'partition-gram',
        ds,
        true,
        () => proxies[3]!.partition(true),
        () => proxies[3]!.partition(false),
      );
      await job(
        'stall-reset-means',
        ds,
        false,
        () => proxies[0]!.setPlan({ stall: 0.5, stallMs: short ? 1_500 : 3_000, reset: 0.3, delayMs: 5, jitterMs: 20 }),
        () => proxies[0]!.setPlan({}),
      );
      await job('garbage-source-means', withGarbage, false, nop, nop);
      // Corrupt replies from depot 1: flipped bytes in what it returns, from the start of the job (the
      // jobs are quick: a fault landing mid-job may find them done).
      const flippedBefore = proxies[1]!.counts.corruptedChunks;
      await job(
        'corrupt-results-means',
        ds,
        false,
        () => proxies[1]!.setPlan({ corruptChunk: 0.5, chunkFaultDirection: 'down' }),
        () => proxies[1]!.setPlan({}),
        'start',
      );
      await job(
        'corrupt-results-gram',
        ds,
        true,
        () => proxies[1]!.setPlan({ corruptChunk: 0.5, chunkFaultDirection: 'down' }),
        () => proxies[1]!.setPlan({}),
        'start',
      );
      corruptedChunks = proxies[1]!.counts.corruptedChunks - flippedBefore;
      // Last, as it loses depot 0's memory data: a kill mid-job (then a restart, empty).
      await job(
        'kill-gram',
        ds,
        true,
        () => depots.kill(0),
        () => depots.restart(0),
      );
      depots.checkAlive();
    } finally {
      client.close();
      await garbage.close();
      await Promise.all(proxies.map((p) => p.close()));
      await depots.stop();
      f.count('depot_crashes', depots.crashes);
    }
    const list = Object.entries(outcomes);
    const hangs = list.filter(([, o]) => o.kind === 'hang').length;
    f.count('hangs', hangs);
    f.set('coordinator_jobs', list.length);
    f.set('coordinator_bound_held', list.filter(([, o]) => o.kind === 'bound-held').length);
    f.set('coordinator_explicit_errors', list.filter(([, o]) => o.kind === 'explicit-error').length);
    f.set(
      'coordinator_corrupt_bound_violations',
      list.filter(([k, o]) => k.startsWith('corrupt-') && o.kind === 'bound-violated').length,
    );
    f.set('coordinator_corrupted_reply_chunks', corruptedChunks);
    if (list.length > 0 && corruptedChunks === 0)
      f.violate('coordinator-faults: the corrupt-results jobs ran without a single corrupted reply chunk');
    f.set('coordinator_bound_violations', list.filter(([, o]) => o.kind === 'bound-violated').length);
    f.set('coordinator_outcomes', JSON.stringify(Object.fromEntries(list.map(([k, o]) => [k, o.kind]))));
    // A bound that does not hold is a bug, corrupted replies included (the coordinator checks replies
    // against the blocks' ingest summaries and retries another replica).
    for (const [k, o] of list)
      if (o.kind === 'bound-violated') f.violate(`coordinator-faults: ${k}: the bound did not hold (${o.detail})`);
  },
};
