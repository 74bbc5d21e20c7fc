import type { CoordinatorDataset } from '../../framework/index.js';

/**
 * The dataset with every block's (or only the listed blocks') exact scatter removed from its summary, as an exNode
 * written before ingest recorded it: least squares then bounds the missing blocks from the other summary fields.
 */
export function withoutExactScatter(ds: CoordinatorDataset, only?: ReadonlySet<number>): CoordinatorDataset {
  return {
    ...ds,
    blocks: ds.blocks.map((b) => {
      if (b.summary === undefined || (only !== undefined && !only.has(b.index))) return b;
      const summary = { ...b.summary };
      delete summary.exactScatter;
      return { ...b, summary };
    }),
  };
}
