import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { VirtualClock } from '../../depot/index.js';
import { ClientError, type AllocationCaps } from '../../framework/index.js';
import { startDepot } from '../helpers/depot-fixture.js';
import { tempDir } from '../helpers/temp-dir.js';

const CAPACITY = 600;
const MAX_ALLOC = 300;
const MAX_DURATION = 100;

interface ModelAlloc {
  caps: AllocationCaps;
  maxSize: number;
  data: number[];
  readRefs: number;
  writeRefs: number;
  expiresAt: number;
  reliability: number;
  deleted: boolean;
}

type Cmd =
  | { k: 'allocate'; size: number; dur: number }
  | { k: 'store'; i: number; len: number; fill: number }
  | { k: 'write'; i: number; off: number; len: number; fill: number }
  | { k: 'load'; i: number; off: number; len: number }
  | { k: 'probe'; i: number }
  | { k: 'incr' | 'decr'; i: number; which: 'read' | 'write' }
  | { k: 'chng'; i: number; maxSize: number; dur: number; rel: number }
  | { k: 'truncate'; i: number; size: number }
  | { k: 'advance'; ms: number }
  | { k: 'restart' };

const idx = fc.nat(7);
const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      k: fc.constant('allocate' as const),
      size: fc.integer({ min: 1, max: 320 }),
      dur: fc.integer({ min: 1, max: 110 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ k: fc.constant('store' as const), i: idx, len: fc.integer({ min: 1, max: 80 }), fill: fc.nat(255) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant('write' as const),
      i: idx,
      off: fc.nat(300),
      len: fc.integer({ min: 1, max: 60 }),
      fill: fc.nat(255),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ k: fc.constant('load' as const), i: idx, off: fc.nat(200), len: fc.integer({ min: 1, max: 120 }) }),
  },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('probe' as const), i: idx }) },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constantFrom('incr' as const, 'decr' as const),
      i: idx,
      which: fc.constantFrom('read' as const, 'write' as const),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant('chng' as const),
      i: idx,
      maxSize: fc.integer({ min: 1, max: 320 }),
      dur: fc.integer({ min: -1, max: 110 }),
      rel: fc.constantFrom(-1, 1, 2),
    }),
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('truncate' as const), i: idx, size: fc.nat(320) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('advance' as const), ms: fc.nat(40_000) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('restart' as const) }) },
);

async function statusOf(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 1;
  } catch (e) {
    if (e instanceof ClientError && e.status !== undefined) return e.status;
    throw e;
  }
}

/** Disk kinds also restart the depot at random points: everything acknowledged must come back. */
const KINDS = [
  { kind: 'memory', fsync: undefined, runs: 200 },
  { kind: 'disk', fsync: 'fast', runs: 120 },
  { kind: 'disk', fsync: 'safe', runs: 25 },
] as const;

