import { randomBytes } from 'node:crypto';
import { truncateSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { VirtualClock } from '../../depot/index.js';
import {
  bufferBlockCrcs,
  readBlockCrcs,
  streamBlockCrcs,
  threadPoolCrc,
  threadPoolRead,
  threadPoolWrite,
  useThreadPoolCrc,
  writeStreamBlockCrcs,
} from '../../depot/resources/disk/block-crc.js';
import { blockCrcs } from '../../depot/resources/disk/disk-data.js';
import { startDepot } from '../helpers/depot-fixture.js';
import { tempDir } from '../helpers/temp-dir.js';

const BLOCK = 64 * 1024;

/** The reference: CRC of each block of `bytes` (which sit at `at`) that starts at or after `from`. */
function reference(bytes: Buffer, at: number, from: number): Map<number, number> {
  const out = new Map<number, number>();
  for (let pos = at; pos < at + bytes.length;) {
    const block = Math.floor(pos / BLOCK);
    const end = Math.min(at + bytes.length, (block + 1) * BLOCK);
    if (block * BLOCK >= from) out.set(block, crc32(bytes.subarray(pos - at, end - at), out.get(block) ?? 0));
    pos = end;
  }
  return out;
}

/** Cuts `bytes` into pieces of uneven sizes, as a socket delivers them. */
function pieces(bytes: Buffer, seed: number): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0, i = seed; at < bytes.length; i++) {
    const n = Math.min(bytes.length - at, 1 + ((i * 7919) % 90_001));
    out.push(bytes.subarray(at, at + n));
    at += n;
  }
  return out;
}

