import { describe, expect, it } from 'vitest';
import { IbpClient, formatCapability, type NfuParamSpec } from '../../ibp/index.js';
import { depotId, type DepotAddress } from '../../framework/index.js';
import {
  final,
  IbpLocus,
  inMemoryDataset,
  leastSquares,
  pca,
  rsvd,
  runnerContext,
  traceEstimate,
} from '../../algorithms/index.js';
import { CATALOGUE, normals } from '../../nfu-kernels/index.js';
import { wasmLoopbackDepots } from './wasm-depots.js';

/**
 * A client whose NFU calls of one opcode at one depot are held back until a call of another opcode is issued:
 * the first replica of those blocks is "slow", the engine hedges on the second replica, the round finishes with
 * the hedges' answers, and the held (losing) attempts complete only once the next round is under way. The slow
 * depot is the one the first call of that opcode goes to (which replica the engine tries first depends on the
 * latencies it has seen, so a fixed depot might never be tried first and nothing would be held).
 */
class SlowReplicaClient extends IbpClient {
  #slow: string | undefined;
  readonly #heldOpcode: number;
  #held: Array<() => void> = [];
  #inFlight: Array<Promise<unknown>> = [];
  heldCalls = 0;

  constructor(heldOpcode: number) {
    super({ timeoutMs: 10_000 });
    this.#heldOpcode = heldOpcode;
  }

  override async nfu(
    depot: DepotAddress,
    opcode: number,
    params: readonly NfuParamSpec[],
    timeoutMs?: number,
  ): Promise<Map<number, Buffer>> {
    if (opcode === this.#heldOpcode) this.#slow ??= depotId(depot);
    if (opcode === this.#heldOpcode && depotId(depot) === this.#slow) {
      this.heldCalls++;
      await new Promise<void>((resolve) => this.#held.push(resolve));
      const p = super.nfu(depot, opcode, params, timeoutMs);
      this.#inFlight.push(p.catch(() => undefined));
      return p;
    }
    if (opcode !== this.#heldOpcode && this.#held.length > 0) {
      // The next round has started: let the losers of the previous one complete first.
      const held = this.#held;
      this.#held = [];
      for (const release of held) release();
      await new Promise((r) => setImmediate(r));
      await Promise.all(this.#inFlight);
      this.#inFlight = [];
      await new Promise((r) => setTimeout(r, 20));
    }
    return super.nfu(depot, opcode, params, timeoutMs);
  }
}

describe('hedged attempts and per-block state on loopback depots', () => {
  const env = wasmLoopbackDepots('anvil-hedge-');

  /** 6 blocks, 2 replicas each (block b on depots b mod 3 and b + 1 mod 3), stored on the depots. */
  async function storedDataset() {
    const n = 3000;
    const d = 8;
    const A = new Float64Array(n * d);
    normals(11, 1, 0, 0, A);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < 3; j++) A[i * d + j]! *= 10 - 3 * j;
      A[i * d + d - 1] = 0.5 * A[i * d]! - 0.25 * A[i * d + 1]! + 1e-3 * A[i * d + d - 1]!;
    }
    const local = inMemoryDataset(A, n, d, { blockRows: 500, depotsOf: (b) => [9000 + (b % 3), 9000 + ((b + 1) % 3)] });
    const dataset = structuredClone(local.dataset);
    for (const b of dataset.blocks) {
      const bytes = local.blocks.get(b.replicas[0]!.read)!;
      b.replicas = await Promise.all(
        [b.index % 3, (b.index + 1) % 3].map(async (k) => {
          const depot = env.depots.depots[k]!;
          const caps = await env.client.allocate(depot, { size: bytes.length, durationSec: 600 });
          await env.client.store(caps.write, bytes);
          return { depot, read: formatCapability(caps.read), allocOffset: 0, length: bytes.length };
        }),
      );
    }
    return dataset;
  }

  const hedgeSoon = { jobOptions: { defaultHedgeMs: 10, minHedgeMs: 1, opTimeoutMs: 10_000 } };

  it('rsvd and pca: a losing hedge never moves or frees the winner’s state (all blocks, same bits as unhedged)', async () => {
    const dataset = await storedDataset();
    const opts = { rank: 2, seed: 4, powerIterations: 1 };
    const want = await final(rsvd(dataset, runnerContext(new IbpLocus(env.client)), opts));
    expect(want.blocksMissing).toBe(0);
    const slow = new SlowReplicaClient(CATALOGUE['affine-product'].opcode);
    try {
      const runner = new IbpLocus(slow);
      const got = await final(rsvd(dataset, runnerContext(runner, hedgeSoon), opts));
      expect(slow.heldCalls).toBeGreaterThan(0);
      expect(got.blocksMissing).toBe(0);
      expect(Array.from(got.value.singularValues)).toEqual(Array.from(want.value.singularValues));
      expect(Array.from(got.value.components)).toEqual(Array.from(want.value.components));
      expect(got.epsilon).toBe(want.epsilon);
      await runner.release();
      const pw = await final(pca(dataset, runnerContext(new IbpLocus(env.client)), opts));
      const runner2 = new IbpLocus(slow);
      const pg = await final(pca(dataset, runnerContext(runner2, hedgeSoon), opts));
      expect(pg.blocksMissing).toBe(0);
      expect(Array.from(pg.value.singularValues)).toEqual(Array.from(pw.value.singularValues));
      expect(pg.epsilon).toBe(pw.epsilon);
      await runner2.release();
    } finally {
      slow.close();
    }
  }, 60_000);

  it('trace: a losing hedge never moves or frees the winner’s state', async () => {
    const dataset = await storedDataset();
    for (const opts of [{ power: 1 }, { power: 2 }]) {
      const want = await final(traceEstimate(dataset, runnerContext(new IbpLocus(env.client)), opts));
      const slow = new SlowReplicaClient(CATALOGUE['affine-product'].opcode);
      try {
        const got = await final(traceEstimate(dataset, runnerContext(new IbpLocus(slow), hedgeSoon), opts));
        expect(slow.heldCalls).toBeGreaterThan(0);
        expect(got.value.trace).toBe(want.value.trace);
        expect(got.epsilon).toBe(want.epsilon);
      } finally {
        slow.close();
      }
    }
  }, 60_000);

  it('least squares: a losing hedge never moves or frees the winner’s state', async () => {
    const dataset = await storedDataset();
    const want = await final(leastSquares(dataset, runnerContext(new IbpLocus(env.client)), { seed: 3 }));
    expect(want.blocksMissing).toBe(0);
    const slow = new SlowReplicaClient(CATALOGUE['affine-product'].opcode);
    try {
      const runner = new IbpLocus(slow);
      const got = await final(leastSquares(dataset, runnerContext(runner, hedgeSoon), { seed: 3 }));
      expect(slow.heldCalls).toBeGreaterThan(0);
      expect(got.blocksMissing).toBe(0);
      expect(Array.from(got.value.coefficients)).toEqual(Array.from(want.value.coefficients));
      expect(got.epsilon).toBe(want.epsilon);
      await runner.release();
    } finally {
      slow.close();
    }
  }, 60_000);
});
