import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bennettRadius, bennettRadiusTerms, bernsteinRadius } from '../../framework/estimation/index.js';

const h = (u: number): number => (1 + u) * Math.log1p(u) - u;

/** Exact two-sided tail P(|Σ X_i| ≥ t) of independent two-point variables X_i ∈ {a_i, b_i} with P(b_i) = p_i. */
function exactTail(vars: readonly { a: number; b: number; p: number }[], t: number): number {
  let dist = new Map<number, number>([[0, 1]]);
  for (const v of vars) {
    const next = new Map<number, number>();
    for (const [s, q] of dist) {
      next.set(s + v.a, (next.get(s + v.a) ?? 0) + q * (1 - v.p));
      next.set(s + v.b, (next.get(s + v.b) ?? 0) + q * v.p);
    }
    dist = next;
  }
  let tail = 0;
  for (const [s, q] of dist) if (Math.abs(s) >= t) tail += q;
  return tail;
}

describe('Bennett radii', () => {
  it('solve the Bennett equation and are never wider than Bernstein', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 1e-3, max: 1e6, noNaN: true }),
        fc.double({ min: 1e-3, max: 1e4, noNaN: true }),
        fc.double({ min: 1e-4, max: 0.5, noNaN: true }),
        fc.integer({ min: 2, max: 130 }),
        (v, l, delta, k) => {
          const r = bennettRadius(v, l, delta, k);
          expect(r).toBeLessThanOrEqual(bernsteinRadius(v, l, delta, k) * (1 + 1e-12));
          // At r the Bennett tail is δ (up to the bisection's resolution, and never below it).
          const ell = Math.log(k / delta);
          const exponent = (v / (l * l)) * h((l * r) / v);
          expect(exponent).toBeGreaterThanOrEqual(ell * (1 - 1e-9));
          expect(exponent).toBeLessThanOrEqual(ell * (1 + 1e-6));
        },
      ),
      { numRuns: 200 },
    );
    expect(bennettRadius(0, 0, 0.1)).toBe(0);
    expect(bennettRadius(4, 0, 0.1)).toBeCloseTo(Math.sqrt(2 * 4 * Math.log(20)), 12);
  });

  it('with one common range, the per-term form equals Bennett; with mixed ranges it is tighter', () => {
    const one = bennettRadiusTerms([{ variance: 30, range: 5 }], 0.05, 12);
    expect(one).toBeCloseTo(bennettRadius(30, 5, 0.05, 12), 6);
    const split = bennettRadiusTerms(
      [
        { variance: 10, range: 5 },
        { variance: 20, range: 5 },
      ],
      0.05,
      12,
    );
    expect(split).toBeCloseTo(one, 6);
    const mixed = [{ variance: 1, range: 40 }, ...Array.from({ length: 20 }, () => ({ variance: 5, range: 1 }))];
    const common = bennettRadius(101, 40, 0.05);
    expect(bennettRadiusTerms(mixed, 0.05)).toBeLessThan(0.8 * common);
    // A deterministic bound on a term caps its contribution; with every term bounded, the sum of bounds is a radius.
    const bounded = [{ variance: 100, range: 50, bound: 3 }];
    expect(bennettRadiusTerms(bounded, 0.01)).toBeLessThanOrEqual(3 * (1 + 1e-9));
  });

  it('holds against the exact tail of sums of independent two-point variables', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            p: fc.double({ min: 0.02, max: 0.98, noNaN: true }),
            size: fc.double({ min: 0.01, max: 10, noNaN: true }),
          }),
          { minLength: 1, maxLength: 12 },
        ),
        fc.double({ min: 0.01, max: 0.3, noNaN: true }),
        (spec, delta) => {
          // X = size·(I − p): zero mean, values −size·p and size·(1 − p), variance size²·p(1 − p).
          const vars = spec.map(({ p, size }) => ({ a: -size * p, b: size * (1 - p), p }));
          const terms = spec.map(({ p, size }) => ({
            variance: size * size * p * (1 - p),
            range: size * Math.max(p, 1 - p),
            bound: size * Math.max(p, 1 - p),
          }));
          const r = bennettRadiusTerms(terms, delta);
          expect(exactTail(vars, r * (1 + 1e-9))).toBeLessThanOrEqual(delta);
        },
      ),
      { numRuns: 150 },
    );
  });
});
