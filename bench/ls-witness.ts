/**
 * How small a deterministic least-squares bound can be on bench:calibration's data. The bound sees only the
 * answered blocks and every block's summary, so it must also cover every other dataset that agrees with those.
 * For each trial this searches for one: the missing blocks (never blocks 0–3, whose scatter makes the reference)
 * get a new target column. The new column keeps the block's colSums and colSumSq (to 10⁻¹²). maxAbs,
 * scatterRadius, scatterRho and the scatter eigenvalue bounds recorded at ingest still hold for it. The features
 * do not change, so G_AA does not either and x*′ = x* + G_AA⁻¹ Σ_b A_bᵀΔy_b. The estimate x and its ε do not
 * change (the same answered blocks, the same summaries). The bench prints the median ‖x − x*′‖ / ‖x − x*‖ per
 * failure setting. A sound bound's ε is at least ‖x − x*′‖, so its median ε / true error is at least that.
 *
 * The summaries here are those without the blocks' exact scatters (`withoutExactScatter`, the calibration's
 * `-bounded` rows): with an exact scatter recorded, a missing block's new target column would have to keep its
 * inner products with the features, so x* could not move and least squares solves the whole problem instead.
 *
 * The search is local (feasible directions with finite-difference gradients, one block at a time, pushing x*′
 * away from x), so the figures are lower limits of the worst case.
 *
 * Usage: node dist/bench/ls-witness.js [--trials N (default 20)] [--iterations K (default 300)] [--noisy]
 * (--noisy: bench:calibration's `least-squares-noisy` target; else its almost exact fit).
 */
import { Matrix, inverse } from 'ml-matrix';
import { final, InProcessLocus, inMemoryDataset, leastSquares, runnerContext } from '../algorithms/index.js';
import { ReliabilityStore, summarizeBlock, type BlockSummary } from '../framework/index.js';
import { benchArgs } from './lib/args.js';
import {
  BLOCK_ROWS,
  BLOCKS,
  D,
  DEPOTS,
  N,
  failures,
  matrix,
  mulberry,
  noisyRegression,
  withoutExactScatter,
} from './lib/calibration-data.js';

const { args, flag } = benchArgs();
const TRIALS = flag('--trials', 20);
const ITERATIONS = flag('--iterations', 300);
const NOISY = args.includes('--noisy');
if (!(TRIALS >= 1) || !(ITERATIONS >= 1)) {
  process.stderr.write('usage: ls-witness [--trials N ≥ 1] [--iterations K ≥ 1] [--noisy]\n');
  process.exit(2);
}
const d = D - 1;
const REFERENCE_BLOCKS = 4;

const dot = (a: readonly number[], b: readonly number[]): number => a.reduce((s, v, i) => s + v * b[i]!, 0);
const norm = (a: readonly number[]): number => Math.sqrt(dot(a, a));

/**
 * How far block data breaks its original summary: each entry ≤ 0 when consistent (maxAbs, scatterRadius,
 * scatterRho, scatterEigMax, −scatterEigMin, relative to their size), Infinity when a sum moved.
 */
function excess(orig: BlockSummary, data: Float64Array): number[] {
  const broken = [Infinity, Infinity, Infinity, Infinity, Infinity];
  if (data.some((v) => !Number.isFinite(v))) return broken;
  const s = summarizeBlock(data, BLOCK_ROWS, D, { reference: orig.scatterReference! });
  for (let j = 0; j < D; j++)
    if (
      Math.abs(s.colSums[j]! - orig.colSums[j]!) > 1e-12 * Math.sqrt(BLOCK_ROWS * orig.colSumSq[j]!) ||
      Math.abs(s.colSumSq[j]! - orig.colSumSq[j]!) > 1e-12 * orig.colSumSq[j]!
    )
      return broken;
  const eigMax = orig.scatterEigMax ?? Infinity;
  return [
    (s.maxAbs - orig.maxAbs) / orig.maxAbs,
    (s.scatterRadius! - orig.scatterRadius!) / orig.scatterRadius!,
    s.scatterRho === undefined ? Infinity : (s.scatterRho - orig.scatterRho!) / orig.scatterRho!,
    (s.scatterEigMax! - eigMax) / eigMax,
    ((orig.scatterEigMin ?? 0) - s.scatterEigMin!) / eigMax,
  ];
}

