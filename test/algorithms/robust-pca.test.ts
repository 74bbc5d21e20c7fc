import { lastValueFrom, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { Matrix, SingularValueDecomposition } from 'ml-matrix';
import { final, InProcessLocus, inMemoryDataset, pca, runnerContext, spectralNorm } from '../../algorithms/index.js';
import { normals } from '../../nfu-kernels/index.js';

const gauss = (n: number, seed: number, stream: number) => {
  const v = new Float64Array(n);
  normals(seed, stream, 0, 0, v);
  return v;
};

/** Largest principal angle (sine) between span(A) and span(B), both d × k orthonormal. */
function sinAngle(A: Float64Array, B: Float64Array, d: number, k: number): number {
  const a = Matrix.from1DArray(d, k, Array.from(A));
  const b = Matrix.from1DArray(d, k, Array.from(B));
  const c = new SingularValueDecomposition(a.transpose().mmul(b)).diagonal;
  return Math.sqrt(Math.max(0, 1 - Math.min(...c) ** 2));
}

describe('robust PCA by source quality weights', () => {
  // 10 sources, 2 of them (20 %) faulty: rows of large garbage. Clean rows: 3 factors + small noise.
  const d = 12;
  const k = 3;
  const rowsPerSource = 300;
  const sources = 10;
  const basis = new Float64Array(d * k);
  {
    const q = new SingularValueDecomposition(Matrix.from1DArray(d, k, Array.from(gauss(d * k, 1, 1))));
    for (let i = 0; i < d; i++) for (let j = 0; j < k; j++) basis[i * k + j] = q.leftSingularVectors.get(i, j);
  }
  const n = rowsPerSource * sources;
  const A = new Float64Array(n * d);
  const f = gauss(n * k, 2, 1);
  const noise = gauss(n * d, 3, 1);
  const junk = gauss(n * d, 4, 1);
  const faulty = new Set([3, 7]);
  for (let i = 0; i < n; i++) {
    const src = Math.floor(i / rowsPerSource);
    for (let j = 0; j < d; j++) {
      let v = 0;
      for (let t = 0; t < k; t++) v += basis[j * k + t]! * f[i * k + t]! * [5, 4, 3][t]!;
      A[i * d + j] = faulty.has(src) ? 15 * junk[i * d + j]! : v + 0.05 * noise[i * d + j]!;
    }
  }
  const setup = () =>
    inMemoryDataset(A, n, d, { blockRows: 100, sourceOf: (b) => `sensor-${Math.floor((b * 100) / rowsPerSource)}` });

  it('plain PCA is pulled off the clean subspace; robust PCA recovers it and names the faulty sources', async () => {
    const plainSet = setup();
    const plain = await final(pca(plainSet.dataset, runnerContext(new InProcessLocus(plainSet.blocks)), { rank: k, seed: 2 }));
    const plainAngle = sinAngle(plain.value.components, basis, d, k);
    const robustSet = setup();
    const ctx = runnerContext(new InProcessLocus(robustSet.blocks));
    const robust = await final(pca(robustSet.dataset, ctx, { rank: k, seed: 2, robustIterations: 3 }));
    const robustAngle = sinAngle(robust.value.components, basis, d, k);
    expect(plainAngle).toBeGreaterThan(0.3);
    expect(robustAngle).toBeLessThan(0.05);
    // Every sensor is named in `sources` with its weight in [0, 1].
    expect(robust.sources.map((x) => x.id)).toEqual(Array.from({ length: sources }, (_, i) => `sensor-${i}`).sort());
    for (const x of robust.sources) {
      expect(x.weight).toBeGreaterThanOrEqual(0);
      expect(x.weight).toBeLessThanOrEqual(1);
      expect(x.weight < 0.1).toBe(x.id === 'sensor-3' || x.id === 'sensor-7');
    }
    // The next version of the dataset (same context) starts from those weights: its first pass is already clean.
    const passes = await lastValueFrom(pca(robustSet.dataset, ctx, { rank: k, seed: 3, robustIterations: 1 }).pipe(toArray()));
    expect(passes.length).toBe(2);
    expect(sinAngle(passes[0]!.value.components, basis, d, k)).toBeLessThan(0.05);
    for (const [id, w] of robust.value.sourceWeights) {
      if (id === 'sensor-3' || id === 'sensor-7') expect(w).toBeLessThan(0.1);
      else expect(w).toBe(1);
    }
    expect(robust.sources.find((s) => s.id === 'sensor-3')!.weight).toBeLessThan(0.1);
  });

  it('a source that dominates the data is named at every rank (energy screen from the summaries), not only at one', async () => {
    // Sensor 3 is garbage of 300× the clean amplitude: it dominates the first fit, whose residuals then single it
    // out at no rank (its relative residual is below its peers'). The energy screen names it whatever the rank.
    // Sensor 7 is garbage of the clean amplitude: no energy outlier, named by its residual once 3 is screened.
    const B = A.slice();
    for (let i = 0; i < n; i++) {
      const src = Math.floor(i / rowsPerSource);
      for (let j = 0; j < d; j++) if (src === 7) B[i * d + j] = A[i * d + j]! / 15;
      for (let j = 0; j < d; j++) if (src === 3) B[i * d + j] = 300 * junk[i * d + j]!;
    }
    for (const rank of [2, 3, 4]) {
      const { dataset, blocks } = inMemoryDataset(B, n, d, {
        blockRows: 100,
        sourceOf: (b) => `sensor-${Math.floor((b * 100) / rowsPerSource)}`,
      });
      const e = await final(pca(dataset, runnerContext(new InProcessLocus(blocks)), { rank, seed: 4, robustIterations: 2 }));
      for (const x of e.sources) expect([x.id, x.weight < 0.1]).toEqual([x.id, x.id === 'sensor-3' || x.id === 'sensor-7']);
      // The fit is of the clean sources: its leading components lie in their 3-dimensional subspace.
      const V = Matrix.from1DArray(d, rank, Array.from(e.value.components));
      const Q = Matrix.from1DArray(d, k, Array.from(basis));
      const inside = Q.mmul(Q.transpose()).mmul(V);
      for (let t = 0; t < Math.min(rank, k); t++) {
        const col = V.getColumnVector(t);
        const proj = inside.getColumnVector(t);
        expect(proj.norm() / col.norm()).toBeGreaterThan(0.99);
      }
    }
  });

  it('spectralNorm brackets σ₁ and gives the effective rank', async () => {
    const { dataset, blocks } = setup();
    const e = await final(spectralNorm(dataset, runnerContext(new InProcessLocus(blocks)), { seed: 5 }));
    const s1 = new SingularValueDecomposition(Matrix.from1DArray(n, d, Array.from(A)), { autoTranspose: true }).diagonal[0]!;
    expect(e.value.lower).toBeLessThanOrEqual(s1 * (1 + 1e-12));
    expect(e.value.upper).toBeGreaterThanOrEqual(s1 * (1 - 1e-12));
    expect(Math.abs(e.value.sigma1 - s1)).toBeLessThanOrEqual(e.epsilon);
    expect(e.value.effectiveRank).toBeGreaterThan(1);
  });
});
