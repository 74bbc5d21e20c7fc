import { IbpClient } from '../../../ibp/index.js';
import { AckLedger } from '../lib/ack-ledger.js';
import { ChaosDepots } from '../lib/chaos-depots.js';
import { FaultProxy, type FaultCounts } from '../lib/fault-proxy.js';
import { MixedLoad } from '../lib/mixed-load.js';
import type { Scenario } from '../lib/scenario.js';

const sum = (a: FaultCounts, b: FaultCounts): FaultCounts =>
  Object.fromEntries(Object.entries(a).map(([k, v]) => [k, v + b[k as keyof FaultCounts]])) as unknown as FaultCounts;

/**
 * A mixed load through seeded fault proxies (delay with jitter, dropped chunks, stalls, resets,
 * half-open connections) in front of memory depots: every op ends (acknowledged or a typed error)
 * within its bound, and what was acknowledged reads back exactly once the path is clean. A second
 * phase flips bytes on the path: IBP carries no checksum, so the ledger's end-to-end check is what
 * finds them — the figures show how many it caught.
 */
export const proxyFaults: Scenario = {
  name: 'proxy-faults',
  async run(ctx) {
    const short = ctx.scale === 'short';
    const n = 2;
    const depots = await ChaosDepots.start(n, ctx.dir);
    const proxies = await Promise.all(depots.depots.map((d) => FaultProxy.start(d, ctx.rand.fork())));
    const plan = {
      delayMs: 1,
      jitterMs: 8,
      // Dropping a piece of a byte stream is corruption (TCP never does it): towards the client only
      // here, where it can only stall a reply; both ways in the corruption phase.
      dropChunk: 0.01,
      chunkFaultDirection: 'down' as const,
      stall: 0.05,
      stallMs: short ? 1_200 : 2_500,
      reset: 0.05,
      halfOpen: 0.04,
    };
    for (const p of proxies) p.setPlan(plan);
    const client = new IbpClient({ timeoutMs: 1_500, connectTimeoutMs: 1_000 });
    const target = { count: n, depot: (i: number) => depots.depots[i]!, via: (i: number) => proxies[i]!.address };
    const ledger = new AckLedger();
    const load = new MixedLoad(client, ledger, ctx.rand.fork(), target, {
      workers: 4,
      ops: short ? 120 : 4_000,
      deadlineMs: short ? 3_000 : 60_000,
      hangMs: 6_000,
      maxAllocations: 16,
      allocationBytes: 256 * 1024,
      maxBodyBytes: 96 * 1024,
      transfers: true,
      nfu: true,
    });
    // Corruption phase: its own ledger (flipped bytes are caught end to end, not by the protocol).
    const corruptLedger = new AckLedger();
    const corruptLoad = new MixedLoad(client, corruptLedger, ctx.rand.fork(), target, {
      workers: 2,
      ops: short ? 60 : 1_500,
      deadlineMs: short ? 1_500 : 30_000,
      hangMs: 6_000,
      maxAllocations: 8,
      allocationBytes: 128 * 1024,
      maxBodyBytes: 32 * 1024,
      transfers: false,
      nfu: false,
    });
    let corruptCounts: FaultCounts | undefined;
    try {
      await load.run();
      for (const p of proxies) p.setPlan({});
      depots.checkAlive();
      await load.verifyAll();
      for (const p of proxies) p.setPlan({ corruptChunk: 0.05, dropChunk: 0.01 });
      const before = proxies.map((p) => ({ ...p.counts }));
      await corruptLoad.run();
      corruptCounts = proxies
        .map((p, i) => ({ ...p.counts, corruptedChunks: p.counts.corruptedChunks - before[i]!.corruptedChunks }))
        .reduce(sum);
      for (const p of proxies) p.setPlan({});
      await corruptLoad.verifyAll();
      depots.checkAlive();
    } finally {
      client.close();
      await Promise.all(proxies.map((p) => p.close()));
      await depots.stop();
    }
    const f = ctx.figures;
    const l = ledger.figures;
    const counts = proxies.map((p) => p.counts).reduce(sum);
    f.count('acked_lost', l.ackedLost);
    f.count('wrong_bytes', l.wrongBytes);
    f.count('hangs', load.figures.hangs + corruptLoad.figures.hangs);
    f.count('depot_crashes', depots.crashes);
    f.set('proxy_ops', load.figures.ops);
    f.set('proxy_ops_failed', load.figures.failed);
    f.set('proxy_acked_bytes', l.ackedBytes);
    f.set('proxy_faults', JSON.stringify(counts));
    f.set('proxy_nfu_wrong', load.figures.nfuWrong);
    f.set('corrupt_chunks_injected', corruptCounts?.corruptedChunks ?? 0);
    f.set('corrupt_wrong_bytes_caught_end_to_end', corruptLedger.figures.wrongBytes);
    f.set('corrupt_ops_failed', corruptLoad.figures.failed);
    if (load.figures.nfuWrong > 0) f.violate(`proxy-faults: ${load.figures.nfuWrong} NFU digests matched no allowed state`);
    ctx.log(
      `ops ${load.figures.ops} (${load.figures.failed} failed: ${JSON.stringify(load.figures.errors)}), faults ${JSON.stringify(counts)}, ` +
        `acked ${l.ackedBytes} B, lost ${l.ackedLost}, wrong ${l.wrongBytes}, hangs ${load.figures.hangs}; corruption: ` +
        `${corruptCounts?.corruptedChunks ?? 0} chunks flipped, ${corruptLedger.figures.wrongBytes} wrong bytes caught end to end, ` +
        `${corruptLoad.figures.failed} ops failed (${JSON.stringify(corruptLoad.figures.errors)})`,
    );
  },
};
