import { afterEach, describe, expect, it } from 'vitest';
import { formatStore, formatWrite, type Capability } from '../../ibp/index.js';
import { RawSession, startDepot, type TestDepot } from '../helpers/depot-fixture.js';
import { tempDir } from '../helpers/temp-dir.js';

const MiB = 1024 * 1024;

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 131 + seed * 7 + (i >> 12) + 1) & 0xff || 1;
  return b;
}

async function sendInPieces(s: RawSession, command: string, body: Buffer, pieces: number, stopAt = body.length): Promise<void> {
  s.send(command);
  expect(await s.line()).toBe('1 \n');
  const size = Math.ceil(body.length / pieces);
  for (let at = 0; at < stopAt; at += size) {
    s.send(body.subarray(at, Math.min(stopAt, at + size)));
    await new Promise((r) => setTimeout(r, 1));
  }
}

describe('stage buffers shared by concurrent writers, one of which fails mid-body', () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  for (const fsync of ['fast', 'safe'] as const) {
    it(`every lease reads back only its own bytes or zeros (${fsync})`, async () => {
      const d = tempDir();
      cleanups.push(d.cleanup);
      const t: TestDepot = await startDepot({
        resource: [{ rid: '1', path: d.path, capacityBytes: '512MiB', fsync, warmBytes: '64MiB', trashGraceSec: 0 }],
      });
      cleanups.push(() => t.close());
      for (let round = 0; round < 3; round++) {
        const allocs = await Promise.all([0, 1, 2, 3].map(() => t.client.allocate(t, { size: 16 * MiB, durationSec: 60 })));
        const heads = allocs.map((_, i) => pattern(70_000 + i, 100 + round * 10 + i));
        await Promise.all(allocs.map((a, i) => t.client.store(a.write, heads[i]!)));
        const bodies = allocs.map((_, i) => pattern(5 * MiB + 4321 * i, 200 + round * 10 + i));
        const sessions = await Promise.all(allocs.map(() => RawSession.open(t.port)));
        for (const s of sessions) cleanups.push(() => s.end());
        // Session 0 disconnects after 3 MiB of its body; the others complete.
        await Promise.all(
          allocs.map(async (a, i) => {
            const s = sessions[i]!;
            const body = bodies[i]!;
            const cmd = formatStore({ version: 1, cap: a.write as Capability, length: body.length, timeoutSec: 30 });
            if (i === 0) {
              await sendInPieces(s, cmd, body, 40, 3 * MiB);
              s.end();
              await s.closed;
            } else {
              await sendInPieces(s, cmd, body, 40);
              expect(await s.line(10_000)).toBe(`1 ${body.length} \n`);
            }
          }),
        );
        // The refused one keeps its committed size; a WRITE past the end then leaves a hole of zeros.
        let probe = await t.client.probe(allocs[0]!.manage);
        for (let i = 0; i < 50 && probe.size !== heads[0]!.length; i++) {
          await new Promise((r) => setTimeout(r, 20));
          probe = await t.client.probe(allocs[0]!.manage);
        }
        expect(probe.size).toBe(heads[0]!.length);
        const tail = pattern(3000, 300 + round);
        const at = 4 * MiB + 17;
        const s2 = await RawSession.open(t.port);
        cleanups.push(() => s2.end());
        await sendInPieces(
          s2,
          formatWrite({ version: 1, cap: allocs[0]!.write as Capability, offset: at, length: tail.length, timeoutSec: 30 }),
          tail,
          1,
        );
        expect(await s2.line(10_000)).toBe(`1 ${tail.length} \n`);
        const got0 = Buffer.from(await t.client.load(allocs[0]!.read, 0, at + tail.length));
        const want0 = Buffer.concat([heads[0]!, Buffer.alloc(at - heads[0]!.length), tail]);
        expect(got0.equals(want0)).toBe(true);
        for (let i = 1; i < 4; i++) {
          const want = Buffer.concat([heads[i]!, bodies[i]!]);
          const got = Buffer.from(await t.client.load(allocs[i]!.read, 0, want.length));
          expect(got.equals(want)).toBe(true);
        }
      }
    }, 60_000);
  }
});
