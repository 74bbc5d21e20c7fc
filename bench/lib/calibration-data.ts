import type { CoordinatorDataset } from '../../framework/index.js';
import { normals } from '../../nfu-kernels/index.js';

/**
 * The seeded problems of `bench:calibration` (and of the least-squares witness search that explains its
 * figures): 480 × 8 rows in 24 blocks of 20, block b on depot b mod 6.
 */
export const N = 480;
export const D = 8;
export const BLOCK_ROWS = 20;
export const BLOCKS = N / BLOCK_ROWS;
export const DEPOTS = 6;

export type Mode = 'independent' | 'correlated';

/** A seeded matrix: rank-3 signal (σ ≈ 4, 2, 1 per √row and unit loading) plus noise, a mean offset, and an LS target column. */
export function matrix(seed: number): Float64Array {
  const A = new Float64Array(N * D);
  normals(seed, 1, 0, 0, A);
  const W = new Float64Array(3 * D);
  normals(seed, 2, 0, 0, W);
  const Z = new Float64Array(N * 3);
  normals(seed, 3, 0, 0, Z);
  for (let i = 0; i < N; i++)
    for (let j = 0; j < D; j++) {
      let s = 0.3 * A[i * D + j]! + 1 + j;
      for (let t = 0; t < 3; t++) s += Z[i * 3 + t]! * W[t * D + j]! * [4, 2, 1][t]!;
      A[i * D + j] = s;
    }
  // The last column: a linear function of the others plus noise (least squares).
  for (let i = 0; i < N; i++) {
    let s = 0;
    for (let j = 0; j < D - 1; j++) s += (j % 3) * A[i * D + j]! * 0.5;
    A[i * D + D - 1] = s + A[i * D + D - 1]! * 0.05;
  }
  return A;
}

/** The same matrix with the last column replaced by the linear function plus noise of 10 % of its spread. */
export function noisyRegression(A: Float64Array, seed: number): Float64Array {
  const out = A.slice();
  const signal = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    let s = 0;
    for (let j = 0; j < D - 1; j++) s += (j % 3) * A[i * D + j]! * 0.5;
    signal[i] = s;
  }
  const mean = signal.reduce((a, v) => a + v, 0) / N;
  const sd = Math.sqrt(signal.reduce((a, v) => a + (v - mean) ** 2, 0) / (N - 1));
  const noise = new Float64Array(N);
  normals(seed, 5, 0, 0, noise);
  for (let i = 0; i < N; i++) out[i * D + D - 1] = signal[i]! + 0.1 * sd * noise[i]!;
  return out;
}

/** A small seeded uniform generator (mulberry32). */
export function mulberry(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Which blocks fail in this trial (block b lives on depot b mod DEPOTS). */
export function failures(rate: number, mode: Mode, rand: () => number): Set<number> {
  const out = new Set<number>();
  if (mode === 'correlated') {
    const down = Array.from({ length: DEPOTS }, () => rand() < rate);
    for (let b = 0; b < BLOCKS; b++) if (down[b % DEPOTS]) out.add(b);
  } else for (let b = 0; b < BLOCKS; b++) if (rand() < rate) out.add(b);
  return out;
}

/**
 * The dataset with the exact scatters removed from its summaries (as an exNode written before ingest recorded them):
 * least squares then bounds the missing blocks from the other summary fields instead of filling them exactly.
 */
export function withoutExactScatter(ds: CoordinatorDataset): CoordinatorDataset {
  return {
    ...ds,
    blocks: ds.blocks.map((b) => {
      if (b.summary === undefined) return b;
      const summary = { ...b.summary };
      delete summary.exactScatter;
      return { ...b, summary };
    }),
  };
}
