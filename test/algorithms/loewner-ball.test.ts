import fc from 'fast-check';
import { EigenvalueDecomposition, Matrix, SingularValueDecomposition } from 'ml-matrix';
import { describe, expect, it } from 'vitest';
import { final, InProcessLocus, inMemoryDataset, leastSquares, pca, runnerContext } from '../../algorithms/index.js';
import {
  attachScatterRadius,
  centredScatter,
  makeScatterReference,
  scatterRho,
  scatterTrace,
  summarizeBlock,
  summaryFromJson,
  summaryToJson,
} from '../../framework/estimation/block-summary.js';
import type { BlockSummary, CoordinatorDataset } from '../../framework/index.js';
import { ReliabilityStore } from '../../framework/index.js';
import { normals } from '../../nfu-kernels/index.js';
import { withoutExactScatter } from './without-exact-scatter.js';

/**
 * The relative (Loewner) scatter bound of block summaries, K_b − tr(K_b)·Ref ⪯ ρ_b(Ref + τI), and its use for
 * missing blocks by PCA and least squares. The checks here are against independent computations (ml-matrix's
 * eigendecomposition), and on blocks built to sit on the edge of their bound.
 */

const sym = (m: ArrayLike<number>, d: number): Matrix => {
  const M = new Matrix(d, d);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) M.set(i, j, 0.5 * (m[i * d + j]! + m[j * d + i]!));
  return M;
};

/** λ_max(R^{-1/2} D R^{-1/2}) by ml-matrix (R symmetric positive definite): the exact ρ up to rounding. */
function generalisedTop(D: Matrix, R: Matrix): number {
  const e = new EigenvalueDecomposition(R, { assumeSymmetric: true });
  const V = e.eigenvectorMatrix;
  const inv = Matrix.diag(e.realEigenvalues.map((v) => 1 / Math.sqrt(v)));
  const Rm = V.mmul(inv).mmul(V.transpose());
  const W = Rm.mmul(D).mmul(Rm);
  return Math.max(...new EigenvalueDecomposition(sym(W.to1DArray(), D.rows), { assumeSymmetric: true }).realEigenvalues);
}

const lambdaMin = (M: Matrix): number =>
  Math.min(...new EigenvalueDecomposition(sym(M.to1DArray(), M.rows), { assumeSymmetric: true }).realEigenvalues);

/** Rows with a column scale per column and an offset: a block whose scatter differs from the reference's shape. */
function rows(seed: number, n: number, d: number, scales: number[], mix: number): Float64Array {
  const z = new Float64Array(n * d);
  normals(seed, 7, 0, 0, z);
  const out = new Float64Array(n * d);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < d; j++) {
      // a little mixing of neighbouring columns (correlations) and an offset
      out[i * d + j] = 2 + j + scales[j]! * z[i * d + j]! + mix * z[i * d + ((j + 1) % d)]!;
    }
  return out;
}

