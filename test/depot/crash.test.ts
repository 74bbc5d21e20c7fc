import { describe, expect, it, vi } from 'vitest';
import { IbpClient, type AllocationCaps } from '../../ibp/index.js';
import { DepotProcess } from '../helpers/depot-process.js';
import { powerLoss, type PowerLoss } from '../helpers/power-loss.js';
import { tempDir } from '../helpers/temp-dir.js';

/** Kills per run: at least 50 in CI; `npm run test:crash` raises it. */
const KILLS = Number(process.env['ANVIL_CRASH_KILLS'] ?? 50);
/** Power cuts per run (`--fsync safe`): at least 16 in CI; `npm run test:crash` raises it. */
const CUTS = Number(process.env['ANVIL_POWER_CUTS'] ?? 16);
const SEED = Number(process.env['ANVIL_CRASH_SEED'] ?? 20261125);
// Its verification passes grow with the allocations: the run takes longer than linearly in KILLS.
vi.setConfig({ testTimeout: Math.max(600_000, (KILLS + CUTS) * 2_500) });

/** mulberry32: a small seeded PRNG, so a failing run can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const BLOCK = 64 * 1024;

interface Tracked {
  caps: AllocationCaps;
  maxSize: number;
  /** The acknowledged bytes (every acknowledged store and write applied, in order). */
  data: Buffer;
  /**
   * A STORE (`append`) or a WRITE inside the data sent but not acknowledged when the depot died:
   * either may or may not have landed (a write wholly, never in part); every other byte must be
   * as acknowledged.
   */
  pending: { offset: number; body: Buffer; append: boolean } | undefined;
  /** Written to since the last kill (verified after every restart; the rest every 10th). */
  touched: boolean;
}

/** The first offset at which `a` and `b` differ (the shorter one's length if one is a prefix). */
function firstDifference(a: Buffer, b: Buffer): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

function body(len: number, salt: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = (salt + i * 31 + (i >> 8)) & 0xff;
  return b;
}

/**
 * Whether `got` is `old` with the overwrite `update` at `offset` either not applied at all or
 * applied in full (a crash leaves an unacknowledged write all-or-nothing); counts the blocks it
 * changed.
 */
function oldOrNew(got: Buffer, old: Buffer, offset: number, update: Buffer): { ok: boolean; newBlocks: number } {
  if (got.length !== old.length) return { ok: false, newBlocks: 0 };
  const neu = Buffer.from(old);
  update.copy(neu, offset);
  if (got.equals(old)) return { ok: true, newBlocks: 0 };
  if (!got.equals(neu)) return { ok: false, newBlocks: 0 };
  let newBlocks = 0;
  for (let at = 0; at < got.length; at += BLOCK) {
    if (!old.subarray(at, at + BLOCK).equals(neu.subarray(at, at + BLOCK))) newBlocks++;
  }
  return { ok: true, newBlocks };
}

/**
 * `rounds` rounds of a stream of stores and overwrites from three workers, each killed at a random
 * moment and verified after the restart. With `power`, the depot runs under `--fsync safe` and each
 * kill is a power cut: every file loses what was written since its last sync.
 */
