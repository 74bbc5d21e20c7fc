import { describe, expect, it } from 'vitest';
import { final, InProcessLocus, inMemoryDataset, MissingBlocks, rsvd, runnerContext } from '../../algorithms/index.js';
import { normals } from '../../nfu-kernels/index.js';

describe('why blocks went missing', () => {
  it('records each missing block’s failed attempts per round and depot, and nothing for answered blocks', async () => {
    const n = 1200;
    const d = 6;
    const A = new Float64Array(n * d);
    normals(3, 1, 0, 0, A);
    const { dataset, blocks } = inMemoryDataset(A, n, d, {
      blockRows: 200,
      depotsOf: (b) => [9000 + (b % 3), 9000 + ((b + 1) % 3)],
    });
    // Block 2 fails on both replicas; block 4 fails on its first replica only (answered by the second).
    const runner = new InProcessLocus(blocks, {
      fail: (a) => a.block.index === 2 || (a.block.index === 4 && a.replica.depot.port === 9001),
    });
    const missing = new MissingBlocks();
    const e = await final(rsvd(dataset, { ...runnerContext(runner), missing }, { rank: 2, seed: 1 }));
    expect(e.blocksMissing).toBeGreaterThan(0);
    const lines = missing.summary();
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.every((l) => l.blocks.length === 1 && l.blocks[0] === 2)).toBe(true);
    expect(new Set(lines.map((l) => l.depot))).toEqual(new Set(['127.0.0.1:9002', '127.0.0.1:9000']));
    expect(lines.every((l) => l.reason === 'injected failure of block 2')).toBe(true);
    expect(missing.text()).toContain('range: block 2 not answered by 127.0.0.1:9002: injected failure of block 2');
  });

  it('says a block never asked was not asked, naming no depot', () => {
    const missing = new MissingBlocks();
    missing.add('range', 3, new Map([[MissingBlocks.NOT_ASKED, 'not asked before the deadline']]));
    missing.add('range', 1, new Map([['127.0.0.1:9001', 'IBP_E_CAP_NOT_FOUND (-4)']]));
    const text = missing.text();
    expect(text).toContain('range: block 3 not asked before the deadline');
    expect(text).toContain('range: block 1 not answered by 127.0.0.1:9001: IBP_E_CAP_NOT_FOUND (-4)');
    expect(text).not.toMatch(/by -:/);
    expect(missing.summary().find((l) => l.blocks[0] === 3)?.depot).toBe('');
  });
});