describe('the relative scatter bound ρ_b', () => {
  it('holds: K_b ⪯ (tr K_b + ρ_b)·Ref + ρ_bτ·I for random blocks and references, and ρ_b is the exact one widened only by rounding', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 7 }),
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 1, max: 10_000 }),
        fc.array(fc.double({ min: 0.01, max: 30, noNaN: true }), { minLength: 7, maxLength: 7 }),
        fc.array(fc.double({ min: 0.01, max: 30, noNaN: true }), { minLength: 7, maxLength: 7 }),
        fc.double({ min: 0, max: 2, noNaN: true }),
        fc.integer({ min: 1, max: 40 }),
        fc.double({ min: -9, max: -2, noNaN: true }),
        (d, seedRef, seedBlock, refScales, blockScales, mix, n, logTau) => {
          const refRows = rows(seedRef, 4 * d + 4, d, refScales, 0.3);
          const reference = makeScatterReference(centredScatter(refRows, 4 * d + 4, d), d);
          const data = rows(seedBlock, n, d, blockScales, mix);
          const tau = 10 ** logTau;
          const K = centredScatter(data, n, d);
          const s = attachScatterRadius(summarizeBlock(data, n, d, { spectrum: false }), K, reference, { tau });
          expect(s.scatterRhoTau).toBe(tau);
          const rho = s.scatterRho!;
          const t = scatterTrace(s);
          const Ref = sym(reference.matrix, d);
          const R = Ref.clone().add(Matrix.eye(d).mul(tau));
          const Dm = sym(K, d).sub(Ref.clone().mul(t));
          const exact = generalisedTop(Dm, R);
          // ρ covers the exact value, and is not much wider (rounding only).
          const scale = (sym(K, d).norm('frobenius') + t + s.frob2) / tau;
          expect(rho).toBeGreaterThanOrEqual(exact - 1e-12 * scale);
          expect(rho).toBeLessThanOrEqual(Math.max(0, exact) * (1 + 1e-6) + 1e-9 * scale);
          // The Loewner inequality itself: ρR − D ⪰ 0 (up to the rounding of this check).
          const gap = R.clone().mul(rho).sub(Dm);
          expect(lambdaMin(gap)).toBeGreaterThanOrEqual(-1e-9 * gap.norm('frobenius'));
        },
      ),
      { numRuns: 150, seed: 1311 },
    );
  });

  it('is tight on a block built to sit on its edge: ρ_b equals the deviation put in, in a direction where Ref is small', () => {
    const d = 5;
    // Reference: a strong direction e₀ and weak ones.
    const Ref = new Float64Array(d * d);
    const diag = [0.96, 0.01, 0.01, 0.01, 0.01];
    diag.forEach((v, j) => (Ref[j * d + j] = v));
    const reference = makeScatterReference(Ref, d);
    const tau = 1e-8;
    // D = K − t·Ref with K = t·Ref + a·(Ref + τI) in direction e₃ only ⇒ generalised top eigenvalue a.
    // Build K = c·Ref + extra·e₃e₃ᵀ by rows: per-column scaled rows with exact second moments.
    const t0 = 100;
    const extra = 3; // K₃₃ = t0·0.01 + extra
    const K = new Float64Array(d * d);
    diag.forEach((v, j) => (K[j * d + j] = t0 * v + (j === 3 ? extra : 0)));
    const t = t0 + extra;
    const D = K.map((v, q) => v - t * reference.matrix[q]!);
    const exact = generalisedTop(sym(D, d), sym(reference.matrix, d).add(Matrix.eye(d).mul(tau)));
    const rho = scatterRho(D, reference.matrix, d, tau)!;
    expect(rho).toBeGreaterThanOrEqual(exact);
    expect(rho).toBeLessThanOrEqual(exact * (1 + 1e-9));
    // In direction e₃ the bound (t + ρ)·Ref₃₃ + ρτ is the block's own K₃₃, to rounding; a radius bound would add
    // ‖D‖₂ to t·Ref₃₃ instead, far more in a direction where Ref is this small.
    const bound33 = (t + rho) * reference.matrix[3 * d + 3]! + rho * tau;
    expect(bound33).toBeGreaterThanOrEqual(K[3 * d + 3]! * (1 - 1e-12));
    expect(bound33).toBeLessThanOrEqual(K[3 * d + 3]! * (1 + 1e-6));
  });

  it('travels in the summary JSON with its τ, and is dropped with the reference', () => {
    const d = 3;
    const data = rows(3, 20, d, [1, 2, 3], 0.5);
    const reference = makeScatterReference(centredScatter(rows(4, 20, d, [1, 1, 1], 0.2), 20, d), d);
    const s = summarizeBlock(data, 20, d, { reference });
    expect(s.scatterRho).toBeGreaterThan(0);
    expect(s.scatterRhoTau).toBeCloseTo(1e-6 / d, 20);
    const json = JSON.parse(JSON.stringify(summaryToJson(s))) as unknown;
    const back = summaryFromJson(json, 'summary', [reference]);
    expect(back.scatterRho).toBe(s.scatterRho);
    expect(back.scatterRhoTau).toBe(s.scatterRhoTau);
    const alone = summaryFromJson(json);
    expect(alone.scatterRho).toBeUndefined();
    expect(alone.scatterRhoTau).toBeUndefined();
    // A ρ without its τ is refused with the field named.
    const broken = { ...(json as object), scatterRhoTau: undefined };
    expect(() => summaryFromJson(broken, 'summary', [reference])).toThrow(/scatterRhoTau/);
  });
});

/** Rank-3 signal plus small noise; `block` (if ≥ 0) has `boost` times more noise in a direction off the signal. */
function lowRank(seed: number, n: number, d: number, block: number, boost: number, blockRows: number): Float64Array {
  const A = new Float64Array(n * d);
  normals(seed, 1, 0, 0, A);
  const W = new Float64Array(3 * d);
  normals(seed, 2, 0, 0, W);
  const Z = new Float64Array(n * 3);
  normals(seed, 3, 0, 0, Z);
  const u = new Float64Array(d);
  normals(seed, 4, 0, 0, u);
  for (let i = 0; i < n; i++) {
    const inBlock = Math.floor(i / blockRows) === block;
    let along = 0;
    for (let j = 0; j < d; j++) along += u[j]! * A[i * d + j]!;
    for (let j = 0; j < d; j++) {
      let s = 0.3 * A[i * d + j]! + 1 + j + (inBlock ? 0.3 * (boost - 1) * along * u[j]! : 0);
      for (let t = 0; t < 3; t++) s += Z[i * 3 + t]! * W[t * d + j]! * [4, 2, 1][t]!;
      A[i * d + j] = s;
    }
  }
  return A;
}

const top = (M: Matrix): number =>
  new SingularValueDecomposition(M, { computeLeftSingularVectors: false, computeRightSingularVectors: false }).diagonal[0]!;

function withoutRho(ds: CoordinatorDataset): CoordinatorDataset {
  return {
    ...ds,
    blocks: ds.blocks.map((b) => {
      const s: BlockSummary = { ...b.summary! };
      delete s.scatterRho;
      delete s.scatterRhoTau;
      return { ...b, summary: s };
    }),
  };
}