/**
 * A new target column for one block that raises cᵀΔy as far as the local search gets, every recorded summary
 * field still valid. Rows whose target is within 2 % of the block's maxAbs stay; the others move by g + β·p (p
 * their centred targets, g ⟂ 1 and p among them), β solving ‖y + Δy‖ = ‖y‖, so the sums stay.
 */
function moveBlock(orig: BlockSummary, data: Float64Array, c: readonly number[]): number[] {
  const y = Array.from({ length: BLOCK_ROWS }, (_, i) => data[i * D + d]!);
  const free = y.map((v) => Math.abs(v) < 0.98 * orig.maxAbs);
  const F = free.filter(Boolean).length;
  const none = Array<number>(BLOCK_ROWS).fill(0);
  if (F < 4) return none;
  const meanFree = y.reduce((a, v, i) => a + (free[i] ? v : 0), 0) / F;
  const p = y.map((v, i) => (free[i] ? v - meanFree : 0));
  const p2 = dot(p, p);
  const basis: number[][] = [];
  const fixed = [free.map((f) => (f ? 1 / Math.sqrt(F) : 0)), p.map((v) => v / Math.sqrt(p2))];
  for (let k = 0; k < BLOCK_ROWS; k++) {
    if (!free[k]) continue;
    let v: number[] = Array.from({ length: BLOCK_ROWS }, (_, i) => (i === k ? 1 : 0));
    for (const u of [...fixed, ...basis]) {
      const q = dot(v, u);
      v = v.map((x, i) => x - q * u[i]!);
    }
    const n = norm(v);
    if (n > 1e-8) basis.push(v.map((x) => x / n));
  }
  const make = (coef: readonly number[]): { out: Float64Array; dy: number[] } => {
    const g = Array<number>(BLOCK_ROWS).fill(0);
    coef.forEach((a, k) => basis[k]!.forEach((b, i) => (g[i]! += a * b)));
    const disc = 1 - dot(g, g) / p2;
    const beta = disc >= 0 ? -1 + Math.sqrt(disc) : NaN;
    const out = data.slice();
    const dy = y.map((v, i) => {
      const next = v + g[i]! + beta * p[i]!;
      out[i * D + d] = next;
      return next - v;
    });
    return { out, dy };
  };
  let coef = Array<number>(basis.length).fill(0);
  let best = 0;
  let bestDy = none;
  let step = 0.02 * Math.sqrt(p2);
  const h = 1e-5 * Math.sqrt(p2);
  for (let it = 0; it < ITERATIONS; it++) {
    const base = make(coef);
    const q0 = excess(orig, base.out);
    const f0 = dot(c, base.dy);
    const gradF: number[] = [];
    const gradQ: number[][] = q0.map(() => []);
    for (let k = 0; k < basis.length; k++) {
      const moved = coef.slice();
      moved[k]! += h;
      const m = make(moved);
      gradF.push((dot(c, m.dy) - f0) / h);
      excess(orig, m.out).forEach((v, i) => gradQ[i]!.push((v - q0[i]!) / h));
    }
    // Active constraints (within 10⁻³ of their bound): the ascent direction is projected off their gradients,
    // then pushed inside by the least-norm δ with ĝ_kᵀδ = −0.3 for each of them.
    const active = gradQ
      .filter((_, i) => q0[i]! > -1e-3)
      .map((g) => {
        const n = norm(g);
        return n > 0 && Number.isFinite(n) ? g.map((v) => v / n) : undefined;
      })
      .filter((g): g is number[] => g !== undefined);
    let dir = gradF.slice();
    const ortho: number[][] = [];
    for (const g of active) {
      let v = g.slice();
      for (const u of ortho) {
        const q = dot(v, u);
        v = v.map((x, k) => x - q * u[k]!);
      }
      const n = norm(v);
      if (n > 1e-12) ortho.push(v.map((x) => x / n));
    }
    for (const u of ortho) {
      const q = dot(dir, u);
      dir = dir.map((x, k) => x - q * u[k]!);
    }
    const dn = norm(dir);
    if (!(dn > 0)) break;
    dir = dir.map((x) => x / dn);
    if (active.length > 0) {
      const M = new Matrix(active.map((gi) => active.map((gj) => dot(gi, gj))));
      for (let i = 0; i < active.length; i++) M.set(i, i, M.get(i, i) + 1e-9);
      const alpha = inverse(M)
        .mmul(Matrix.columnVector(active.map(() => -0.3)))
        .to1DArray();
      active.forEach((g, i) => (dir = dir.map((x, k) => x + alpha[i]! * g[k]!)));
    }
    let moved = false;
    for (let tries = 0; tries < 12 && !moved; tries++) {
      const next = coef.map((x, k) => x + step * dir[k]!);
      const m = make(next);
      const f = dot(c, m.dy);
      if (excess(orig, m.out).every((v) => v <= 0) && f > best) {
        coef = next;
        best = f;
        bestDy = m.dy;
        moved = true;
        step *= 1.5;
      } else step /= 2;
    }
    if (!moved) break;
  }
  return bestDy;
}

