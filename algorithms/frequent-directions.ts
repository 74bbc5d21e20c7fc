import {
  CoordinatorError,
  CoordinatorErrorCode,
  gramNormBound,
  type CoordinatorDataset as Dataset,
  type CoordinatorDatasetBlock as DatasetBlock,
  type Estimate,
} from '../framework/index.js';
import { builtins, encodeAttrs, fdStateLength, parseAttrs, WASM_BACKEND } from '../nfu-kernels/index.js';
import { svd } from './dense.js';
import { checkAborted, pinnedTo, round, type LocusContext } from './engine.js';
import type { LocusRunner } from './locus.js';
import { requireRows } from './rsvd.js';

/** Options of {@link frequentDirectionsCore}. */
export interface FrequentDirectionsOptions {
  /** Rows ℓ of the sketch (2 … 4096; default 2·min(cols, 16)). */
  readonly sketchRows?: number;
  /** Deadline of the update round (ms); blocks still running then are missing in this estimate. */
  readonly deadlineMs?: number;
  readonly signal?: AbortSignal;
}

/** What {@link frequentDirectionsCore} estimates. */
export interface FrequentDirectionsResult {
  /** ℓ. */
  readonly sketchRows: number;
  readonly cols: number;
  /** The merged sketch B (`ℓ × cols`, row-major): BᵀB approximates AᵀA. */
  readonly sketch: Float64Array;
  /** Rows of A the sketch has absorbed. */
  readonly rowsSeen: number;
  /** Σ of the FD shrinkages (blocks' and merge's): ‖AᵀA − BᵀB‖₂ ≤ Δ over the rows absorbed. */
  readonly shrinkage: number;
  /** Singular values of B and its right singular vectors (`cols × r`, r = min(ℓ, cols)): approximate principal axes. */
  readonly singularValues: Float64Array;
  readonly components: Float64Array;
}

/** Rows each block's sketch has absorbed, per runner and sketch size (the depot states survive between calls). */
const progress = new WeakMap<LocusRunner, Map<string, number>>();

function invalid(argument: string, rule: string, value: unknown): CoordinatorError {
  return new CoordinatorError(
    CoordinatorErrorCode.INVALID_ARGUMENT,
    `invalid argument: ${argument} must be ${rule} (got ${String(value)})`,
    { details: { argument, value: value as never } },
  );
}

/**
 * Frequent Directions in locus, streaming (Liberty 2013; Ghashami–Liberty–Phillips–Woodruff 2016): each block
 * (a sensor buffer) has an FD state in an allocation at its depot, updated in place by the `fd-update` NFU op
 * with the rows appended since the last call; the ℓ × d sketches are read back and merged here by the same FD
 * shrink. Deterministic bound: ‖AᵀA − BᵀB‖₂ ≤ Δ_blocks + Δ_merge + Σ_missing ‖A_bᵀA_b‖₂ (a block whose sketch does
 * not answer is charged its Gram norm from the ingest summary), and Δ ≤ ‖A − A_k‖_F²/(ℓ − k) for every k < ℓ.
 *
 * Call it again with the same context (runner) and a newer version of the dataset (more rows in the blocks, or
 * more blocks): only the new rows are read, at the depots. The states stay until `ctx.runner.release()`.
 */
