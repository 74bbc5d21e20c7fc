import { MatrixAccumulator, sketchStatistic, type BlockSummary } from '../estimation/index.js';
import { invalidArgument } from '../estimation/errors.js';
import type { Dataset } from './dataset-shape.js';
import { float64Values, type Job } from './job.js';
import type { OpSpec } from './op-runner.js';
import { validateSketch } from './validate-output.js';

/** Failure probability of the Gaussian ‖S_b‖ bound used to reject implausible sketch outputs. */
const VALIDATION_DELTA = 1e-12;

/** Sketch families with an additive block form Z = Σ_b S_b A_b (k × d). */
export type SketchKind = 'gaussian' | 'sparse-sign' | 'count-sketch' | 'srht';

export interface SketchJobOptions {
  readonly kind: SketchKind;
  /** Sketch rows. */
  readonly k: number;
  readonly seed?: number;
  /** Non-zeros per column (sparse sign). */
  readonly s?: number;
  /** Failure probability of the Gaussian blocks' norm bound (the estimate's `sketch` part). Default 0.01. */
  readonly sketchDelta?: number;
}

const OP_NAME = {
  gaussian: 'gaussian-sketch-left',
  'sparse-sign': 'sparse-sign-sketch',
  'count-sketch': 'count-sketch',
  srht: 'srht',
} as const;

/**
 * The sketch SA = Σ_b S_b A_b (k × d, row-major) computed in locus, one op per block; Horvitz–Thompson over
 * the answered blocks, ε in the spectral norm. A missing block's S_b A_b is bounded by ‖S_b‖·‖A_b‖₂ with
 * ‖S_b‖ ≤ √n_b (sparse sign, CountSketch: unit columns), ≤ √(n_pad/k) (SRHT, orthonormal H), and for the
 * Gaussian S_b (n_b × k standard normal) ≤ √n_b + √k + √(2 ln(2B/δ_k)) for all B blocks together with
 * probability ≥ 1 − δ_k (Vershynin 2012, Cor. 5.35; union bound) — δ_k is the estimate's sketch part.
 * SRHT blocks are independent per block (block-local transforms); their sum is a sketch with E[SᵀS] = I.
 * @throws CoordinatorError `COORD_E_INVALID_ARGUMENT` for a non-positive `k`
 */
export function sketchJob(dataset: Dataset, options: SketchJobOptions): Job<Float64Array> {
  const { kind, k } = options;
  if (!Number.isInteger(k) || k < 1) throw invalidArgument('k', 'a positive integer', k);
  if (!(kind in OP_NAME)) throw invalidArgument('kind', 'gaussian, sparse-sign, count-sketch or srht', kind);
  const blocks = Math.max(1, dataset.blocks.length);
  const sketchDelta = kind === 'gaussian' ? (options.sketchDelta ?? 0.01) : 0;
  const op: OpSpec = {
    name: OP_NAME[kind],
    attrs: { k, seed: options.seed ?? 0, ...(options.s === undefined ? {} : { s: options.s }) },
    outputBytes: (ds) => k * ds.cols * 8,
  };
  const norm = (s: BlockSummary, delta = sketchDelta): number => {
    if (kind === 'gaussian') return Math.sqrt(s.rows) + Math.sqrt(k) + Math.sqrt(2 * Math.log((2 * blocks) / delta));
    if (kind === 'srht') {
      let n = 1;
      while (n < Math.max(1, s.rows)) n *= 2;
      return Math.sqrt(n / k);
    }
    return Math.sqrt(s.rows);
  };
  return {
    name: `sketch-${kind}`,
    dataset,
    op,
    // The output's columns within ‖S_b‖·‖a_j‖: certain for sparse sign, CountSketch and SRHT; for Gaussian
    // blocks with the bound at failure probability 1e-12 (an honest block is practically never rejected).
    validate: (block, output) =>
      block.summary === undefined
        ? undefined
        : validateSketch(block, output, dataset.cols, k, norm(block.summary, VALIDATION_DELTA), dataset.dtype),
    ...(sketchDelta > 0 ? { sketch: { epsilon: 0, delta: sketchDelta } } : {}),
    combiner() {
      const acc = new MatrixAccumulator(sketchStatistic(k, dataset.cols, norm));
      return {
        add: (block, output, wireBytes) => void acc.add(String(block.index), float64Values(output), wireBytes),
        estimate: (planned, opts) => acc.estimate(planned, opts),
      };
    },
  };
}
