import { Matrix, SingularValueDecomposition } from 'ml-matrix';
import { describe, expect, it } from 'vitest';
import { frequentDirections, final, InProcessLocus, inMemoryDataset, runnerContext } from '../../algorithms/index.js';
import { summarizeBlock, type CoordinatorDataset } from '../../framework/index.js';
import { normals } from '../../nfu-kernels/index.js';

/** Low rank plus noise, n × d. */
function data(n: number, d: number, seed: number): Float64Array {
  const A = new Float64Array(n * d);
  normals(seed, 1, 0, 0, A);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) A[i * d + j]! *= j < 4 ? 10 / (j + 1) : 0.3;
  return A;
}

/** ‖AᵀA − BᵀB‖₂ for the first `rows` rows of A. */
function covError(A: Float64Array, rows: number, d: number, B: Float64Array, ell: number): number {
  const a = Matrix.from1DArray(rows, d, Array.from(A.subarray(0, rows * d)));
  const b = Matrix.from1DArray(ell, d, Array.from(B));
  const E = a.transpose().mmul(a).sub(b.transpose().mmul(b));
  return new SingularValueDecomposition(E).diagonal[0]!;
}

/** The same blocks, each holding its first `upTo(b)` rows (a version of a growing dataset). */
function version(full: CoordinatorDataset, A: Float64Array, d: number, upTo: (b: number) => number): CoordinatorDataset {
  const blocks = full.blocks.map((b) => {
    const rows = upTo(b.index);
    const data = A.slice(b.rowStart * d, (b.rowStart + rows) * d);
    return { ...b, rows, bytes: rows * d * 8, summary: summarizeBlock(data, rows, d) };
  });
  return { ...full, rows: blocks.reduce((s, b) => s + b.rows, 0), blocks };
}