async function crashRounds(rounds: number, seed: number, power?: PowerLoss): Promise<void> {
  const rand = prng(seed);
  const dir = tempDir('anvil-crash-');
  const tracked: Tracked[] = [];
  let port = 0;
  let kills = 0;
  let ackedStores = 0;
  let ackedWrites = 0;
  let interruptedWrites = 0;
  let interruptedBlocksNew = 0;
  let lost = 0;
  let unackedLanded = 0;
  const cuts = { putBack: 0, emptied: 0, changedFiles: 0, changedBytes: 0, allocationBytes: 0 };
  /** The first losses, said in the summary: which allocation, after which round, and how. */
  const losses: string[] = [];
  const loss = (round: number, t: Tracked, size: number, got: Buffer | undefined, how: string) => {
    if (losses.length >= 5) return;
    const where = got === undefined ? 'LOAD refused' : `first differing byte ${firstDifference(got, t.data)}`;
    losses.push(`round ${round}, allocation ${tracked.indexOf(t)} (size ${size}): ${how}; ${where}`);
  };
  const args = () => [
    ...['--data', dir.path, '--port', String(port), '--log-level', 'warn', '--capacity', '1GiB'],
    ...(power === undefined ? [] : ['--fsync', 'safe']),
  ];
  try {
    for (let round = 0; round <= rounds; round++) {
      const started = await DepotProcess.start(args(), 15_000, power?.env(dir.path) ?? {});
      port = started.port;
      const addr = { host: started.host, port };
      const client = new IbpClient({ timeoutMs: 5_000, connectTimeoutMs: 2_000 });

      // 1. Verify what survived the previous kill.
      const everything = round % 10 === 0 || round === rounds;
      for (const t of tracked) {
        if (!everything && !t.touched) continue;
        t.touched = false;
        const p = await client.probe(t.caps.manage);
        const pend = t.pending;
        if (pend !== undefined && !pend.append) {
          // an interrupted overwrite: the size stays, the rest is as acknowledged
          const got = p.size === 0 ? Buffer.alloc(0) : await client.load(t.caps.read, 0, p.size).catch(() => undefined);
          const check = got === undefined ? { ok: false, newBlocks: 0 } : oldOrNew(got, t.data, pend.offset, pend.body);
          if (!check.ok) {
            lost++;
            loss(round, t, p.size, got, 'interrupted overwrite neither all old nor all new');
          } else {
            interruptedWrites++;
            interruptedBlocksNew += check.newBlocks;
            t.data = got!; // what the depot now holds is what later rounds must find
          }
          t.pending = undefined;
          continue;
        }
        const landed = pend !== undefined && p.size === t.data.length + pend.body.length;
        if (p.size !== t.data.length && !landed) {
          lost++;
          loss(round, t, p.size, undefined, `size ${p.size}, acknowledged ${t.data.length}`);
          continue;
        }
        const want = landed ? Buffer.concat([t.data, pend.body]) : t.data;
        const got = p.size === 0 ? Buffer.alloc(0) : await client.load(t.caps.read, 0, p.size).catch(() => undefined);
        if (got === undefined || !got.equals(want)) {
          lost++;
          loss(round, t, p.size, got, 'bytes differ');
        }
        if (landed) {
          unackedLanded++;
          t.data = want;
        }
        t.pending = undefined;
      }
      if (round === rounds) {
        client.close();
        expect(await started.proc.kill('SIGTERM')).toBe(0);
        break;
      }

      // 2. A stream of allocations and stores from three workers, killed at a random moment.
      let dead = false;
      // Every other round the kill is aimed: 0-15 ms after an overwrite inside the data is sent,
      // when its bytes are reaching the file and its checksums are not yet committed.
      const aimed = round % 2 === 1 && round >= 2;
      let aim: (() => void) | undefined;
      const killer = new Promise<void>((resolve) => {
        const kill = () => {
          if (dead) return;
          dead = true;
          started.proc.child.kill('SIGKILL');
          resolve();
        };
        const timer = setTimeout(kill, aimed ? 400 : 15 + Math.floor(rand() * 120));
        if (aimed) {
          aim = () => {
            aim = undefined;
            clearTimeout(timer);
            setTimeout(kill, Math.floor(rand() * 16));
          };
        }
      });
      const worker = async (w: number) => {
        while (!dead) {
          const mine = tracked.filter((_, i) => i % 3 === w);
          if (mine.length === 0 || rand() < 0.15) {
            const maxSize = 200_000 + Math.floor(rand() * 300_000);
            try {
              const caps = await client.allocate(addr, { size: maxSize, durationSec: 3600 });
              tracked.push({ caps, maxSize, data: Buffer.alloc(0), pending: undefined, touched: true });
            } catch {
              return;
            }
            continue;
          }
          const t = mine[Math.floor(rand() * mine.length)]!;
          const size = t.data.length;
          const overwrite = size > 0 && (size > t.maxSize - 70_000 || rand() < 0.4);
          // A third of the overwrites small (up to 4 KiB, as a random small I/O load sends them).
          const small = overwrite && rand() < 0.35;
          const len = 1 + Math.floor(rand() * (small ? Math.min(size, 4096) : overwrite ? Math.min(size, 150_000) : 65_536));
          const offset = overwrite ? Math.floor(rand() * (size - len + 1)) : size;
          const bytes = body(len, Math.floor(rand() * 256));
          t.pending = { offset, body: bytes, append: !overwrite };
          t.touched = true;
          if (overwrite && len > 4096) aim?.();
          try {
            if (overwrite) await client.write(t.caps.write, offset, bytes);
            else await client.store(t.caps.write, bytes);
          } catch {
            return; // died mid-command: stays pending
          }
          if (overwrite) {
            bytes.copy(t.data, offset);
            ackedWrites++;
          } else {
            t.data = Buffer.concat([t.data, bytes]);
            ackedStores++;
          }
          t.pending = undefined;
        }
      };
      await Promise.all([worker(0), worker(1), worker(2), killer]);
      await started.proc.exit;
      if (power !== undefined) {
        const cut = power.cut(dir.path);
        // A sync the model does not cover would make the cut judge wrongly.
        expect(cut.unmodelled).toEqual([]);
        cuts.putBack += cut.putBack;
        cuts.emptied += cut.emptied;
        cuts.changedFiles += cut.changed.length;
        for (const c of cut.changed) {
          cuts.changedBytes += c.bytes;
          // Allocation files: data/<shard>/<number> (not their journals, nor the warm pool's files).
          if (/\/data\/[0-9a-f]{2}\/\d+$/.test(c.path)) cuts.allocationBytes += c.bytes;
        }
      }
      kills++;
      client.close();
    }
  } finally {
    dir.cleanup();
  }
  console.log(
    JSON.stringify({
      [power === undefined ? 'crash' : 'powerCut']: {
        seed,
        kills,
        ...(power === undefined
          ? {}
          : {
              filesPutBack: cuts.putBack,
              filesEmptied: cuts.emptied,
              filesChanged: cuts.changedFiles,
              bytesTakenBack: cuts.changedBytes,
              allocationBytesTakenBack: cuts.allocationBytes,
            }),
        ackedStores,
        ackedWrites,
        allocations: tracked.length,
        unackedLanded,
        interruptedWrites,
        interruptedBlocksNew,
        lost,
        ...(losses.length === 0 ? {} : { losses }),
      },
    }),
  );
  expect(kills).toBe(rounds);
  expect(ackedStores).toBeGreaterThan(rounds);
  expect(ackedWrites).toBeGreaterThan(rounds / 2);
  expect(lost).toBe(0);
  if (power !== undefined) {
    // The cuts took unsynced bytes of allocation files back: the model was in force there.
    expect(cuts.allocationBytes, 'allocation bytes the cuts took back (none: the library saw no sync)').toBeGreaterThan(0);
  }
}

describe('crash safety: SIGKILL at random moments during a stream of stores and overwrites', () => {
  it(`${KILLS} kills: every acknowledged byte reads back identical; an interrupted overwrite is all old or all new`, async () => {
    await crashRounds(KILLS, SEED);
  });
});

describe('power-loss safety (--fsync safe): at random moments, every file loses what was written since its last sync', () => {
  it(`${CUTS} cuts: every acknowledged byte reads back identical; an interrupted overwrite is all old or all new`, async () => {
    const power = powerLoss();
    try {
      await crashRounds(CUTS, SEED + 1, power);
    } finally {
      power.cleanup();
    }
  });
});
