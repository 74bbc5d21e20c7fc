import { checkOpenUnit } from './errors.js';

/**
 * The deviation t at which a Bernstein tail `K · exp(−(t²/2) / (V + L·t/3))` equals δ:
 * t = L·ℓ/3 + √((L·ℓ/3)² + 2·V·ℓ) with ℓ = ln(K/δ).
 *
 * Scalars (K = 2): Bernstein's inequality for independent zero-mean terms |X_i| ≤ L, Σ E X_i² ≤ V
 * (Boucheron–Lugosi–Massart 2013, Thm 2.10; two-sided). Matrices (K = d₁ + d₂): matrix Bernstein,
 * Tropp 2015, *An Introduction to Matrix Concentration Inequalities*, Thm 6.1.1, with V the larger of
 * ‖Σ E X Xᵀ‖ and ‖Σ E Xᵀ X‖.
 *
 * @param variance - V ≥ 0
 * @param range - L ≥ 0
 * @param dimensionFactor - K ≥ 1 (2 for a scalar, d₁ + d₂ for a d₁ × d₂ matrix)
 */
export function bernsteinRadius(variance: number, range: number, delta: number, dimensionFactor = 2): number {
  checkOpenUnit('delta', delta);
  if (variance <= 0 && range <= 0) return 0;
  const ell = Math.log(dimensionFactor / delta);
  const a = (range * ell) / 3;
  return a + Math.sqrt(a * a + 2 * variance * ell);
}
