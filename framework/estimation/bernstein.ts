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

/** Bennett's function h(u) = (1 + u)·ln(1 + u) − u. */
function bennettH(u: number): number {
  return (1 + u) * Math.log1p(u) - u;
}

/**
 * The deviation t at which a Bennett tail `K · exp(−(V/L²)·h(L·t/V))`, h(u) = (1 + u)ln(1 + u) − u, equals δ.
 * Never larger than {@link bernsteinRadius} with the same arguments (h(u) ≥ u²/(2(1 + u/3)), which is how
 * Bernstein's form is derived from Bennett's), and noticeably smaller when the range term dominates.
 *
 * Scalars (K = 2): Bennett's inequality (Bennett 1962; Boucheron–Lugosi–Massart 2013, Thm 2.9), each tail
 * with X_i ≤ L. Matrices (K = d₁ + d₂ through the Hermitian dilation): matrix Bennett, Tropp 2012, *User-friendly
 * tail bounds for sums of random matrices*, FoCM 12:389–434, Thm 6.1 (first inequality), λ_max(X_k) ≤ L,
 * V ≥ ‖Σ E X_k²‖. Both rest on a bound of the (trace) moment generating function of a sum of independent
 * terms, so they also hold for draws without replacement (Hoeffding 1963, Thm 4; Gross & Nesme 2010).
 * The root is found by bisection and the upper end of the final bracket is returned, so rounding only
 * widens the radius.
 *
 * @param variance - V ≥ 0
 * @param range - L ≥ 0
 * @param dimensionFactor - K ≥ 1 (2 for a scalar, d₁ + d₂ for a d₁ × d₂ matrix)
 */
export function bennettRadius(variance: number, range: number, delta: number, dimensionFactor = 2): number {
  const bernstein = bernsteinRadius(variance, range, delta, dimensionFactor);
  if (bernstein === 0 || range <= 0 || variance <= 0) return bernstein;
  const ell = Math.log(dimensionFactor / delta);
  if (!(ell > 0)) return 0; // K ≤ δ: the tail bound is below δ at t = 0
  // Solve (V/L²)·h(u) = ℓ for u = L·t/V; h is increasing on u ≥ 0 and h(u_B) ≥ target at Bernstein's root.
  const target = (ell * range * range) / variance;
  let lo = 0;
  let hi = (range * bernstein) / variance;
  if (!(bennettH(hi) >= target) || !Number.isFinite(hi)) return bernstein;
  for (let i = 0; i < 200 && hi - lo > 1e-15 * hi; i++) {
    const mid = 0.5 * (lo + hi);
    if (bennettH(mid) < target) lo = mid;
    else hi = mid;
  }
  return Math.min(bernstein, (hi * variance) / range);
}
