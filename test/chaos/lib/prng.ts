import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import type { JumpableRandomGenerator } from 'pure-rand/types/JumpableRandomGenerator';

/**
 * The chaos suite's only source of randomness (xoroshiro128+): every fault, payload and schedule is
 * drawn from one seeded stream, so a run replays from its seed. Independent streams for concurrent
 * actors come from {@link Prng.fork}, so what one actor draws never shifts another.
 */
export class Prng {
  private constructor(private readonly rng: JumpableRandomGenerator) {}

  static fromSeed(seed: number): Prng {
    return new Prng(xoroshiro128plus(seed | 0));
  }

  /** An independent stream (the parent's state jumped 2⁶⁴ steps ahead); the parent moves on past it. */
  fork(): Prng {
    this.rng.jump();
    const child = new Prng(this.rng.clone());
    this.rng.jump();
    return child;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return uniformFloat64(this.rng);
  }

  /** Uniform integer in [lo, hi], both included. */
  int(lo: number, hi: number): number {
    return uniformInt(this.rng, lo, hi);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick from an empty list');
    return items[this.int(0, items.length - 1)]!;
  }

  /** `n` random bytes. */
  bytes(n: number): Buffer {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i += 4) {
      const v = this.int(0, 0xffffffff);
      for (let j = 0; j < 4 && i + j < n; j++) out[i + j] = (v >>> (8 * j)) & 0xff;
    }
    return out;
  }

  /** Latency with jitter: `base` plus uniform in [0, jitter]. */
  jitter(base: number, jitter: number): number {
    return base + (jitter > 0 ? this.int(0, jitter) : 0);
  }
}
