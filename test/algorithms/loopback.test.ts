import { describe, expect, it } from 'vitest';
import { formatCapability } from '../../ibp/index.js';
import {
  final,
  frequentDirections,
  IbpLocus,
  InProcessLocus,
  inMemoryDataset,
  pca,
  rsvd,
  runnerContext,
} from '../../algorithms/index.js';
import { normals } from '../../nfu-kernels/index.js';
import { Matrix, SingularValueDecomposition } from 'ml-matrix';
import { wasmLoopbackDepots } from './wasm-depots.js';

describe('randomized SVD on loopback depots', () => {
  const env = wasmLoopbackDepots('anvil-alg-');

  it('gives bit-identical results in process and on depots (same seed), tall factors kept at the depots', async () => {
    const n = 6000;
    const d = 16;
    const A = new Float64Array(n * d);
    normals(9, 1, 0, 0, A);
    for (let i = 0; i < n; i++) for (let j = 0; j < 3; j++) A[i * d + j]! *= 20 - 5 * j;
    // The same placement in process (block b on the b mod 3-th depot): Horvitz–Thompson sums by response group.
    const local = inMemoryDataset(A, n, d, { blockRows: 1000, depotsOf: (b) => [9000 + (b % 3)] });
    const want = await final(rsvd(local.dataset, runnerContext(new InProcessLocus(local.blocks)), { rank: 3, seed: 4 }));
    // The same blocks stored on the depots (block b on depot b mod 3).
    const dataset = structuredClone(local.dataset);
    for (const b of dataset.blocks) {
      const depot = env.depots.depots[b.index % 3]!;
      const bytes = local.blocks.get(b.replicas[0]!.read)!;
      const caps = await env.client.allocate(depot, { size: bytes.length, durationSec: 600 });
      await env.client.store(caps.write, bytes);
      b.replicas = [{ depot, read: formatCapability(caps.read), allocOffset: 0, length: bytes.length }];
    }
    const runner = new IbpLocus(env.client);
    const got = await final(rsvd(dataset, runnerContext(runner), { rank: 3, seed: 4 }));
    expect(Array.from(got.value.singularValues)).toEqual(Array.from(want.value.singularValues));
    expect(Array.from(got.value.components)).toEqual(Array.from(want.value.components));
    expect(got.epsilon).toBe(want.epsilon);
    expect(got.blocksMissing).toBe(0);
    // Only small matrices crossed the network, each round's X once per depot.
    expect(got.bytesMoved).toBeLessThan(0.5 * n * d * 8);
    expect(got.bytesMoved).toBeLessThanOrEqual(want.bytesMoved * 1.5);
    // Centred PCA: the same bits as well.
    const pw = await final(pca(local.dataset, runnerContext(new InProcessLocus(local.blocks)), { rank: 2, seed: 5 }));
    const pg = await final(pca(dataset, runnerContext(new IbpLocus(env.client)), { rank: 2, seed: 5 }));
    expect(Array.from(pg.value.singularValues)).toEqual(Array.from(pw.value.singularValues));
    expect(Array.from(pg.value.explainedVarianceRatio)).toEqual(Array.from(pw.value.explainedVarianceRatio));
    // Frequent Directions: the sketches live at the depots, updated in place; the same bits as in process.
    const fw = await final(frequentDirections(local.dataset, runnerContext(new InProcessLocus(local.blocks)), { sketchRows: 8 }));
    const fdCtx = runnerContext(new IbpLocus(env.client));
    const fg = await final(frequentDirections(dataset, fdCtx, { sketchRows: 8 }));
    expect(Array.from(fg.value.sketch)).toEqual(Array.from(fw.value.sketch));
    expect(fg.epsilon).toBe(fw.epsilon);
    expect(fg.value.rowsSeen).toBe(n);
    const again = await final(frequentDirections(dataset, fdCtx, { sketchRows: 8 }));
    expect(Array.from(again.value.sketch)).toEqual(Array.from(fw.value.sketch));
    await fdCtx.runner.release();
  }, 60_000);
});

describe('PCA on loopback depots with one depot down', () => {
  const env = wasmLoopbackDepots('anvil-alg-down-');

  it('σ̂ and the explained variance stand for every row (not the answered ones), and the intervals hold', async () => {
    const n = 4800;
    const d = 12;
    const A = new Float64Array(n * d);
    normals(21, 1, 0, 0, A);
    for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) A[i * d + j] = A[i * d + j]! * (j < 3 ? 12 - 3 * j : 0.5) + 2 + j;
    const M = Matrix.from1DArray(n, d, Array.from(A));
    const C = M.clone().subRowVector(M.mean('column'));
    const s = new SingularValueDecomposition(C, { autoTranspose: true }).diagonal;
    const total = s.reduce((a, v) => a + v * v, 0);
    const local = inMemoryDataset(A, n, d, { blockRows: 200, depotsOf: (b) => [9000 + (b % 3)] });
    const dataset = structuredClone(local.dataset);
    for (const b of dataset.blocks) {
      const depot = env.depots.depots[b.index % 3]!;
      const bytes = local.blocks.get(b.replicas[0]!.read)!;
      const caps = await env.client.allocate(depot, { size: bytes.length, durationSec: 600 });
      await env.client.store(caps.write, bytes);
      b.replicas = [{ depot, read: formatCapability(caps.read), allocOffset: 0, length: bytes.length }];
    }
    await env.depots.kill(2);
    for (const seed of [1, 2]) {
      const e = await final(pca(dataset, runnerContext(new IbpLocus(env.client)), { rank: 3, seed }));
      expect(e.blocksMissing).toBe(8);
      let ratio = 0;
      for (let t = 0; t < 3; t++) {
        expect(Math.abs(e.value.singularValues[t]! - s[t]!)).toBeLessThan(0.05 * s[t]!);
        expect(e.value.singularValueLower[t]!).toBeLessThanOrEqual(s[t]!);
        expect(e.value.singularValueUpper[t]!).toBeGreaterThanOrEqual(s[t]!);
        ratio += e.value.explainedVarianceRatio[t]!;
      }
      const trueRatio = (s[0]! ** 2 + s[1]! ** 2 + s[2]! ** 2) / total;
      expect(Math.abs(ratio - trueRatio)).toBeLessThan(0.03);
      const V = Matrix.from1DArray(d, 3, Array.from(e.value.components));
      const resid = new SingularValueDecomposition(C.sub(C.mmul(V).mmul(V.transpose())), { autoTranspose: true }).diagonal[0]!;
      expect(resid).toBeLessThanOrEqual(e.epsilon);
      // The same failure in process gives the same bits.
      const want = await final(
        pca(local.dataset, runnerContext(new InProcessLocus(local.blocks, { fail: (a) => a.block.index % 3 === 2 })), {
          rank: 3,
          seed,
        }),
      );
      expect(Array.from(e.value.singularValues)).toEqual(Array.from(want.value.singularValues));
    }
  }, 120_000);
});
