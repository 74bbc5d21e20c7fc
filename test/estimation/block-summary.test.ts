import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  blockInclusion,
  CoordinatorErrorCode,
  gramNormBound,
  scatterBounds,
  summarizeBlock,
  summaryFromJson,
  summaryToJson,
  symmetricEigenvalues,
  validateSummary,
} from '../../framework/estimation/index.js';
import { gram, mulberry32, normal } from './synthetic.js';

describe('summarizeBlock', () => {
  it('records sums, sums of squares, ‖A‖_F², max |a| and the SHA-256 of the bytes', () => {
    const data = new Float64Array([1, -2, 3, 4, 0, -6]);
    const s = summarizeBlock(data, 3, 2);
    expect(Array.from(s.colSums)).toEqual([4, -4]);
    expect(Array.from(s.colSumSq)).toEqual([10, 56]);
    expect(s.frob2).toBe(66);
    expect(s.maxAbs).toBe(6);
    expect(s.hash).toBe(createHash('sha256').update(Buffer.from(data.buffer)).digest('hex'));
    const f32 = summarizeBlock(new Float32Array([1, 2]), 1, 2);
    expect(f32.hash).toBe(
      createHash('sha256')
        .update(Buffer.from(new Float32Array([1, 2]).buffer))
        .digest('hex'),
    );
  });

  it('records the centred scatter spectrum, and the bounds derived from it hold', () => {
    const rand = mulberry32(3);
    const g = normal(rand);
    const rows = 30;
    const d = 5;
    const data = Float64Array.from({ length: rows * d }, (_, k) => 3 + (k % d) + g());
    const s = summarizeBlock(data, rows, d);
    const G = gram(data, rows, d);
    const K = G.map((v, k) => v - (s.colSums[Math.floor(k / d)]! * s.colSums[k % d]!) / rows);
    const eig = symmetricEigenvalues(K, d);
    expect(s.scatterEigMax).toBeCloseTo(eig[d - 1]!, 8);
    expect(s.scatterEigMin).toBeCloseTo(Math.max(0, eig[0]!), 8);
    const gEig = symmetricEigenvalues(G, d);
    expect(gramNormBound(s)).toBeGreaterThanOrEqual(gEig[d - 1]!);
    const noSpectrum = summarizeBlock(data, rows, d, { spectrum: false });
    expect(noSpectrum.scatterEigMax).toBeUndefined();
    expect(scatterBounds(noSpectrum).eigMax).toBeGreaterThanOrEqual(eig[d - 1]!);
    expect(gramNormBound(noSpectrum)).toBeGreaterThanOrEqual(gEig[d - 1]!);
  });

  it('round-trips through JSON and validates what it parses', () => {
    const s = summarizeBlock(new Float64Array([1, 2, 3, 4]), 2, 2);
    const back = summaryFromJson(JSON.parse(JSON.stringify(summaryToJson(s))));
    expect(back).toEqual(s);
    expect(() => summaryFromJson({ ...summaryToJson(s), frob2: 1 })).toThrow(
      expect.objectContaining({
        code: CoordinatorErrorCode.INVALID_ARGUMENT,
        message: 'invalid argument: `summary.frob2` must be Σ colSumSq = 30 (got 1)',
      }),
    );
    expect(() => summaryFromJson({ ...summaryToJson(s), hash: 'xyz' })).toThrow(/summary\.hash/);
    expect(() => validateSummary({ ...s, colSums: new Float64Array(3) })).toThrow(/summary\.colSums/);
  });

  it('refuses a shape that does not match the data and non-finite entries', () => {
    expect(() => summarizeBlock(new Float64Array(5), 2, 2)).toThrow(
      expect.objectContaining({ code: CoordinatorErrorCode.INVALID_ARGUMENT }),
    );
    expect(() => summarizeBlock(new Float64Array([1, NaN]), 1, 2)).toThrow(/data\[1\]/);
  });
});

describe('symmetricEigenvalues', () => {
  it('finds the spectrum of a known matrix', () => {
    expect(Array.from(symmetricEigenvalues([2, 1, 0, 1, 2, 0, 0, 0, 5], 3)).map((x) => +x.toFixed(12))).toEqual([1, 3, 5]);
  });
});

describe('blockInclusion', () => {
  it('hedges over replicas: π = 1 − Π(1 − p_r), clipped to [π_min, 1]', () => {
    const inc = blockInclusion([
      { p: 0.9, pLower: 0.8 },
      { p: 0.5, pLower: 0.3 },
    ]);
    expect(inc.p).toBeCloseTo(1 - 0.1 * 0.5, 12);
    expect(inc.pLower).toBeCloseTo(1 - 0.2 * 0.7, 12);
    expect(blockInclusion([{ p: 0.01, pLower: 0 }], 0.05)).toEqual({ p: 0.05, pLower: 0.05 });
    expect(blockInclusion([])).toEqual({ p: 0.05, pLower: 0.05 });
    expect(() => blockInclusion([{ p: 1.2, pLower: 0.5 }])).toThrow(/replicas\[0\]\.p/);
  });
});
