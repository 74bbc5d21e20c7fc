import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { IbpClient, formatCapability, type DepotAddress } from '../../../ibp/index.js';
import type { Dataset, DatasetBlock } from '../../../framework/index.js';
import { summarizeBlock } from '../../../framework/estimation/index.js';
import { blockData, exact } from '../../coordinator/fixtures.js';
import { AckLedger } from '../lib/ack-ledger.js';
import { CHAOS_DEPOT_CONFIG } from '../lib/chaos-depots.js';
import { runBoundedJob, type JobOutcome } from '../lib/coordinator-job.js';
import { MixedLoad } from '../lib/mixed-load.js';
import { NetLab, netnsUnavailable, sweepStaleLabs } from '../lib/netns.js';
import type { Scenario } from '../lib/scenario.js';

const BIN = fileURLToPath(new URL('../../../bin/anvil.js', import.meta.url));
// The depot ends itself when the test's end of its stdin closes (as the loopback depots do).
const WATCHDOG =
  `process.stdin.on('end', () => process.kill(process.pid, 'SIGTERM')); process.stdin.on('error', () => {}); process.stdin.resume();` +
  `process.argv.splice(1, 0, ${JSON.stringify(BIN)}); await import(${JSON.stringify(pathToFileURL(BIN).href)});`;

interface NodeDepot {
  readonly child: ChildProcess;
  readonly address: DepotAddress;
  /** Set when it exited; before the lab closes, that is a crash. */
  exited: boolean;
}

/** An `anvil depot` inside node `i` of the lab, listening on the node's address. */
async function startNodeDepot(lab: NetLab, i: number, config: string): Promise<NodeDepot> {
  const ip = lab.nodes[i]!.ip;
  const child = lab.spawnIn(i, process.execPath, [
    '--input-type=module',
    '-e',
    WATCHDOG,
    'depot',
    '--host',
    ip,
    '--port',
    '0',
    '--log-level',
    'warn',
    '--capacity',
    '48MiB',
    '--config',
    config,
  ]);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline && child.exitCode === null && child.signalCode === null) {
    const m = /^listening on ibp:\/\/([^:\s]+):(\d+)$/m.exec(out);
    if (m !== null) {
      child.stdout!.removeAllListeners('data').resume();
      const d: NodeDepot = { child, address: { host: m[1]!, port: Number(m[2]) }, exited: false };
      child.once('exit', () => (d.exited = true));
      return d;
    }
    await sleep(20);
  }
  child.kill('SIGKILL');
  throw new Error(`depot in ${lab.nodes[i]!.ns} did not start: ${err.trim() || 'no output'}`);
}

const COLS = 4;
const ROWS = 50;

/**
 * Depots on separate hosts: each in a network namespace of its own, linked through a bridge, with link
 * faults (netem delay and loss, or loss by nftables where the kernel has no netem) and partitions by
 * nftables rules. A mixed load (stores, writes, loads, depot-to-depot copies, NFU digests) with a node
 * partitioned mid-load keeps every acknowledged byte; coordinator jobs across the namespaces with nodes
 * partitioned mid-job end, before their deadline, with a bound that holds or an explicit error. Skipped,
 * with the reason printed, where namespaces cannot be made (not root, no `ip`/`nft`). Every namespace,
 * link and rule is removed afterwards, also when the scenario fails.
 */
