/** Smallest latency bucket edge (ms) and buckets per doubling of the latency histogram. */
const BASE_MS = 0.25;
const PER_OCTAVE = 4;
/** Buckets up to 0.25 ms · 2^24 ≈ 70 min; slower answers land in the last bucket. */
export const LATENCY_BUCKETS = PER_OCTAVE * 24 + 1;

/**
 * Exponentially decayed latency histogram with log-spaced buckets (4 per doubling, ≤ 19 % relative
 * resolution). Quantiles return a bucket's upper edge: never below the true decayed quantile's bucket, the
 * conservative side for a hedging delay. Decay is applied by the caller through {@link decay}.
 */
export class LatencyHistogram {
  readonly counts: Float64Array;

  constructor(counts?: ArrayLike<number>) {
    this.counts = new Float64Array(LATENCY_BUCKETS);
    if (counts) this.counts.set(Array.from(counts).slice(0, LATENCY_BUCKETS));
  }

  add(latencyMs: number, weight = 1): void {
    const x = Math.max(latencyMs, BASE_MS);
    const i = Math.min(LATENCY_BUCKETS - 1, Math.max(0, Math.ceil(PER_OCTAVE * Math.log2(x / BASE_MS))));
    this.counts[i]! += weight;
  }

  decay(factor: number): void {
    for (let i = 0; i < this.counts.length; i++) this.counts[i]! *= factor;
  }

  get total(): number {
    let t = 0;
    for (let i = 0; i < this.counts.length; i++) t += this.counts[i]!;
    return t;
  }

  /** Upper edge (ms) of the bucket holding the q-quantile, or undefined when empty. */
  quantile(q: number): number | undefined {
    const total = this.total;
    if (!(total > 0)) return undefined;
    let acc = 0;
    for (let i = 0; i < this.counts.length; i++) {
      acc += this.counts[i]!;
      if (acc >= q * total * (1 - 1e-12)) return BASE_MS * 2 ** (i / PER_OCTAVE);
    }
    return BASE_MS * 2 ** ((LATENCY_BUCKETS - 1) / PER_OCTAVE);
  }
}
