import { bennettRadiusTerms, type TailTerm } from './bernstein.js';
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
 * @internal Per-coordinate error radius of the HT total Σ_{b answered} w_b T_b (plus, for "response-groups", the
 * unanswered groups' summary part, {@link unansweredGroupsPart}), all `dim` coordinates holding together with
 * probability ≥ 1 − δ (δ/dim each, union bound).
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
 * σ_g² = (1/N_g)Σ_b (T_b − μ_g)² ≤ (1/N_g)Σ_b (T_b − c)² for every c (the cross term vanishes about μ_g). The
 * right side, with |T_b − c| ≤ max(|lo_b − c|, |hi_b − c|), is convex in c, so c is chosen by golden-section
 * search to make it smallest; being an upper bound for every c, the choice may look at the data.
 * Groups are independent given their counts. A group with no answer has no answer to weight: the estimate adds
 * each of its blocks' summary value instead, the midpoint c_b of [lo_b, hi_b] ({@link unansweredGroupsPart}), so the
 * group's error Σ_b (c_b − T_b) is at most Σ_b max(hi_b − c_b, c_b − lo_b), half the intervals' widths, always —
 * 0 for a statistic the summary holds (column sums: lo = hi), Σ_b max(|lo_b|, |hi_b|) for one it only bounds in
 * magnitude (c_b = 0), and never wider than the latter.
 *
 * The tail is Bennett's, summand by summand (each block for "inclusion", each group's draws for "response-groups",
 * with its own range: {@link bennettRadiusTerms}), which is never wider than Bernstein's with the largest range.
 */
export function htRadius(blocks: readonly BoundBlock[], dim: number, weighting: Weighting, delta: number): Float64Array {
  const terms: TailTerm[][] = Array.from({ length: dim }, () => []);
  const deterministic = new Float64Array(dim);
  if (weighting === 'inclusion') {
    for (const b of blocks) {
      const r = 1 / b.pLower - 1;
      if (r <= 0) continue; // π = 1: the block always answers, no error term
      for (let j = 0; j < dim; j++) {
        const t = Math.max(Math.abs(b.lo[j]!), Math.abs(b.hi[j]!));
        terms[j]!.push({ variance: r * t * t, range: Math.max(r, 1) * t, bound: Math.max(r, 1) * t });
      }
    }
  } else {
    const groups = new Map<string, BoundBlock[]>();
    for (const b of blocks) {
      const list = groups.get(b.group);
      if (list) list.push(b);
      else groups.set(b.group, [b]);
    }
    for (const members of groups.values()) groupTerms(members, dim, terms, deterministic);
  }
  const out = new Float64Array(dim);
  // The deterministic part can be attained exactly: widen it by a few ulps so rounding cannot cross it.
  for (let j = 0; j < dim; j++) {
    out[j] = bennettRadiusTerms(terms[j]!, delta / dim) + deterministic[j]! * (1 + 1e-12);
  }
  return out;
}

function groupTerms(members: readonly BoundBlock[], dim: number, terms: TailTerm[][], deterministic: Float64Array): void {
  const N = members.length;
  const n = members.filter((b) => b.answered).length;
  const m = N - n;
  if (m === 0) return; // every block answered: this group's part is exact
  if (n === 0) {
    // The estimate holds c_b (the same double as here) for each block: the error c_b − T_b lies in [c_b − hi_b, c_b − lo_b].
    for (const b of members) {
      for (let j = 0; j < dim; j++) {
        const c = intervalMidpoint(b.lo[j]!, b.hi[j]!);
        deterministic[j]! += Math.max(b.hi[j]! - c, c - b.lo[j]!);
      }
    }
    return;
  }
  const w = N / n;
  const k = Math.min(n, m);
  for (let j = 0; j < dim; j++) {
    let muLo = 0;
    let muHi = 0;
    let cLo = Infinity;
    let cHi = -Infinity;
    for (const b of members) {
      muLo += b.lo[j]!;
      muHi += b.hi[j]!;
      cLo = Math.min(cLo, b.lo[j]!);
      cHi = Math.max(cHi, b.hi[j]!);
    }
    muLo /= N;
    muHi /= N;
    const sumSqAbout = (c: number): number => {
      let acc = 0;
      for (const b of members) {
        const d = Math.max(Math.abs(b.lo[j]! - c), Math.abs(b.hi[j]! - c));
        acc += d * d;
      }
      return acc;
    };
    const sumSq = minimizeConvex(sumSqAbout, cLo, cHi);
    let maxDev = 0;
    let mLo = 0;
    let mHi = 0;
    for (const b of members) {
      maxDev = Math.max(maxDev, Math.abs(b.hi[j]! - muLo), Math.abs(b.lo[j]! - muHi));
      if (b.answered) {
        mLo += b.lo[j]! / n;
        mHi += b.hi[j]! / n;
      }
    }
    // The group's error is Σ_miss (M − T_b), M the mean of the answered T_b (in [mLo, mHi]; a point when the
    // answered values are known exactly): at most Σ_miss max(mHi − lo_b, hi_b − mLo), always.
    let bound = 0;
    for (const b of members) {
      if (!b.answered) bound += Math.max(Math.abs(mHi - b.lo[j]!), Math.abs(b.hi[j]! - mLo));
    }
    terms[j]!.push({ variance: w * w * k * (sumSq / N), range: w * maxDev, bound: bound * (1 + 1e-12) });
  }
}