describe('missing blocks bounded with ρ_b', () => {
  const N = 240;
  const D = 8;
  const BLOCK_ROWS = 20;

  it('PCA: ε covers the true residual when the missing blocks include one that leaves the subspace (fast-check), and is never looser than without ρ', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 1000 }),
        fc.integer({ min: 4, max: 11 }),
        fc.double({ min: 1, max: 30, noNaN: true }),
        fc.uniqueArray(fc.integer({ min: 0, max: 11 }), { minLength: 0, maxLength: 5 }),
        async (seed, odd, boost, others) => {
          const A = lowRank(seed, N, D, odd, boost, BLOCK_ROWS);
          const { dataset, blocks } = inMemoryDataset(A, N, D, { blockRows: BLOCK_ROWS, depotsOf: (b) => [9000 + (b % 4)] });
          expect(dataset.blocks[odd]!.summary!.scatterRho).toBeGreaterThan(0);
          const fails = new Set([odd, ...others]);
          const run = async (ds: CoordinatorDataset) => {
            const ctx = runnerContext(new InProcessLocus(blocks, { fail: (a) => fails.has(a.block.index) }), {
              store: new ReliabilityStore({ clock: { now: () => 0 } }),
            });
            return final(pca(ds, ctx, { rank: 3, seed, delta: 0.05 }));
          };
          const e = await run(dataset);
          const M = Matrix.from1DArray(N, D, Array.from(A));
          const mean = M.mean('column');
          for (let i = 0; i < N; i++) for (let j = 0; j < D; j++) M.set(i, j, M.get(i, j) - mean[j]!);
          const V = Matrix.from1DArray(D, 3, Array.from(e.value.components));
          const err = top(M.clone().sub(M.mmul(V).mmul(V.transpose())));
          expect(e.epsilon).toBeGreaterThanOrEqual(err);
          const old = await run(withoutRho(dataset));
          // Same V (the fit does not depend on the summaries' ρ), so the bounds compare directly.
          expect(Array.from(old.value.components)).toEqual(Array.from(e.value.components));
          expect(e.epsilon).toBeLessThanOrEqual(old.epsilon * (1 + 1e-12));
        },
      ),
      { numRuns: 25, seed: 2417 },
    );
  }, 120_000);

  it('least squares: ε covers ‖x − x*‖ with a missing block off the regression plane (fast-check), and is never looser than without ρ', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 1000 }),
        fc.integer({ min: 4, max: 11 }),
        fc.double({ min: 1, max: 30, noNaN: true }),
        fc.uniqueArray(fc.integer({ min: 0, max: 11 }), { minLength: 0, maxLength: 4 }),
        fc.boolean(),
        async (seed, odd, boost, others, aligned) => {
          const A = lowRank(seed, N, D, -1, 1, BLOCK_ROWS);
          // Target: a linear function of the features plus noise, and the odd block's rows far off the plane; or
          // (aligned) the odd block follows another linear function, its residual fully correlated with its
          // features, the case the Cauchy–Schwarz step of the bound must cover.
          for (let i = 0; i < N; i++) {
            let s = 0;
            let other = 0;
            for (let j = 0; j < D - 1; j++) {
              s += (j % 3) * A[i * D + j]! * 0.5;
              other += ((j * 7 + seed) % 5) * A[i * D + j]! * 0.1;
            }
            const inOdd = Math.floor(i / BLOCK_ROWS) === odd;
            A[i * D + D - 1] = s + (inOdd && aligned ? 0.05 * boost * other : 0.05 * (inOdd ? boost : 1) * A[i * D + D - 1]!);
          }
          // Without the exact scatters: the missing blocks are bounded through ρ (with them they are filled exactly).
          const { dataset: full, blocks } = inMemoryDataset(A, N, D, {
            blockRows: BLOCK_ROWS,
            depotsOf: (b) => [9000 + (b % 4)],
          });
          const dataset = withoutExactScatter(full);
          const fails = new Set([odd, ...others]);
          const run = async (ds: CoordinatorDataset) => {
            const ctx = runnerContext(new InProcessLocus(blocks, { fail: (a) => fails.has(a.block.index) }), {
              store: new ReliabilityStore({ clock: { now: () => 0 } }),
            });
            return final(leastSquares(ds, ctx, { seed, delta: 0.05 }));
          };
          const e = await run(dataset);
          const M = Matrix.from1DArray(N, D, Array.from(A));
          const xs = new SingularValueDecomposition(M.subMatrix(0, N - 1, 0, D - 2))
            .solve(M.subMatrix(0, N - 1, D - 1, D - 1))
            .to1DArray();
          const err = Math.sqrt(xs.reduce((s, v, i) => s + (v - e.value.coefficients[i]!) ** 2, 0));
          expect(e.epsilon).toBeGreaterThanOrEqual(err);
          const old = await run(withoutRho(dataset));
          expect(Array.from(old.value.coefficients)).toEqual(Array.from(e.value.coefficients));
          expect(e.epsilon).toBeLessThanOrEqual(old.epsilon * (1 + 1e-12));
        },
      ),
      { numRuns: 25, seed: 977 },
    );
  }, 120_000);
});