describe('block CRCs in the thread pool', () => {
  afterEach(() => useThreadPoolCrc(true));
  const crcRuns = threadPoolCrc();

  it.runIf(crcRuns !== undefined)('match zlib.crc32 block by block, batch after batch', async () => {
    const bytes = randomBytes(3 * 1024 * 1024 + 777);
    for (const [at, from] of [
      [0, 0],
      [12_345, 12_345],
      [12_345, BLOCK], // the first, partial block is not tracked
    ] as const) {
      const streaming = new Map<number, number>();
      // Batches of about 1 MiB of uneven pieces, each continuing the CRCs the last one left.
      const all = pieces(bytes, at);
      for (let i = 0, pos = at; i < all.length;) {
        const batch: Buffer[] = [];
        let n = 0;
        while (i < all.length && n < 1024 * 1024) {
          batch.push(all[i]!);
          n += all[i++]!.length;
        }
        await streamBlockCrcs(crcRuns!, batch, pos, BLOCK, from, streaming);
        pos += n;
      }
      expect(streaming).toEqual(reference(bytes, at, from));
    }
  });

  it.runIf(crcRuns !== undefined)('verify a read run as the event loop would, cut at the size', async () => {
    const buf = randomBytes(16 * BLOCK);
    for (const size of [40 * BLOCK, 37 * BLOCK + 5, 32 * BLOCK + 1, 33 * BLOCK]) {
      const want = new Map<number, number>();
      const got = new Map<number, number>();
      blockCrcs(buf.subarray(0, Math.min(buf.length, size - 32 * BLOCK)), 32, size, want);
      await bufferBlockCrcs(crcRuns!, buf.subarray(0, Math.min(buf.length, size - 32 * BLOCK)), 32, BLOCK, size, got);
      expect(got).toEqual(want);
      expect(got.size).toBe(Math.min(16, Math.ceil((size - 32 * BLOCK) / BLOCK)));
    }
  });

  it.runIf(crcRuns !== undefined)('the addon refuses bad arguments before touching anything', () => {
    const parts = [Buffer.alloc(10)];
    expect(() => crcRuns!(parts, new Float64Array([11]), new Uint32Array([0]))).toThrow(/pass the end/);
    expect(() => crcRuns!(parts, new Float64Array([1, 2]), new Uint32Array([0]))).toThrow(/differ in length/);
    expect(() => crcRuns!(parts, new Float64Array([-1]), new Uint32Array([0]))).toThrow(RangeError);
    expect(() => crcRuns!([new Float64Array(2) as unknown as Buffer], new Float64Array([0]), new Uint32Array([0]))).toThrow(
      TypeError,
    );
    expect(() => crcRuns!(parts, [1] as unknown as Float64Array, new Uint32Array([0]))).toThrow(TypeError);
  });

  it.runIf(crcRuns !== undefined)('match zlib.crc32 at every length and alignment the folding takes', async () => {
    const bytes = randomBytes(70_000);
    // Lengths around the 64-byte minimum and the 16- and 64-byte strides, then long ones.
    const lengths = [
      0, 1, 15, 16, 17, 63, 64, 65, 79, 80, 81, 127, 128, 129, 191, 192, 193, 255, 256, 257, 271, 511, 512, 513, 1000, 1071,
      65_536, 69_993,
    ];
    for (const n of lengths) {
      for (const off of [0, 1, 7]) {
        for (const init of [0, 0xffffffff, 0x1234abcd]) {
          const part = bytes.subarray(off, off + n);
          const [got] = await crcRuns!([part], new Float64Array([n]), new Uint32Array([init]));
          expect(got, `length ${n} at ${off} from ${init}`).toBe(crc32(part, init));
        }
      }
    }
  });

  const preadCrcs = threadPoolRead();

  it.runIf(preadCrcs !== undefined)('read a run and checksum its blocks as a read then blockCrcs would', async () => {
    const dir = tempDir();
    try {
      const file = join(dir.path, 'data');
      const bytes = randomBytes(40 * BLOCK + 5);
      writeFileSync(file, bytes);
      const fh = await open(file, 'r');
      try {
        for (const [firstBlock, runBlocks, size] of [
          [0, 16, 40 * BLOCK + 5],
          [32, 16, 40 * BLOCK + 5], // the last block is cut at the size
          [24, 16, 37 * BLOCK + 3], // the size ends inside the run
          [3, 1, 40 * BLOCK + 5],
        ] as const) {
          const length = Math.min(runBlocks * BLOCK, size - firstBlock * BLOCK);
          const buf = Buffer.alloc(length);
          const { bytesRead, crcs } = await readBlockCrcs(preadCrcs!, fh.fd, buf, firstBlock * BLOCK, firstBlock, BLOCK, size);
          expect(bytesRead).toBe(length);
          expect(buf.equals(bytes.subarray(firstBlock * BLOCK, firstBlock * BLOCK + length))).toBe(true);
          const want = new Map<number, number>();
          blockCrcs(buf, firstBlock, size, want);
          expect([...crcs]).toEqual([...want.values()]);
        }
        // Past the end of the file: a short read, and no CRC for the blocks it did not reach.
        const buf = Buffer.alloc(4 * BLOCK);
        const { bytesRead, crcs } = await readBlockCrcs(preadCrcs!, fh.fd, buf, 38 * BLOCK, 38, BLOCK, 42 * BLOCK);
        expect(bytesRead).toBe(2 * BLOCK + 5);
        expect(crcs[0]).toBe(crc32(bytes.subarray(38 * BLOCK, 39 * BLOCK)));
        expect(crcs[1]).toBe(crc32(bytes.subarray(39 * BLOCK, 40 * BLOCK)));
        expect([crcs[2], crcs[3]]).toEqual([0, 0]);
      } finally {
        await fh.close();
      }
    } finally {
      dir.cleanup();
    }
  });

  it.runIf(preadCrcs !== undefined)('a failed read rejects with its error code; bad arguments are refused', async () => {
    const dir = tempDir();
    try {
      // A directory's descriptor: pread fails with EISDIR.
      const fh = await open(dir.path, 'r');
      const buf = Buffer.alloc(BLOCK);
      try {
        await expect(preadCrcs!(fh.fd, buf, 0, new Float64Array([BLOCK]), new Uint32Array(1))).rejects.toMatchObject({
          code: 'EISDIR',
        });
      } finally {
        await fh.close();
      }
      expect(() => preadCrcs!(3, buf, 0, new Float64Array([BLOCK + 1]), new Uint32Array(1))).toThrow(/pass the end/);
      expect(() => preadCrcs!(3, buf, 0, new Float64Array([1, 2]), new Uint32Array(1))).toThrow(/differ in length/);
      expect(() => preadCrcs!(-1, buf, 0, new Float64Array(0), new Uint32Array(0))).toThrow(RangeError);
      expect(() => preadCrcs!(3, buf, -5, new Float64Array(0), new Uint32Array(0))).toThrow(RangeError);
      expect(() => preadCrcs!(3, new Float64Array(2) as unknown as Buffer, 0, new Float64Array(0), new Uint32Array(0))).toThrow(
        TypeError,
      );
    } finally {
      dir.cleanup();
    }
  });

  const pwriteCrcs = threadPoolWrite();

  for (const writeBack of [false, true]) {
    it.runIf(pwriteCrcs !== undefined)(
      `write parts and continue their CRCs in one job as a write then streamBlockCrcs would (write-back ${writeBack ? 'on' : 'off'})`,
      async () => {
        const dir = tempDir();
        try {
          const file = join(dir.path, 'data');
          const fh = await open(file, 'w+');
          try {
            const streaming = new Map<number, number>();
            const whole = randomBytes(3 * BLOCK + 777);
            // Uneven parts, some empty, one crossing block boundaries: written at 100 (a hole before), in two calls.
            const cuts = [0, 10, 10, BLOCK - 50, BLOCK + 9, 2 * BLOCK, 3 * BLOCK + 777];
            const parts = cuts.slice(1).map((c, i) => whole.subarray(cuts[i]!, c));
            await writeStreamBlockCrcs(pwriteCrcs!, fh.fd, parts.slice(0, 3), 100, BLOCK, 0, streaming, writeBack);
            const firstLen = cuts[3]!;
            await writeStreamBlockCrcs(pwriteCrcs!, fh.fd, parts.slice(3), 100 + firstLen, BLOCK, 0, streaming, writeBack);
            await fh.sync();
            const onDisk = Buffer.alloc(100 + whole.length);
            const { bytesRead } = await fh.read(onDisk, 0, onDisk.length, 0);
            expect(bytesRead).toBe(onDisk.length);
            expect(onDisk.subarray(100).equals(whole)).toBe(true);
            // The CRCs continue over the written bytes only (block 0 from byte 100: tracked from 0 here).
            expect([...streaming]).toEqual([...reference(whole, 100, 0)]);
          } finally {
            await fh.close();
          }
        } finally {
          dir.cleanup();
        }
      },
    );
  }

  it.runIf(pwriteCrcs !== undefined)(
    'a failed write rejects with its error code and leaves the CRCs alone; bad arguments are refused',
    async () => {
      const dir = tempDir();
      try {
        const file = join(dir.path, 'ro');
        writeFileSync(file, 'x');
        const fh = await open(file, 'r'); // read-only: pwritev fails with EBADF
        const streaming = new Map<number, number>([[0, 1234]]);
        try {
          await expect(
            writeStreamBlockCrcs(pwriteCrcs!, fh.fd, [Buffer.alloc(10)], 0, BLOCK, 0, streaming, false),
          ).rejects.toMatchObject({ code: 'EBADF' });
          expect([...streaming]).toEqual([[0, 1234]]);
        } finally {
          await fh.close();
        }
        const part = Buffer.alloc(BLOCK);
        expect(() => pwriteCrcs!(3, [part], 0, new Float64Array([BLOCK + 1]), new Uint32Array(1), false)).toThrow(/pass the end/);
        expect(() => pwriteCrcs!(3, [part], 0, new Float64Array([1, 2]), new Uint32Array(1), false)).toThrow(/differ in length/);
        expect(() => pwriteCrcs!(-1, [part], 0, new Float64Array(0), new Uint32Array(0), false)).toThrow(RangeError);
        expect(() => pwriteCrcs!(3, [part], -5, new Float64Array(0), new Uint32Array(0), false)).toThrow(RangeError);
        expect(() =>
          pwriteCrcs!(3, [new Float64Array(2) as unknown as Buffer], 0, new Float64Array(0), new Uint32Array(0), false),
        ).toThrow(TypeError);
      } finally {
        dir.cleanup();
      }
    },
  );

  for (const native of [true, false]) {
    it(`a LOAD serves verified bytes and finds a file cut under it (thread-pool read ${native ? 'on' : 'off'})`, async () => {
      useThreadPoolCrc(native);
      const dir = tempDir();
      const clock = new VirtualClock();
      const options = { port: 0, resource: [{ rid: '1', path: dir.path, capacityBytes: '64MiB', startupCheck: 'size' }] };
      const t = await startDepot(options, clock);
      try {
        const a = await t.client.allocate(t, { size: 4 * 1024 * 1024, durationSec: 100 });
        const data = randomBytes(3 * 1024 * 1024 + 99);
        await t.client.store(a.write, data);
        // Whole runs, a run cut at the size, and ranges that start and end inside blocks.
        expect((await t.client.load(a.read, 0, data.length)).equals(data)).toBe(true);
        expect((await t.client.load(a.read, 70_001, 1_500_000)).equals(data.subarray(70_001, 1_570_001))).toBe(true);
        expect((await t.client.load(a.read, data.length - 5, 5)).equals(data.subarray(data.length - 5))).toBe(true);
        // Cut behind the depot's back: bytes before the cut still read, a LOAD across it fails and
        // the allocation is damaged from then on.
        const id = Number(a.read.wrmKey);
        truncateSync(join(dir.path, 'data', (id % 256).toString(16).padStart(2, '0'), String(id)), 1024 * 1024 + 7);
        expect((await t.client.load(a.read, 0, 1024 * 1024)).equals(data.subarray(0, 1024 * 1024))).toBe(true);
        await expect(t.client.load(a.read, 0, data.length)).rejects.toMatchObject({ code: 'CLIENT_ERR_CONNECTION' });
        await expect(t.client.load(a.read, 0, 10)).rejects.toMatchObject({ status: -15 });
      } finally {
        await t.close();
        dir.cleanup();
      }
    });

    it(`a depot records checksums a full start-up check accepts (thread-pool CRC ${native ? 'on' : 'off'})`, async () => {
      useThreadPoolCrc(native);
      const dir = tempDir();
      const clock = new VirtualClock();
      try {
        const options = { port: 0, resource: [{ rid: '1', path: dir.path, capacityBytes: '64MiB', startupCheck: 'full' }] };
        let t = await startDepot(options, clock);
        const a = await t.client.allocate(t, { size: 4 * 1024 * 1024, durationSec: 100 });
        const data = randomBytes(3 * 1024 * 1024 + 99);
        await t.client.store(a.write, data.subarray(0, 100_000));
        await t.client.write(a.write, 100_000, data.subarray(100_000));
        // Overwrites committed bytes (through the redo journal) across block edges.
        const patch = randomBytes(200_000);
        patch.copy(data, 50_001);
        await t.client.write(a.write, 50_001, patch);
        const port = t.port;
        await t.close();
        t = await startDepot({ ...options, port }, clock);
        try {
          expect((await t.client.load(a.read, 0, data.length)).equals(data)).toBe(true);
          expect(await t.client.probe(a.manage)).toMatchObject({ size: data.length });
        } finally {
          await t.close();
        }
      } finally {
        dir.cleanup();
      }
    });
  }
});