/**
 * @internal The value an estimate gives a block whose whole response group did not answer: the midpoint of the
 * interval its summary places T_b in (lo = hi: that value, exactly; a symmetric [−U, U]: 0), halved before adding
 * so that it cannot overflow.
 */
function intervalMidpoint(lo: number, hi: number): number {
  return 0.5 * lo + 0.5 * hi;
}

/**
 * @internal What the estimates add for the response groups in which no planned block answered ("response-groups"
 * weighting; nothing for "inclusion", whose HT weights need no group): per coordinate the sum of their blocks'
 * {@link intervalMidpoint}s, their rows, and their block ids. `blocks` are the planned blocks' bound blocks, in
 * plan order. The HT weights N_g/n_g leave such a group out (it has no answer to weight), so without this the
 * estimate would count it as 0; its error is bounded by {@link htRadius}.
 */
export function unansweredGroupsPart(
  planned: readonly PlannedBlock[],
  blocks: readonly BoundBlock[],
  weighting: Weighting,
  dim: number,
): { value: Float64Array; rows: number; ids: Set<string> } {
  const value = new Float64Array(dim);
  const ids = new Set<string>();
  let rows = 0;
  if (weighting === 'inclusion') return { value, rows, ids };
  const answeredGroups = new Set<string>();
  for (const b of blocks) if (b.answered) answeredGroups.add(b.group);
  blocks.forEach((b, i) => {
    if (answeredGroups.has(b.group)) return;
    for (let j = 0; j < dim; j++) value[j]! += intervalMidpoint(b.lo[j]!, b.hi[j]!);
    rows += planned[i]!.summary.rows;
    ids.add(planned[i]!.id);
  });
  return { value, rows, ids };
}

/** @internal The `method` text for {@link unansweredGroupsPart} (empty when every group answered). */
export function unansweredText(blocks: number): string {
  return blocks === 0
    ? ''
    : `; ${blocks} block(s) of response groups with no answer from their summaries (interval midpoint, error ≤ half its width)`;
}

const GOLDEN = (Math.sqrt(5) - 1) / 2;

/**
 * @internal Smallest value found of a convex function on [lo, hi] by golden-section search (the value at
 * some point of the interval, so whatever the search's accuracy, it is a value the function takes).
 */
export function minimizeConvex(f: (x: number) => number, lo: number, hi: number, iterations = 60): number {
  return minimizeConvexAt(f, lo, hi, iterations).value;
}

/** @internal {@link minimizeConvex} that also returns where the smallest value was found. */
export function minimizeConvexAt(
  f: (x: number) => number,
  lo: number,
  hi: number,
  iterations = 60,
): { x: number; value: number } {
  let best = { x: lo, value: f(lo) };
  const consider = (x: number, value: number): void => {
    if (value < best.value) best = { x, value };
  };
  if (!(hi > lo)) return best;
  let a = lo;
  let b = hi;
  let x1 = b - GOLDEN * (b - a);
  let x2 = a + GOLDEN * (b - a);
  let f1 = f(x1);
  let f2 = f(x2);
  consider(hi, f(hi));
  consider(x1, f1);
  consider(x2, f2);
  for (let i = 0; i < iterations && b - a > 1e-12 * (Math.abs(a) + Math.abs(b)); i++) {
    if (f1 <= f2) {
      b = x2;
      x2 = x1;
      f2 = f1;
      x1 = b - GOLDEN * (b - a);
      f1 = f(x1);
      consider(x1, f1);
    } else {
      a = x1;
      x1 = x2;
      f1 = f2;
      x2 = a + GOLDEN * (b - a);
      f2 = f(x2);
      consider(x2, f2);
    }
  }
  return best;
}
