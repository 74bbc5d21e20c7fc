import { CoordinatorError, CoordinatorErrorCode, checkClosedUnit, checkOpenUnit, invalidArgument } from './errors.js';
import type { ErrorPart, EstimateOptions, PlannedBlock, Weighting } from './types.js';

/** @internal Options after validation. */
export interface ResolvedOptions {
  delta: number;
  weighting: Weighting;
  minCoverage: number;
  sketch: ErrorPart;
}

/** @internal Validates the plan (unique ids, inclusion present when needed) and the options. */
export function resolvePlan(planned: readonly PlannedBlock[], options: EstimateOptions): ResolvedOptions {
  checkOpenUnit('delta', options.delta);
  const weighting = options.weighting ?? 'response-groups';
  if (weighting !== 'response-groups' && weighting !== 'inclusion') {
    throw invalidArgument('weighting', '"response-groups" or "inclusion"', weighting);
  }
  const minCoverage = options.minCoverage ?? 0;
  checkClosedUnit('minCoverage', minCoverage);
  const sketch = options.sketch ?? { epsilon: 0, delta: 0 };
  if (!(sketch.epsilon >= 0) || !Number.isFinite(sketch.epsilon)) {
    throw invalidArgument('sketch.epsilon', 'finite and ≥ 0', sketch.epsilon);
  }
  if (!(sketch.delta >= 0 && sketch.delta < 1)) throw invalidArgument('sketch.delta', 'a number in [0, 1)', sketch.delta);
  if (planned.length === 0) throw invalidArgument('planned', 'a non-empty list of blocks', 0);
  const seen = new Set<string>();
  planned.forEach((b, i) => {
    if (seen.has(b.id)) throw invalidArgument(`planned[${i}].id`, 'unique', b.id);
    seen.add(b.id);
    if (weighting === 'inclusion') {
      const inc = b.inclusion;
      if (inc === undefined) throw invalidArgument(`planned[${i}].inclusion`, 'set with weighting "inclusion"', inc);
      checkOpenOrOne(`planned[${i}].inclusion.p`, inc.p);
      checkOpenOrOne(`planned[${i}].inclusion.pLower`, inc.pLower);
    }
  });
  return { delta: options.delta, weighting, minCoverage, sketch };
}

function checkOpenOrOne(name: string, v: number): void {
  if (!(typeof v === 'number' && v > 0 && v <= 1)) throw invalidArgument(name, 'a number in (0, 1]', v);
}

/**
 * Coverage = answered mass / total mass, mass = ‖A_b‖_F² from the summaries; when the whole plan has no
 * mass, rows are counted instead, and when it has no rows either, blocks.
 */
export function coverageOf(planned: readonly PlannedBlock[], answered: (id: string) => boolean): number {
  const measures: ((b: PlannedBlock) => number)[] = [(b) => b.summary.frob2, (b) => b.summary.rows, () => 1];
  for (const measure of measures) {
    let total = 0;
    let got = 0;
    for (const b of planned) {
      const m = measure(b);
      total += m;
      if (answered(b.id)) got += m;
    }
    if (total > 0) return got / total;
  }
  return 1;
}

/**
 * @internal Throws `COORD_E_COVERAGE` when coverage < minimum.
 */
export function checkCoverage(coverage: number, minCoverage: number, blocksUsed: number, planned: number): void {
  if (coverage < minCoverage || (blocksUsed === 0 && minCoverage > 0)) {
    throw new CoordinatorError(
      CoordinatorErrorCode.COVERAGE,
      `coverage ${coverage.toFixed(4)} is below the minimum ${minCoverage} (${blocksUsed} of ${planned} blocks answered)`,
      { details: { coverage, minCoverage, blocksUsed, blocksPlanned: planned } },
    );
  }
}

/**
 * Sampling and sketching error combined by the triangle inequality and a union bound:
 * ε = ε_s + ε_k, δ = δ_s + δ_k.
 */
export function combineErrors(sampling: ErrorPart, sketch: ErrorPart): ErrorPart {
  return { epsilon: sampling.epsilon + sketch.epsilon, delta: sampling.delta + sketch.delta };
}
