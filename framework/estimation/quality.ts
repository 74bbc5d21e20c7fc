import type { SourceWeight } from './types.js';

/** Options of {@link robustQualityWeights}. */
export interface QualityWeightOptions {
  /** Robust z-score up to which a source keeps full weight. Default 3. */
  zFull?: number;
  /** Floor of the scale, relative to |median| (keeps identical peers from making any deviation infinite). Default 0.1. */
  minRelativeScale?: number;
}

/** One source's robust score. */
export interface QualityScore {
  id: string;
  residual: number;
  z: number;
  weight: number;
}

/**
 * Robust z-scores of per-source residuals against their peers and the weights they turn into:
 * z = (r − median) / (1.4826·MAD) (MAD scaled to σ for Gaussian data; Hampel 1974), one-sided (only a larger
 * residual than the peers' is suspicious); weight 1 for z ≤ zFull, (zFull/z)² above — a Cauchy-like descent,
 * so garbage fades towards 0 and a source whose residual comes back among its peers regains full weight.
 * With fewer than 3 sources there are no peers to compare with: every weight is 1.
 */
export function robustQualityWeights(residuals: ReadonlyMap<string, number>, options: QualityWeightOptions = {}): QualityScore[] {
  const zFull = options.zFull ?? 3;
  const minRel = options.minRelativeScale ?? 0.1;
  const entries = [...residuals].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  if (entries.length < 3) return entries.map(([id, residual]) => ({ id, residual, z: 0, weight: 1 }));
  const values = entries.map(([, r]) => r);
  const med = median(values);
  const mad = median(values.map((r) => Math.abs(r - med)));
  const scale = Math.max(1.4826 * mad, minRel * Math.abs(med), 1e-12);
  return entries.map(([id, residual]) => {
    const z = (residual - med) / scale;
    const weight = z <= zFull ? 1 : (zFull / z) ** 2;
    return { id, residual, z, weight };
  });
}

/** Scores as {@link SourceWeight}s (reliability = weight). */
export function toSourceWeights(scores: readonly QualityScore[]): SourceWeight[] {
  return scores.map((s) => ({ id: s.id, weight: s.weight, reliability: s.weight }));
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h]! : 0.5 * (s[h - 1]! + s[h]!);
}
