import { checkCoverage, combineErrors, type ResolvedOptions } from './plan.js';
import type { Estimate, EstimateOptions, Norm } from './types.js';

/**
 * @internal Assembles an {@link Estimate} from its parts (sampling + sketch, coverage check). The sampling part
 * carries δ only when its ε is positive: at ε 0 it holds surely.
 */
export function buildEstimate<V>(
  value: V,
  samplingEpsilon: number,
  resolved: ResolvedOptions,
  options: EstimateOptions,
  facts: {
    coverage: number;
    blocksUsed: number;
    blocksPlanned: number;
    bytesMoved: number;
    method: string;
    norm: Norm;
    /** The floating-point rounding allowance (see rounding.ts); 0 when the statistic gives none. */
    rounding?: number;
  },
): Estimate<V> {
  checkCoverage(facts.coverage, resolved.minCoverage, facts.blocksUsed, facts.blocksPlanned);
  // A zero sampling error is certain (every block answered, or the missing ones bounded to nothing): no δ for it,
  // so an estimate exact up to rounding (and with no sketch part) reports δ 0.
  const sampling = { epsilon: samplingEpsilon, delta: samplingEpsilon > 0 ? resolved.delta : 0 };
  const total = combineErrors(sampling, resolved.sketch);
  const rounding = facts.rounding ?? 0;
  return {
    value,
    epsilon: total.epsilon + rounding,
    delta: total.delta,
    coverage: facts.coverage,
    blocksUsed: facts.blocksUsed,
    blocksMissing: facts.blocksPlanned - facts.blocksUsed,
    bytesMoved: facts.bytesMoved,
    method: facts.method,
    norm: facts.norm,
    parts: { sampling, sketch: { ...resolved.sketch }, ...(rounding > 0 ? { rounding: { epsilon: rounding, delta: 0 } } : {}) },
    sources: (options.sources ?? []).map((s) => ({ ...s })),
    final: options.final ?? false,
  };
}

/** @internal The `method` text naming the weighting and its assumption. */
export function weightingText(resolved: ResolvedOptions): string {
  return resolved.weighting === 'inclusion'
    ? 'weights 1/π from reliability history (independent answers, π lower quantile in the bound)'
    : 'weights N_g/n_g per response group (answers independent, common rate within a group)';
}

/** @internal Common assumption of every estimator here. */
export const MAR = 'missing at random given the group/reliability: whether a block answers does not depend on its values';
