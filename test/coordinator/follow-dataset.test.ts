import { Subject } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { ReliabilityStore, type Estimate } from '../../framework/estimation/index.js';
import { followDataset, type StreamWindow } from '../../framework/coordinator/follow-dataset.js';
import { columnStatsJob } from '../../framework/coordinator/column-stats-job.js';
import { storeReliability } from '../../framework/coordinator/store-reliability.js';
import type { Dataset } from '../../framework/coordinator/dataset-shape.js';
import type { OpAnswer, OpAttempt } from '../../framework/coordinator/op-runner.js';
import { LocalKernelRunner, blockData, exact, fakeDataset, maxAbsDiff } from './fixtures.js';

const COLS = 3;
const ROWS = 10;

/** The first `n` blocks of the data as one dataset version (blocks on depot 100). */
const version = (data: Float64Array[], n: number): Dataset => fakeDataset(data.slice(0, n), COLS, () => [100]);

/** A runner whose answers for the blocks in `slow` wait until `release()` (the others answer at once). */
class GatedRunner extends LocalKernelRunner {
  readonly #waiting: (() => void)[] = [];
  constructor(
    data: Float64Array[],
    private readonly slow: (block: number) => boolean,
  ) {
    super(data);
  }
  override execute(attempt: OpAttempt): Promise<OpAnswer> {
    const answer = super.execute(attempt);
    if (!this.slow(attempt.block.index)) return answer;
    return new Promise((resolve) => this.#waiting.push(() => resolve(answer)));
  }
  release(): void {
    for (const go of this.#waiting.splice(0)) go();
  }
}

const options = (runner: LocalKernelRunner) => ({
  runner,
  reliability: storeReliability(new ReliabilityStore({ clock: { now: () => Date.now() } })),
});

/** Follows `versions` (emitting each one after the previous one's estimate) and collects the estimates. */
async function follow(runner: LocalKernelRunner, versions: Dataset[], window: StreamWindow): Promise<Estimate<Float64Array>[]> {
  const input = new Subject<Dataset>();
  const out: Estimate<Float64Array>[] = [];
  await new Promise<void>((resolve, reject) => {
    const sub = followDataset(input, (ds) => columnStatsJob(ds, 'sums'), window, options(runner)).subscribe({
      next: (e) => {
        out.push(e);
        if (out.length === versions.length) {
          sub.unsubscribe();
          resolve();
        } else input.next(versions[out.length]!);
      },
      error: reject,
    });
    input.next(versions[0]!);
  });
  return out;
}

describe('followDataset over a growing dataset', () => {
  const data = blockData(8, ROWS, COLS, 41);

  it('cumulative: each version is answered over all its blocks, and every block runs once', async () => {
    const runner = new LocalKernelRunner(data);
    const sizes = [3, 5, 8];
    const estimates = await follow(
      runner,
      sizes.map((n) => version(data, n)),
      { kind: 'cumulative' },
    );
    expect(estimates.map((e) => e.blocksUsed)).toEqual(sizes);
    for (const [i, n] of sizes.entries()) {
      expect(estimates[i]!.final).toBe(true);
      expect(estimates[i]!.coverage).toBe(1);
      expect(maxAbsDiff(estimates[i]!.value, exact(data.slice(0, n), COLS).sums)).toBeLessThan(1e-9);
    }
    // Blocks answered for an earlier version were reused: 8 blocks, 8 ops; reused answers move no bytes.
    expect(runner.calls.get(100)).toBe(8);
    expect(estimates[2]!.bytesMoved).toBe(3 * 6 * COLS * 8);
  });

  it('a sliding window of the last N blocks answers over exactly those blocks', async () => {
    const runner = new LocalKernelRunner(data);
    const estimates = await follow(
      runner,
      [4, 6, 8].map((n) => version(data, n)),
      { kind: 'blocks', blocks: 3 },
    );
    for (const [i, n] of [4, 6, 8].entries()) {
      expect(estimates[i]!.blocksUsed).toBe(3);
      expect(maxAbsDiff(estimates[i]!.value, exact(data.slice(n - 3, n), COLS).sums)).toBeLessThan(1e-9);
    }
    // Blocks 1–3, then 3–5 (3 reused), then 5–7 (5 reused): 7 distinct blocks run once each.
    expect(runner.calls.get(100)).toBe(7);
  });

  it('a window of the last R rows takes the fewest last blocks holding R rows', async () => {
    const runner = new LocalKernelRunner(data);
    const [e] = await follow(runner, [version(data, 8)], { kind: 'rows', rows: 2 * ROWS + 1 });
    expect(e!.blocksUsed).toBe(3);
    expect(maxAbsDiff(e!.value, exact(data.slice(5, 8), COLS).sums)).toBeLessThan(1e-9);
  });

  it('a block whose content changed (new hash) is run again', async () => {
    const runner = new LocalKernelRunner(data);
    const changed = data.map((d) => d.slice());
    changed[1]![0]! += 1;
    const v2 = fakeDataset(changed.slice(0, 3), COLS, () => [100]);
    const estimates = await follow(runner, [version(data, 3), v2], { kind: 'cumulative' });
    // The runner still computes from the original bytes, but the changed block was asked again.
    expect(runner.calls.get(100)).toBe(4);
    expect(estimates).toHaveLength(2);
  });

  it('a version arriving while the previous one runs supersedes it; the answers so far are reused', async () => {
    // Blocks 2 and 3 of the first version are slow: version 2 arrives while they run.
    const runner = new GatedRunner(data, (b) => b === 2 || b === 3);
    const input = new Subject<Dataset>();
    const out: Estimate<Float64Array>[] = [];
    const sub = followDataset(input, (ds) => columnStatsJob(ds, 'sums'), { kind: 'cumulative' }, options(runner)).subscribe((e) =>
      out.push(e),
    );
    input.next(version(data, 4));
    await new Promise((r) => setTimeout(r, 5));
    expect(out).toHaveLength(0);
    input.next(version(data, 6));
    await new Promise((r) => setTimeout(r, 5));
    runner.release();
    await new Promise((r) => setTimeout(r, 5));
    sub.unsubscribe();
    // Only the second version was answered, over its 6 blocks.
    expect(out).toHaveLength(1);
    expect(out[0]!.blocksUsed).toBe(6);
    expect(maxAbsDiff(out[0]!.value, exact(data.slice(0, 6), COLS).sums)).toBeLessThan(1e-9);
    // Blocks 0, 1 answered for version 1 were reused; 2, 3 were abandoned and asked again: 4 + 4 ops.
    expect(runner.calls.get(100)).toBe(8);
  });
});