export const multiHost: Scenario = {
  name: 'multi-host',
  async run(ctx) {
    const f = ctx.figures;
    const why = netnsUnavailable();
    if (why !== undefined) {
      f.skip('multi-host', why);
      f.set('multihost_skipped', why);
      ctx.log(`skipped: ${why}`);
      return;
    }
    const swept = sweepStaleLabs();
    if (swept.length > 0) ctx.log(`swept namespaces of earlier killed runs: ${swept.join(', ')}`);
    const short = ctx.scale === 'short';
    const n = 3;
    const config = join(ctx.dir, 'depot.toml');
    writeFileSync(config, CHAOS_DEPOT_CONFIG);
    const lab = NetLab.open(n);
    const depots: NodeDepot[] = [];
    const client = new IbpClient({ timeoutMs: 2_000, connectTimeoutMs: 1_000 });
    const outcomes: Record<string, JobOutcome> = {};
    const ledger = new AckLedger();
    const rand = ctx.rand;
    let partitions = 0;
    let linkNote = '';
    let load: MixedLoad | undefined;
    let left: string[] = [];
    try {
      depots.push(...(await Promise.all(Array.from({ length: n }, (_, i) => startNodeDepot(lab, i, config)))));
      const links = Array.from({ length: n }, (_, i) => lab.shape(i, { delayMs: 5, jitterMs: 5, lossPct: 2 }));
      linkNote =
        links[0]!.via === 'netem'
          ? 'netem delay 5 ms ± 5 ms, loss 2 % each way'
          : `nftables loss 2 % each way; ${links[0]!.delaySkipped ?? ''}`;
      ctx.log(`lab ${lab.tag}: ${n} nodes on ${lab.hostIp}/24; links: ${linkNote}`);
      if (links[0]!.delaySkipped !== undefined) f.skip('multi-host/link-delay', links[0]!.delaySkipped);

      // 1. A mixed load over the lossy links, one node partitioned for a while in the middle.
      const sched = rand.fork();
      load = new MixedLoad(
        client,
        ledger,
        rand.fork(),
        { count: n, depot: (i) => depots[i]!.address },
        {
          workers: 3,
          ops: short ? 40 : 600,
          deadlineMs: short ? 3_000 : 40_000,
          hangMs: 8_000,
          maxAllocations: 9,
          allocationBytes: 256 * 1024,
          maxBodyBytes: 64 * 1024,
          transfers: true,
          nfu: true,
        },
      );
      const cutAt = sched.int(10, short ? 25 : 300);
      const cutNode = sched.int(0, n - 1);
      const cutMs = short ? sched.int(500, 1_000) : sched.int(1_000, 3_000);
      let cut: Promise<void> | undefined;
      await load.run((op) => {
        if (op !== cutAt) return;
        partitions++;
        lab.partition(cutNode, true);
        cut = sleep(cutMs).then(() => lab.partition(cutNode, false));
      });
      await cut;
      lab.heal();
      await load.verifyAll();
      ctx.log(
        `load: ${load.figures.ops} ops (${load.figures.failed} failed: ${JSON.stringify(load.figures.errors)}), node ${cutNode} cut ` +
          `for ${cutMs} ms at op ${cutAt}; acked ${ledger.figures.ackedBytes} B, lost ${ledger.figures.ackedLost}, wrong ${ledger.figures.wrongBytes}`,
      );

      // 2. Coordinator jobs across the namespaces: two replicas of each block on neighbouring nodes.
      const nBlocks = short ? 12 : 24;
      const data = blockData(nBlocks, ROWS, COLS, rand.int(1, 1_000_000));
      const truth = exact(data, COLS);
      const blocks: DatasetBlock[] = [];
      for (const [index, d] of data.entries()) {
        const bytes = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
        const replicas = await Promise.all(
          [index % n, (index + 1) % n].map(async (i) => {
            const caps = await client.allocate(depots[i]!.address, { size: bytes.length, durationSec: 3600 });
            await client.store(caps.write, bytes);
            return { depot: depots[i]!.address, read: formatCapability(caps.read), allocOffset: 0, length: bytes.length };
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
      const ds: Dataset = { name: 'chaos-netns', dtype: 'float64', rows: nBlocks * ROWS, cols: COLS, blocks };
      const deadlineMs = short ? 2_500 : 6_000;
      const job = async (name: string, gram: boolean, cut: readonly number[]) => {
        const shaped = () => {
          for (let i = 0; i < n; i++) lab.shape(i, { delayMs: 5, jitterMs: 5, lossPct: 2 });
        };
        shaped();
        const out = await runBoundedJob({
          client,
          dataset: ds,
          gram,
          want: gram ? truth.gram : truth.means,
          opTimeoutMs: short ? 500 : 1_000,
          deadlineMs,
          // Deadline mode answers at the deadline at the latest: later than this is a hang.
          hangMs: deadlineMs + 2_000,
          rand,
          fault: () => {
            partitions += cut.length;
            for (const i of cut) lab.partition(i, true);
          },
          heal: () => lab.heal(),
        });
        outcomes[name] = out;
        ctx.log(`${name}: ${out.kind} (${out.detail})`);
      };
      await job('netns-lossy-means', false, []);
      await job('netns-partition-means', false, [1]);
      // Nodes 0 and 2 cut: the blocks held only there (a third) are missing samples.
      await job('netns-partition2-gram', true, [0, 2]);
    } finally {
      client.close();
      f.count('depot_crashes', depots.filter((d) => d.exited).length);
      left = await lab.close();
    }
    const list = Object.entries(outcomes);
    f.count('acked_lost', ledger.figures.ackedLost);
    f.count('wrong_bytes', ledger.figures.wrongBytes);
    f.count('hangs', (load?.figures.hangs ?? 0) + list.filter(([, o]) => o.kind === 'hang').length);
    f.set('multihost_links', linkNote);
    f.set('multihost_partitions', partitions);
    f.set('multihost_ops', load?.figures.ops ?? 0);
    f.set('multihost_ops_failed', load?.figures.failed ?? 0);
    f.set('multihost_acked_bytes', ledger.figures.ackedBytes);
    f.set('multihost_unknown_ops', ledger.figures.unknownOps);
    f.set('multihost_nfu_wrong', load?.figures.nfuWrong ?? 0);
    f.set('multihost_jobs', JSON.stringify(Object.fromEntries(list.map(([k, o]) => [k, o.kind]))));
    f.set('multihost_bound_held', list.filter(([, o]) => o.kind === 'bound-held').length);
    f.set('multihost_explicit_errors', list.filter(([, o]) => o.kind === 'explicit-error').length);
    f.set('netns_left', left.length);
    if ((load?.figures.nfuWrong ?? 0) > 0)
      f.violate(`multi-host: ${load!.figures.nfuWrong} NFU digests matched no allowed state`);
    for (const [k, o] of list)
      if (o.kind === 'bound-violated') f.violate(`multi-host: ${k}: the bound did not hold (${o.detail})`);
    if (left.length > 0) f.violate(`multi-host: the lab left ${left.join(', ')} behind`);
  },
};
