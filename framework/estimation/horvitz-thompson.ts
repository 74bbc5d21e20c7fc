import { bernsteinRadius } from './bernstein.js';
import type { PlannedBlock, Weighting } from './types.js';

/**
 * @internal One planned block for the bound: the interval [lo, hi] (per coordinate) known to hold its
 * statistic T_b — a point for an answered block, what the summary allows for a missing one.
 */
export interface BoundBlock {
  group: string;
  answered: boolean;
  /** Conservative answer probability (weighting "inclusion" only). */
  pLower: number;
  lo: ArrayLike<number>;
  hi: ArrayLike<number>;
}

/** @internal Group of a planned block. */
export const groupOf = (b: PlannedBlock): string => b.group ?? '';

/**
 * @internal HT weight 1/π_b of each answered planned block:
 * - "response-groups": π̂_b = n_g / N_g (answered / planned in the block's group, this job);
 * - "inclusion": π_b = inclusion.p from the reliability history.
 */
export function htWeights(
  planned: readonly PlannedBlock[],
  answered: (id: string) => boolean,
  weighting: Weighting,
): Map<string, number> {
  const weights = new Map<string, number>();
  if (weighting === 'inclusion') {
    for (const b of planned) if (answered(b.id)) weights.set(b.id, 1 / b.inclusion!.p);
    return weights;
  }
  const counts = new Map<string, { planned: number; answered: number }>();
  for (const b of planned) {
    const c = counts.get(groupOf(b)) ?? { planned: 0, answered: 0 };
    c.planned++;
    if (answered(b.id)) c.answered++;
    counts.set(groupOf(b), c);
  }
  for (const b of planned) {
    if (!answered(b.id)) continue;
    const c = counts.get(groupOf(b))!;
    weights.set(b.id, c.planned / c.answered);
  }
  return weights;
}

/**
 * @internal Per-coordinate error radius of the HT total Σ_{b answered} w_b T_b, all `dim` coordinates holding
 * together with probability ≥ 1 − δ (δ/dim each, union bound).
 *
 * "inclusion": the error Σ_b (I_b/π_b − 1)·T_b is a sum of independent zero-mean terms with range
 * max(1/π_b − 1, 1)·|T_b| and variance (1/π_b − 1)·T_b²; π_b is replaced by its lower
 * posterior quantile, which only enlarges both; |T_b| ≤ max(|lo_b|, |hi_b|). Bernstein's inequality.
 *
 * "response-groups": given the number n_g of answers in group g (N_g planned, m_g = N_g − n_g missing), the
 * answered set is a uniform n_g-subset (blocks of a group answer independently with one common probability,
 * whatever it is). The group's error (N_g/n_g)(S_n − n·μ_g) equals −(N_g/n_g)(S_m − m·μ_g), a sum of
 * k = min(n_g, m_g) draws without replacement; by Hoeffding (1963, Thm 4) the Bernstein bound for draws with
 * replacement holds for it, with per-draw range (N_g/n_g)·max_b |T_b − μ_g| and variance (N_g/n_g)²·σ_g²,
 * σ_g² = (1/N_g)Σ_b (T_b − μ_g)² ≤ (1/N_g)Σ_b (T_b − c)² for any c (we take c = mean of answered midpoints).
 * Groups are independent given their counts. A group with no answer adds a deterministic Σ_b max(|lo|, |hi|).
 */
export function htRadius(blocks: readonly BoundBlock[], dim: number, weighting: Weighting, delta: number): Float64Array {
  const variance = new Float64Array(dim);
  const range = new Float64Array(dim);
  const deterministic = new Float64Array(dim);
  if (weighting === 'inclusion') {
    for (const b of blocks) {
      const r = 1 / b.pLower - 1;
      if (r <= 0) continue; // π = 1: the block always answers, no error term
      for (let j = 0; j < dim; j++) {
        const t = Math.max(Math.abs(b.lo[j]!), Math.abs(b.hi[j]!));
        variance[j]! += r * t * t;
        range[j] = Math.max(range[j]!, Math.max(r, 1) * t);
      }
    }
  } else {
    const groups = new Map<string, BoundBlock[]>();
    for (const b of blocks) {
      const list = groups.get(b.group);
      if (list) list.push(b);
      else groups.set(b.group, [b]);
    }
    for (const members of groups.values()) groupTerms(members, dim, variance, range, deterministic);
  }
  const out = new Float64Array(dim);
  // The deterministic part can be attained exactly: widen it by a few ulps so rounding cannot cross it.
  for (let j = 0; j < dim; j++) {
    out[j] = bernsteinRadius(variance[j]!, range[j]!, delta / dim) + deterministic[j]! * (1 + 1e-12);
  }
  return out;
}

function groupTerms(
  members: readonly BoundBlock[],
  dim: number,
  variance: Float64Array,
  range: Float64Array,
  deterministic: Float64Array,
): void {
  const N = members.length;
  const n = members.filter((b) => b.answered).length;
  const m = N - n;
  if (m === 0) return; // every block answered: this group's part is exact
  if (n === 0) {
    for (const b of members) {
      for (let j = 0; j < dim; j++) deterministic[j]! += Math.max(Math.abs(b.lo[j]!), Math.abs(b.hi[j]!));
    }
    return;
  }
  const w = N / n;
  const k = Math.min(n, m);
  for (let j = 0; j < dim; j++) {
    let c = 0;
    let muLo = 0;
    let muHi = 0;
    for (const b of members) {
      if (b.answered) c += 0.5 * (b.lo[j]! + b.hi[j]!);
      muLo += b.lo[j]!;
      muHi += b.hi[j]!;
    }
    c /= n;
    muLo /= N;
    muHi /= N;
    let sumSq = 0;
    let maxDev = 0;
    for (const b of members) {
      const d = Math.max(Math.abs(b.lo[j]! - c), Math.abs(b.hi[j]! - c));
      sumSq += d * d;
      maxDev = Math.max(maxDev, Math.abs(b.hi[j]! - muLo), Math.abs(b.lo[j]! - muHi));
    }
    variance[j]! += w * w * k * (sumSq / N);
    range[j] = Math.max(range[j]!, w * maxDev);
  }
}
