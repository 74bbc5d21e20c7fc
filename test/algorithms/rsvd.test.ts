import { describe, expect, it } from 'vitest';
import { final, InProcessLocus, inMemoryDataset, pca, rsvd, runnerContext, spectralNorm } from '../../algorithms/index.js';
import { normals } from '../../nfu-kernels/index.js';
import { Matrix, SingularValueDecomposition } from 'ml-matrix';

/** A = U·diag(σ)·Vᵀ + noise, n × d, with orthonormal U, V from QR of Gaussians. */
function knownSpectrum(n: number, d: number, sigma: number[], noise: number, seed: number) {
  const g = (r: number, c: number, s: number) => {
    const v = new Float64Array(r * c);
    normals(seed, s, 0, 0, v);
    return Matrix.from1DArray(r, c, Array.from(v));
  };
  const U = new SingularValueDecomposition(g(n, sigma.length, 1), { autoTranspose: true }).leftSingularVectors;
  const V = new SingularValueDecomposition(g(d, sigma.length, 2), { autoTranspose: true }).leftSingularVectors;
  const A = U.mmul(Matrix.diag(sigma))
    .mmul(V.transpose())
    .add(g(n, d, 3).mul(noise));
  const exact = new SingularValueDecomposition(A, { autoTranspose: true });
  return { A: Float64Array.from(A.to1DArray()), s: exact.diagonal, V: exact.rightSingularVectors };
}

