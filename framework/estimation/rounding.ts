/**
 * Floating-point rounding allowances: the bounds of this package are proved in real arithmetic, and the
 * numbers are computed in floating point. Every estimate adds a deterministic allowance for that rounding
 * (`parts.rounding`), so `epsilon` bounds the distance to the real-number answer, not only to the
 * estimator's exact-arithmetic value. The model (Higham, *Accuracy and Stability of Numerical Algorithms*,
 * 2nd ed., Lemma 3.1 and §3.1): a sum or dot product evaluated in any order, where each term passes through at
 * most k roundings, errs by at most γ_k·Σ|terms|, γ_k = k·u/(1 − k·u).
 */

/** Unit roundoff of IEEE-754 binary64: 2⁻⁵³. */
export const FLOAT64_UNIT_ROUNDOFF = 2 ** -53;
/** Unit roundoff of IEEE-754 binary32: 2⁻²⁴ (depots may accumulate float32 blocks in float32). */
export const FLOAT32_UNIT_ROUNDOFF = 2 ** -24;

/**
 * γ_k = k·u/(1 − k·u), the relative error bound of k successive roundings; Infinity once k·u ≥ 1 (no bound).
 * @example gamma(1000) // ≈ 1.11e-13
 */
export function gamma(k: number, u: number = FLOAT64_UNIT_ROUNDOFF): number {
  const ku = Math.max(0, k) * u;
  return ku < 1 ? ku / (1 - ku) : Infinity;
}

/**
 * @internal The allowance γ_k·magnitude, widened by a relative 10⁻⁶ so that computing the magnitude itself in
 * floating point (a sum of non-negative terms, a square root) cannot make it fall short.
 */
export function roundingAllowance(k: number, magnitude: number, u: number = FLOAT64_UNIT_ROUNDOFF): number {
  if (!(magnitude > 0)) return 0;
  return gamma(k, u) * magnitude * (1 + 1e-6);
}
