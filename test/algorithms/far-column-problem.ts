import { inMemoryDataset } from '../../algorithms/index.js';
import { normals } from '../../nfu-kernels/index.js';

/**
 * 30 000 rows of [A b], 5 features, column 0 like a raw timestamp (mean 10⁶, spread 1), b linear in A plus
 * noise; 30 blocks of 1 000 rows over 3 fake depots. The exact fill's rounding allowance exceeds what the
 * answered rows can certify with here, so least squares must fall back to its bounded path.
 */
export function farColumnProblem() {
  const n = 30_000;
  const d = 5;
  const M = new Float64Array(n * (d + 1));
  const g = new Float64Array(n * (d + 1));
  normals(7, 1, 0, 0, g);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) {
      const a = j === 0 ? 1e6 + g[i * (d + 1) + j]! : g[i * (d + 1) + j]!;
      M[i * (d + 1) + j] = a;
      s += a * (j + 1) * 0.1;
    }
    M[i * (d + 1) + d] = s + 0.3 * g[i * (d + 1) + d]!;
  }
  return { M, n, d, ...inMemoryDataset(M, n, d + 1, { blockRows: 1000, depotsOf: (b) => [9000 + (b % 3)] }) };
}
