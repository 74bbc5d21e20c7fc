import { describe, expect, it } from 'vitest';
import { IbpClient, type AllocationCaps } from '../../ibp/index.js';
import { DepotProcess } from '../helpers/depot-process.js';
import { tempDir } from '../helpers/temp-dir.js';

const KILLS = Number(process.env['ANVIL_RING_CRASH_KILLS'] ?? 12);
const RING = 4096;
const CHUNK = 700; // not a divisor of the ring: stores wrap at every offset

/** Stream byte `i` of what the writer stores. */
const streamBytes = (from: number, n: number): Buffer => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = ((from + i) * 131 + ((from + i) >> 9)) & 0xff;
  return b;
};

describe('crash safety of a CIRQ: SIGKILL while it is written', () => {
  it(`${KILLS} kills: the queue comes back holding a contiguous run of the stream that ends at or after every acknowledged byte`, async () => {
    const dir = tempDir('anvil-ring-crash-');
    let port = 0;
    let caps: AllocationCaps | undefined;
    let acked = 0; // stream bytes acknowledged
    let pending = 0; // bytes of the STORE in flight when the depot died
    let partial = 0;
    const args = () => ['--data', dir.path, '--port', String(port), '--log-level', 'warn', '--capacity', '64MiB'];
    try {
      for (let round = 0; round <= KILLS; round++) {
        const started = await DepotProcess.start(args());
        port = started.port;
        const client = new IbpClient({ timeoutMs: 5_000, connectTimeoutMs: 2_000 });
        if (caps === undefined) {
          caps = await client.allocate({ host: started.host, port }, { size: RING, durationSec: 3600, rid: '0', type: 'cirq' });
        }
        // 1. What survived: every acknowledged byte, and of the STORE in flight none, a prefix, or all.
        const p = await client.probe(caps.manage);
        const written = p.written!;
        expect(written).toBeGreaterThanOrEqual(acked);
        expect(written).toBeLessThanOrEqual(acked + pending);
        if (written !== acked && written !== acked + pending) partial++;
        acked = written;
        pending = 0;
        const held = Math.min(written, RING);
        expect(p.size).toBe(held);
        if (held > 0) {
          const window = await client.loadWindow(caps.read, written, held);
          expect(window.equals(streamBytes(written - held, held))).toBe(true);
        }
        if (round === KILLS) {
          client.close();
          expect(await started.proc.kill('SIGTERM')).toBe(0);
          break;
        }
        // 2. Store steadily until a SIGKILL at a random moment.
        let dead = false;
        const timer = setTimeout(
          () => {
            dead = true;
            started.proc.child.kill('SIGKILL');
          },
          20 + ((round * 37) % 120),
        );
        for (let i = 0; i < 10_000 && !dead; i++) {
          pending = CHUNK;
          try {
            await client.store(caps.write, streamBytes(acked, CHUNK));
            acked += CHUNK;
            pending = 0;
          } catch {
            break; // the depot died with this STORE in flight
          }
        }
        clearTimeout(timer);
        client.close();
        await started.proc.exit;
      }
      console.log(JSON.stringify({ ringCrash: { kills: KILLS, storedBytes: acked, wraps: Math.floor(acked / RING), partial } }));
    } finally {
      dir.cleanup();
    }
  });
});
