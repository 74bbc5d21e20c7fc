import { setTimeout as sleep } from 'node:timers/promises';
import { IbpClient, capTokens, formatCapability, type AllocationCaps } from '../../../ibp/index.js';
import { CHAOS_DEPOT_CONFIG, ChaosDepots } from '../lib/chaos-depots.js';
import { LatencyProbe } from '../lib/latency-probe.js';
import { processStats, settleNear } from '../lib/process-stats.js';
import type { Prng } from '../lib/prng.js';
import { RawWire, type RawOutcome } from '../lib/raw-wire.js';
import { quantile, round, type Scenario } from '../lib/scenario.js';

const ODD_TOKENS = [
  '-1',
  '0',
  '-0',
  '1e9',
  'NaN',
  '0x10',
  '4294967296',
  '9007199254740993',
  '99999999999999999999',
  'ibp://x',
  '#',
  '/',
  '',
];

/** Valid messages (command lines, with their bodies) for the depot at hand, to fuzz from. */
function validMessages(caps: AllocationCaps): string[] {
  const [rk, wrm] = capTokens(caps.read);
  const [wk] = capTokens(caps.write);
  const [mk] = capTokens(caps.manage);
  return [
    '1 1 0 1 1 60 1024 10\n',
    '0 1 1 1 60 1024 10\n',
    `1 2 ${wk} ${wrm} 16 10\n0123456789abcdef`,
    `1 13 ${wk} ${wrm} 4 8 10\nABCDEFGH`,
    `1 8 ${rk} ${wrm} 0 16 10\n`,
    `1 9 ${mk} ${wrm} 40 3 0 0 0 10\n`,
    `1 9 ${mk} ${wrm} 43 3 4096 60 1 10\n`,
    '1 4 0 1 ibp 10\n',
    '1 4 3 10\n',
    '1 4 5 10\n',
    '1 12 16 2\n3 0 0 4\nabcd\n4 0 32 0\n\n',
    `1 12 16 2\n0 0 0 ${formatCapability(caps.read).length}\n${formatCapability(caps.read)}4 0 32 0\n\n`,
    `1 5 ${rk} ${formatCapability(caps.write)} ${wrm} 0 8 10\n`,
  ];
}

/** One fuzzed message: a valid one with a seeded mutation of its line or of its data stream. */
function mutate(r: Prng, msg: string): string {
  const nl = msg.indexOf('\n');
  const line = msg.slice(0, nl);
  const rest = msg.slice(nl + 1);
  const tokens = line.split(' ');
  switch (r.int(0, 9)) {
    case 0: {
      const b = Buffer.from(msg, 'latin1');
      const at = r.int(0, b.length - 1);
      b[at] = b[at]! ^ (1 << r.int(0, 7));
      return b.toString('latin1');
    }
    case 1:
      tokens.splice(r.int(0, tokens.length - 1), 1);
      break;
    case 2: {
      const i = r.int(0, tokens.length - 1);
      tokens.splice(i, 0, tokens[i]!);
      break;
    }
    case 3:
      tokens[r.int(0, tokens.length - 1)] = r.pick(ODD_TOKENS);
      break;
    case 4:
      return `${line.slice(0, r.int(0, line.length))}\n${rest}`;
    case 5: {
      const junk = r.bytes(r.int(1, 8)).toString('latin1');
      const at = r.int(0, msg.length);
      return msg.slice(0, at) + junk + msg.slice(at);
    }
    case 6: {
      const i = r.int(0, tokens.length - 1);
      const j = r.int(0, tokens.length - 1);
      [tokens[i], tokens[j]] = [tokens[j]!, tokens[i]!];
      break;
    }
    case 7:
      tokens[1] = String(r.int(0, 40));
      break;
    case 8:
      // the data stream: shorter or longer than declared
      return `${line}\n${rest.slice(0, r.int(0, rest.length))}${r.chance(0.5) ? r.bytes(r.int(1, 64)).toString('latin1') : ''}`;
    default:
      return `${line}${r.chance(0.5) ? '\r' : '\t'}${r.pick(ODD_TOKENS)}\n${rest}`;
  }
  return `${tokens.join(' ')}\n${rest}`;
}

/** Sends `count` fuzzed messages over `workers` connections; returns outcome counts. */
async function fuzz(
  port: number,
  r: Prng,
  caps: AllocationCaps,
  count: number,
  workers: number,
): Promise<Record<string, number>> {
  const valid = validMessages(caps);
  const out: Record<string, number> = { sent: 0, replied_ok: 0, replied_error: 0, closed: 0, silent: 0, connect_failed: 0 };
  let next = 0;
  await Promise.all(
    Array.from({ length: workers }, async () => {
      const wr = r.fork();
      let w: RawWire | undefined;
      while (next < count) {
        next++;
        const msg = mutate(wr, wr.pick(valid));
        if (w === undefined || w.closed) {
          w = await RawWire.open(port).catch(() => undefined);
          if (w === undefined) {
            out['connect_failed']!++;
            await sleep(50);
            continue;
          }
        }
        w.send(msg);
        out['sent']!++;
        const o: RawOutcome = await w.next(100);
        if (o.kind === 'line') out[o.line.startsWith('1') ? 'replied_ok' : 'replied_error']!++;
        else out[o.kind]!++;
        if (o.kind !== 'line') {
          // waiting for more input (a body, the rest of a line) or closed: start afresh
          w.destroy();
          w = undefined;
        }
      }
      w?.destroy();
    }),
  );
  return out;
}

