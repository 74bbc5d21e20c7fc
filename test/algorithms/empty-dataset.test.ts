import { describe, expect, it } from 'vitest';
import {
  final,
  frequentDirections,
  InProcessLocus,
  pca,
  rsvd,
  runnerContext,
  spectralNorm,
  traceEstimate,
} from '../../algorithms/index.js';
import { summarizeBlock, type CoordinatorDataset } from '../../framework/index.js';

// What an ingest of an empty input describes: no rows (no blocks, or a block of 0 rows).
const noBlocks: CoordinatorDataset = { name: 'empty', dtype: 'float64', rows: 0, cols: 1, blocks: [] };
const zeroRows: CoordinatorDataset = {
  name: 'empty',
  dtype: 'float64',
  rows: 0,
  cols: 2,
  blocks: [
    {
      index: 0,
      rowStart: 0,
      rows: 0,
      bytes: 0,
      replicas: [
        { depot: { host: '127.0.0.1', port: 9000 }, read: 'ibp://127.0.0.1:9000/x#0/0/READ', allocOffset: 0, length: 0 },
      ],
      summary: summarizeBlock(new Float64Array(0), 0, 2),
    },
  ],
};

describe('an empty dataset', () => {
  for (const [label, dataset] of [
    ['no blocks', noBlocks],
    ['one block of 0 rows', zeroRows],
  ] as const) {
    it(`is refused by every algorithm with COORD_E_INVALID_ARGUMENT naming the dataset (${label})`, async () => {
      const ctx = () => runnerContext(new InProcessLocus(new Map()));
      const runs = [
        final(pca(dataset, ctx(), { rank: 1 })),
        final(rsvd(dataset, ctx(), { rank: 1 })),
        final(spectralNorm(dataset, ctx())),
        final(frequentDirections(dataset, ctx())),
        final(traceEstimate(dataset, ctx(), { power: 1 })),
      ];
      for (const r of runs) {
        const err = (await r.then(
          () => undefined,
          (e: unknown) => e,
        )) as Error & { code: string; details: { argument: string } };
        expect(err).toMatchObject({ code: 'COORD_E_INVALID_ARGUMENT', details: { argument: 'dataset' } });
        expect(err.message).toContain('the dataset "empty" is empty (0 rows');
        expect(err.message).not.toMatch(/planned|blocks\[/);
      }
    });
  }
});
