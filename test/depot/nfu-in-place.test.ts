import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MIN_SPLIT_ROWS, NfuExecutor } from '../../depot/index.js';
import type { NfuService } from '../../depot/nfu/nfu-service.js';
import { MemoryData, SEGMENT_BYTES, pinStats, segmentPool } from '../../depot/resources/memory-data.js';
import { builtinRegistry, encodeAttrs, parseAttrs } from '../../nfu-kernels/index.js';
import type { Capability } from '../../ibp/index.js';
import { startDepot, type TestDepot } from '../helpers/depot-fixture.js';
import { tempDir } from '../helpers/temp-dir.js';

const MiB = 1024 * 1024;
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest();
const serviceOf = (t: TestDepot) => (t.depot as unknown as { nfu: NfuService }).nfu;
const executorOf = (t: TestDepot) => (serviceOf(t) as unknown as { executor: NfuExecutor }).executor;

/** Memory data of `size` bytes holding `bytes`, as a STORE leaves it. */
async function storedData(
  bytes: Buffer,
  maxSize = bytes.length,
): Promise<{ d: MemoryData; o: { size: number; maxSize: number } }> {
  const o = { size: 0, maxSize };
  const d = new MemoryData(o);
  const w = await d.openWriter(0, bytes.length);
  await w.write(bytes);
  await w.finish(bytes.length);
  o.size = bytes.length;
  return { d, o };
}

async function readAll(d: MemoryData, offset: number, length: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  await d.read(offset, length, (c) => void parts.push(Buffer.from(c)));
  return Buffer.concat(parts);
}

/** The bytes a pinned range shows (what a worker gathers). */
function pinnedBytes(pin: ReturnType<MemoryData['pin']>): Buffer {
  const out = Buffer.alloc(pin.length);
  for (const p of pin.pieces) out.set(p.bytes, p.at);
  return out;
}

