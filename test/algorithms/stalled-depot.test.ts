import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IbpClient, formatCapability } from '../../ibp/index.js';
import { startLoopbackDepots, type LoopbackDepots } from '../../framework/index.js';
import { final, IbpLocus, inMemoryDataset, leastSquares, MissingBlocks, pca, runnerContext } from '../../algorithms/index.js';
import { normals } from '../../nfu-kernels/index.js';
import { tempDir } from '../helpers/temp-dir.js';

/**
 * A stalled depot (SIGSTOP: it accepts connections and never replies) under multi-round algorithms on real
 * loopback depots: a deadline gives a result by about the deadline from the blocks that answered, and without
 * a deadline the op timeout is paid once per job, not once per round.
 */
describe('a stalled depot under multi-round algorithms', () => {
  const dir = tempDir('anvil-stall-');
  let depots: LoopbackDepots;
  let client: IbpClient;
  const OP_TIMEOUT_MS = 30_000;
  /**
   * The jobs' deadline: long enough that the healthy depots answer every round's share even on a loaded
   * 2-core CI machine (1.5 s was not: a round then used one healthy block of three), far below the op timeout.
   */
  const DEADLINE_MS = 5_000;
  beforeAll(async () => {
    const config = join(dir.path, 'wasm.toml');
    writeFileSync(config, '[nfu]\nnative = false\n');
    depots = await startLoopbackDepots(3, { capacity: '32MiB', extraArgs: ['--config', config] });
    client = new IbpClient({ timeoutMs: OP_TIMEOUT_MS });
  }, 30_000);
  afterAll(async () => {
    client?.close();
    await depots?.stop();
    dir.cleanup();
  });

  /** 6 blocks of 400 × 6 stored on the depots `depotsOf(b)` (indices into the loopback depots). */
  async function storedDataset(depotsOf: (b: number) => number[]) {
    const n = 2400;
    const d = 6;
    const A = new Float64Array(n * d);
    normals(5, 1, 0, 0, A);
    for (let i = 0; i < n; i++) for (let j = 0; j < 3; j++) A[i * d + j]! *= 8 - 2 * j;
    const local = inMemoryDataset(A, n, d, { blockRows: 400 });
    const dataset = structuredClone(local.dataset);
    for (const b of dataset.blocks) {
      const bytes = local.blocks.get(local.dataset.blocks[b.index]!.replicas[0]!.read)!;
      b.replicas = await Promise.all(
        depotsOf(b.index).map(async (k) => {
          const depot = depots.depots[k]!;
          const caps = await client.allocate(depot, { size: bytes.length, durationSec: 600 });
          await client.store(caps.write, bytes);
          return { depot, read: formatCapability(caps.read), allocOffset: 0, length: bytes.length };
        }),
      );
    }
    return dataset;
  }

  /** Runs `body` with depot `i` paused; it is resumed in any case. */
  async function paused<T>(i: number, body: () => Promise<T>): Promise<T> {
    depots.pause(i);
    try {
      return await body();
    } finally {
      depots.resume(i);
    }
  }

  it('--deadline: pca answers by about the deadline from the blocks that answered, with reasons naming the deadline', async () => {
    // One copy: blocks 1, 3, 5 only on the paused depot.
    const dataset = await storedDataset((b) => [b % 2]);
    const stalled = `127.0.0.1:${depots.depots[1]!.port}`;
    const result = await paused(1, async () => {
      const local = new IbpClient({ timeoutMs: OP_TIMEOUT_MS });
      // release() does not wait for frees at a depot with ops still unanswered, however long it may wait.
      const runner = new IbpLocus(local, { releaseWaitMs: 20_000 });
      const missing = new MissingBlocks();
      const ctx = { ...runnerContext(runner, { jobOptions: { opTimeoutMs: OP_TIMEOUT_MS } }), missing };
      const t0 = Date.now();
      try {
        const e = await final(pca(dataset, ctx, { rank: 2, seed: 1, deadlineMs: DEADLINE_MS }));
        await runner.release();
        return { e, ms: Date.now() - t0, missing };
      } finally {
        local.close();
      }
    });
    // Well before the 30 s op timeout: the deadline, not the stalled socket, ends the job.
    expect(result.ms).toBeLessThan(DEADLINE_MS + 10_000);
    expect(result.e.blocksUsed).toBe(3);
    expect(result.e.blocksMissing).toBe(3);
    const lines = result.missing.summary().filter((l) => l.depot === stalled);
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.every((l) => l.blocks.every((b) => b % 2 === 1))).toBe(true);
    expect(lines.some((l) => /deadline/.test(l.reason))).toBe(true);
    expect(lines.every((l) => !/or before the deadline/.test(l.reason))).toBe(true);
  }, 60_000);

  it('--deadline: least squares answers by about the deadline from the blocks that answered', async () => {
    const dataset = await storedDataset((b) => [b % 2]);
    const result = await paused(1, async () => {
      const local = new IbpClient({ timeoutMs: OP_TIMEOUT_MS });
      const runner = new IbpLocus(local);
      const ctx = runnerContext(runner, { jobOptions: { opTimeoutMs: OP_TIMEOUT_MS } });
      const t0 = Date.now();
      try {
        const e = await final(leastSquares(dataset, ctx, { seed: 2, deadlineMs: DEADLINE_MS }));
        await runner.release();
        return { e, ms: Date.now() - t0 };
      } finally {
        local.close();
      }
    });
    expect(result.ms).toBeLessThan(DEADLINE_MS + 10_000);
    expect(result.e.blocksUsed).toBe(3);
    expect(result.e.value.coefficients.every((c) => Number.isFinite(c))).toBe(true);
  }, 60_000);

  it('--deadline with every depot healthy: every round gets a share, the result uses every block', async () => {
    const dataset = await storedDataset((b) => [b % 3]);
    const runner = new IbpLocus(client);
    const e = await final(
      pca(dataset, runnerContext(runner, { jobOptions: { opTimeoutMs: OP_TIMEOUT_MS } }), {
        rank: 2,
        seed: 1,
        deadlineMs: DEADLINE_MS,
      }),
    );
    await runner.release();
    expect(e.blocksMissing).toBe(0);
  }, 60_000);

  it('no deadline: a depot that timed out once is not waited on for the full op timeout again', async () => {
    const dataset = await storedDataset((b) => [b % 2]);
    const stalled = `127.0.0.1:${depots.depots[1]!.port}`;
    const opTimeoutMs = 8_000;
    const result = await paused(1, async () => {
      const local = new IbpClient({ timeoutMs: OP_TIMEOUT_MS });
      const runner = new IbpLocus(local);
      const missing = new MissingBlocks();
      const ctx = { ...runnerContext(runner, { jobOptions: { opTimeoutMs } }), missing };
      const t0 = Date.now();
      try {
        // 3 range rounds, the a-posteriori and residual rounds ask every block: 5 op timeouts if each waited in full.
        const e = await final(pca(dataset, ctx, { rank: 2, seed: 1, powerIterations: 2 }));
        await runner.release();
        return { e, ms: Date.now() - t0, missing };
      } finally {
        local.close();
      }
    });
    expect(result.e.blocksMissing).toBe(3);
    // One op timeout, then shortened waits (4× the median answer time, at least 1 s) and the release.
    expect(result.ms).toBeLessThan(2.5 * opTimeoutMs);
    const reasons = result.missing.summary().filter((l) => l.depot === stalled);
    expect(reasons.some((l) => l.reason.includes(`op timeout (${opTimeoutMs} ms)`))).toBe(true);
    expect(reasons.some((l) => /timed out earlier in this job/.test(l.reason))).toBe(true);
  }, 60_000);

  it('with replicas, a stalled depot is hedged around: nothing missing, well under the op timeout', async () => {
    const dataset = await storedDataset((b) => [b % 3, (b + 1) % 3]);
    const opTimeoutMs = 20_000;
    const result = await paused(2, async () => {
      const local = new IbpClient({ timeoutMs: OP_TIMEOUT_MS });
      const runner = new IbpLocus(local);
      const ctx = runnerContext(runner, { jobOptions: { opTimeoutMs } });
      const t0 = Date.now();
      try {
        const e = await final(pca(dataset, ctx, { rank: 2, seed: 1, powerIterations: 2 }));
        await runner.release();
        return { e, ms: Date.now() - t0 };
      } finally {
        local.close();
      }
    });
    expect(result.e.blocksMissing).toBe(0);
    expect(result.ms).toBeLessThan(opTimeoutMs / 2);
  }, 60_000);
});
