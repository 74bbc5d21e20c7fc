import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NfuExecutor } from '../../depot/index.js';
import { encodeAttrs } from '../../nfu-kernels/index.js';
import { startDepot, type TestDepot } from '../helpers/depot-fixture.js';

const MiB = 1024 * 1024;
/** The depot's NFU executor (in-process test depot), to hold part of its memory budget. */
const executorOf = (t: TestDepot) => (t.depot as unknown as { nfu: { executor: NfuExecutor } }).nfu.executor;

describe('NFU memory budget (nfu.memoryBudgetMb)', () => {
  let t: TestDepot;
  beforeAll(async () => {
    t = await startDepot({ nfu: { workers: 1, memoryBudgetMb: 4 }, limits: { overloadRetrySec: 7 } });
  });
  afterAll(async () => {
    await t.close();
  });

  /** A Gram op on a 1 MiB input (2 MiB with its pooled copy and output class). */
  const gram = async () => {
    const rows = 16384;
    const cols = 8;
    const A = await t.client.allocate(t, { size: rows * cols * 8, durationSec: 60 });
    await t.client.store(A.write, Buffer.alloc(rows * cols * 8, 1));
    return () =>
      t.client.nfu(t, 48, [
        { kind: 3, data: encodeAttrs({ rows, cols }) },
        { kind: 0, cap: A.read },
        { kind: 4, length: cols * cols * 8 },
      ]);
  };

  it('an op that does not fit beside the admitted ones answers "-66 <retry>" and reads nothing; it runs once they finish', async () => {
    const run = await gram();
    expect((await run()).get(2)!.length).toBe(512);
    const ex = executorOf(t);
    const hold = ex.admit(3 * MiB, 'a held op'); // as if another op were running
    try {
      expect(ex.budget.inUse).toBe(3 * MiB);
      await expect(run()).rejects.toMatchObject({ code: 'IBP_E_OUT_OF_SOCKETS', status: -66, retryAfterSec: 7 });
      expect(ex.budget.inUse).toBe(3 * MiB); // the refused op holds nothing
    } finally {
      hold();
    }
    expect((await run()).get(2)!.length).toBe(512);
    expect(ex.budget.inUse).toBe(0);
  });

  it('an op larger than the whole budget answers -19 (it could never run), not -66', async () => {
    const rows = 1;
    const cols = 2048;
    const A = await t.client.allocate(t, { size: rows * cols * 8, durationSec: 60 });
    await t.client.store(A.write, Buffer.alloc(rows * cols * 8, 1));
    // Ω alone is cols·k·8 bytes = 64 MiB.
    const e = await t.client
      .nfu(t, 32, [
        { kind: 3, data: encodeAttrs({ rows, cols, k: 4096 }) },
        { kind: 0, cap: A.read },
        { kind: 4, length: 4096 * 8 },
      ])
      .catch((x: unknown) => x);
    expect(e).toMatchObject({ status: -19 });
    expect(executorOf(t).budget.inUse).toBe(0);
  });

  it('concurrent ops beyond the budget are refused, never all admitted', async () => {
    const run = await gram();
    const ex = executorOf(t);
    // Ops can finish faster than the next one arrives (native BLAS); so that they overlap whatever the
    // machine's speed, each admitted op keeps its share of the budget until the whole burst has settled.
    const admit = ex.admit.bind(ex);
    const deferred: Array<() => void> = [];
    let peak = 0;
    ex.admit = (bytes: number, what: string) => {
      const release = admit(bytes, what);
      peak = Math.max(peak, ex.budget.inUse);
      return () => deferred.push(release);
    };
    let results: PromiseSettledResult<unknown>[];
    try {
      results = await Promise.allSettled(Array.from({ length: 12 }, () => run()));
    } finally {
      ex.admit = admit;
      for (const release of deferred.splice(0)) release();
    }
    const refused = results.filter((r) => r.status === 'rejected');
    for (const r of refused) expect((r as PromiseRejectedResult).reason).toMatchObject({ status: -66 });
    expect(results.length - refused.length).toBeGreaterThan(0);
    expect(refused.length).toBeGreaterThan(0);
    expect(peak).toBeLessThanOrEqual(4 * MiB);
    expect(ex.budget.inUse).toBe(0);
  });

  it('the option is validated', async () => {
    await expect(startDepot({ nfu: { memoryBudgetMb: 0 } })).rejects.toMatchObject({ code: 'DEPOT_ERR_CONFIG' });
    await expect(startDepot({ nfu: { memoryBudgetMb: 'lots' } })).rejects.toMatchObject({ code: 'DEPOT_ERR_CONFIG' });
  });
});

describe('NFU attributes at the edges of their documented ranges', () => {
  let t: TestDepot;
  beforeAll(async () => {
    t = await startDepot({ nfu: { workers: 1, memoryBudgetMb: 256 } });
  });
  afterAll(async () => {
    await t.close();
  });
  const call = async (opcode: number, attrs: object, inputs: Uint8Array[], outBytes: number) => {
    const out = await t.client.allocate(t, { size: Math.max(outBytes, 1), durationSec: 60 });
    await t.client.nfu(t, opcode, [
      { kind: 3, data: encodeAttrs(attrs as never) },
      ...inputs.map((data) => ({ kind: 3 as const, data })),
      { kind: 1, cap: out.write, offset: 0, length: Math.max(outBytes, 1) },
    ]);
    return (await t.client.probe(out.manage)).size;
  };

  it.each([
    ['gaussian-sketch-right', 32, { rows: 0, cols: 3, k: 2 }, 1, 0],
    ['gaussian-sketch-left', 33, { rows: 0, cols: 3, k: 2 }, 1, 48],
    ['sparse-sign-sketch', 34, { rows: 0, cols: 3, k: 2 }, 1, 48],
    ['count-sketch', 35, { rows: 0, cols: 3, k: 2 }, 1, 48],
    ['srht', 36, { rows: 0, cols: 3, k: 1 }, 1, 24],
    ['gram', 48, { rows: 0, cols: 3 }, 1, 72],
    ['column-stats', 49, { rows: 0, cols: 3 }, 1, 144],
    ['atb', 50, { rows: 0, cols: 3, k: 2 }, 2, 48],
  ])('%s with rows = 0 succeeds with its documented output size', async (_name, opcode, attrs, inputs, bytes) => {
    expect(
      await call(
        opcode,
        attrs,
        Array.from({ length: inputs }, () => new Uint8Array(0)),
        bytes,
      ),
    ).toBe(bytes);
  });

  it('cols = 2³¹−1 with rows = 0: the right sketch is empty and succeeds (it used to answer -24)', async () => {
    expect(await call(32, { rows: 0, cols: 2 ** 31 - 1, k: 1 }, [new Uint8Array(0)], 0)).toBe(0);
  });

  it('k = 2²⁰ succeeds where it fits, and answers -19 with a reason where it cannot (never -24)', async () => {
    expect(await call(32, { rows: 1, cols: 2, k: 2 ** 20 }, [new Uint8Array(16)], 8 * 2 ** 20)).toBe(8 * 2 ** 20);
    expect(await call(35, { rows: 1, cols: 2, k: 2 ** 20 }, [new Uint8Array(16)], 16 * 2 ** 20)).toBe(16 * 2 ** 20);
    const e = await call(32, { rows: 1, cols: 4096, k: 2 ** 20 }, [new Uint8Array(4096 * 8)], 8 * 2 ** 20).catch(
      (x: unknown) => x,
    );
    expect(e).toMatchObject({ status: -19 });
  });
});
