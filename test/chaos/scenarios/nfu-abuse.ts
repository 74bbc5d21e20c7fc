import { ClientError, IbpClient, type NfuParamSpec } from '../../../ibp/index.js';
import { encodeAttrs } from '../../../nfu-kernels/index.js';
import { ChaosDepots } from '../lib/chaos-depots.js';
import { processStats, settleNear } from '../lib/process-stats.js';
import type { Scenario } from '../lib/scenario.js';

const CONFIG = `
[limits]
maxConnections = 64
idleTimeoutMs = 5000
commandLineTimeoutMs = 2000
dataProgressTimeoutMs = 3000
closeLingerMs = 500

[nfu]
workers = 1
maxQueue = 4
timeoutMs = 300
queueTimeoutMs = 2000
memoryBudgetMb = 64
maxValueBytes = "1MiB"
`;

const statusOf = (e: unknown): string => (e instanceof ClientError ? String(e.status ?? e.code) : 'thrown');

/**
 * NFU abuse: a runaway op (past `nfu.timeoutMs`), a memory bomb (an op larger than the memory budget),
 * oversized and incoherent attributes, and a queue flood. Each must end with an explicit refusal within
 * its bound, the depot must keep serving, and its memory and descriptors return near the baseline.
 */
export const nfuAbuse: Scenario = {
  name: 'nfu-abuse',
  async run(ctx) {
    const depots = await ChaosDepots.start(1, ctx.dir, { config: CONFIG });
    const addr = depots.depots[0]!;
    const pid = depots.pid(0);
    const client = new IbpClient({ timeoutMs: 8_000 });
    const f = ctx.figures;
    const outcomes: Record<string, Record<string, number>> = {};
    const note = (what: string, s: string) => {
      outcomes[what] ??= {};
      outcomes[what][s] = (outcomes[what][s] ?? 0) + 1;
    };
    const run = async (what: string, opcode: number, params: NfuParamSpec[], expect: (s: string) => boolean) => {
      const t0 = Date.now();
      const s = await client.nfu(addr, opcode, params).then(
        () => 'ok',
        (e: unknown) => statusOf(e),
      );
      note(what, s);
      if (!expect(s)) f.violate(`nfu-abuse: ${what} answered ${s}`);
      if (Date.now() - t0 > 7_500) f.count('hangs', 1);
    };
    try {
      const rows = 20_000;
      const cols = 128;
      const A = await client.allocate(addr, { size: rows * cols * 8, durationSec: 3600 });
      await client.store(A.write, Buffer.alloc(rows * cols * 8, 1));
      const small = await client.allocate(addr, { size: 4096, durationSec: 3600 });
      await client.store(small.write, Buffer.alloc(4096, 3));
      const sha = () =>
        client.nfu(addr, 16, [
          { kind: 0, cap: small.read },
          { kind: 4, length: 32 },
        ]);
      await sha();
      const baseline = processStats(pid)!;
      const refusal = (s: string) => s !== 'ok' && s !== 'thrown';
      // Runaway: a left sketch far past the 300 ms limit, into an allocation.
      const out = await client.allocate(addr, { size: 2048 * cols * 8, durationSec: 3600 });
      const runaway: NfuParamSpec[] = [
        { kind: 3, data: encodeAttrs({ rows, cols, k: 2048 }) },
        { kind: 0, cap: A.read },
        { kind: 1, cap: out.write, length: 2048 * cols * 8 },
      ];
      const short = ctx.scale === 'short';
      for (let i = 0; i < (short ? 1 : 3); i++) await run('runaway', 33, runaway, (s) => s === '-46');
      if ((await client.probe(out.manage)).size !== 0) f.violate('nfu-abuse: a stopped runaway op wrote its output');
      // Memory bomb: Ω alone would be cols·k·8 = 2 GiB.
      await run(
        'memory-bomb',
        32,
        [
          { kind: 3, data: encodeAttrs({ rows: 1, cols: 16384, k: 16384 }) },
          { kind: 3, data: Buffer.alloc(16384 * 8) },
          { kind: 4, length: 16384 * 8 },
        ],
        refusal,
      );
      await run(
        'memory-bomb',
        48,
        [
          { kind: 3, data: encodeAttrs({ rows: 1, cols: 1 << 20 }) },
          { kind: 3, data: Buffer.alloc(1 << 20) },
          { kind: 4, length: 1 << 20 },
        ],
        refusal,
      );
      // Oversized attributes (over nfu.maxValueBytes).
      await run(
        'oversized-attrs',
        48,
        [
          { kind: 3, data: Buffer.alloc(2 << 20, 0x20) },
          { kind: 0, cap: small.read },
          { kind: 4, length: 64 },
        ],
        refusal,
      );
      // Incoherent attributes.
      const incoherent: unknown[] = [
        { dtype: 'float64', rows: 3, cols: 7 },
        { dtype: 'float64', rows: -1, cols: 8 },
        { dtype: 'float128', rows: 64, cols: 8 },
        { dtype: 'float64', rows: 1e300, cols: 1e300 },
        { dtype: 'float64', rows: 'many', cols: 8 },
        {},
        [],
        null,
      ];
      for (const a of incoherent) {
        await run(
          'incoherent-attrs',
          48,
          [
            { kind: 3, data: Buffer.from(JSON.stringify(a)) },
            { kind: 0, cap: small.read },
            { kind: 4, length: 512 },
          ],
          refusal,
        );
      }
      await run(
        'incoherent-attrs',
        48,
        [
          { kind: 3, data: Buffer.from('{"dtype":') },
          { kind: 0, cap: small.read },
          { kind: 4, length: 512 },
        ],
        refusal,
      );
      // Queue flood: 40 runaways at once (12 in the short run; 1 worker, queue 4).
      // The flooding client has its own connections, and leaves (closes them) once answered.
      const flooder = new IbpClient({ timeoutMs: 8_000 });
      const flood = await Promise.all(
        Array.from({ length: short ? 12 : 40 }, () =>
          flooder.nfu(addr, 33, runaway, 15_000).then(
            () => 'ok',
            (e: unknown) => statusOf(e),
          ),
        ),
      ).finally(() => flooder.close());
      for (const s of flood) note('queue-flood', s);
      if (!flood.includes('-66')) f.violate('nfu-abuse: a queue flood got no -66');
      if (flood.some((s) => !refusal(s))) f.violate(`nfu-abuse: queue flood outcomes ${JSON.stringify(outcomes['queue-flood'])}`);
      depots.checkAlive();
      const okAfter = await sha().then(
        () => true,
        () => false,
      );
      if (!okAfter) f.violate('nfu-abuse: the depot did not run a small op after the abuse');
      const after = await settleNear(pid, baseline, { fdSlack: 8, rssSlackKiB: 128 * 1024, timeoutMs: 10_000 });
      if (!after.settled)
        f.violate(`nfu-abuse: RSS/fds not back near baseline (${JSON.stringify(baseline)} → ${JSON.stringify(after.stats)})`);
      f.set('nfu_abuse_outcomes', JSON.stringify(outcomes));
      f.set('nfu_rss_kib_before', baseline.rssKiB);
      f.set('nfu_rss_kib_after', after.stats?.rssKiB ?? null);
      f.set('nfu_fds_before', baseline.fds);
      f.set('nfu_fds_after', after.stats?.fds ?? null);
      ctx.log(
        `outcomes ${JSON.stringify(outcomes)}; RSS ${baseline.rssKiB} → ${after.stats?.rssKiB} KiB, fds ${baseline.fds} → ${after.stats?.fds}`,
      );
    } finally {
      client.close();
      await depots.stop();
      f.count('depot_crashes', depots.crashes);
    }
  },
};
