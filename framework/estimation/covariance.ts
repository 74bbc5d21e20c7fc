import { invalidArgument } from './errors.js';
import type { Estimate } from './types.js';

/**
 * Covariance C = (G − n·μμᵀ) / (n − 1) from an estimate of the Gram total G = AᵀA (spectral norm) and of the
 * column means μ (per-coordinate bounds), n the planned row count (known from the summaries).
 * With e = μ̂ − μ, ‖e‖₂ ≤ √(Σ_j ε_j²) on the means' event, and ‖μ̂μ̂ᵀ − μμᵀ‖ ≤ ‖e‖(2‖μ̂‖ + ‖e‖), so
 * ‖Ĉ − C‖ ≤ (ε_G + n·‖e‖(2‖μ̂‖ + ‖e‖)) / (n − 1) with probability ≥ 1 − δ_G − δ_μ (union bound).
 */
export function estimateCovariance(
  gram: Estimate<Float64Array>,
  mean: Estimate<Float64Array>,
  totalRows: number,
): Estimate<Float64Array> {
  const d = mean.value.length;
  if (gram.value.length !== d * d) throw invalidArgument('gram.value.length', `d² = ${d * d}`, gram.value.length);
  if (!Number.isInteger(totalRows) || totalRows < 2) throw invalidArgument('totalRows', 'an integer ≥ 2', totalRows);
  if (gram.norm !== 'spectral') throw invalidArgument('gram.norm', '"spectral"', gram.norm);
  const n = totalRows;
  const value = new Float64Array(d * d);
  let muNorm2 = 0;
  for (let j = 0; j < d; j++) muNorm2 += mean.value[j]! * mean.value[j]!;
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) value[i * d + j] = (gram.value[i * d + j]! - n * mean.value[i]! * mean.value[j]!) / (n - 1);
  }
  const perCoord = mean.epsilonPerCoordinate ?? Float64Array.of(mean.parts.sampling.epsilon);
  let e2 = 0;
  for (let j = 0; j < perCoord.length; j++) e2 += perCoord[j]! * perCoord[j]!;
  const e = Math.sqrt(e2);
  const part = (p: 'sampling' | 'sketch', meanEps: number) => ({
    epsilon: (gram.parts[p].epsilon + n * meanEps) / (n - 1),
    delta: gram.parts[p].delta + mean.parts[p].delta,
  });
  const meanErr = e * (2 * Math.sqrt(muNorm2) + e);
  // The means' sketch part (if any) is folded into their l2 error; report it with the sampling part.
  const sampling = part('sampling', meanErr);
  const sketch = part('sketch', 0);
  return {
    ...gram,
    value,
    epsilon: sampling.epsilon + sketch.epsilon,
    delta: sampling.delta + sketch.delta,
    coverage: Math.min(gram.coverage, mean.coverage),
    method: `covariance (G − nμμᵀ)/(n − 1) from ${gram.method} and ${mean.method}`,
    parts: { sampling, sketch },
  };
}
