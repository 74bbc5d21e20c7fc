import { Observable, last, switchMap } from 'rxjs';
import type { Estimate } from '../estimation/index.js';
import type { Dataset, DatasetBlock } from './dataset-shape.js';
import type { Job } from './job.js';
import type { OpAnswer } from './op-runner.js';
import { runJob, type RunJobOptions } from './run-job.js';

/** Which blocks of each dataset version a streaming job uses. */
export type StreamWindow =
  | { readonly kind: 'cumulative' }
  /** The last `blocks` blocks. */
  | { readonly kind: 'blocks'; readonly blocks: number }
  /** The fewest last blocks holding at least `rows` rows. */
  | { readonly kind: 'rows'; readonly rows: number };

/** @internal The blocks of `dataset` inside `window`. */
export function windowBlocks(dataset: Dataset, window: StreamWindow): DatasetBlock[] {
  const sorted = [...dataset.blocks].sort((a, b) => a.rowStart - b.rowStart);
  if (window.kind === 'cumulative') return sorted;
  if (window.kind === 'blocks') return sorted.slice(Math.max(0, sorted.length - window.blocks));
  let rows = 0;
  let i = sorted.length;
  while (i > 0 && rows < window.rows) rows += sorted[--i]!.rows;
  return sorted.slice(i);
}

/**
 * Follows a growing dataset: for every version `versions$` emits (re-read exNode, appended blocks), runs
 * `makeJob(version)` over the blocks in `window` and emits that run's final estimate. Blocks answered for an
 * earlier version are reused (same index, row start and content hash), so each refresh only runs the new
 * blocks; a version arriving while the previous one runs supersedes it (its answers so far are kept).
 * @example
 * followDataset(versions$, (ds) => columnStatsJob(ds, 'means'), { kind: 'rows', rows: 10_000 }, { runner, reliability })
 */
export function followDataset<V>(
  versions$: Observable<Dataset>,
  makeJob: (dataset: Dataset) => Job<V>,
  window: StreamWindow,
  options: RunJobOptions,
): Observable<Estimate<V>> {
  return new Observable<Estimate<V>>((subscriber) => {
    const cache = options.cache ?? new Map<string, OpAnswer>();
    return versions$
      .pipe(
        switchMap((dataset) => {
          const blocks = windowBlocks(dataset, window);
          const keep = new Set(blocks.map((b) => b.index));
          // Answers of blocks that left the window are not needed again.
          for (const key of cache.keys()) if (!keep.has(Number(key.split(':')[0]))) cache.delete(key);
          return runJob(makeJob(dataset), { ...options, blocks, cache }).pipe(last());
        }),
      )
      .subscribe(subscriber);
  });
}
