import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { RawSession, keyOf, startDepot } from '../helpers/depot-fixture.js';

/** Stream bytes `[from, from + n)`: 8-byte big-endian words, word k holding k (so a window names its own position). */
function streamBytes(from: number, n: number): Buffer {
  const out = Buffer.alloc(n);
  for (let at = 0; at < n; at += 8) out.writeBigUInt64BE(BigInt((from + at) / 8), at);
  return out;
}

/** The stream position a window starts at, if its words are consecutive; otherwise undefined. */
function windowStart(bytes: Buffer): number | undefined {
  const first = Number(bytes.readBigUInt64BE(0));
  for (let at = 8; at < bytes.length; at += 8) if (Number(bytes.readBigUInt64BE(at)) !== first + at / 8) return undefined;
  return first * 8;
}

const RING = 4096;
const CHUNK = 1000; // not a divisor of the ring: stores wrap at every offset
const WINDOW = 1600;

for (const kind of ['memory', 'disk'] as const) {
  describe(`a CIRQ written steadily while another client loads windows (${kind})`, () => {
    it('every window is a contiguous, correctly ordered run of what was written', async () => {
      const dir = kind === 'disk' ? await mkdtemp(join(tmpdir(), 'anvil-cirq-')) : undefined;
      const t = await startDepot({
        resource: [{ rid: '1', capacityBytes: '1MiB', ...(dir === undefined ? {} : { path: dir }) }],
      });
      const writer = await RawSession.open(t.port);
      const reader = await RawSession.open(t.port);
      try {
        writer.send(`1 1 1 2 4 600 ${RING} 10\n`);
        const [r, w, m] = (await writer.line()).trim().split(' ').slice(1) as [string, string, string];
        const stores = kind === 'memory' ? 400 : 150; // ~100 / ~37 wrap-arounds
        let written = 0;
        const write = (async () => {
          for (let i = 0; i < stores; i++) {
            writer.send(Buffer.concat([Buffer.from(`1 2 ${keyOf(w)} ${CHUNK} 10\n`), streamBytes(written, CHUNK)]));
            expect(await writer.line()).toBe('1 \n');
            expect(await writer.line()).toBe(`1 ${CHUNK} \n`);
            written += CHUNK;
            if (i % 10 === 0) await sleep(1);
          }
        })();
        let byEnd = 0;
        let latest = 0;
        let overwritten = 0;
        let done = false;
        void write.finally(() => (done = true));
        for (let i = 0; i < 5000 && !done; i++) {
          if (i % 2 === 0) {
            // a window by its end position, taken from PROBE
            reader.send(`1 9 ${keyOf(m)} 40 3 0 0 0 10 \n`);
            const p = (await reader.line()).trim().split(' ');
            const end = Number(p[8]);
            if (end < WINDOW) continue;
            reader.send(`1 8 ${keyOf(r)} ${end} ${WINDOW} 10\n`);
            const head = await reader.line();
            if (head === '-19 \n') {
              overwritten++; // the writer lapped the window between the probe and the load
              continue;
            }
            expect(head).toBe(`1 ${WINDOW} \n`);
            expect((await reader.bytes(WINDOW)).equals(streamBytes(end - WINDOW, WINDOW))).toBe(true);
            byEnd++;
          } else {
            // the newest bytes: some contiguous run of the stream, 8-byte aligned since every store is
            reader.send(`1 8 ${keyOf(r)} 0 ${WINDOW} 10\n`);
            expect(await reader.line()).toBe(`1 ${WINDOW} \n`);
            const bytes = await reader.bytes(WINDOW);
            const start = windowStart(bytes);
            expect(start).toBeDefined();
            expect(bytes.equals(streamBytes(start!, WINDOW))).toBe(true);
            expect(start! + WINDOW).toBeLessThanOrEqual(written + CHUNK);
            latest++;
          }
        }
        await write;
        expect(byEnd + latest).toBeGreaterThan(0);
        expect(byEnd + overwritten).toBeGreaterThan(0);
        // at the end: the whole ring is the last RING bytes, in order
        reader.send(`1 8 ${keyOf(r)} ${written} ${RING} 10\n`);
        expect(await reader.line()).toBe(`1 ${RING} \n`);
        expect((await reader.bytes(RING)).equals(streamBytes(written - RING, RING))).toBe(true);
      } finally {
        writer.end();
        reader.end();
        await t.close();
        if (dir !== undefined) await rm(dir, { recursive: true, force: true });
      }
    });
  });
}