describe('memory data pinned for a reader in another thread', () => {
  beforeEach(() => segmentPool.clear());

  it('hands out views of shared memory, not copies', async () => {
    const bytes = randomBytes(2 * SEGMENT_BYTES + 100);
    const { d } = await storedData(bytes);
    const pin = d.pin(10, bytes.length - 10);
    expect(pin.pieces.length).toBe(3);
    for (const p of pin.pieces) expect(p.bytes.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(pinnedBytes(pin).equals(bytes.subarray(10))).toBe(true);
    pin.release();
    expect(segmentPool.pinnedCount).toBe(0);
  });

  it.each([
    ['segments', 3 * SEGMENT_BYTES - 50, 3 * SEGMENT_BYTES],
    ['one small buffer', 64 * 1024, 64 * 1024 + 100],
  ])(
    '(%s) a WRITE, an aborted write or a TRUNCATE after the pin leaves the pinned bytes as they were',
    async (_, size, maxSize) => {
      const bytes = randomBytes(size);
      const { d, o } = await storedData(bytes, maxSize);
      const pin = d.pin(0, size);
      const copied = pinStats.copiedOnWriteBytes;
      const w = await d.openWriter(5, 1000);
      await w.write(Buffer.alloc(1000, 0xee));
      await w.finish(size);
      const aborted = await d.openWriter(size, 10); // past the data: undone by zeroing
      await aborted.write(Buffer.alloc(10, 0xdd));
      await aborted.abort();
      await d.truncate(size - 1, maxSize);
      o.size = size - 1;
      expect(pinnedBytes(pin).equals(bytes)).toBe(true);
      expect(pinStats.copiedOnWriteBytes).toBeGreaterThan(copied);
      const now = await readAll(d, 0, size - 1);
      expect(now.subarray(5, 1005).every((b) => b === 0xee)).toBe(true);
      expect(now.subarray(1005).equals(bytes.subarray(1005, size - 1))).toBe(true);
      pin.release();
    },
  );

  it('a segment given up while pinned joins the pool only when the last pin goes', async () => {
    const bytes = Buffer.alloc(2 * SEGMENT_BYTES, 0x11);
    const { d } = await storedData(bytes);
    const first = d.pin(0, bytes.length);
    const second = d.pin(SEGMENT_BYTES, SEGMENT_BYTES);
    await d.release();
    expect(segmentPool.idleBytes).toBe(0); // nothing a reader holds can go to a new allocation
    const { d: other } = await storedData(Buffer.alloc(2 * SEGMENT_BYTES, 0x22));
    expect(pinnedBytes(first).every((b) => b === 0x11)).toBe(true);
    first.release();
    expect(segmentPool.idleBytes).toBe(SEGMENT_BYTES); // the first segment; the second is still pinned
    second.release();
    second.release(); // twice is once
    expect(segmentPool.idleBytes).toBe(2 * SEGMENT_BYTES);
    await other.release();
  });

  it('a pin released by a reader that may still read (a stopped worker) never sends its segments to the pool', async () => {
    const { d } = await storedData(Buffer.alloc(SEGMENT_BYTES, 0x11));
    const pin = d.pin(0, SEGMENT_BYTES);
    pin.release(false);
    const view = pin.pieces[0]!.bytes;
    const w = await d.openWriter(0, 1); // the writer takes a copy: the stopped reader's bytes stay
    await w.write(Buffer.from([0x99]));
    await w.finish(SEGMENT_BYTES);
    expect(view[0]).toBe(0x11);
    await d.release();
    expect(segmentPool.idleBytes).toBe(SEGMENT_BYTES); // the copy, not the condemned segment
  });

  it('a range past the data is refused', async () => {
    const { d } = await storedData(Buffer.alloc(100));
    expect(() => d.pin(50, 51)).toThrow(/no longer reaches/);
  });
});

describe('NFU: memory inputs are read in place by the workers', () => {
  let t: TestDepot;
  beforeAll(async () => {
    t = await startDepot({ nfu: { workers: 2 } });
  });
  afterAll(async () => {
    await t.close();
  });

  const stored = async (bytes: Buffer) => {
    const caps = await t.client.allocate(t, { size: bytes.length, durationSec: 60 });
    await t.client.store(caps.write, bytes);
    return caps;
  };
  const digest = (cap: Capability, offset = 0, length = 0) =>
    t.client.nfu(t, 16, [
      { kind: 0, cap, offset, length },
      { kind: 4, length: 32 },
    ]);

  it.each([
    ['large (segments)', 5 * MiB + 12345],
    ['small (one buffer)', 64 * 1024],
  ])('a %s REF_RD input reaches the worker with no byte copied on the event loop', async (_, size) => {
    const bytes = randomBytes(size);
    const A = await stored(bytes);
    const stats = serviceOf(t).stats;
    const before = { ...stats };
    expect((await digest(A.read)).get(1)).toEqual(sha256(bytes));
    expect((await digest(A.read, 3000, size - 5000)).get(1)).toEqual(sha256(bytes.subarray(3000, size - 2000)));
    expect(stats.copiedOnLoopBytes - before.copiedOnLoopBytes).toBe(0);
    expect(stats.inPlaceBytes - before.inPlaceBytes).toBe(2 * size - 5000);
    expect(segmentPool.pinnedCount).toBe(0); // every pin is let go once the op is done
  });

  it('an op with two inputs read in place, twice in a row (xor)', async () => {
    const p0 = randomBytes(3 * MiB);
    const p1 = randomBytes(1000);
    const [A, B] = [await stored(p0), await stored(p1)];
    const want = Buffer.from(p0.map((x, i) => x ^ p1[i % p1.length]!));
    for (let i = 0; i < 2; i++) {
      const O = await t.client.allocate(t, { size: p0.length, durationSec: 60 });
      await t.client.nfu(t, 1, [
        { kind: 0, cap: A.read },
        { kind: 0, cap: B.read },
        { kind: 1, cap: O.write, length: p0.length },
      ]);
      expect((await t.client.load(O.read, 0, p0.length)).equals(want)).toBe(true);
    }
  });

  it('an output written into the allocation the op read finds it unpinned: written in place, no copy', async () => {
    const p0 = randomBytes(4 * MiB);
    const key = Buffer.from([0xff]);
    const A = await stored(p0);
    const copied = pinStats.copiedOnWriteBytes;
    await t.client.nfu(t, 1, [
      { kind: 0, cap: A.read },
      { kind: 3, data: key },
      { kind: 1, cap: A.write, length: p0.length },
    ]);
    expect((await t.client.load(A.read, 0, p0.length)).equals(Buffer.from(p0.map((x) => x ^ 0xff)))).toBe(true);
    expect(pinStats.copiedOnWriteBytes).toBe(copied);
  });

  it('a value input is still copied (and counted): the counter sees copies', async () => {
    const stats = serviceOf(t).stats;
    const before = stats.copiedOnLoopBytes;
    const v = randomBytes(1000);
    const out = await t.client.nfu(t, 16, [
      { kind: 3, data: v },
      { kind: 4, length: 32 },
    ]);
    expect(out.get(1)).toEqual(sha256(v));
    expect(stats.copiedOnLoopBytes - before).toBe(1000);
  });

  /** Runs `meanwhile` after the op's inputs were prepared and before any worker reads them. */
  async function racing<T>(op: () => Promise<T>, meanwhile: () => Promise<void>): Promise<T> {
    const ex = executorOf(t);
    const runPooled = ex.runPooled.bind(ex);
    ex.runPooled = async (...args) => {
      ex.runPooled = runPooled;
      await meanwhile();
      return runPooled(...args);
    };
    try {
      return await op();
    } finally {
      ex.runPooled = runPooled;
    }
  }

  it('a WRITE and a STORE racing an op: the op sees the bytes of its start, the allocation keeps the new ones', async () => {
    const size = 3 * MiB;
    const bytes = randomBytes(size);
    const A = await stored(bytes);
    const patch = Buffer.alloc(1 * MiB, 0xee);
    const out = await racing(
      () => digest(A.read),
      async () => {
        await t.client.write(A.write, 100, patch);
      },
    );
    expect(out.get(1)).toEqual(sha256(bytes));
    const now = await t.client.load(A.read, 0, size);
    expect(now.subarray(100, 100 + patch.length).equals(patch)).toBe(true);
    expect(now.subarray(100 + patch.length).equals(bytes.subarray(100 + patch.length))).toBe(true);
    // The op after the write sees it.
    expect((await digest(A.read)).get(1)).toEqual(sha256(now));
  });

  it('an allocation deleted under a running op: its segments go to no new allocation until the op is done', async () => {
    const size = 4 * SEGMENT_BYTES;
    const bytes = randomBytes(size);
    const A = await stored(bytes);
    let B: Awaited<ReturnType<typeof stored>> | undefined;
    const out = await racing(
      () => digest(A.read),
      async () => {
        await t.client.decr(A.manage, 'read'); // the last reference: the data is released
        await expect(t.client.probe(A.manage)).rejects.toMatchObject({ status: -4 });
        B = await stored(Buffer.alloc(size, 0x5a)); // takes warm segments from the pool
      },
    );
    expect(out.get(1)).toEqual(sha256(bytes));
    expect((await t.client.load(B!.read, 0, size)).every((b) => b === 0x5a)).toBe(true);
    expect(segmentPool.pinnedCount).toBe(0);
  });

  it('a large output written back into an allocation lands whole (written in slices)', async () => {
    const rows = 20000;
    const cols = 16;
    const k = 16; // output rows × k × 8 = 2.4 MiB
    const floats = new Float64Array(rows * cols).map((_, i) => (i % 13) - 6);
    const B = await stored(Buffer.from(floats.buffer));
    const Y = await t.client.allocate(t, { size: rows * k * 8, durationSec: 60 });
    const attrs = encodeAttrs({ rows, cols, k, seed: 4 });
    await t.client.nfu(t, 32, [
      { kind: 3, data: attrs },
      { kind: 0, cap: B.read },
      { kind: 1, cap: Y.write, length: rows * k * 8 },
    ]);
    const got = await t.client.load(Y.read, 0, rows * k * 8);
    const kernel = builtinRegistry().byNameOrThrow('gaussian-sketch-right');
    const whole = new Uint8Array(new SharedArrayBuffer(floats.byteLength));
    whole.set(new Uint8Array(floats.buffer));
    const ex = new NfuExecutor({ workers: 2, maxQueue: 4, timeoutMs: 60_000, memoryMb: 256 }, 2);
    try {
      const want = await ex.run({ opcode: 32, attrs: parseAttrs(attrs), inputs: [whole] }, kernel, parseAttrs(attrs));
      expect(Buffer.from(want).equals(got)).toBe(true);
    } finally {
      await ex.close();
    }
  });
});

describe('NFU executor: inputs gathered by the workers', () => {
  it.each(['gaussian-sketch-left', 'gram', 'gaussian-sketch-right'])(
    '%s split over the workers gives the bits of the same op on a copied input',
    async (name) => {
      const kernel = builtinRegistry().byNameOrThrow(name);
      const rows = MIN_SPLIT_ROWS * 4 + 77;
      const cols = 10; // 2.6 MB: the range spans two segments
      const floats = new Float64Array(rows * cols).map((_, i) => Math.sin(i));
      const bytes = Buffer.from(floats.buffer);
      const { d } = await storedData(bytes, 4 * SEGMENT_BYTES);
      const attrs = parseAttrs(encodeAttrs({ rows, cols, k: 7, seed: 9, rowOffset: 3 }));
      const whole = new Uint8Array(new SharedArrayBuffer(bytes.length));
      whole.set(bytes);
      const ex = new NfuExecutor({ workers: 2, maxQueue: 4, timeoutMs: 60_000, memoryMb: 256 }, 2);
      const pin = d.pin(0, bytes.length);
      try {
        const copied = await ex.run({ opcode: kernel.opcode, attrs, inputs: [whole] }, kernel, attrs);
        const placeholder = new Uint8Array(0);
        const gathered = await ex.run(
          { opcode: kernel.opcode, attrs, inputs: [placeholder], sources: [{ length: bytes.length, pieces: pin.pieces }] },
          kernel,
          attrs,
        );
        expect(Buffer.from(gathered).equals(Buffer.from(copied))).toBe(true);
        // A hole (no piece) reads as zeros, though the workers' buffers hold the bytes of the last op.
        const [first, , ...rest] = pin.pieces;
        whole.fill(0, first!.bytes.length, first!.bytes.length + pin.pieces[1]!.bytes.length);
        const holed = await ex.run({ opcode: kernel.opcode, attrs, inputs: [whole] }, kernel, attrs);
        const gatheredHoled = await ex.run(
          { opcode: kernel.opcode, attrs, inputs: [placeholder], sources: [{ length: bytes.length, pieces: [first!, ...rest] }] },
          kernel,
          attrs,
        );
        expect(Buffer.from(gatheredHoled).equals(Buffer.from(holed))).toBe(true);
        expect(Buffer.from(holed).equals(Buffer.from(copied))).toBe(false);
      } finally {
        pin.release();
        await ex.close();
      }
    },
  );
});

describe('NFU: disk inputs are read by the workers from the files', () => {
  let t: TestDepot;
  const dir = tempDir('anvil-nfu-disk-');
  beforeAll(async () => {
    t = await startDepot({ nfu: { workers: 2 }, resource: [{ rid: '1', path: dir.path, capacityBytes: '64MiB' }] });
  });
  afterAll(async () => {
    await t.close();
    dir.cleanup();
  });
  const fileOf = (id: number) => join(dir.path, 'data', (id % 256).toString(16).padStart(2, '0'), String(id));
  const stored = async (bytes: Buffer) => {
    const caps = await t.client.allocate(t, { size: bytes.length, durationSec: 60 });
    await t.client.store(caps.write, bytes);
    return caps;
  };
  const digest = (cap: Capability, offset = 0, length = 0) =>
    t.client.nfu(t, 16, [
      { kind: 0, cap, offset, length },
      { kind: 4, length: 32 },
    ]);

  it('a disk input reaches the worker with no byte copied on the event loop (whole, and a range off block bounds)', async () => {
    const size = 3 * MiB + 777;
    const bytes = randomBytes(size);
    const A = await stored(bytes);
    const stats = serviceOf(t).stats;
    const before = { ...stats };
    expect((await digest(A.read)).get(1)).toEqual(sha256(bytes));
    expect((await digest(A.read, 70_000, 1_000_000)).get(1)).toEqual(sha256(bytes.subarray(70_000, 1_070_000)));
    expect(stats.copiedOnLoopBytes - before.copiedOnLoopBytes).toBe(0);
    expect(stats.workerReadBytes - before.workerReadBytes).toBe(size + 1_000_000);
    expect(stats.rereadOps).toBe(before.rereadOps);
  });

  it('a split op reading a disk input gives the bits of the same op on a memory input', async () => {
    const rows = MIN_SPLIT_ROWS * 2 + 5;
    const cols = 12;
    const floats = new Float64Array(rows * cols).map((_, i) => Math.cos(i));
    const A = await stored(Buffer.from(floats.buffer));
    const attrs = encodeAttrs({ rows, cols, k: 6, seed: 2 });
    const out = await t.client.nfu(t, 33, [
      { kind: 3, data: attrs },
      { kind: 0, cap: A.read },
      { kind: 4, length: 6 * cols * 8 },
    ]);
    const m = await startDepot({ nfu: { workers: 2 } });
    try {
      const B = await m.client.allocate(m, { size: floats.byteLength, durationSec: 60 });
      await m.client.store(B.write, Buffer.from(floats.buffer));
      const want = await m.client.nfu(m, 33, [
        { kind: 3, data: attrs },
        { kind: 0, cap: B.read },
        { kind: 4, length: 6 * cols * 8 },
      ]);
      expect(out.get(2)!.equals(want.get(2)!)).toBe(true);
    } finally {
      await m.close();
    }
  });

  /** Runs `meanwhile` after the op's inputs were planned and before any worker reads them. */
  async function racing<T>(op: () => Promise<T>, meanwhile: () => Promise<void>): Promise<T> {
    const ex = executorOf(t);
    const runPooled = ex.runPooled.bind(ex);
    ex.runPooled = async (...args) => {
      ex.runPooled = runPooled;
      await meanwhile();
      return runPooled(...args);
    };
    try {
      return await op();
    } finally {
      ex.runPooled = runPooled;
    }
  }

  it('a WRITE committed between the plan and the worker read: the op runs again on verified bytes', async () => {
    const bytes = randomBytes(2 * MiB);
    const A = await stored(bytes);
    const patch = Buffer.alloc(100_000, 0xee);
    const rereads = serviceOf(t).stats.rereadOps;
    const out = await racing(
      () => digest(A.read),
      async () => {
        await t.client.write(A.write, 500_000, patch);
      },
    );
    const now = Buffer.from(bytes);
    patch.copy(now, 500_000);
    expect(out.get(1)).toEqual(sha256(now));
    expect(serviceOf(t).stats.rereadOps).toBe(rereads + 1);
  });

  it('a damaged block: the worker does not serve it, the event loop read judges it damaged (-15)', async () => {
    const bytes = randomBytes(1 * MiB);
    const A = await stored(bytes);
    const file = fileOf(Number(A.read.wrmKey));
    const onDisk = readFileSync(file);
    onDisk[700_000]! ^= 0xff;
    writeFileSync(file, onDisk);
    await expect(digest(A.read)).rejects.toMatchObject({ status: -15 });
    await expect(t.client.load(A.read, 0, 10)).rejects.toMatchObject({ status: -15 });
  });
});
