import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import type { JumpableRandomGenerator } from 'pure-rand/types/JumpableRandomGenerator';

/**
 * @internal A seeded stream of uniforms and normals (xoroshiro128+, Box–Muller). Independent streams
 * for sites and sources come from {@link SeededRandom.split}: each is the parent's state jumped 2⁶⁴
 * steps ahead, so what one stream draws never shifts another.
 */
export class SeededRandom {
  private spare: number | undefined;

  private constructor(private readonly rng: JumpableRandomGenerator) {}

  static fromSeed(seed: number): SeededRandom {
    return new SeededRandom(xoroshiro128plus(seed | 0));
  }

  /** `n` independent child streams; the parent itself moves on past them. */
  split(n: number): SeededRandom[] {
    const children: SeededRandom[] = [];
    for (let i = 0; i < n; i++) {
      this.rng.jump();
      children.push(new SeededRandom(this.rng.clone()));
    }
    this.rng.jump();
    return children;
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return uniformFloat64(this.rng);
  }

  /** Standard normal (Box–Muller; the second variate of each pair is kept for the next call). */
  normal(): number {
    if (this.spare !== undefined) {
      const v = this.spare;
      this.spare = undefined;
      return v;
    }
    const u = 1 - this.uniform(); // (0, 1]: log stays finite
    const r = Math.sqrt(-2 * Math.log(u));
    const t = 2 * Math.PI * this.uniform();
    this.spare = r * Math.sin(t);
    return r * Math.cos(t);
  }

  /** Integer uniform in [0, n). */
  below(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** A seeded Fisher–Yates permutation of 0 … n−1. */
  permutation(n: number): number[] {
    const p = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = this.below(i + 1);
      [p[i], p[j]] = [p[j]!, p[i]!];
    }
    return p;
  }
}
