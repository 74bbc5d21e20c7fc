import { describe, expect, it } from 'vitest';
import { IbpClient, type AllocationCaps } from '../../ibp/index.js';
import { DepotProcess } from '../helpers/depot-process.js';
import { tempDir } from '../helpers/temp-dir.js';

/** Kills per run: at least 50 in CI; `npm run test:crash` raises it. */
const KILLS = Number(process.env['ANVIL_CRASH_KILLS'] ?? 50);
const SEED = Number(process.env['ANVIL_CRASH_SEED'] ?? 20261125);

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

interface Tracked {
  caps: AllocationCaps;
  maxSize: number;
  /** Bytes of every acknowledged store, in order. */
  acked: Buffer[];
  ackedBytes: number;
  /** A store sent but not acknowledged when the depot died (it may or may not have landed). */
  pending: Buffer | undefined;
  /** Stored to since the last kill (verified after every restart; the rest every 10th). */
  touched: boolean;
}

describe('crash safety: SIGKILL at random moments during a stream of stores', () => {
  it(`${KILLS} kills: every acknowledged store reads back byte-identical; nothing unacknowledged shows wrong bytes`, async () => {
    const rand = prng(SEED);
    const dir = tempDir('anvil-crash-');
    const tracked: Tracked[] = [];
    let port = 0;
    let kills = 0;
    let ackedStores = 0;
    let lost = 0;
    let unackedLanded = 0;
    const args = () => ['--data', dir.path, '--port', String(port), '--log-level', 'warn', '--capacity', '1GiB'];
    try {
      for (let round = 0; round <= KILLS; round++) {
        const started = await DepotProcess.start(args());
        port = started.port;
        const addr = { host: started.host, port };
        const client = new IbpClient({ timeoutMs: 5_000, connectTimeoutMs: 2_000 });

        // 1. Verify what survived the previous kill.
        const everything = round % 10 === 0 || round === KILLS;
        for (const t of tracked) {
          if (!everything && !t.touched) continue;
          t.touched = false;
          const p = await client.probe(t.caps.manage);
          const landed = t.pending !== undefined && p.size === t.ackedBytes + t.pending.length;
          if (p.size !== t.ackedBytes && !landed) {
            lost++;
            continue;
          }
          const want = Buffer.concat(landed ? [...t.acked, t.pending!] : t.acked);
          const got = p.size === 0 ? Buffer.alloc(0) : await client.load(t.caps.read, 0, p.size);
          if (!got.equals(want)) lost++;
          if (landed) {
            unackedLanded++;
            t.acked.push(t.pending!);
            t.ackedBytes += t.pending!.length;
          }
          t.pending = undefined;
        }
        if (round === KILLS) {
          client.close();
          expect(await started.proc.kill('SIGTERM')).toBe(0);
          break;
        }

        // 2. A stream of allocations and stores from three workers, killed at a random moment.
        let dead = false;
        const killAfterMs = 15 + Math.floor(rand() * 120);
        const killer = new Promise<void>((resolve) =>
          setTimeout(() => {
            dead = true;
            started.proc.child.kill('SIGKILL');
            resolve();
          }, killAfterMs),
        );
        const worker = async (w: number) => {
          while (!dead) {
            const mine = tracked.filter((t, i) => i % 3 === w && t.ackedBytes < t.maxSize - 70_000);
            if (mine.length === 0 || rand() < 0.15) {
              const maxSize = 200_000 + Math.floor(rand() * 300_000);
              try {
                const caps = await client.allocate(addr, { size: maxSize, durationSec: 3600 });
                tracked.push({ caps, maxSize, acked: [], ackedBytes: 0, pending: undefined, touched: true });
              } catch {
                return;
              }
              continue;
            }
            const t = mine[Math.floor(rand() * mine.length)]!;
            const len = 1 + Math.floor(rand() * 65_536);
            const body = Buffer.alloc(len);
            const salt = Math.floor(rand() * 256);
            for (let i = 0; i < len; i++) body[i] = (salt + i * 31 + (i >> 8)) & 0xff;
            t.pending = body;
            t.touched = true;
            try {
              await client.store(t.caps.write, body);
            } catch {
              return; // died mid-store: stays pending
            }
            t.acked.push(body);
            t.ackedBytes += len;
            t.pending = undefined;
            ackedStores++;
          }
        };
        await Promise.all([worker(0), worker(1), worker(2), killer]);
        await started.proc.exit;
        kills++;
        client.close();
      }
    } finally {
      dir.cleanup();
    }
    console.log(JSON.stringify({ crash: { seed: SEED, kills, ackedStores, allocations: tracked.length, unackedLanded, lost } }));
    expect(kills).toBe(KILLS);
    expect(ackedStores).toBeGreaterThan(KILLS);
    expect(lost).toBe(0);
  }, 600_000);
});
