import { describe, expect, it } from 'vitest';
import { NfuExecutor, MIN_SPLIT_ROWS } from '../../depot/index.js';
import { SharedBufferPool } from '../../depot/nfu/shared-pool.js';
import { builtinRegistry, encodeAttrs, normals, parseAttrs } from '../../nfu-kernels/index.js';

/** n standard normals of seed `seed` (test data). */
function gaussian(n: number, seed: number): Float64Array {
  const v = new Float64Array(n);
  normals(seed, 9, 0, 0, v);
  return v;
}

describe('NFU executor: a large op split by rows over the workers', () => {
  it.each(['gaussian-sketch-right', 'gaussian-sketch-left', 'sparse-sign-sketch', 'count-sketch', 'gram', 'atb'])(
    '%s agrees with the one-piece run',
    async (name) => {
      const registry = builtinRegistry();
      const kernel = registry.byNameOrThrow(name);
      const rows = MIN_SPLIT_ROWS + 1001;
      const cols = 6;
      const k = 5;
      const [A, B] = [gaussian(rows * cols, 1), gaussian(rows * k, 2)];
      const attrs = parseAttrs(encodeAttrs({ rows, cols, k, seed: 3, rowOffset: 17 }));
      const shared = (x: Float64Array) => {
        const v = new Uint8Array(new SharedArrayBuffer(x.byteLength));
        v.set(new Uint8Array(x.buffer));
        return v;
      };
      const inputs = name === 'atb' ? [shared(A), shared(B)] : [shared(A)];
      const one = new Float64Array(kernel.run(attrs, inputs).slice().buffer);
      const ex = new NfuExecutor({ workers: 2, maxQueue: 8, timeoutMs: 60_000, memoryMb: 512 }, 2);
      try {
        const split = new Float64Array((await ex.run({ opcode: kernel.opcode, attrs, inputs }, kernel, attrs)).slice().buffer);
        expect(split.length).toBe(one.length);
        for (let i = 0; i < one.length; i++) expect(Math.abs(split[i]! - one[i]!)).toBeLessThan(1e-9 * (1 + Math.abs(one[i]!)));
      } finally {
        await ex.close();
      }
    },
  );
});

describe('NFU executor: pooled shared buffers', () => {
  it('a given-back buffer is handed out again; idle bytes stay under the cap; a double give is ignored', () => {
    const pool = new SharedBufferPool(3 * 65536);
    const a = pool.take(1000);
    expect(a.length).toBe(1000);
    expect(a.buffer.byteLength).toBe(65536);
    pool.give(a);
    pool.give(a);
    expect(pool.idleSize).toBe(65536);
    const b = pool.take(60_000);
    expect(b.buffer).toBe(a.buffer);
    expect(pool.idleSize).toBe(0);
    const big = pool.take(300_000); // class 512 KiB: over the cap, so not kept
    expect(big.buffer.byteLength).toBe(524288);
    pool.give(big);
    expect(pool.idleSize).toBe(0);
    pool.give(new Uint8Array(100)); // not from the pool: ignored
    expect(pool.idleSize).toBe(0);
  });

  it.each([
    ['inline', 0],
    ['one worker', 1],
    ['two workers, split', 2],
  ])('every kernel overwrites its whole output in a reused buffer (%s)', async (_n, workers) => {
    const registry = builtinRegistry();
    const rows = MIN_SPLIT_ROWS + 77;
    const cols = 5;
    const k = 3;
    const [A, B] = [gaussian(rows * cols, 4), gaussian(rows * k, 5)];
    const ex = new NfuExecutor({ workers, maxQueue: 8, timeoutMs: 60_000, memoryMb: 512 }, 2);
    try {
      for (const name of [
        'gaussian-sketch-right',
        'gaussian-sketch-left',
        'sparse-sign-sketch',
        'count-sketch',
        'srht',
        'gram',
        'column-stats',
        'atb',
      ]) {
        const kernel = registry.byNameOrThrow(name);
        const attrs = parseAttrs(encodeAttrs({ rows, cols, k, seed: 3, rowOffset: 17, s: 2 }));
        const inputs = [new Uint8Array(A.buffer), ...(name === 'atb' ? [new Uint8Array(B.buffer)] : [])];
        const want = Buffer.from(kernel.run(attrs, inputs).slice());
        // Poison every size class the op may draw, then run it twice on reused buffers.
        const poisoned = [65536, 1 << 17, 1 << 18, 1 << 19, 1 << 20, 1 << 21].map((n) => ex.buffers.take(n).fill(0xff));
        for (const p of poisoned) ex.buffers.give(p);
        for (let round = 0; round < 2; round++) {
          const r = await ex.runPooled({ opcode: kernel.opcode, attrs, inputs: inputs.map((x) => x.slice()) }, kernel, attrs);
          const got = Buffer.from(r.output.slice());
          r.release();
          expect(got.length, name).toBe(want.length);
          const g = new Float64Array(got.buffer, got.byteOffset, got.length / 8);
          const w = new Float64Array(want.buffer, want.byteOffset, want.length / 8);
          for (let i = 0; i < w.length; i++)
            expect(Math.abs(g[i]! - w[i]!), `${name}[${i}]`).toBeLessThan(1e-9 * (1 + Math.abs(w[i]!)));
        }
      }
    } finally {
      await ex.close();
    }
  });
});

describe('NFU executor: queue wait', () => {
  it('an op no worker starts within nfu.queueTimeoutMs answers "-66 <retry>"; the running one completes', async () => {
    const registry = builtinRegistry();
    const kernel = registry.byNameOrThrow('gaussian-sketch-left');
    const cols = 256;
    const quickAttrs = parseAttrs(encodeAttrs({ rows: 10, cols: 2, k: 1, seed: 1 }));
    const quick = () => ex.run({ opcode: kernel.opcode, attrs: quickAttrs, inputs: [new Uint8Array(160)] }, kernel, quickAttrs);
    // ~80 GFLOP: seconds on any backend, far past the 1 s the queued op may wait
    const rows = 40_000;
    const slowAttrs = parseAttrs(encodeAttrs({ rows, cols, k: 4096, seed: 1 }));
    const A = new Uint8Array(new Float64Array(rows * cols).fill(0.25).buffer);
    const ex = new NfuExecutor({ workers: 1, maxQueue: 4, timeoutMs: 120_000, memoryMb: 1024, queueTimeoutMs: 1000 }, 3);
    try {
      await quick(); // the worker is up
      const slow = ex.run({ opcode: kernel.opcode, attrs: slowAttrs, inputs: [A] }, kernel, slowAttrs);
      await new Promise((r) => setTimeout(r, 20));
      const queued = await quick().catch((e: unknown) => e);
      expect(queued).toMatchObject({ code: 'DEPOT_ERR_OVERLOADED', details: { retryAfterSec: 3, workerMayRun: true } });
      expect((await slow).length).toBe(4096 * cols * 8);
      expect((await quick()).length).toBe(2 * 8); // and the pool serves again
    } finally {
      await ex.close();
    }
  }, 60_000);
});