/**
 * Protocol abuse on a live depot: fuzzed command lines and data streams, overlong lines, huge declared
 * lengths, declared bodies never sent, slowloris, and a connection flood past the limit, while a
 * well-behaved client in a separate process measures its latency. The depot's RSS and open descriptors are printed before,
 * during and after, and must return near the baseline once the abusers leave.
 */
export const protocolAbuse: Scenario = {
  name: 'protocol-abuse',
  exclusive: true,
  async run(ctx) {
    const short = ctx.scale === 'short';
    // The short run cuts slow command lines and bodies sooner (1 s / 1.5 s instead of 2 s / 3 s).
    const depots = await ChaosDepots.start(
      1,
      ctx.dir,
      short
        ? {
            config: CHAOS_DEPOT_CONFIG.replace('commandLineTimeoutMs = 2000', 'commandLineTimeoutMs = 1000').replace(
              'dataProgressTimeoutMs = 3000',
              'dataProgressTimeoutMs = 1500',
            ),
          }
        : {},
    );
    const addr = depots.depots[0]!;
    const port = addr.port;
    const pid = depots.pid(0);
    const client = new IbpClient({ timeoutMs: 5_000 });
    const f = ctx.figures;
    const wires: RawWire[] = [];
    let wellBehaved: LatencyProbe | undefined;
    try {
      const caps = await client.allocate(addr, { size: 64 * 1024, durationSec: 3600 });
      await client.store(caps.write, Buffer.alloc(8192, 5));
      const probe = await client.allocate(addr, { size: 64 * 1024, durationSec: 3600 });
      await client.store(probe.write, Buffer.alloc(4096, 9));
      const latencyOps = short ? 1_000 : 3_000;
      // The well-behaved client runs in a process of its own, not on the abusers' event loop.
      wellBehaved = LatencyProbe.start(addr, probe.read);
      await wellBehaved.measure(300, 30_000); // warm-up (connection, JIT)
      const baseline = processStats(pid)!;
      const unloaded = await wellBehaved.measure(latencyOps, 60_000);

      // Abusers, all at once, while the well-behaved client keeps measuring.
      const loadedP = wellBehaved.measure(1_000_000, 120_000);
      const r = ctx.rand;
      const fuzzCount = short ? 1_000 : 12_000;
      const [fuzzed, overlong, huge, neverSent, slowloris, flood] = await Promise.all([
        fuzz(port, r.fork(), caps, fuzzCount, 12),
        // Overlong lines: 100 KiB without a newline (limit 64 KiB).
        (async () => {
          let closed = 0;
          await Promise.all(
            Array.from({ length: 8 }, async () => {
              const w = await RawWire.open(port).catch(() => undefined);
              if (w === undefined) return;
              wires.push(w);
              w.send(`1 8 ${'A'.repeat(100 * 1024)}`);
              if (await w.closedWithin(4_000)) closed++;
              w.destroy();
            }),
          );
          return closed;
        })(),
        // Huge declared lengths.
        (async () => {
          const [wk, wrm] = capTokens(caps.write);
          const [rk] = capTokens(caps.read);
          const lines = [
            `1 2 ${wk} ${wrm} 9007199254740991 10\n`,
            `1 13 ${wk} ${wrm} 0 99999999999999999999 10\n`,
            `1 8 ${rk} ${wrm} 0 9007199254740991 10\n`,
            '1 1 0 1 1 60 9007199254740991 10\n',
            '1 12 16 2\n3 0 0 9999999999999\n',
            '1 12 16 99999\n',
          ];
          let answered = 0;
          for (const l of lines) {
            const w = await RawWire.open(port).catch(() => undefined);
            if (w === undefined) continue;
            w.send(l);
            const o = await w.next(4_000);
            if (o.kind === 'closed' || (o.kind === 'line' && o.line.startsWith('-'))) answered++;
            w.destroy();
          }
          return { answered, of: lines.length };
        })(),
        // Declared bodies never sent.
        (async () => {
          const [wk, wrm] = capTokens(caps.write);
          let closed = 0;
          await Promise.all(
            Array.from({ length: 8 }, async () => {
              const w = await RawWire.open(port).catch(() => undefined);
              if (w === undefined) return;
              wires.push(w);
              w.send(`1 2 ${wk} ${wrm} 1048576 1\n`);
              if (await w.closedWithin(12_000)) closed++;
              w.destroy();
            }),
          );
          return closed;
        })(),
        // Slowloris: one byte of a command line every 300 ms.
        (async () => {
          let closed = 0;
          await Promise.all(
            Array.from({ length: 20 }, async () => {
              const w = await RawWire.open(port).catch(() => undefined);
              if (w === undefined) return;
              wires.push(w);
              const text = `1 8 ${'x'.repeat(200)}`;
              for (let i = 0; i < 30 && !w.closed; i++) {
                w.send(text[i]!);
                await sleep(300);
              }
              if (w.closed || (await w.closedWithin(1_000))) closed++;
              w.destroy();
            }),
          );
          return closed;
        })(),
        // A flood past maxConnections (64), held open and silent.
        (async () => {
          const n = 150;
          const opened = await Promise.all(Array.from({ length: n }, () => RawWire.open(port).catch(() => undefined)));
          const live = opened.filter((w): w is RawWire => w !== undefined);
          wires.push(...live);
          const replies = await Promise.all(live.map((w) => w.next(short ? 800 : 1_500)));
          const refused = replies.filter((o) => o.kind === 'line' && o.line.startsWith('-66')).length;
          const during = processStats(pid);
          await sleep(short ? 300 : 1_000);
          for (const w of live) w.destroy();
          return { tried: n, refused, during };
        })(),
      ]);
      wellBehaved.stop();
      const loaded = await loadedP;
      for (const w of wires) w.destroy();
      depots.checkAlive();
      const after = await settleNear(pid, baseline, { fdSlack: 8, rssSlackKiB: 96 * 1024, timeoutMs: 10_000 });
      // Unloaded again once the abusers left: how much the machine alone moves the baseline.
      const unloadedAfter = await wellBehaved.measure(latencyOps, 60_000);
      depots.checkAlive();
      // Still serving.
      const ok = (await client.load(probe.read, 0, 4096).catch(() => undefined))?.every((b) => b === 9) ?? false;
      if (!ok) f.violate('protocol-abuse: the depot did not serve a well-formed LOAD after the abuse');
      if (!after.settled)
        f.violate(
          `protocol-abuse: depot fds/RSS not back near baseline (${JSON.stringify(baseline)} → ${JSON.stringify(after.stats)})`,
        );
      if (overlong < 8) f.violate(`protocol-abuse: ${8 - overlong} overlong-line connections were not closed`);
      if (neverSent < 8) f.violate(`protocol-abuse: ${8 - neverSent} never-sent-body connections were not closed`);
      if (slowloris < 20) f.violate(`protocol-abuse: ${20 - slowloris} slowloris connections were not closed`);
      if (huge.answered < huge.of) f.violate(`protocol-abuse: ${huge.of - huge.answered} huge declared lengths were not refused`);
      if (flood.refused === 0) f.violate('protocol-abuse: a flood past maxConnections got no -66');
      const p99u = quantile(unloaded, 0.99);
      const p99l = quantile(loaded, 0.99);
      f.set('fuzzed_messages', fuzzed['sent']!);
      f.set('fuzz_outcomes', JSON.stringify(fuzzed));
      f.set('overlong_closed', overlong);
      f.set('huge_lengths_refused', huge.answered);
      f.set('never_sent_bodies_closed', neverSent);
      f.set('slowloris_closed', slowloris);
      f.set('flood_refused_66', flood.refused);
      f.set('depot_rss_kib_before', baseline.rssKiB);
      f.set('depot_fds_before', baseline.fds);
      f.set('depot_rss_kib_during', flood.during?.rssKiB ?? null);
      f.set('depot_fds_during', flood.during?.fds ?? null);
      f.set('depot_rss_kib_after', after.stats?.rssKiB ?? null);
      f.set('depot_fds_after', after.stats?.fds ?? null);
      f.set('p99_unloaded_ms', round(p99u, 3));
      f.set('p99_under_abuse_ms', round(p99l, 3));
      f.set('p99_ratio', round(p99l / Math.max(p99u, 1e-9), 2));
      f.set('p99_unloaded_after_ms', round(quantile(unloadedAfter, 0.99), 3));
      f.set('well_behaved_ops_under_abuse', loaded.length);
      ctx.log(
        `fuzz ${JSON.stringify(fuzzed)}; overlong closed ${overlong}/8, huge refused ${huge.answered}/${huge.of}, ` +
          `never-sent closed ${neverSent}/8, slowloris closed ${slowloris}/20, flood -66 ${flood.refused}/${flood.tried}`,
      );
      ctx.log(
        `depot RSS ${baseline.rssKiB} KiB / fds ${baseline.fds} before, ${flood.during?.rssKiB} KiB / ${flood.during?.fds} during, ` +
          `${after.stats?.rssKiB} KiB / ${after.stats?.fds} after (settled: ${after.settled})`,
      );
      ctx.log(
        `well-behaved p99 (separate process): ${round(p99u, 3)} ms unloaded, ${round(p99l, 3)} ms under abuse ` +
          `(${round(p99l / Math.max(p99u, 1e-9), 2)}×, ${loaded.length} ops), ${round(quantile(unloadedAfter, 0.99), 3)} ms unloaded after`,
      );
    } finally {
      for (const w of wires) w.destroy();
      await wellBehaved?.close();
      client.close();
      await depots.stop();
      f.count('depot_crashes', depots.crashes);
    }
  },
};