export async function frequentDirectionsCore(
  ctx: LocusContext,
  dataset: Dataset,
  options: FrequentDirectionsOptions,
): Promise<Estimate<FrequentDirectionsResult>> {
  requireRows(dataset);
  const d = dataset.cols;
  const ell = options.sketchRows ?? 2 * Math.min(d, 16);
  if (!Number.isInteger(ell) || ell < 2 || ell > 4096) throw invalid('sketchRows', 'an integer from 2 to 4096', ell);
  if (options.deadlineMs !== undefined && !(options.deadlineMs > 0)) throw invalid('deadlineMs', 'positive', options.deadlineMs);
  for (const b of dataset.blocks)
    if (b.summary === undefined) throw invalid(`blocks[${b.index}].summary`, 'present (ingest summary)', 'none');
  checkAborted(options.signal);
  const name = `fd${ell}`;
  const stateBytes = fdStateLength(ell, d) * 8;
  let seen = progress.get(ctx.runner);
  if (seen === undefined) progress.set(ctx.runner, (seen = new Map()));
  const seenOf = (b: DatasetBlock): number => {
    const n = seen.get(`${name}/${b.index}`) ?? 0;
    // A state lost at its depot (or a block that shrank: a new dataset) starts over.
    return ctx.runner.stateOf(b.index, name) === undefined || n > b.rows ? 0 : n;
  };
  const deadlineAt = options.deadlineMs === undefined ? undefined : Date.now() + options.deadlineMs;
  // Blocks with a state are updated where it lives; new ones on any replica.
  const pinned = pinnedTo(ctx, dataset, name);
  const todo = dataset.blocks
    .map((b, i) => (ctx.runner.stateOf(b.index, name) === undefined ? b : pinned[i]!))
    .filter((b) => seenOf(b) < b.rows);
  const upd = await round(
    ctx,
    dataset,
    'fd-update',
    (b) => {
      const from = seenOf(b);
      return {
        kernel: 'fd-update',
        // rowOffset: a retried update (its first attempt ran but the reply was lost) skips the rows its state has.
        attrs: { dtype: dataset.dtype, rows: b.rows - from, cols: d, k: ell, rowOffset: from },
        inputs: [
          from === 0 ? { kind: 'bytes', data: new Uint8Array(0) } : { kind: 'state', name },
          { kind: 'block', fromRow: from },
        ],
        output: { store: name, bytes: stateBytes },
      };
    },
    {
      blocks: todo,
      ...(deadlineAt === undefined ? {} : { deadlineAt }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    },
  );
  let bytesMoved = upd.bytesMoved;
  // Read every block's sketch back (ℓ × d each) and merge.
  const states = await Promise.all(
    dataset.blocks.map(async (b) => {
      if (ctx.runner.stateOf(b.index, name) === undefined) return undefined;
      const bytes = await ctx.runner.readState(
        b.index,
        name,
        deadlineAt === undefined ? undefined : Math.max(1, deadlineAt - Date.now()),
      );
      if (bytes === undefined || bytes.length !== stateBytes) return undefined;
      bytesMoved += bytes.length + 100;
      const v = new Float64Array(bytes.buffer, bytes.byteOffset, bytes.length / 8);
      return { b, v };
    }),
  );
  const stacked: Float64Array[] = [];
  let deltaBlocks = 0;
  let rowsSeen = 0;
  let missingBound = 0;
  let used = 0;
  let answeredMass = 0;
  let totalMass = 0;
  for (const [i, b] of dataset.blocks.entries()) {
    const s = states[i];
    totalMass += b.summary!.frob2;
    const absorbed = s === undefined ? 0 : s.v[2]!;
    if (s !== undefined) {
      seen.set(`${name}/${b.index}`, absorbed);
      stacked.push(s.v.subarray(4));
      deltaBlocks += s.v[3]!;
      rowsSeen += absorbed;
      used++;
    }
    if (s === undefined || absorbed < b.rows) {
      // Rows not in the sketch: their Gram is missing; its norm is bounded from the summary (whole block when
      // nothing was absorbed; the block's bound also covers a partial tail since the tail's Gram ⪯ the block's).
      missingBound += gramNormBound(b.summary!);
    } else answeredMass += b.summary!.frob2;
  }
  // Merge: FD over the stacked sketches (the same kernel, in process; identical bits on every backend).
  let B = new Float64Array(ell * d);
  let deltaMerge = 0;
  if (stacked.length > 0) {
    const all = new Float64Array(stacked.length * ell * d);
    stacked.forEach((v, i) => all.set(v, i * ell * d));
    const kernel = builtins().byNameOrThrow('fd-update');
    const out = kernel.run(
      parseAttrs(encodeAttrs({ dtype: 'float64', rows: stacked.length * ell, cols: d, k: ell })),
      [new Uint8Array(0), new Uint8Array(all.buffer)],
      { backend: WASM_BACKEND },
    );
    const merged = new Float64Array(out.slice().buffer);
    deltaMerge = merged[3]!;
    B = merged.slice(4);
  }
  // Nothing absorbed (every block missing, or none reached before the deadline): no estimate of AᵀA at all.
  if (rowsSeen === 0)
    throw new CoordinatorError(
      CoordinatorErrorCode.COVERAGE,
      `coverage too low for Frequent Directions: no rows absorbed (${used} of ${dataset.blocks.length} block sketches ` +
        `answered${deadlineAt !== undefined && Date.now() >= deadlineAt ? ', deadline reached' : ''})`,
      { details: { coverage: 0, blocksUsed: used, blocksPlanned: dataset.blocks.length } },
    );
  const r = Math.min(ell, d);
  const { s: sv, V } = svd(B, ell, d);
  const epsilon = deltaBlocks + deltaMerge + missingBound;
  return {
    value: {
      sketchRows: ell,
      cols: d,
      sketch: B,
      rowsSeen,
      shrinkage: deltaBlocks + deltaMerge,
      singularValues: sv.slice(0, r),
      components: V,
    },
    epsilon,
    delta: 0,
    coverage: totalMass > 0 ? answeredMass / totalMass : 1,
    blocksUsed: used,
    blocksMissing: dataset.blocks.length - used,
    bytesMoved,
    method:
      `Frequent Directions in locus (ℓ = ${ell}; per-block sketches updated in place by fd-update with the rows ` +
      `appended since the last call, merged by FD at the coordinator); ε = Σ shrinkages + Σ_missing ‖A_bᵀA_b‖₂ ` +
      `bounds ‖AᵀA − BᵀB‖₂ deterministically (Ghashami et al. 2016)`,
    norm: 'spectral',
    parts: { sampling: { epsilon: missingBound, delta: 0 }, sketch: { epsilon: deltaBlocks + deltaMerge, delta: 0 } },
    sources: [],
    final: true,
  };
}
