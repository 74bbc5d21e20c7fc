import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IbpClient, readExnode, type DepotAddress } from '../../framework/index.js';
import {
  DatasetError,
  DatasetErrorCode,
  ingest,
  startLoopbackDepots,
  type LoopbackDepots,
  type RowBatch,
} from '../../framework/dataset/index.js';
import { tempDir } from '../helpers/temp-dir.js';

const key = (d: DepotAddress) => `${d.host}:${d.port}`;

async function usedBytes(client: IbpClient, depots: readonly DepotAddress[]): Promise<number[]> {
  return Promise.all(depots.map(async (d) => (await client.status(d)).resources.reduce((n, r) => n + r.usedBytes, 0)));
}

const COLS = 4;
const BLOCK_ROWS = 10;
const ALLOCATION = 3 * BLOCK_ROWS * COLS * 8; // three blocks per allocation: the ingest rolls often

/**
 * A live input the way `anvil ingest --simulate` sees it under Ctrl-C: batches arrive, then the signal aborts
 * and the stream throws DATA_E_ABORTED while stores are still in flight. `settle` runs before the burst.
 */
async function* interrupted(
  ac: AbortController,
  settled: () => Promise<void>,
  before: number,
  burst: number,
): AsyncGenerator<RowBatch> {
  let t = 0;
  const batch = (): RowBatch => {
    const data = Float64Array.from({ length: BLOCK_ROWS * COLS }, (_, i) => t * 100 + i);
    t++;
    return { source: 's0', rows: BLOCK_ROWS, data };
  };
  for (let i = 0; i < before; i++) yield batch();
  await settled();
  for (let i = 0; i < burst; i++) yield batch(); // no waiting: these are in flight when the abort comes
  ac.abort();
  throw new DatasetError(DatasetErrorCode.ABORTED, 'the sensor stream was aborted');
}

describe('an aborted ingest', () => {
  let loop: LoopbackDepots;
  const tmp = tempDir();
  const client = new IbpClient({ timeoutMs: 5_000 });
  beforeAll(async () => {
    loop = await startLoopbackDepots(2);
  });
  afterAll(async () => {
    client.close();
    await loop.stop();
    tmp.cleanup();
  });

  it('without checkpoints has released every allocation by the time it rejects (stores in flight included)', async () => {
    const before = await usedBytes(client, loop.depots);
    const ac = new AbortController();
    const path = join(tmp.path, 'plain.xnd');
    const run = ingest(
      client,
      interrupted(ac, async () => undefined, 2, 12),
      {
        name: 'plain',
        cols: COLS,
        depots: loop.depots,
        copies: 2,
        blockRows: BLOCK_ROWS,
        allocationBytes: ALLOCATION,
        maxInflightBlocks: 64,
        path,
        signal: ac.signal,
      },
    );
    await expect(run).rejects.toMatchObject({ code: 'DATA_E_ABORTED' });
    expect(await usedBytes(client, loop.depots)).toEqual(before);
    expect(existsSync(path)).toBe(false);
  });

  it('with checkpoints keeps the last checkpoint exNode and exactly its allocations, names them, releases the rest', async () => {
    const before = await usedBytes(client, loop.depots);
    const ac = new AbortController();
    const path = join(tmp.path, 'live.xnd');
    let stored = 0;
    const settled = async () => {
      // Bounded: the first blocks are stored and checkpointed before the burst.
      for (let i = 0; i < 500 && !(stored >= 7 && existsSync(path)); i++) await new Promise((r) => setTimeout(r, 10));
    };
    const run = ingest(client, interrupted(ac, settled, 7, 12), {
      name: 'live',
      cols: COLS,
      depots: loop.depots,
      copies: 2,
      blockRows: BLOCK_ROWS,
      allocationBytes: ALLOCATION,
      maxInflightBlocks: 64,
      checkpointBlocks: 1,
      path,
      signal: ac.signal,
      onBlock: () => void stored++,
    });
    const err = (await run.then(
      () => undefined,
      (e: unknown) => e,
    )) as DatasetError;
    expect(err).toBeInstanceOf(DatasetError);
    expect(err.code).toBe('DATA_E_ABORTED');
    expect(existsSync(path)).toBe(true);
    const x = await readExnode(path);
    const kept = new Map<string, { depot: string; manage: string }>();
    for (const m of x.mappings) kept.set(m.manage!, { depot: m.read.split('/')[2]!, manage: m.manage! });
    expect(x.shape![0]).toBeGreaterThan(0);
    expect(err.message).toContain(
      `kept the checkpoint exNode ${path} (${x.shape![0]! / BLOCK_ROWS} blocks, ${x.shape![0]} rows)`,
    );
    expect(err.message).toContain(`its ${kept.size} allocations`);
    expect(err.details).toMatchObject({ checkpoint: path, keptAllocations: kept.size });
    // Exactly the allocations the exNode names are still held on each depot; nothing else is.
    const after = await usedBytes(client, loop.depots);
    const expected = loop.depots.map(
      (d, i) => before[i]! + [...kept.values()].filter((k) => k.depot === key(d)).length * ALLOCATION,
    );
    expect(after).toEqual(expected);
    // A second ingest to the same path is refused before any depot is contacted (the depot given does not
    // answer), so the kept allocations stay referenced by the checkpoint exNode, which is left as it was.
    const text = readFileSync(path, 'utf8');
    const again = ingest(client, [{ source: 's0', rows: 1, data: new Float64Array(COLS) }], {
      name: 'again',
      cols: COLS,
      depots: [{ host: '127.0.0.1', port: 1 }],
      path,
    });
    await expect(again).rejects.toMatchObject({ code: 'DATA_E_INVALID_ARGUMENT', details: { argument: 'path', value: path } });
    await expect(again).rejects.toThrow(`\`path\` ${path} already exists; the exNode there may reference live allocations`);
    expect(readFileSync(path, 'utf8')).toBe(text);
    expect(readdirSync(tmp.path).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(await usedBytes(client, loop.depots)).toEqual(after);
    // overwrite: true replaces it (atomically); the old exNode's allocations are then the caller's to release.
    const replaced = await ingest(client, [{ source: 's0', rows: BLOCK_ROWS, data: new Float64Array(BLOCK_ROWS * COLS) }], {
      name: 'replaced',
      cols: COLS,
      depots: loop.depots,
      blockRows: BLOCK_ROWS,
      path,
      overwrite: true,
    });
    expect((await readExnode(path)).name).toBe('replaced');
    expect(readdirSync(tmp.path).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    // They are the user's: releasing them empties the depots again.
    await Promise.all([...kept.keys(), ...replaced.exnode.mappings.map((m) => m.manage!)].map((m) => client.decr(m, 'read')));
    expect(await usedBytes(client, loop.depots)).toEqual(before);
  });
});
