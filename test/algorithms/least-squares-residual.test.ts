import { describe, expect, it } from 'vitest';
import { final, InProcessLocus, inMemoryDataset, leastSquares, runnerContext } from '../../algorithms/index.js';
import { normals } from '../../nfu-kernels/index.js';
import { residualText } from '../../cli/algorithms-command.js';
import { withoutExactScatter } from './without-exact-scatter.js';

/** [A b] with b = A·x₀ + 0.5·noise (seeded). */
function problem(n: number, d: number, seed: number): Float64Array {
  const A = new Float64Array(n * d);
  normals(seed, 1, 0, 0, A);
  const noise = new Float64Array(n);
  normals(seed, 2, 0, 0, noise);
  const M = new Float64Array(n * (d + 1));
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) {
      const a = A[i * d + j]! * (1 + j) + 0.3 * j;
      M[i * (d + 1) + j] = a;
      s += a * (1 + j);
    }
    M[i * (d + 1) + d] = s + 0.5 * noise[i]!;
  }
  return M;
}

/** ‖Ax − b‖ over every row of M, b its last column. */
function residualOf(M: Float64Array, n: number, d: number, x: Float64Array): number {
  let r2 = 0;
  for (let i = 0; i < n; i++) {
    let r = -M[i * (d + 1) + d]!;
    for (let j = 0; j < d; j++) r += M[i * (d + 1) + j]! * x[j]!;
    r2 += r * r;
  }
  return Math.sqrt(r2);
}

describe('least squares: the residual norm is the whole dataset’s', () => {
  const n = 4800;
  const d = 6;
  const M = problem(n, d, 21);
  // 48 blocks of 100 rows, one copy each on three depots.
  const layout = { blockRows: 100, depotsOf: (b: number) => [9000 + (b % 3)] };

  it('with every block answered: the exact residual, its interval closed on it', async () => {
    const { dataset, blocks } = inMemoryDataset(M, n, d + 1, layout);
    const e = await final(leastSquares(dataset, runnerContext(new InProcessLocus(blocks)), { seed: 1 }));
    const exact = residualOf(M, n, d, e.value.coefficients);
    expect(e.blocksMissing).toBe(0);
    expect(Math.abs(e.value.residualNorm - exact)).toBeLessThan(1e-9 * exact);
    // Only the rounding allowance apart.
    expect(e.value.residualNormLower).toBeLessThanOrEqual(exact);
    expect(e.value.residualNormUpper).toBeGreaterThanOrEqual(exact);
    expect(e.value.residualNormUpper - e.value.residualNormLower).toBeLessThan(1e-8 * exact);
  });

  it('with a depot’s 16 of 48 blocks missing: estimates the full residual (not the answered rows’) within its interval', async () => {
    // Summaries without the exact scatters (an older exNode): the missing blocks' residuals are estimated.
    const { dataset: full, blocks } = inMemoryDataset(M, n, d + 1, layout);
    const dataset = withoutExactScatter(full);
    const runner = new InProcessLocus(blocks, { fail: (a) => a.replica.depot.port === 9000 });
    const e = await final(leastSquares(dataset, runnerContext(runner), { seed: 1 }));
    expect(e.blocksMissing).toBe(16);
    const exact = residualOf(M, n, d, e.value.coefficients);
    // The answered rows alone would give about √(32/48) of it (18 % low).
    expect(Math.abs(e.value.residualNorm - exact)).toBeLessThan(0.03 * exact);
    expect(e.value.residualNormLower).toBeLessThanOrEqual(exact);
    expect(e.value.residualNormUpper).toBeGreaterThanOrEqual(exact);
    expect(e.value.residualNormLower).toBeLessThan(e.value.residualNormUpper);
  });

  it('prints the residual as all rows’, and with blocks missing as an estimate with its interval', () => {
    expect(residualText({ residualNorm: 18.59, residualNormLower: 18.59, residualNormUpper: 18.59 })).toBe(
      'residual norm 18.59 (all rows)',
    );
    const text = residualText({ residualNorm: 18.4, residualNormLower: 15.38, residualNormUpper: 21.2 });
    expect(text).toMatch(/^residual norm ≈ 18\.40 \(all rows, estimated: .*missing blocks.*surely in \[15\.38, 21\.20\]\)$/);
  });
});