describe.each(KINDS)(
  'model-based ($kind resource, fsync $fsync): random valid command sequences agree with a small model',
  ({ kind, fsync, runs }) => {
    it('allocations, sizes, bytes, refcounts, capacity and expiry on a virtual clock', async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(cmdArb, { minLength: 1, maxLength: 40 }), async (cmds) => {
          const clock = new VirtualClock();
          const dir = kind === 'disk' ? tempDir() : undefined;
          const where = dir === undefined ? {} : { path: dir.path, fsync, trashGraceSec: 0 };
          const open = (port: number) =>
            startDepot(
              {
                port,
                resource: [
                  { rid: '1', capacityBytes: CAPACITY, maxAllocationBytes: MAX_ALLOC, maxDurationSec: MAX_DURATION, ...where },
                ],
              },
              clock,
            );
          let t = await open(0);
          const allocs: ModelAlloc[] = [];
          const live = (a: ModelAlloc) => !a.deleted && clock.now() < a.expiresAt;
          const reserved = () => allocs.filter(live).reduce((s, a) => s + a.maxSize, 0);
          const pick = (i: number) => (allocs.length === 0 ? undefined : allocs[i % allocs.length]);
          try {
            for (const c of cmds) {
              if (c.k === 'advance') {
                clock.advance(c.ms);
                continue;
              }
              if (c.k === 'restart') {
                if (kind === 'disk') {
                  const port = t.port;
                  await t.close();
                  t = await open(port);
                }
                continue;
              }
              if (c.k === 'allocate') {
                const expected = c.size > MAX_ALLOC ? -19 : c.dur > MAX_DURATION ? -28 : c.size > CAPACITY - reserved() ? -38 : 1;
                try {
                  const caps = await t.client.allocate(t, { size: c.size, durationSec: c.dur, rid: '1' });
                  expect(expected).toBe(1);
                  allocs.push({
                    caps,
                    maxSize: c.size,
                    data: [],
                    readRefs: 1,
                    writeRefs: 0,
                    expiresAt: clock.now() + c.dur * 1000,
                    reliability: 2,
                    deleted: false,
                  });
                } catch (e) {
                  expect((e as ClientError).status).toBe(expected);
                }
                continue;
              }
              const a = pick(c.i);
              if (a === undefined) continue;
              const alive = live(a);
              switch (c.k) {
                case 'store': {
                  const expected = !alive ? -4 : a.data.length + c.len > a.maxSize ? -19 : 1;
                  expect(await statusOf(t.client.store(a.caps.write, Buffer.alloc(c.len, c.fill)))).toBe(expected);
                  if (expected === 1) a.data.push(...new Array<number>(c.len).fill(c.fill));
                  break;
                }
                case 'write': {
                  const expected = !alive ? -4 : c.off + c.len > a.maxSize ? -19 : 1;
                  expect(await statusOf(t.client.write(a.caps.write, c.off, Buffer.alloc(c.len, c.fill)))).toBe(expected);
                  if (expected === 1) {
                    while (a.data.length < c.off) a.data.push(0);
                    for (let j = 0; j < c.len; j++) a.data[c.off + j] = c.fill;
                  }
                  break;
                }
                case 'load': {
                  const expected = !alive ? -4 : c.off + c.len > a.data.length ? -19 : 1;
                  try {
                    const got = await t.client.load(a.caps.read, c.off, c.len);
                    expect(expected).toBe(1);
                    expect([...got]).toEqual(a.data.slice(c.off, c.off + c.len));
                  } catch (e) {
                    expect((e as ClientError).status).toBe(expected);
                  }
                  break;
                }
                case 'probe': {
                  try {
                    const p = await t.client.probe(a.caps.manage);
                    expect(alive).toBe(true);
                    expect(p).toEqual({
                      readRefs: a.readRefs,
                      writeRefs: a.writeRefs,
                      size: a.data.length,
                      maxSize: a.maxSize,
                      secondsLeft: Math.ceil((a.expiresAt - clock.now()) / 1000),
                      reliability: a.reliability,
                      type: 1,
                    });
                  } catch (e) {
                    expect(alive).toBe(false);
                    expect((e as ClientError).status).toBe(-4);
                  }
                  break;
                }
                case 'incr':
                case 'decr': {
                  const p = c.k === 'incr' ? t.client.incr(a.caps.manage, c.which) : t.client.decr(a.caps.manage, c.which);
                  expect(await statusOf(p)).toBe(alive ? 1 : -4);
                  if (alive) {
                    const d = c.k === 'incr' ? 1 : -1;
                    if (c.which === 'read') a.readRefs = Math.max(0, a.readRefs + d);
                    else a.writeRefs = Math.max(0, a.writeRefs + d);
                    if (a.readRefs === 0 && a.writeRefs === 0) a.deleted = true;
                  }
                  break;
                }
                case 'chng': {
                  const dur = c.dur === 0 ? -1 : c.dur;
                  const expected = !alive
                    ? -4
                    : c.maxSize < a.data.length
                      ? -20
                      : c.maxSize > MAX_ALLOC
                        ? -19
                        : c.maxSize - a.maxSize > CAPACITY - reserved()
                          ? -38
                          : dur > MAX_DURATION
                            ? -45
                            : 1;
                  expect(
                    await statusOf(t.client.change(a.caps.manage, { maxSize: c.maxSize, durationSec: dur, reliability: c.rel })),
                  ).toBe(expected);
                  if (expected === 1) {
                    a.maxSize = c.maxSize;
                    if (dur > 0) a.expiresAt = clock.now() + dur * 1000;
                    if (c.rel !== -1) a.reliability = c.rel;
                  }
                  break;
                }
                case 'truncate': {
                  const expected = !alive ? -4 : c.size > MAX_ALLOC ? -19 : c.size - a.maxSize > CAPACITY - reserved() ? -38 : 1;
                  expect(await statusOf(t.client.truncate(a.caps.manage, c.size))).toBe(expected);
                  if (expected === 1) {
                    a.maxSize = c.size;
                    a.data.length = Math.min(a.data.length, c.size);
                  }
                  break;
                }
              }
            }
            // The depot's own accounting agrees with the model at the end.
            const inq = await t.client.status(t);
            expect(inq.resources[0]!.usedBytes).toBe(reserved());
          } finally {
            await t.close();
            dir?.cleanup();
          }
        }),
        { seed: 20261125, numRuns: runs },
      );
    });
  },
);
