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
  /** 1 byte array, 2 buffer, 3 FIFO, 4 CIRQ. */
  type: number;
  maxSize: number;
  /** The bytes a LOAD sees, oldest first (for a ring: the held bytes). */
  data: number[];
  /** FIFO/CIRQ: bytes ever stored and consumed; BUFFER: the high-water mark of its writes. */
  written: number;
  consumed: number;
  phys: number;
  /** BUFFER: its physical bytes (a STORE shorter than the last leaves the older bytes past its end). */
  pbytes: number[];
  /** Caps replaced by RENAME: they must answer -4. */
  oldCaps: AllocationCaps[];
  readRefs: number;
  writeRefs: number;
  expiresAt: number;
  reliability: number;
  deleted: boolean;
}

interface ModelAlias {
  caps: AllocationCaps;
  master: ModelAlloc;
  off: number;
  len: number;
  expiresAt: number;
  removed: boolean;
}

type Cmd =
  | { k: 'allocate'; size: number; dur: number; type: number }
  | { k: 'rename'; i: number }
  | { k: 'alias'; i: number; off: number; len: number }
  | { k: 'aliasLoad'; i: number; off: number; len: number }
  | { k: 'aliasRemove'; i: number }
  | { k: 'split'; i: number; size: number; dur: number }
  | { k: 'merge'; i: number; j: number }
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
      // small sizes often, so queues wrap and merges fit
      size: fc.oneof(fc.integer({ min: 1, max: 320 }), fc.integer({ min: 1, max: 60 })),
      dur: fc.integer({ min: 1, max: 110 }),
      type: fc.constantFrom(1, 1, 1, 2, 3, 4),
    }),
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('rename' as const), i: idx }) },
  {
    weight: 1,
    arbitrary: fc.record({ k: fc.constant('alias' as const), i: idx, off: fc.nat(320), len: fc.nat(200) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant('aliasLoad' as const),
      i: idx,
      off: fc.nat(100),
      len: fc.integer({ min: 1, max: 80 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('aliasRemove' as const), i: idx }) },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant('split' as const),
      i: idx,
      size: fc.integer({ min: 1, max: 320 }),
      dur: fc.integer({ min: 1, max: 110 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('merge' as const), i: idx, j: idx }) },
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
          const aliases: ModelAlias[] = [];
          const newAlloc = (caps: AllocationCaps, type: number, size: number, dur: number): ModelAlloc => ({
            caps,
            type,
            maxSize: size,
            data: [],
            written: 0,
            consumed: 0,
            phys: 0,
            pbytes: [],
            oldCaps: [],
            readRefs: 1,
            writeRefs: 0,
            expiresAt: clock.now() + dur * 1000,
            reliability: 2,
            deleted: false,
          });
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
                  t = await open(port); // aliases are recorded: they come back too
                }
                continue;
              }
              if (c.k === 'allocate') {
                const expected = c.size > MAX_ALLOC ? -19 : c.dur > MAX_DURATION ? -28 : c.size > CAPACITY - reserved() ? -38 : 1;
                const type = (['bytearray', 'buffer', 'fifo', 'cirq'] as const)[c.type - 1]!;
                try {
                  const caps = await t.client.allocate(t, { size: c.size, durationSec: c.dur, rid: '1', type });
                  expect(expected).toBe(1);
                  allocs.push(newAlloc(caps, c.type, c.size, c.dur));
                } catch (e) {
                  expect((e as ClientError).status).toBe(expected);
                }
                continue;
              }
              if (c.k === 'aliasLoad' || c.k === 'aliasRemove') {
                const al = aliases.length === 0 ? undefined : aliases[c.i % aliases.length];
                if (al === undefined) continue;
                const alAlive = !al.removed && live(al.master) && clock.now() < al.expiresAt;
                if (c.k === 'aliasRemove') {
                  const expected = !alAlive ? -4 : 1;
                  expect(await statusOf(t.client.aliasRemove(al.caps.manage, al.master.caps.manage))).toBe(expected);
                  al.removed = true;
                  continue;
                }
                const len = al.len === 0 ? Math.max(0, al.master.maxSize - al.off) : al.len;
                const size = Math.min(Math.max(0, al.master.data.length - al.off), len);
                const expected = !alAlive ? -4 : c.off + c.len > size ? -19 : 1;
                try {
                  const got = await t.client.load(al.caps.read, c.off, c.len);
                  expect(expected).toBe(1);
                  expect([...got]).toEqual(al.master.data.slice(al.off + c.off, al.off + c.off + c.len));
                } catch (e) {
                  expect((e as ClientError).status).toBe(expected);
                }
                continue;
              }
              const a = pick(c.i);
              if (a === undefined) continue;
              const alive = live(a);
              const ring = a.type !== 1;
              switch (c.k) {
                case 'rename': {
                  try {
                    const caps = await t.client.rename(a.caps.manage);
                    expect(alive).toBe(true);
                    a.oldCaps.push(a.caps);
                    a.caps = caps;
                  } catch (e) {
                    expect(alive).toBe(false);
                    expect((e as ClientError).status).toBe(-4);
                  }
                  for (const old of a.oldCaps) expect(await statusOf(t.client.probe(old.manage))).toBe(-4);
                  break;
                }
                case 'alias': {
                  const expected = !alive
                    ? -4
                    : ring
                      ? -22
                      : c.off + c.len > a.maxSize || (c.len === 0 && c.off >= a.maxSize)
                        ? -19
                        : 1;
                  try {
                    const caps = await t.client.aliasAllocate(a.caps.manage, { offset: c.off, length: c.len });
                    expect(expected).toBe(1);
                    aliases.push({ caps, master: a, off: c.off, len: c.len, expiresAt: a.expiresAt, removed: false });
                  } catch (e) {
                    expect((e as ClientError).status).toBe(expected);
                  }
                  break;
                }
                case 'split': {
                  const expected = !alive ? -4 : ring ? -22 : c.dur > MAX_DURATION ? -28 : c.size >= a.maxSize ? -19 : 1;
                  try {
                    const caps = await t.client.split(a.caps.manage, { size: c.size, durationSec: c.dur });
                    expect(expected).toBe(1);
                    a.maxSize -= c.size;
                    a.data.length = Math.min(a.data.length, a.maxSize);
                    allocs.push(newAlloc(caps, 1, c.size, c.dur));
                  } catch (e) {
                    expect((e as ClientError).status).toBe(expected);
                  }
                  break;
                }
                case 'merge': {
                  const b = pick(c.j)!;
                  const expected =
                    !alive || !live(b)
                      ? -4
                      : a === b
                        ? -30
                        : ring || b.type !== 1
                          ? -22
                          : b.readRefs !== 1 || b.writeRefs !== 0
                            ? -1
                            : a.maxSize + b.maxSize > MAX_ALLOC
                              ? -19
                              : 1;
                  expect(await statusOf(t.client.merge(a.caps.manage, b.caps.manage))).toBe(expected);
                  if (expected === 1) {
                    a.maxSize += b.maxSize;
                    b.deleted = true;
                  }
                  break;
                }
                case 'store': {
                  if (a.type === 3 && alive && c.len <= a.maxSize && c.len > a.maxSize - a.data.length) break; // would wait for room
                  const expected = !alive
                    ? -4
                    : ring
                      ? c.len > a.maxSize
                        ? -19
                        : 1
                      : a.data.length + c.len > a.maxSize
                        ? -19
                        : 1;
                  expect(await statusOf(t.client.store(a.caps.write, Buffer.alloc(c.len, c.fill)))).toBe(expected);
                  if (expected !== 1) break;
                  const bytes = new Array<number>(c.len).fill(c.fill);
                  if (a.type === 2) {
                    for (let j = 0; j < c.len; j++) a.pbytes[j] = c.fill;
                    a.data = a.pbytes.slice(0, c.len);
                    a.phys = a.pbytes.length;
                  } else {
                    a.data.push(...bytes);
                    a.written += c.len;
                    if (a.type === 4 && a.data.length > a.maxSize) a.data.splice(0, a.data.length - a.maxSize);
                  }
                  break;
                }
                case 'write': {
                  if (alive && (a.type === 3 || a.type === 4)) {
                    const r = await statusOf(t.client.write(a.caps.write, c.off, Buffer.alloc(c.len, c.fill)));
                    expect(r).toBe(c.off + c.len > a.maxSize ? -19 : -22);
                    break;
                  }
                  const expected = !alive ? -4 : c.off + c.len > a.maxSize ? -19 : 1;
                  expect(await statusOf(t.client.write(a.caps.write, c.off, Buffer.alloc(c.len, c.fill)))).toBe(expected);
                  if (expected === 1 && a.type === 2) {
                    while (a.pbytes.length < c.off) a.pbytes.push(0);
                    for (let j = 0; j < c.len; j++) a.pbytes[c.off + j] = c.fill;
                    a.data = a.pbytes.slice(0, Math.max(a.data.length, c.off + c.len));
                    a.phys = a.pbytes.length;
                  } else if (expected === 1) {
                    while (a.data.length < c.off) a.data.push(0);
                    for (let j = 0; j < c.len; j++) a.data[c.off + j] = c.fill;
                  }
                  break;
                }
                case 'load': {
                  if (alive && (a.type === 3 || a.type === 4)) {
                    if (c.len > a.maxSize) {
                      expect(await statusOf(t.client.load(a.caps.read, 0, c.len))).toBe(-19);
                      break;
                    }
                    if (c.len > a.data.length) break; // would wait for data
                    // FIFO: the oldest bytes, consumed; CIRQ: the newest (offset 0) or the window ending at the write position
                    const offset = a.type === 4 && c.off % 2 === 1 ? a.written : 0;
                    const got = await t.client.load(a.caps.read, offset, c.len);
                    if (a.type === 3) {
                      expect([...got]).toEqual(a.data.slice(0, c.len));
                      a.data.splice(0, c.len);
                      a.consumed += c.len;
                    } else {
                      expect([...got]).toEqual(a.data.slice(a.data.length - c.len));
                    }
                    break;
                  }
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
                      type: a.type,
                      ...(a.type === 3 || a.type === 4 ? { written: a.written, consumed: a.consumed } : {}),
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
                    : (ring && a.type !== 2 && c.maxSize !== a.maxSize) || (a.type === 2 && c.maxSize < a.phys)
                      ? -20
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
                  const expected = !alive
                    ? -4
                    : ring
                      ? -22
                      : c.size > MAX_ALLOC
                        ? -19
                        : c.size - a.maxSize > CAPACITY - reserved()
                          ? -38
                          : 1;
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

type QueueCmd =
  | { k: 'store'; len: number; fill: number }
  | { k: 'write'; off: number; len: number; fill: number }
  | { k: 'load'; len: number; byEnd: boolean }
  | { k: 'probe' }
  | { k: 'restart' };

const queueCmd: fc.Arbitrary<QueueCmd> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ k: fc.constant('store' as const), len: fc.integer({ min: 1, max: 50 }), fill: fc.nat(255) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant('write' as const),
      off: fc.nat(60),
      len: fc.integer({ min: 1, max: 30 }),
      fill: fc.nat(255),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ k: fc.constant('load' as const), len: fc.integer({ min: 1, max: 70 }), byEnd: fc.boolean() }),
  },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('probe' as const) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('restart' as const) }) },
);