describe('randomized SVD in locus', () => {
  const n = 2000;
  const d = 40;
  const sigma = [100, 80, 60, 40, 30, 20, 10, 5];
  const truth = knownSpectrum(n, d, sigma, 0.05, 7);

  it('finds the singular values inside the reported intervals and certifies the residual', async () => {
    const { dataset, blocks } = inMemoryDataset(truth.A, n, d, { blockRows: 250 });
    const ctx = runnerContext(new InProcessLocus(blocks));
    const e = await final(rsvd(dataset, ctx, { rank: 8, oversampling: 6, powerIterations: 2, seed: 3 }));
    expect(e.final).toBe(true);
    expect(e.blocksMissing).toBe(0);
    for (let t = 0; t < 8; t++) {
      expect(Math.abs(e.value.singularValues[t]! - truth.s[t]!)).toBeLessThan(1e-3 * truth.s[t]!);
      expect(e.value.singularValueLower[t]!).toBeLessThanOrEqual(truth.s[t]! * (1 + 1e-9));
      expect(e.value.singularValueUpper[t]!).toBeGreaterThanOrEqual(truth.s[t]! * (1 - 1e-9));
    }
    // ‖A − AVVᵀ‖₂ ≤ ε, and ε is the order of σ₉.
    const A = Matrix.from1DArray(n, d, Array.from(truth.A));
    const V = Matrix.from1DArray(d, 8, Array.from(e.value.components));
    const R = A.sub(A.mmul(V).mmul(V.transpose()));
    const resid = new SingularValueDecomposition(R, { autoTranspose: true }).diagonal[0]!;
    expect(resid).toBeLessThanOrEqual(e.epsilon);
    // ε = ‖RΩ‖₂/√q (q a χ²_r quantile) is within a small factor of the true spectral residual.
    expect(e.epsilon).toBeLessThan(3 * resid);
    expect(e.bytesMoved).toBeGreaterThan(0);
    expect(e.bytesMoved).toBeLessThan(n * d * 8);
  });

  it('with a third of the blocks failing the bound still holds (missing blocks bounded from summaries)', async () => {
    const { dataset, blocks } = inMemoryDataset(truth.A, n, d, { blockRows: 250 });
    const ctx = runnerContext(new InProcessLocus(blocks, { fail: (a) => a.block.index % 3 === 1 }));
    const e = await final(rsvd(dataset, ctx, { rank: 8, seed: 3 }));
    expect(e.blocksMissing).toBeGreaterThan(0);
    const A = Matrix.from1DArray(n, d, Array.from(truth.A));
    const V = Matrix.from1DArray(d, 8, Array.from(e.value.components));
    const resid = new SingularValueDecomposition(A.sub(A.mmul(V).mmul(V.transpose())), { autoTranspose: true }).diagonal[0]!;
    expect(resid).toBeLessThanOrEqual(e.epsilon);
    for (let t = 0; t < 8; t++) {
      expect(e.value.singularValueLower[t]!).toBeLessThanOrEqual(truth.s[t]! * (1 + 1e-9));
      expect(e.value.singularValueUpper[t]!).toBeGreaterThanOrEqual(truth.s[t]! * (1 - 1e-9));
    }
  });

  it('with a whole depot not answering, σ̂ and explained variance estimate the full dataset (reweighted), bounds still hold', async () => {
    // Every block of depot 9001 (block b lives on depot 9000 + b mod 4) fails: a response group with no answer.
    const shifted = truth.A.map((v, i) => v + 3 - (i % 5));
    const M = Matrix.from1DArray(n, d, Array.from(shifted));
    const C = M.clone().subRowVector(M.mean('column'));
    const s = new SingularValueDecomposition(C, { autoTranspose: true }).diagonal;
    const total = s.reduce((a, v) => a + v * v, 0);
    for (const seed of [1, 2, 3]) {
      const { dataset, blocks } = inMemoryDataset(shifted, n, d, { blockRows: 100 });
      const ctx = runnerContext(new InProcessLocus(blocks, { fail: (a) => a.block.index % 4 === 1 }));
      const e = await final(pca(dataset, ctx, { rank: 4, seed }));
      expect(e.blocksMissing).toBe(5);
      let ratio = 0;
      let trueRatio = 0;
      for (let t = 0; t < 4; t++) {
        // The answered rows alone would give σ̂ ≈ √(3/4)·σ (13 % low).
        expect(Math.abs(e.value.singularValues[t]! - s[t]!)).toBeLessThan(0.05 * s[t]!);
        expect(e.value.singularValueLower[t]!).toBeLessThanOrEqual(s[t]! * (1 + 1e-9));
        expect(e.value.singularValueUpper[t]!).toBeGreaterThanOrEqual(s[t]! * (1 - 1e-9));
        expect(e.value.singularValues[t]!).toBeGreaterThanOrEqual(e.value.singularValueLower[t]!);
        expect(e.value.singularValues[t]!).toBeLessThanOrEqual(e.value.singularValueUpper[t]!);
        const ev = e.value.explainedVariance[t]!;
        expect(Math.abs(ev - s[t]! ** 2 / (n - 1))).toBeLessThan(0.1 * (s[t]! ** 2 / (n - 1)));
        ratio += e.value.explainedVarianceRatio[t]!;
        trueRatio += s[t]! ** 2 / total;
      }
      expect(Math.abs(ratio - trueRatio)).toBeLessThan(0.05);
      const V = Matrix.from1DArray(d, 4, Array.from(e.value.components));
      const resid = new SingularValueDecomposition(C.sub(C.mmul(V).mmul(V.transpose())), { autoTranspose: true }).diagonal[0]!;
      expect(resid).toBeLessThanOrEqual(e.epsilon);
    }
  });

  it('with no more columns than probes and every block answering, σ and the residual are exact up to rounding', async () => {
    // 8 columns, rank 1: the sketch (l = 8) spans every column, and the test's P⊥ = I − VVᵀ gives the whole Gram.
    const narrow = knownSpectrum(1200, 8, [50, 40, 30, 5], 0.5, 11);
    const { dataset, blocks } = inMemoryDataset(narrow.A, 1200, 8, { blockRows: 100 });
    const e = await final(spectralNorm(dataset, runnerContext(new InProcessLocus(blocks)), { seed: 2 }));
    expect(e.value.lower).toBeLessThanOrEqual(narrow.s[0]!);
    expect(e.value.upper).toBeGreaterThanOrEqual(narrow.s[0]!);
    expect(e.value.upper - e.value.lower).toBeLessThan(1e-8 * narrow.s[0]!);
    expect(e.delta).toBe(0);
    const p = await final(rsvd(dataset, runnerContext(new InProcessLocus(blocks)), { rank: 2, seed: 2 }));
    const A = Matrix.from1DArray(1200, 8, Array.from(narrow.A));
    const V = Matrix.from1DArray(8, 2, Array.from(p.value.components));
    const resid = new SingularValueDecomposition(A.sub(A.mmul(V).mmul(V.transpose())), { autoTranspose: true }).diagonal[0]!;
    expect(resid).toBeLessThanOrEqual(p.epsilon);
    expect(p.epsilon).toBeLessThan(resid * (1 + 1e-8));
    for (let t = 0; t < 2; t++) {
      expect(p.value.singularValueLower[t]!).toBeLessThanOrEqual(narrow.s[t]!);
      expect(p.value.singularValueUpper[t]!).toBeGreaterThanOrEqual(narrow.s[t]!);
      expect(Math.abs(p.value.singularValues[t]! - narrow.s[t]!)).toBeLessThan(1e-9 * narrow.s[t]!);
    }
  });

  it('PCA centres by the summary means; rank selection grows k to meet a tolerance', async () => {
    const shifted = truth.A.map((v, i) => v + 5 + (i % d));
    const { dataset, blocks } = inMemoryDataset(shifted, n, d, { blockRows: 500 });
    const ctx = runnerContext(new InProcessLocus(blocks));
    const e = await final(pca(dataset, ctx, { rank: 2, tolerance: 0.05, seed: 1 }));
    expect(e.value.rank).toBeGreaterThanOrEqual(8);
    expect(e.value.mean![0]!).toBeCloseTo(5 + truth.A.filter((_, i) => i % d === 0).reduce((s, v) => s + v, 0) / n, 9);
    expect(e.epsilon).toBeLessThanOrEqual(0.05 * e.value.singularValues[0]!);
  });

  it('refuses a bad rank with COORD_E_INVALID_ARGUMENT', async () => {
    const { dataset, blocks } = inMemoryDataset(truth.A, n, d, { blockRows: 500 });
    await expect(final(rsvd(dataset, runnerContext(new InProcessLocus(blocks)), { rank: 0 }))).rejects.toMatchObject({
      code: 'COORD_E_INVALID_ARGUMENT',
    });
  });
});