async function main(): Promise<void> {
  const settings = [0.1, 0.3, 0.5].flatMap((rate) => [false, true].map((correlated) => ({ rate, correlated })));
  const ratios = settings.map(() => [] as number[]);
  const started = Date.now();
  for (let t = 0; t < TRIALS; t++) {
    const seed = 1 + t;
    const A = NOISY ? noisyRegression(matrix(seed), seed) : matrix(seed);
    const { dataset: full, blocks } = inMemoryDataset(A, N, D, { blockRows: BLOCK_ROWS, depotsOf: (b) => [9000 + (b % DEPOTS)] });
    const dataset = withoutExactScatter(full);
    const M = Matrix.from1DArray(N, D, Array.from(A));
    const G = M.transpose().mmul(M);
    const Ginv = inverse(G.subMatrix(0, d - 1, 0, d - 1));
    const xStar = Ginv.mmul(G.subMatrix(0, d - 1, d, d)).to1DArray();
    for (const [k, { rate, correlated }] of settings.entries()) {
      const failed = failures(
        rate,
        correlated ? 'correlated' : 'independent',
        mulberry(seed * 7 + 1 + (correlated ? 1_000_003 : 0)),
      );
      if (failed.size === 0 || failed.size === BLOCKS) continue;
      const ctx = runnerContext(new InProcessLocus(blocks, { fail: (a) => failed.has(a.block.index) }), {
        store: new ReliabilityStore({ clock: { now: () => 0 } }),
      });
      const x = Array.from((await final(leastSquares(dataset, ctx, { seed, delta: 0.1 }))).value.coefficients);
      const err = norm(xStar.map((v, i) => v - x[i]!));
      // Push x*′ further from x: raise wᵀG_AA⁻¹A_bᵀΔy_b, w = (x* − x)/‖x* − x‖.
      const Gw = Ginv.mmul(Matrix.columnVector(xStar.map((v, i) => (v - x[i]!) / err))).to1DArray();
      const shift = new Array<number>(d).fill(0);
      for (const b of failed) {
        if (b < REFERENCE_BLOCKS) continue;
        const data = A.slice(b * BLOCK_ROWS * D, (b + 1) * BLOCK_ROWS * D);
        const c = Array.from({ length: BLOCK_ROWS }, (_, i) => dot(Array.from(data.subarray(i * D, i * D + d)), Gw));
        const dy = moveBlock(dataset.blocks[b]!.summary!, data, c);
        for (let j = 0; j < d; j++) for (let i = 0; i < BLOCK_ROWS; i++) shift[j]! += data[i * D + j]! * dy[i]!;
      }
      const dx = Ginv.mmul(Matrix.columnVector(shift)).to1DArray();
      ratios[k]!.push(norm(xStar.map((v, i) => v + dx[i]! - x[i]!)) / err);
    }
  }
  process.stdout.write(
    `${NOISY ? 'least-squares-noisy' : 'least-squares'}: ${TRIALS} trials in ${((Date.now() - started) / 1000).toFixed(0)} s\n` +
      'fail  mode          trials  median ‖x − x*′‖/‖x − x*‖  smallest\n',
  );
  for (const [k, { rate, correlated }] of settings.entries()) {
    const r = ratios[k]!.slice().sort((a, b) => a - b);
    if (r.length === 0) continue;
    process.stdout.write(
      `${String(rate).padEnd(5)} ${(correlated ? 'correlated' : 'independent').padEnd(12)}  ${String(r.length).padStart(6)}  ` +
        `${r[Math.floor(r.length / 2)]!.toPrecision(3).padStart(25)}  ${r[0]!.toPrecision(3).padStart(8)}\n`,
    );
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
