import { createServer, type Socket } from 'node:net';
import { ClientError, IbpClient, type Capability } from '../../../ibp/index.js';
import { CHAOS_DEPOT_CONFIG, ChaosDepots } from '../lib/chaos-depots.js';
import { FaultProxy } from '../lib/fault-proxy.js';
import { processStats, settleNear } from '../lib/process-stats.js';
import type { Scenario } from '../lib/scenario.js';

/**
 * Depot-to-depot transfers (SEND, PUSH, PULL) to a dead peer (a closed port), a silent peer (accepts and
 * never answers) and a slow peer (a real depot behind a proxy adding delay and stalls). Each ends within the
 * transfer limit (4 s here, 1.5 s in the short run) with the data copied exactly or an explicit refusal (-13); the source depot's
 * descriptors return to the baseline.
 */
export const transferPeers: Scenario = {
  name: 'transfer-peers',
  async run(ctx) {
    const short = ctx.scale === 'short';
    const rounds = short ? 1 : 6;
    // The short run cuts transfers at 1.5 s (4 s in the full run): the same limit, reached sooner.
    const transferMs = short ? 1_500 : 4_000;
    const depots = await ChaosDepots.start(2, ctx.dir, {
      config: CHAOS_DEPOT_CONFIG.replace('timeoutMs = 4000', `timeoutMs = ${transferMs}`),
    });
    const [a, b] = [depots.depots[0]!, depots.depots[1]!];
    const client = new IbpClient({ timeoutMs: 10_000 });
    const silentSockets = new Set<Socket>();
    const silent = createServer((s) => {
      silentSockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => silentSockets.delete(s));
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', () => resolve()));
    const silentPort = (silent.address() as { port: number }).port;
    const dead = createServer();
    await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', () => resolve()));
    const deadPort = (dead.address() as { port: number }).port;
    await new Promise<void>((resolve) => dead.close(() => resolve()));
    const slow = await FaultProxy.start(b, ctx.rand.fork(), {
      delayMs: 50,
      jitterMs: short ? 150 : 400,
      stall: 0.3,
      stallMs: 1.5 * transferMs,
    });
    const f = ctx.figures;
    const outcomes: Record<string, Record<string, number>> = {};
    const note = (what: string, s: string) => {
      outcomes[what] ??= {};
      outcomes[what][s] = (outcomes[what][s] ?? 0) + 1;
    };
    try {
      const body = ctx.rand.bytes(256 * 1024);
      const src = await client.allocate(a, { size: body.length, durationSec: 3600 });
      await client.store(src.write, body);
      const pid = depots.pid(0);
      const baseline = processStats(pid)!;
      const at = (cap: Capability, port: number): Capability => ({ ...cap, port });
      for (let round = 0; round < rounds; round++) {
        const dest = await client.allocate(b, { size: body.length * 4, durationSec: 3600 });
        // The transfers of a round come from a client of their own that leaves (closes its connections) after it.
        const mover = new IbpClient({ timeoutMs: 10_000 });
        const peers: Array<[string, Capability, Capability]> = [
          ['dead', at(dest.write, deadPort), at(dest.read, deadPort)],
          ['silent', at(dest.write, silentPort), at(dest.read, silentPort)],
          ['slow', at(dest.write, slow.address.port), at(dest.read, slow.address.port)],
        ];
        await Promise.all(
          peers.flatMap(([name, w, r]) =>
            (['send', 'push', 'pull'] as const).map(async (how) => {
              const t0 = Date.now();
              let s: string;
              try {
                if (how === 'send') await mover.copy(src.read, w, { length: body.length });
                else if (how === 'push') await mover.push(src.read, w, { length: body.length });
                else {
                  // PULL: the destination depot fetches from the peer into a fresh allocation on a.
                  const local = await client.allocate(a, { size: body.length, durationSec: 3600 });
                  await mover.pull(local.write, r, { length: 4096 });
                }
                s = 'ok';
              } catch (e) {
                s = e instanceof ClientError ? String(e.status ?? e.code) : 'thrown';
              }
              note(`${name}-${how}`, s);
              if (Date.now() - t0 > 9_000) f.count('hangs', 1);
              if (name !== 'slow' && s !== '-13') f.violate(`transfer-peers: ${how} to a ${name} peer answered ${s}`);
            }),
          ),
        ).finally(() => mover.close());
        // What the slow peer acknowledged is exact: every whole copy in the destination equals the source.
        const size = (await client.probe(dest.manage)).size;
        if (size > 0) {
          const held = await client.load(dest.read, 0, size);
          for (let off = 0; off + body.length <= size; off += body.length) {
            if (!held.subarray(off, off + body.length).equals(body)) f.count('wrong_bytes', body.length);
          }
        }
      }
      depots.checkAlive();
      for (const s of silentSockets) s.destroy();
      const after = await settleNear(pid, baseline, { fdSlack: 4, rssSlackKiB: 64 * 1024, timeoutMs: 8_000 });
      if (!after.settled)
        f.violate(`transfer-peers: fds not back near baseline (${JSON.stringify(baseline)} → ${JSON.stringify(after.stats)})`);
      f.set('transfer_outcomes', JSON.stringify(outcomes));
      f.set('transfer_fds_before', baseline.fds);
      f.set('transfer_fds_after', after.stats?.fds ?? null);
      ctx.log(`outcomes ${JSON.stringify(outcomes)}; fds ${baseline.fds} → ${after.stats?.fds}`);
    } finally {
      client.close();
      for (const s of silentSockets) s.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
      await slow.close();
      await depots.stop();
      f.count('depot_crashes', depots.crashes);
    }
  },
};
