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

/** One group of independent summands for {@link bennettRadiusTerms}: their variance sum and a common range. */
export interface TailTerm {
  /** ≥ ‖Σ_k E X_k²‖ over the group's summands (for scalars, Σ_k E X_k²). */
  variance: number;
  /** ≥ ‖X_k‖ for each of the group's summands. */
  range: number;
  /**
   * Optional: ≥ ‖Σ_k X_k‖ for the group's sum, always (a deterministic bound). Its log-mgf is then also at most
   * θ·bound, and the smaller of the two is used.
   */
  bound?: number;
}

/** φ(x)/x² with φ(x) = eˣ − x − 1, continuous at 0 (value 1/2). */
function phiOverSquare(x: number): number {
  if (x < 1e-4) return 0.5 + x / 6 + (x * x) / 24;
  return Math.expm1(x) / (x * x) - 1 / x;
}

/**
 * Bennett-type radius for independent zero-mean summands whose ranges differ: the deviation t with
 * `K · exp(−θt + Σ_g V_g·φ(θ·L_g)/L_g²) ≤ δ` for some θ > 0, φ(x) = eˣ − x − 1, i.e.
 * t = min_θ (ln(K/δ) + Σ_g V_g·φ(θL_g)/L_g²)/θ.
 *
 * This is the Chernoff bound behind Bennett's inequality kept one summand (or group) at a time: each summand
 * with X ≤ L has E e^{θX} ≤ exp(E X²·φ(θL)/L²) (Bennett 1962; for matrices E e^{θX} ⪯ exp(φ(θL)/L²·E X²) when
 * λ_max(X) ≤ L, the moment-generating-function lemma in the proof of Tropp 2012, FoCM 12:389–434, Thm 6.1,
 * summed by the subadditivity of matrix cumulant generating functions (Lieb's theorem, ibid. §3), then
 * λ_max(Σ_g c_g V_g) ≤ Σ_g c_g ‖V_g‖ and the Hermitian dilation for K = d₁ + d₂). With one common range it is exactly {@link bennettRadius}; with a few summands of
 * large range (a response group with few answers, a block with a low answer probability) and many small
 * ones it is much tighter, because a common range charges every summand the worst one's.
 * A group whose sum is also bounded deterministically (`bound`: a response group with few answers, whose
 * error is at most the sum of its missing blocks' deviations) has log E e^{θX} ⪯ θ·bound·I as well, and the
 * smaller of the two enters the sum (both are multiples of I, so the smaller is a bound too).
 * Any θ gives a valid radius, so the search (golden section on ln θ) can only err on the wide side, and the
 * result is never wider than {@link bennettRadius} with the summed variance and the largest range, nor than
 * the sum of the bounds when every term has one.
 */
export function bennettRadiusTerms(terms: readonly TailTerm[], delta: number, dimensionFactor = 2): number {
  checkOpenUnit('delta', delta);
  let variance = 0;
  let range = 0;
  for (const t of terms) {
    variance += t.variance;
    range = Math.max(range, t.range);
  }
  let common = bennettRadius(variance, range, delta, dimensionFactor);
  if (terms.every((t) => t.bound !== undefined)) {
    let sum = 0;
    for (const t of terms) sum += t.bound!;
    common = Math.min(common, sum * (1 + 1e-12));
  }
  if (common === 0 || variance <= 0 || range <= 0) return common;
  const ell = Math.log(dimensionFactor / delta);
  if (!(ell > 0)) return 0;
  const radiusAt = (theta: number): number => {
    let psi = 0;
    for (const t of terms) {
      const bennett = t.variance <= 0 ? 0 : t.variance * theta * theta * phiOverSquare(theta * t.range);
      psi += t.bound === undefined ? bennett : Math.min(bennett, theta * t.bound);
    }
    return (ell + psi) / theta;
  };
  // Unimodal in θ (the numerator of its derivative, θψ' − ψ − ℓ, increases): golden section on ln θ around
  // Bernstein's scale √(2ℓ/V), capped where e^{θL} stays finite.
  const centre = Math.log(Math.sqrt((2 * ell) / variance));
  let a = centre - 12;
  let b = Math.min(centre + 12, Math.log(700 / range));
  if (!(b > a)) return common;
  const g = (Math.sqrt(5) - 1) / 2;
  let x1 = b - g * (b - a);
  let x2 = a + g * (b - a);
  let f1 = radiusAt(Math.exp(x1));
  let f2 = radiusAt(Math.exp(x2));
  let best = Math.min(f1, f2);
  for (let i = 0; i < 100 && b - a > 1e-10; i++) {
    if (f1 <= f2) {
      b = x2;
      x2 = x1;
      f2 = f1;
      x1 = b - g * (b - a);
      f1 = radiusAt(Math.exp(x1));
      best = Math.min(best, f1);
    } else {
      a = x1;
      x1 = x2;
      f1 = f2;
      x2 = a + g * (b - a);
      f2 = radiusAt(Math.exp(x2));
      best = Math.min(best, f2);
    }
  }
  // Rounding in the sum can only be a few ulps: widen by that.
  return Math.min(common, best * (1 + 1e-12));
}
