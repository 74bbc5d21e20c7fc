import type { Estimate, EstimateOptions, PlannedBlock } from '../estimation/index.js';
import type { Dataset, DatasetBlock } from './dataset-shape.js';
import type { OpSpec } from './op-runner.js';

/**
 * Turns block outputs into estimates: `add` each answered block's op output, `estimate` at any time over
 * the planned blocks (those not added are missing at that moment). One combiner per run.
 */
export interface JobCombiner<V> {
  add(block: DatasetBlock, output: Uint8Array, wireBytes: number): void;
  /** @throws CoordinatorError `COORD_E_COVERAGE` below `options.minCoverage` */
  estimate(planned: readonly PlannedBlock[], options: EstimateOptions): Estimate<V>;
}

/** A job: a dataset, the NFU op run on each row block, and the combiner/estimator of its outputs. */
export interface Job<V> {
  readonly name: string;
  readonly dataset: Dataset;
  readonly op: OpSpec;
  /** Sketching error of the method itself, added to the sampling part. */
  readonly sketch?: { epsilon: number; delta: number };
  /**
   * Optional plausibility check of one block's op output against what is known of the block (its ingest
   * summary): a reason to reject it, or undefined. A rejected output is a failed attempt on that replica
   * (recorded in the reliability history as a failure, `invalid` in the metrics) and the next replica is
   * asked. Corrupted replies (flipped bytes on the way) must not pass; honest outputs must, whatever the
   * rounding of the depot's summation order.
   */
  validate?(block: DatasetBlock, output: Uint8Array): string | undefined;
  combiner(): JobCombiner<V>;
}

/** @internal A block's op output as float64 values (ops answer little-endian float64). */
export function float64Values(output: Uint8Array): Float64Array {
  if (output.byteOffset % 8 === 0 && output.byteLength % 8 === 0) {
    return new Float64Array(output.buffer, output.byteOffset, output.byteLength / 8);
  }
  return new Float64Array(output.slice().buffer);
}
