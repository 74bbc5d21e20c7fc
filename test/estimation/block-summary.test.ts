import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  attachScatterRadius,
  blockInclusion,
  centredScatter,
  CoordinatorErrorCode,
  gramStatistic,
  makeScatterReference,
  scatterReferenceFromJson,
  scatterReferenceToJson,
  scatterTrace,
  gramNormBound,
  scatterBounds,
  summarizeBlock,
  summaryFromJson,
  summaryToJson,
  symmetricEigenvalues,
  validateSummary,
  type BlockSummary,
} from '../../framework/estimation/index.js';
import { gram, mulberry32, normal } from './synthetic.js';

function withoutReference(s: BlockSummary): BlockSummary {
  const copy = { ...s };
  delete copy.scatterReference;
  return copy;
}

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

  it('records a ball around the dataset reference scatter that holds the block scatter, and keeps it through JSON', () => {
    const gauss = normal(mulberry32(5));
    const d = 4;
    const block = (scale: number) =>
      Float64Array.from({ length: 30 * d }, (_, k) => 3 * (k % d) + scale * gauss() * (1 + (k % d)));
    const first = block(1);
    const reference = makeScatterReference(centredScatter(first, 30, d), d);
    let trace = 0;
    for (let j = 0; j < d; j++) trace += reference.matrix[j * d + j]!;
    expect(trace).toBeCloseTo(1, 12);
    const data = block(2);
    const s = summarizeBlock(data, 30, d, { reference });
    const k = centredScatter(data, 30, d);
    const t = scatterTrace(s);
    const diff = k.map((v, q) => v - t * reference.matrix[q]!);
    const eig = symmetricEigenvalues(diff, d);
    const exact = Math.max(Math.abs(eig[0]!), Math.abs(eig[d - 1]!));
    expect(s.scatterRadius).toBeGreaterThanOrEqual(exact);
    expect(s.scatterRadius).toBeLessThan(exact * (1 + 1e-6) + 1e-6 * s.frob2);
    expect(s.scatterReference).toBe(reference);
    // The Gram statistic's ball: centre tr(K)·Ref, this radius.
    const ball = gramStatistic(d).remainderBall!(s)!;
    expect(ball.radius).toBe(s.scatterRadius);
    expect(Array.from(ball.centre)).toEqual(Array.from(reference.matrix, (v) => t * v));
    // Same summary as attaching afterwards.
    expect(attachScatterRadius(summarizeBlock(data, 30, d), k, reference).scatterRadius).toBe(s.scatterRadius);
    // JSON: the summary names its reference by id; the reference travels once and is checked.
    const refJson = JSON.parse(JSON.stringify(scatterReferenceToJson(reference))) as unknown;
    const back = scatterReferenceFromJson(refJson);
    expect(back.id).toBe(reference.id);
    const json = JSON.parse(JSON.stringify(summaryToJson(s))) as unknown;
    expect((json as { scatterReference: string }).scatterReference).toBe(reference.id);
    const parsed = summaryFromJson(json, 'summary', [back]);
    expect(parsed.scatterRadius).toBe(s.scatterRadius);
    expect(parsed.scatterReference?.id).toBe(reference.id);
    // Without the reference the radius is dropped (the eigenvalue bounds remain).
    const alone = summaryFromJson(json);
    expect(alone.scatterRadius).toBeUndefined();
    expect(alone.scatterEigMax).toBe(s.scatterEigMax);
    // A reference altered in transit is refused, and so is a summary with a radius but no reference.
    const tampered = {
      ...(refJson as object),
      matrix: (refJson as { matrix: number[] }).matrix.map((v, q) => (q === 0 ? v + 1e-3 : v)),
    };
    expect(() => scatterReferenceFromJson(tampered)).toThrow(
      expect.objectContaining({ code: CoordinatorErrorCode.INVALID_ARGUMENT }),
    );
    expect(() => validateSummary(withoutReference(s))).toThrow(
      expect.objectContaining({ code: CoordinatorErrorCode.INVALID_ARGUMENT }),
    );
    expect(() => summarizeBlock(data, 30, d, { reference: makeScatterReference([1], 1) })).toThrow(
      expect.objectContaining({ code: CoordinatorErrorCode.INVALID_ARGUMENT }),
    );
    expect(() => makeScatterReference(new Float64Array(d * d), d)).toThrow(
      expect.objectContaining({ code: CoordinatorErrorCode.INVALID_ARGUMENT }),
    );
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
