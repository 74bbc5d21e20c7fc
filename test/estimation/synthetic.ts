import {
  attachScatterRadius,
  centredScatter,
  makeScatterReference,
  summarizeBlock,
  type BlockSummary,
  type PlannedBlock,
} from '../../framework/estimation/index.js';

/** mulberry32: a small seeded PRNG for tests. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal variates (Box–Muller). */
export function normal(rand: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

export interface SyntheticBlock {
  id: string;
  data: Float64Array;
  rows: number;
  summary: BlockSummary;
  gram: Float64Array;
  depot: string;
}

/**
 * A row-blocked n × d matrix with a known covariance: rows = offset + loud_b·(diag(1, 1/2, …, 1/d)·z + factor·f·1)
 * (z standard normal, f a common factor), block loudness loud_b uniform in `loudness`, blocks placed round-robin
 * on `depots` depots.
 */
export function syntheticMatrix(
  seed: number,
  blocks: number,
  rowsPerBlock: number,
  d: number,
  depots: number,
  shape: { loudness?: [number, number]; factor?: number } = {},
): SyntheticBlock[] {
  const [loudLo, loudHi] = shape.loudness ?? [0.8, 1.25];
  const factor = shape.factor ?? 0.5;
  const rand = mulberry32(seed);
  const gauss = normal(rand);
  const offsets = Array.from({ length: d }, () => 2 * gauss());
  const scales = Array.from({ length: d }, (_, j) => 1 / (1 + j));
  const out: SyntheticBlock[] = [];
  for (let b = 0; b < blocks; b++) {
    const loud = loudLo + (loudHi - loudLo) * rand();
    const rows = rowsPerBlock;
    const data = new Float64Array(rows * d);
    for (let i = 0; i < rows; i++) {
      const f = gauss();
      for (let j = 0; j < d; j++) data[i * d + j] = offsets[j]! + loud * (scales[j]! * gauss() + factor * f);
    }
    out.push({
      id: `b${b}`,
      data,
      rows,
      summary: summarizeBlock(data, rows, d),
      gram: gram(data, rows, d),
      depot: `d${b % depots}`,
    });
  }
  return out;
}

/**
 * The blocks with summaries as an ingest records them: a reference scatter pooled from the first `k` blocks
 * (normalised to trace 1) and each block's radius around tr(K_b)·Ref.
 */
export function withScatterReference(blocks: readonly SyntheticBlock[], d: number, k = 4): SyntheticBlock[] {
  const pooled = new Float64Array(d * d);
  for (const b of blocks.slice(0, k)) {
    const scatter = centredScatter(b.data, b.rows, d);
    for (let q = 0; q < pooled.length; q++) pooled[q]! += scatter[q]!;
  }
  const reference = makeScatterReference(pooled, d);
  return blocks.map((b) => ({
    ...b,
    summary: attachScatterRadius({ ...b.summary }, centredScatter(b.data, b.rows, d), reference),
  }));
}

export function gram(data: Float64Array, rows: number, d: number): Float64Array {
  const g = new Float64Array(d * d);
  for (let i = 0; i < rows; i++)
    for (let j = 0; j < d; j++) for (let k = 0; k < d; k++) g[j * d + k]! += data[i * d + j]! * data[i * d + k]!;
  return g;
}

export function plan(
  blocks: readonly SyntheticBlock[],
  inclusion?: (b: SyntheticBlock) => { p: number; pLower: number },
): PlannedBlock[] {
  return blocks.map((b) => ({ id: b.id, summary: b.summary, group: b.depot, ...(inclusion ? { inclusion: inclusion(b) } : {}) }));
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 ? s[h]! : 0.5 * (s[h - 1]! + s[h]!);
}

/** Spectral norm of a symmetric matrix by power iteration on its square (test reference). */
export function spectralNorm(m: Float64Array, d: number): number {
  let v = Float64Array.from({ length: d }, (_, i) => 1 + i / d);
  let lambda = 0;
  for (let it = 0; it < 300; it++) {
    const w = new Float64Array(d);
    for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) w[i]! += m[i * d + j]! * v[j]!;
    const w2 = new Float64Array(d);
    for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) w2[i]! += m[i * d + j]! * w[j]!;
    let n = 0;
    for (let i = 0; i < d; i++) n += w2[i]! * w2[i]!;
    n = Math.sqrt(n);
    if (n === 0) return 0;
    lambda = Math.sqrt(n);
    v = w2.map((x) => x / n);
  }
  return lambda;
}