describe('Frequent Directions in locus', () => {
  const n = 3000;
  const d = 20;
  const A = data(n, d, 3);

  it('bounds the covariance error deterministically, and the bound is the FD bound', async () => {
    const { dataset, blocks } = inMemoryDataset(A, n, d, { blockRows: 500 });
    const e = await final(frequentDirections(dataset, runnerContext(new InProcessLocus(blocks)), { sketchRows: 12 }));
    expect(e.delta).toBe(0);
    expect(e.value.rowsSeen).toBe(n);
    const err = covError(A, n, d, e.value.sketch, 12);
    expect(err).toBeLessThanOrEqual(e.epsilon * (1 + 1e-9));
    // Δ ≤ ‖A − A_k‖_F²/(ℓ − k), k = 4.
    const s = new SingularValueDecomposition(Matrix.from1DArray(n, d, Array.from(A))).diagonal;
    const tail = s.slice(4).reduce((t, x) => t + x * x, 0);
    expect(e.value.shrinkage).toBeLessThanOrEqual(tail / (12 - 4));
    expect(e.value.singularValues[0]!).toBeCloseTo(s[0]!, -1);
  });

  it('streams: a second call reads only the rows appended, and equals a sketch of all rows within its bound', async () => {
    const { dataset, blocks } = inMemoryDataset(A, n, d, { blockRows: 1000 });
    let rowsRead = 0;
    const runner = new InProcessLocus(blocks, {
      fail: (a) => {
        const c = (a.op as unknown as { call: (b: unknown) => { attrs: { rows: number } } }).call(a.block);
        rowsRead += c.attrs.rows;
        return false;
      },
    });
    const ctx = runnerContext(runner);
    const first = await final(
      frequentDirections(
        version(dataset, A, d, () => 600),
        ctx,
        { sketchRows: 10 },
      ),
    );
    expect(first.value.rowsSeen).toBe(1800);
    expect(
      covError(
        A.filter((_, i) => Math.floor(i / d) % 1000 < 600),
        1800,
        d,
        first.value.sketch,
        10,
      ),
    ).toBeLessThanOrEqual(first.epsilon * (1 + 1e-9));
    rowsRead = 0;
    const second = await final(frequentDirections(dataset, ctx, { sketchRows: 10 }));
    expect(rowsRead).toBe(1200); // 400 new rows in each of 3 blocks
    expect(second.value.rowsSeen).toBe(n);
    expect(covError(A, n, d, second.value.sketch, 10)).toBeLessThanOrEqual(second.epsilon * (1 + 1e-9));
    await runner.release();
  });

  it('an update retried after it ran (its reply lost) absorbs its rows once: the state of a clean run, bit for bit', async () => {
    const { dataset, blocks } = inMemoryDataset(A, n, d, { blockRows: 1000 });
    const sketch = async (lose: boolean) => {
      const lost = new Set<number>();
      let attempts = 0;
      const runner = new InProcessLocus(blocks, {
        loseReply: (a) => {
          if (a.op.name !== 'fd-update') return false;
          attempts++;
          // The first attempt of each block's update runs, writes its state back, and its answer is lost.
          if (!lose || lost.has(a.block.index)) return false;
          lost.add(a.block.index);
          return true;
        },
      });
      const ctx = runnerContext(runner);
      await final(
        frequentDirections(
          version(dataset, A, d, () => 600),
          ctx,
          { sketchRows: 10 },
        ),
      );
      lost.clear();
      const e = await final(frequentDirections(dataset, ctx, { sketchRows: 10 }));
      const states = await Promise.all([0, 1, 2].map((b) => runner.readState(b, 'fd10')));
      await runner.release();
      return { e, states, attempts };
    };
    const clean = await sketch(false);
    const retried = await sketch(true);
    expect(retried.attempts).toBeGreaterThan(clean.attempts); // the lost replies were retried
    expect(retried.e.blocksMissing).toBe(0);
    expect(retried.e.value.rowsSeen).toBe(n);
    for (let b = 0; b < 3; b++) expect(Buffer.from(retried.states[b]!).equals(Buffer.from(clean.states[b]!))).toBe(true);
    expect(Buffer.from(retried.e.value.sketch.buffer).equals(Buffer.from(clean.e.value.sketch.buffer))).toBe(true);
    expect(retried.e.epsilon).toBe(clean.e.epsilon);
  });

  it('a block whose depot fails is charged its Gram norm; the bound holds', async () => {
    const { dataset, blocks } = inMemoryDataset(A, n, d, { blockRows: 500 });
    const ctx = runnerContext(new InProcessLocus(blocks, { fail: (a) => a.block.index === 2 }));
    const e = await final(frequentDirections(dataset, ctx, { sketchRows: 12 }));
    expect(e.blocksMissing).toBe(1);
    expect(e.parts.sampling.epsilon).toBeGreaterThan(0);
    expect(covError(A, n, d, e.value.sketch, 12)).toBeLessThanOrEqual(e.epsilon);
  });

  it('ends with COORD_E_COVERAGE when nothing was absorbed (no sketch read back by the deadline), not with a zero sketch', async () => {
    // The updates run, but no sketch comes back (as when the deadline passes before the read-back).
    class NoReadBack extends InProcessLocus {
      override readState(): Promise<Uint8Array | undefined> {
        return Promise.resolve(undefined);
      }
    }
    const { dataset, blocks } = inMemoryDataset(A, n, d, { blockRows: 500 });
    const ctx = runnerContext(new NoReadBack(blocks));
    const err = (await final(frequentDirections(dataset, ctx, { sketchRows: 12 })).then(
      () => undefined,
      (e: unknown) => e,
    )) as Error & { code: string };
    expect(err).toMatchObject({ code: 'COORD_E_COVERAGE' });
    expect(err.message).toMatch(/no rows absorbed \(0 of \d+ block sketches answered\)/);
    // No block answering at all is COORD_E_COVERAGE as well.
    const none = runnerContext(new InProcessLocus(blocks, { fail: () => true }));
    await expect(final(frequentDirections(dataset, none, { sketchRows: 12 }))).rejects.toMatchObject({
      code: 'COORD_E_COVERAGE',
    });
  });

  it('refuses a sketch of one row', async () => {
    const { dataset, blocks } = inMemoryDataset(A, n, d, { blockRows: 500 });
    await expect(
      final(frequentDirections(dataset, runnerContext(new InProcessLocus(blocks)), { sketchRows: 1 })),
    ).rejects.toMatchObject({
      code: 'COORD_E_INVALID_ARGUMENT',
    });
  });
});