describe.each([
  { kind: 'memory', runs: 150 },
  { kind: 'disk', runs: 40 },
] as const)('model-based queues ($kind): one BUFFER, FIFO or CIRQ under random STORE/WRITE/LOAD/PROBE', ({ kind, runs }) => {
  it('ring wrap-around, FIFO consumption, BUFFER replacement and the write position agree with the model', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(2, 3, 4),
        fc.integer({ min: 1, max: 64 }),
        fc.array(queueCmd, { minLength: 1, maxLength: 40 }),
        async (type, size, cmds) => {
          const dir = kind === 'disk' ? tempDir() : undefined;
          const open = (port: number) =>
            startDepot({
              port,
              resource: [{ rid: '1', capacityBytes: CAPACITY, ...(dir === undefined ? {} : { path: dir.path, fsync: 'fast' }) }],
            });
          let t = await open(0);
          try {
            const caps = await t.client.allocate(t, {
              size,
              durationSec: 600,
              rid: '1',
              type: (['buffer', 'fifo', 'cirq'] as const)[type - 2],
            });
            let data: number[] = []; // what a LOAD sees, oldest first
            const pbytes: number[] = []; // BUFFER: the physical bytes
            let written = 0;
            let consumed = 0;
            for (const c of cmds) {
              switch (c.k) {
                case 'restart':
                  if (kind === 'disk') {
                    const port = t.port;
                    await t.close();
                    t = await open(port);
                  }
                  break;
                case 'store': {
                  if (type === 3 && c.len <= size && c.len > size - data.length) break; // would wait for room
                  const expected = c.len > size ? -19 : 1;
                  expect(await statusOf(t.client.store(caps.write, Buffer.alloc(c.len, c.fill)))).toBe(expected);
                  if (expected !== 1) break;
                  if (type === 2) {
                    for (let j = 0; j < c.len; j++) pbytes[j] = c.fill;
                    data = pbytes.slice(0, c.len);
                  } else {
                    data.push(...new Array<number>(c.len).fill(c.fill));
                    written += c.len;
                    if (type === 4 && data.length > size) data.splice(0, data.length - size);
                  }
                  break;
                }
                case 'write': {
                  const expected = c.off + c.len > size ? -19 : type === 2 ? 1 : -22;
                  expect(await statusOf(t.client.write(caps.write, c.off, Buffer.alloc(c.len, c.fill)))).toBe(expected);
                  if (expected === 1) {
                    while (pbytes.length < c.off) pbytes.push(0);
                    for (let j = 0; j < c.len; j++) pbytes[c.off + j] = c.fill;
                    data = pbytes.slice(0, Math.max(data.length, c.off + c.len));
                  }
                  break;
                }
                case 'load': {
                  if (type === 2) {
                    const expected = c.len > data.length ? -19 : 1;
                    try {
                      const got = await t.client.load(caps.read, 0, c.len);
                      expect(expected).toBe(1);
                      expect([...got]).toEqual(data.slice(0, c.len));
                    } catch (e) {
                      expect((e as ClientError).status).toBe(expected);
                    }
                    break;
                  }
                  if (c.len > size) {
                    expect(await statusOf(t.client.load(caps.read, 0, c.len))).toBe(-19);
                    break;
                  }
                  if (c.len > data.length) break; // would wait for data
                  const got = await t.client.load(caps.read, type === 4 && c.byEnd ? written : 0, c.len);
                  if (type === 3) {
                    expect([...got]).toEqual(data.slice(0, c.len));
                    data.splice(0, c.len);
                    consumed += c.len;
                  } else {
                    expect([...got]).toEqual(data.slice(data.length - c.len));
                  }
                  break;
                }
                case 'probe': {
                  const p = await t.client.probe(caps.manage);
                  expect(p.size).toBe(data.length);
                  expect(p.maxSize).toBe(size);
                  expect(p.type).toBe(type);
                  if (type !== 2) expect([p.written, p.consumed]).toEqual([written, consumed]);
                  break;
                }
              }
            }
          } finally {
            await t.close();
            dir?.cleanup();
          }
        },
      ),
      { seed: 20261130, numRuns: runs },
    );
  });
});
