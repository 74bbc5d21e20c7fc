import { setTimeout as sleep } from 'node:timers/promises';
import { IbpClient } from '../../../ibp/index.js';
import { AckLedger } from '../lib/ack-ledger.js';
import { ChaosDepots } from '../lib/chaos-depots.js';
import { MixedLoad } from '../lib/mixed-load.js';
import type { Scenario } from '../lib/scenario.js';

/**
 * SIGKILL (then a restart on the same data directory) and SIGSTOP/SIGCONT of disk depots at random
 * moments during a mixed load of stores, writes, loads, copies and NFU digests; afterwards every
 * allocation is read in full and checked against the ledger of acknowledged bytes.
 */
export const processFaults: Scenario = {
  name: 'process-faults',
  async run(ctx) {
    const short = ctx.scale === 'short';
    const n = 3;
    const depots = await ChaosDepots.start(n, ctx.dir, { resource: 'disk', capacity: '256MiB' });
    const client = new IbpClient({ timeoutMs: 2_000, connectTimeoutMs: 1_000 });
    const ledger = new AckLedger();
    const sched = ctx.rand.fork();
    const load = new MixedLoad(
      client,
      ledger,
      ctx.rand.fork(),
      { count: n, depot: (i) => depots.depots[i]! },
      {
        workers: 4,
        ops: short ? 90 : 3_000,
        deadlineMs: short ? 4_000 : 90_000,
        hangMs: 8_000,
        maxAllocations: short ? 10 : 24,
        allocationBytes: 512 * 1024,
        maxBodyBytes: 96 * 1024,
        transfers: true,
        nfu: true,
      },
    );
    let kills = 0;
    let pauses = 0;
    const faultEvery = short ? 30 : 60;
    const faults: Promise<void>[] = [];
    let faulting = false;
    const progress = setInterval(
      () => ctx.log(`progress ${JSON.stringify(load.figures)} kills ${kills} pauses ${pauses}`),
      5_000,
    );
    try {
      await load.run(async (op) => {
        // One fault at a time: two restarts of one depot would race for its port and data directory.
        if (op === 0 || op % faultEvery !== 0 || faulting) return;
        faulting = true;
        const i = sched.int(0, n - 1);
        // The short run alternates (a pause first, as ops fail fast while a killed depot restarts), so both faults happen in its few ops.
        const kill = short ? (kills + pauses) % 2 === 1 : sched.chance(0.6);
        const wait = sched.int(0, 40);
        const stopMs = short ? sched.int(100, 500) : sched.int(100, 1_500);
        // The fault lands while the other workers' ops are in flight.
        const f = (async () => {
          await sleep(wait);
          if (kill) {
            kills++;
            const t0 = Date.now();
            await depots.kill(i);
            await depots.restart(i);
            if (Date.now() - t0 > 3_000) ctx.log(`restart of depot ${i} took ${Date.now() - t0} ms`);
          } else {
            pauses++;
            depots.pause(i);
            await sleep(stopMs);
            depots.resume(i);
          }
        })().finally(() => (faulting = false));
        faults.push(f);
        await f;
      });
      await Promise.all(faults);
      ctx.log(`load done: ${JSON.stringify(load.figures)}`);
      depots.checkAlive();
      await load.verifyAll();
      depots.checkAlive();
    } finally {
      clearInterval(progress);
      client.close();
      await depots.stop();
    }
    const f = ctx.figures;
    const l = ledger.figures;
    f.count('acked_lost', l.ackedLost);
    f.count('wrong_bytes', l.wrongBytes);
    f.count('hangs', load.figures.hangs);
    f.count('depot_crashes', depots.crashes);
    f.set('process_kills', kills);
    f.set('process_pauses', pauses);
    f.set('process_ops', load.figures.ops);
    f.set('process_ops_failed', load.figures.failed);
    f.set('process_acked_bytes', l.ackedBytes);
    f.set('process_unknown_ops', l.unknownOps);
    f.set('process_unknown_landed', l.unknownLanded);
    f.set('process_bytes_checked', l.bytesChecked);
    f.set('process_nfu_wrong', load.figures.nfuWrong);
    f.set('process_refused_but_changed', load.figures.refusedButChanged);
    if (load.figures.nfuWrong > 0) f.violate(`process-faults: ${load.figures.nfuWrong} NFU digests matched no allowed state`);
    if (load.figures.refusedButChanged > 0)
      f.violate(`process-faults: ${load.figures.refusedButChanged} refused writes changed their allocation`);
    ctx.log(
      `kills ${kills}, pauses ${pauses}, ops ${load.figures.ops} (${load.figures.failed} failed: ${JSON.stringify(load.figures.errors)}), ` +
        `acked ${l.ackedBytes} B in ${l.ackedOps} ops, unknown ${l.unknownOps} (${l.unknownLanded} landed), checked ${l.bytesChecked} B, ` +
        `lost ${l.ackedLost}, wrong ${l.wrongBytes}, hangs ${load.figures.hangs}`,
    );
  },
};
