import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IbpClient, readExnode } from '../../framework/index.js';
import { ingest, startLoopbackDepots, type LoopbackDepots } from '../../framework/dataset/index.js';
import { runCli as run } from '../helpers/run-cli.js';
import { tempDir } from '../helpers/temp-dir.js';

describe('anvil ingest: where the data goes, and its output file', () => {
  let loop: LoopbackDepots;
  const tmp = tempDir('anvil-cli-ingest-');
  const client = new IbpClient({ timeoutMs: 5_000 });
  const at = (f: string) => join(tmp.path, f);
  const csv = at('rows.csv');
  const list = () => loop.depots.map((d) => `${d.host}:${d.port}`).join(',');
  /** Bytes reserved over all the depots. */
  const used = async () => {
    let total = 0;
    for (const d of loop.depots) total += (await client.status(d)).resources.reduce((s, r) => s + r.usedBytes, 0);
    return total;
  };

  beforeAll(async () => {
    loop = await startLoopbackDepots(3);
    // 5 blocks of 100 rows × 4 columns.
    const lines = Array.from({ length: 500 }, (_, i) => `${i},${i % 7},${(i * 3) % 11},${i % 2}`);
    writeFileSync(csv, `${lines.join('\n')}\n`);
  }, 60_000);
  afterAll(async () => {
    client.close();
    await loop.stop();
    tmp.cleanup();
  });

  it('several --depots: the blocks are spread over all of them, round robin, and the summary says so', async () => {
    const out = at('spread.xnd');
    const r = await run('ingest', '--depots', list(), '--input', csv, '--block-rows', '100', '-o', out);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^ingested 500 rows × 4 float64 in 5 blocks, 3 allocations on 3 depots, /);
    const x = await readExnode(out);
    const where = [...x.mappings]
      .sort((a, b) => a.exnodeOffset - b.exnodeOffset)
      .map((m) => loop.depots.findIndex((d) => m.read.includes(`//${d.host}:${d.port}/`)));
    expect(where).toEqual([0, 1, 2, 0, 1]);
    const json = await run('ingest', '--depots', list(), '--input', csv, '--block-rows', '100', '-o', at('s.json'), '--json');
    expect(JSON.parse(json.out)).toMatchObject({ blocks: 5, allocations: 3, depots: 3 });
  });

  it('with --copies 2 over 3 depots every block has copies on 2 distinct depots and every depot holds some', async () => {
    const out = at('copies.xnd');
    const r = await run('ingest', '--depots', list(), '--input', csv, '--block-rows', '100', '--copies', '2', '-o', out);
    expect(r.code, r.err).toBe(0);
    const x = await readExnode(out);
    const depotOf = (read: string) => /\/\/([^/]+)\//.exec(read)![1]!;
    const byBlock = new Map<number, Set<string>>();
    for (const m of x.mappings) byBlock.set(m.exnodeOffset, (byBlock.get(m.exnodeOffset) ?? new Set()).add(depotOf(m.read)));
    expect(byBlock.size).toBe(5);
    for (const holders of byBlock.values()) expect(holders.size).toBe(2);
    expect(new Set(x.mappings.map((m) => depotOf(m.read))).size).toBe(3);
  });

  it('-o into a missing directory is refused before anything is stored', async () => {
    const before = await used();
    const out = at('missing/x.xnd');
    const r = await run('ingest', '--depots', list(), '--input', csv, '--block-rows', '100', '-o', out);
    expect(r.code).toBe(2);
    expect(r.err).toBe(
      `anvil: DATA_E_INVALID_ARGUMENT: invalid argument: -o ${out}: directory ${at('missing')} does not exist; nothing was stored\n`,
    );
    expect(await used()).toBe(before);
    // The library refuses it too, before storing.
    const rows = [{ source: 's', rows: 1, data: Float64Array.from([1, 2]) }];
    await expect(ingest(client, rows, { name: 'x', cols: 2, depots: loop.depots, path: out })).rejects.toMatchObject({
      code: 'DATA_E_INVALID_ARGUMENT',
      message: `invalid argument: \`path\` ${out}: directory ${at('missing')} does not exist; nothing was stored`,
    });
    expect(await used()).toBe(before);
  });

  it('-o must name a .xnd or .json file, as upload', async () => {
    const before = await used();
    const out = at('x.txt');
    const r = await run('ingest', '--depots', list(), '--input', csv, '-o', out);
    expect(r.code).toBe(2);
    expect(r.err).toBe(
      `anvil: DATA_E_INVALID_ARGUMENT: invalid argument: -o ${out}: an exNode file name must end in .xnd (LoRS XML) or .json (UNIS JSON); nothing was stored\n`,
    );
    expect(await used()).toBe(before);
    expect(readdirSync(tmp.path)).not.toContain('x.txt');
  });
});
