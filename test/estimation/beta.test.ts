import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  betaQuantile,
  bernsteinRadius,
  CoordinatorErrorCode,
  lnGamma,
  regularizedIncompleteBeta,
} from '../../framework/estimation/index.js';

describe('lnGamma', () => {
  it('matches factorials and Γ(1/2) = √π', () => {
    expect(lnGamma(1)).toBeCloseTo(0, 13);
    expect(lnGamma(5)).toBeCloseTo(Math.log(24), 12);
    expect(lnGamma(20)).toBeCloseTo(Math.log(121645100408832000), 10);
    expect(lnGamma(0.5)).toBeCloseTo(0.5 * Math.log(Math.PI), 12);
  });
});

describe('regularizedIncompleteBeta', () => {
  it('has the closed forms of small parameters', () => {
    for (const x of [0.01, 0.2, 0.5, 0.77, 0.99]) {
      expect(regularizedIncompleteBeta(x, 1, 1)).toBeCloseTo(x, 12);
      expect(regularizedIncompleteBeta(x, 3, 1)).toBeCloseTo(x ** 3, 12);
      expect(regularizedIncompleteBeta(x, 1, 4)).toBeCloseTo(1 - (1 - x) ** 4, 12);
      expect(regularizedIncompleteBeta(x, 2, 2)).toBeCloseTo(3 * x * x - 2 * x ** 3, 12);
    }
    expect(regularizedIncompleteBeta(0, 2, 3)).toBe(0);
    expect(regularizedIncompleteBeta(1, 2, 3)).toBe(1);
  });
  it('is symmetric: I_x(a, b) = 1 − I_{1−x}(b, a)', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.001, max: 0.999, noNaN: true }),
        fc.double({ min: 0.1, max: 500, noNaN: true }),
        fc.double({ min: 0.1, max: 500, noNaN: true }),
        (x, a, b) => {
          expect(regularizedIncompleteBeta(x, a, b)).toBeCloseTo(1 - regularizedIncompleteBeta(1 - x, b, a), 9);
        },
      ),
    );
  });
});

describe('betaQuantile', () => {
  it('inverts the closed forms', () => {
    for (const q of [0.01, 0.05, 0.5, 0.95]) {
      expect(betaQuantile(q, 1, 1)).toBeCloseTo(q, 12);
      expect(betaQuantile(q, 4, 1)).toBeCloseTo(q ** (1 / 4), 12);
      expect(betaQuantile(q, 1, 3)).toBeCloseTo(1 - (1 - q) ** (1 / 3), 12);
    }
  });
  it('is the inverse of the CDF and increasing in q, for posteriors of many observations', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.001, max: 0.999, noNaN: true }),
        fc.double({ min: 0.001, max: 0.999, noNaN: true }),
        fc.double({ min: 0.5, max: 5000, noNaN: true }),
        fc.double({ min: 0.5, max: 5000, noNaN: true }),
        (q1, q2, a, b) => {
          const x = betaQuantile(q1, a, b);
          expect(regularizedIncompleteBeta(x, a, b)).toBeCloseTo(q1, 8);
          if (q1 < q2) expect(x).toBeLessThanOrEqual(betaQuantile(q2, a, b));
        },
      ),
      { numRuns: 200 },
    );
  });
  it('refuses bad arguments with a typed error naming them', () => {
    expect(() => betaQuantile(1, 2, 2)).toThrow(
      expect.objectContaining({
        code: CoordinatorErrorCode.INVALID_ARGUMENT,
        message: 'invalid argument: `q` must be a number in (0, 1) (got 1)',
      }),
    );
    expect(() => betaQuantile(0.5, 0, 2)).toThrow(/`a` must be a positive finite number \(got 0\)/);
  });
});

describe('bernsteinRadius', () => {
  it('solves the tail equation K·exp(−(t²/2)/(V + Lt/3)) = δ', () => {
    const t = bernsteinRadius(4, 1.5, 0.01, 12);
    expect(12 * Math.exp(-(t * t) / 2 / (4 + (1.5 * t) / 3))).toBeCloseTo(0.01, 12);
    expect(bernsteinRadius(0, 0, 0.1)).toBe(0);
    expect(bernsteinRadius(1, 0, 0.1)).toBeCloseTo(Math.sqrt(2 * Math.log(20)), 12);
  });
  it('is monotone: larger δ, smaller radius; larger V or L, larger radius', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1e6, noNaN: true }),
        fc.double({ min: 0, max: 1e3, noNaN: true }),
        fc.double({ min: 1e-6, max: 0.5, noNaN: true }),
        fc.double({ min: 1e-6, max: 0.5, noNaN: true }),
        (v, l, d1, d2) => {
          const [lo, hi] = d1 < d2 ? [d1, d2] : [d2, d1];
          expect(bernsteinRadius(v, l, hi)).toBeLessThanOrEqual(bernsteinRadius(v, l, lo));
          expect(bernsteinRadius(v, l, lo)).toBeLessThanOrEqual(bernsteinRadius(v * 2 + 1, l, lo));
          expect(bernsteinRadius(v, l, lo)).toBeLessThanOrEqual(bernsteinRadius(v, l * 2 + 1, lo));
        },
      ),
    );
  });
});
