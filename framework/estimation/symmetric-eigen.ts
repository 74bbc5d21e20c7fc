/**
 * Eigenvalues of a symmetric n × n matrix (row-major; only the values are used, the input is not modified)
 * by the cyclic Jacobi method (Golub & Van Loan, *Matrix Computations*, 4th ed., §8.5): rotations annihilate
 * off-diagonal entries until their mass is below 1e-30 of the total. Accurate to a few ulps of ‖S‖_F,
 * which is what the bounds need; O(n³) per sweep, meant for small n (Gram matrices of a few dozen channels).
 * Returns the eigenvalues in ascending order.
 */
export function symmetricEigenvalues(s: ArrayLike<number>, n: number): Float64Array {
  const a = Float64Array.from({ length: n * n }, (_, k) => {
    const i = Math.floor(k / n);
    const j = k % n;
    return 0.5 * (s[i * n + j]! + s[j * n + i]!); // symmetrize rounding differences
  });
  let total = 0;
  for (let k = 0; k < n * n; k++) total += a[k]! * a[k]!;
  for (let sweep = 0; sweep < 60; sweep++) {
    let off = 0;
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) off += a[i * n + j]! * a[i * n + j]!;
    if (off <= 1e-30 * total) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q]!;
        if (apq === 0) continue;
        const theta = (a[q * n + q]! - a[p * n + p]!) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const sn = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p]!;
          const akq = a[k * n + q]!;
          a[k * n + p] = c * akp - sn * akq;
          a[k * n + q] = sn * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k]!;
          const aqk = a[q * n + k]!;
          a[p * n + k] = c * apk - sn * aqk;
          a[q * n + k] = sn * apk + c * aqk;
        }
      }
    }
  }
  const eig = Float64Array.from({ length: n }, (_, i) => a[i * n + i]!);
  return eig.sort();
}

/** Frobenius norm of a dense array. */
export function frobeniusNorm(a: ArrayLike<number>): number {
  let s = 0;
  for (let k = 0; k < a.length; k++) s += a[k]! * a[k]!;
  return Math.sqrt(s);
}
