import { Matrix, QrDecomposition, SingularValueDecomposition } from 'ml-matrix';
import { normals } from '../nfu-kernels/index.js';

/**
 * Small dense work at the coordinator (k × k, d × k): row-major Float64Arrays. QR and SVD use ml-matrix;
 * Cholesky and triangular inverses are a few lines here (ml-matrix's Cholesky has no shift).
 */

/** Row-major product C (m × n) = A (m × p) · B (p × n). */
export function mul(A: ArrayLike<number>, B: ArrayLike<number>, m: number, p: number, n: number): Float64Array {
  const C = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let t = 0; t < p; t++) {
      const a = A[i * p + t]!;
      if (a === 0) continue;
      for (let j = 0; j < n; j++) C[i * n + j]! += a * B[t * n + j]!;
    }
  return C;
}

export function transpose(A: ArrayLike<number>, m: number, n: number): Float64Array {
  const T = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) T[j * m + i] = A[i * n + j]!;
  return T;
}

/**
 * Upper triangular R with RᵀR = G (+ a shift when G is numerically singular: shifted CholeskyQR, Fukaya et al.
 * 2020 — the next CholeskyQR pass restores orthogonality).
 */
export function cholesky(G: Float64Array, k: number): Float64Array {
  let trace = 0;
  for (let i = 0; i < k; i++) trace += Math.abs(G[i * k + i]!);
  for (let shiftExp = -15; shiftExp <= 0; shiftExp += 3) {
    const shift = shiftExp === -15 ? 0 : trace * 10 ** shiftExp;
    const R = new Float64Array(k * k);
    let ok = true;
    for (let j = 0; j < k && ok; j++) {
      let s = G[j * k + j]! + shift;
      for (let t = 0; t < j; t++) s -= R[t * k + j]! * R[t * k + j]!;
      if (!(s > trace * 1e-15) && !(trace === 0 && s >= 0)) {
        ok = false;
        break;
      }
      const rjj = Math.sqrt(Math.max(s, Number.MIN_VALUE));
      R[j * k + j] = rjj;
      for (let i = j + 1; i < k; i++) {
        let v = G[j * k + i]!;
        for (let t = 0; t < j; t++) v -= R[t * k + j]! * R[t * k + i]!;
        R[j * k + i] = v / rjj;
      }
    }
    if (ok) return R;
  }
  // A zero matrix: the identity keeps the basis as it is.
  const I = new Float64Array(k * k);
  for (let i = 0; i < k; i++) I[i * k + i] = 1;
  return I;
}

/** Inverse of an upper triangular k × k matrix. */
export function upperInverse(R: Float64Array, k: number): Float64Array {
  const X = new Float64Array(k * k);
  for (let j = k - 1; j >= 0; j--) {
    X[j * k + j] = 1 / R[j * k + j]!;
    for (let i = j - 1; i >= 0; i--) {
      let s = 0;
      for (let t = i + 1; t <= j; t++) s += R[i * k + t]! * X[t * k + j]!;
      X[i * k + j] = -s / R[i * k + i]!;
    }
  }
  return X;
}

/** Q (m × n, orthonormal columns) of the thin QR of A (m × n, m ≥ n). */
export function orthonormalize(A: Float64Array, m: number, n: number): Float64Array {
  const qr = new QrDecomposition(Matrix.from1DArray(m, n, Array.from(A)));
  const Q = qr.orthogonalMatrix;
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) out[i * n + j] = Q.get(i, j);
  return out;
}

/** Thin SVD of A (m × n): U (m × r), s (r), V (n × r), r = min(m, n), singular values descending. */
export function svd(A: Float64Array, m: number, n: number): { U: Float64Array; s: Float64Array; V: Float64Array; r: number } {
  const d = new SingularValueDecomposition(Matrix.from1DArray(m, n, Array.from(A)), { autoTranspose: true });
  const r = Math.min(m, n);
  const U = new Float64Array(m * r);
  const V = new Float64Array(n * r);
  const s = Float64Array.from(d.diagonal.slice(0, r));
  const u = d.leftSingularVectors;
  const v = d.rightSingularVectors;
  for (let i = 0; i < m; i++) for (let j = 0; j < r; j++) U[i * r + j] = u.get(i, j);
  for (let i = 0; i < n; i++) for (let j = 0; j < r; j++) V[i * r + j] = v.get(i, j);
  return { U, s, V, r };
}

/** Standard normal d × k matrix from (seed, stream): the same numbers on every run and machine. */
export function gaussianMatrix(seed: number, stream: number, d: number, k: number): Float64Array {
  const out = new Float64Array(d * k);
  normals(seed, stream, 0, 0, out);
  return out;
}

/** The first `k` columns of an m × n matrix. */
export function leadingColumns(A: Float64Array, m: number, n: number, k: number): Float64Array {
  const out = new Float64Array(m * k);
  for (let i = 0; i < m; i++) for (let j = 0; j < k; j++) out[i * k + j] = A[i * n + j]!;
  return out;
}

/** Bytes of a Float64Array (little-endian on every supported platform). */
export function bytesOf(v: Float64Array): Uint8Array {
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

/**
 * A float64 copy of op output bytes. Copies through `Uint8Array.prototype.slice`: a Node `Buffer`'s own
 * `slice` is a view into a shared pool, whose `.buffer` holds other replies' bytes too.
 */
export function valuesOf(bytes: Uint8Array): Float64Array {
  if (bytes.byteLength % 8 !== 0) throw new RangeError(`op output of ${bytes.byteLength} bytes is not float64 values`);
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return new Float64Array(copy.buffer);
}

/** ln Γ(x) for x > 0 (Lanczos, g = 7). */
function lnGammaOf(x: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905,
    -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - lnGammaOf(1 - x);
  const y = x - 1;
  let a = c[0]!;
  const t = y + 7.5;
  for (let i = 1; i < 9; i++) a += c[i]! / (y + i);
  return 0.5 * Math.log(2 * Math.PI) + (y + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Regularized lower incomplete gamma P(a, x) (series for x < a + 1, Lentz continued fraction otherwise). */
export function lowerGammaP(a: number, x: number): number {
  if (x <= 0) return 0;
  const lead = -x + a * Math.log(x) - lnGammaOf(a);
  if (x < a + 1) {
    let sum = 1 / a;
    let term = sum;
    for (let n = 1; n < 1000; n++) {
      term *= x / (a + n);
      sum += term;
      if (Math.abs(term) < Math.abs(sum) * 1e-16) break;
    }
    return Math.min(1, sum * Math.exp(lead));
  }
  let b = x + 1 - a;
  let c = 1 / Number.MIN_VALUE;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 1000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < Number.MIN_VALUE) d = Number.MIN_VALUE;
    c = b + an / c;
    if (Math.abs(c) < Number.MIN_VALUE) c = Number.MIN_VALUE;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-16) break;
  }
  return Math.max(0, 1 - Math.exp(lead) * h);
}

/** The p-quantile of χ² with `r` degrees of freedom (bisection on {@link lowerGammaP}; rounded down, so conservative). */
export function chiSquareQuantile(r: number, p: number): number {
  let lo = 0;
  let hi = r + 20 * Math.sqrt(r) + 50;
  for (let i = 0; i < 200; i++) {
    const mid = (lo + hi) / 2;
    if (lowerGammaP(r / 2, mid / 2) < p) lo = mid;
    else hi = mid;
  }
  return lo;
}
