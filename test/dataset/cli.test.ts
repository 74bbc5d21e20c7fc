import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IbpClient } from '../../framework/index.js';
import { openDataset, simulateSensorField, startLoopbackDepots, type LoopbackDepots } from '../../framework/dataset/index.js';
import { runCli as run } from '../helpers/run-cli.js';
import { tempDir } from '../helpers/temp-dir.js';

describe('anvil simulate and anvil ingest', () => {
  let loop: LoopbackDepots;
  const tmp = tempDir();
  const client = new IbpClient({ timeoutMs: 5_000 });
  const at = (f: string) => join(tmp.path, f);
  const sim = ['--seed', '3', '--sites', '2', '--sensors', '2', '--channels', '4', '--rows', '60', '--faults', 'garbage=0.25'];
  const field = simulateSensorField({
    seed: 3,
    sites: 2,
    sensorsPerSite: 2,
    channels: 4,
    rowsPerSensor: 60,
    faultRates: { garbage: 0.25 },
  });
  beforeAll(async () => {
    loop = await startLoopbackDepots(3);
  });
  afterAll(async () => {
    client.close();
    await loop.stop();
    tmp.cleanup();
  });
  const addr = (i: number) => `${loop.depots[i]!.host}:${loop.depots[i]!.port}`;

  it('simulate writes the rows (CSV with sources) and the ground truth', async () => {
    const r = await run('simulate', ...sim, '--with-source', '-o', at('field.csv'), '--truth', at('truth.json'));
    expect(r.code, r.err).toBe(0);
    const lines = readFileSync(at('field.csv'), 'utf8').trimEnd().split('\n');
    expect(lines).toHaveLength(4 * 60);
    const bySource = new Map<string, number[]>();
    for (const l of lines) {
      const [source, ...values] = l.split(',');
      bySource.set(source!, [...(bySource.get(source!) ?? []), ...values.map(Number)]);
    }
    for (const rows of field.rows) expect(Float64Array.from(bySource.get(rows.source)!)).toEqual(rows.data);
    const truth = JSON.parse(readFileSync(at('truth.json'), 'utf8')) as {
      faulty: unknown[];
      model: { subspace: number[] };
      clean: { rows: number };
    };
    expect(truth.faulty).toEqual(field.truth.faulty.map((f) => ({ ...f, endRow: null })));
    expect(truth.model.subspace).toEqual(Array.from(field.truth.subspace));
    expect(truth.clean.rows).toBe(3 * 60);
  });

  it('ingest --source-column routes each source to its site, with copies, and reports throughput', async () => {
    const r = await run(
      'ingest',
      '--input',
      at('field.csv'),
      '--source-column',
      '--site',
      `site-0=${addr(0)},${addr(1)}`,
      '--site',
      `site-1=${addr(1)},${addr(2)}`,
      '--copies',
      '2',
      '--block-rows',
      '16',
      '-o',
      at('field.xnd'),
      '--json',
    );
    expect(r.code, r.err).toBe(0);
    const report = JSON.parse(r.out) as Record<string, number>;
    expect(report).toMatchObject({ rows: 240, cols: 4, dtype: 'float64', name: 'field' });
    expect(report['rowsPerSec']).toBeGreaterThan(0);
    expect(report['mbPerSec']).toBeGreaterThan(0);
    const ds = await openDataset(at('field.xnd'));
    for (const b of ds.blocks) {
      const want = (b.source!.startsWith('site-0') ? [addr(0), addr(1)] : [addr(1), addr(2)]).sort();
      expect(b.replicas.map((x) => `${x.depot.host}:${x.depot.port}`).sort()).toEqual(want);
    }
    for (const rows of field.rows) {
      const mine = ds.blocks.filter((b) => b.source === rows.source);
      const bytes = Buffer.concat(
        await Promise.all(mine.map((b) => client.load(b.replicas[0]!.read, b.replicas[0]!.allocOffset, b.bytes))),
      );
      expect(bytes.equals(Buffer.from(rows.data.buffer))).toBe(true);
    }
  });

  it('simulate --format f32 piped into ingest --format f32 keeps the float32 bytes', async () => {
    expect((await run('simulate', ...sim, '--format', 'f32', '-o', at('field.f32'))).code).toBe(0);
    const r = await run(
      'ingest',
      '--input',
      at('field.f32'),
      '--format',
      'f32',
      '--cols',
      '4',
      '--dtype',
      'float32',
      '--depots',
      addr(2),
      '-o',
      at('f32.json'),
    );
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(
      /^ingested 240 rows × 4 float32 in 1 blocks, 1 allocations on 1 depot, 0\.00 MB stored in [\d.]+ s: \d+ rows\/s, [\d.]+ MB\/s → .*f32\.json\n$/,
    );
    const ds = await openDataset(at('f32.json'));
    const b = ds.blocks[0]!;
    expect(b.source).toBe(at('field.f32'));
    const bytes = await client.load(b.replicas[0]!.read, b.replicas[0]!.allocOffset, b.bytes);
    expect(bytes.equals(readFileSync(at('field.f32')))).toBe(true);
  });

  it('ingest --simulate stores the simulator directly', async () => {
    const r = await run(
      'ingest',
      '--simulate',
      ...sim,
      '--depots',
      `${addr(0)},${addr(2)}`,
      '--block-rows',
      '25',
      '-o',
      at('sim.xnd'),
      '--json',
    );
    expect(r.code, r.err).toBe(0);
    const ds = await openDataset(at('sim.xnd'));
    expect(ds.rows).toBe(240);
    expect(new Set(ds.blocks.map((b) => b.source))).toEqual(new Set(field.sources.map((s) => s.id)));
  });

  it('ingest -o EXISTING is refused before any depot is contacted unless --force', async () => {
    mkdirSync(at('existing'));
    const xnd = at('existing/live.xnd');
    writeFileSync(xnd, 'a checkpoint exNode naming live allocations');
    const args = ['ingest', '--simulate', ...sim, '--block-rows', '25', '-o', xnd];
    // The depot given does not answer: a refusal that came after contacting it would be another error.
    const r = await run(...args, '--depots', '127.0.0.1:1');
    expect(r.code).toBe(2);
    expect(r.err).toBe(
      `anvil: DATA_E_INVALID_ARGUMENT: invalid argument: \`path\` ${xnd} already exists; the exNode there may reference ` +
        'live allocations (an interrupted ingest with checkpoints keeps them), which nothing would reference once it is ' +
        'overwritten: give another path, or overwrite: true (anvil ingest --force) to replace it; nothing was stored\n',
    );
    expect(readFileSync(xnd, 'utf8')).toBe('a checkpoint exNode naming live allocations');
    expect(readdirSync(at('existing'))).toEqual(['live.xnd']);
    const forced = await run(...args, '--depots', addr(1), '--force');
    expect(forced.code, forced.err).toBe(0);
    expect((await openDataset(xnd)).rows).toBe(240);
    expect(readdirSync(at('existing'))).toEqual(['live.xnd']);
  });

  it('bad input fails with a precise DATA_E_PARSE line and leaves no exNode', async () => {
    writeFileSync(at('bad.csv'), '1,2,3\n4,5,six\n');
    const r = await run('ingest', '--input', at('bad.csv'), '--depots', addr(0), '-o', at('bad.xnd'));
    expect(r.code).toBe(2);
    expect(r.err).toBe(`anvil: DATA_E_PARSE: ${at('bad.csv')}: line 2, column 3: "six" is not a number\n`);
    expect(existsSync(at('bad.xnd'))).toBe(false);
    const raw = await run(
      'ingest',
      '--input',
      at('bad.csv'),
      '--format',
      'f64',
      '--cols',
      '4',
      '--depots',
      addr(0),
      '-o',
      at('bad.xnd'),
    );
    expect(raw.err).toBe(
      `anvil: DATA_E_PARSE: ${at('bad.csv')}: row 1: the input ends inside the row (14 of 32 bytes; 4 × float64)\n`,
    );
    const flags = await run('ingest', '--input', at('bad.csv'), '--depots', addr(0), '--copies', '2', '-o', at('bad.xnd'));
    expect(flags.err).toBe('anvil: DATA_E_INVALID_ARGUMENT: invalid argument: `--depots` has 1 depots, fewer than --copies 2\n');
  });

  it('an empty input (empty file, header-only CSV, empty raw file) fails with DATA_E_EMPTY_INPUT and leaves nothing', async () => {
    writeFileSync(at('empty.csv'), '');
    writeFileSync(at('header-only.csv'), 'a,b,c\n');
    const cases: [string, string[]][] = [
      [at('empty.csv'), []],
      [at('header-only.csv'), ['--header']],
      [at('empty.csv'), ['--cols', '3']],
      [at('empty.csv'), ['--format', 'f64', '--cols', '3']],
    ];
    for (const [input, extra] of cases) {
      const r = await run('ingest', '--input', input, ...extra, '--depots', addr(0), '-o', at('empty.xnd'));
      expect(r.code, r.err).toBe(2);
      expect(r.out).toBe('');
      expect(r.err).toBe(
        `anvil: DATA_E_EMPTY_INPUT: ${input}: the input has no rows; nothing was stored and no exNode was written\n`,
      );
      expect(existsSync(at('empty.xnd'))).toBe(false);
    }
  });

  it('an empty stdin fails with DATA_E_EMPTY_INPUT, exit 2, and no exNode', async () => {
    const bin = new URL('../../bin/anvil.js', import.meta.url).pathname;
    const child = spawn(process.execPath, [bin, 'ingest', '--depots', addr(0), '-o', at('stdin-empty.xnd')], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.stdin.end('');
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code, err).toBe(2);
    expect(err).toBe('anvil: DATA_E_EMPTY_INPUT: stdin: the input has no rows; nothing was stored and no exNode was written\n');
    expect(existsSync(at('stdin-empty.xnd'))).toBe(false);
  });

  // Spawns the built CLI (dist/, as npm test builds first) to read rows from a real stdin pipe.
  it('ingest reads CSV from stdin', async () => {
    const bin = new URL('../../bin/anvil.js', import.meta.url).pathname;
    const child = spawn(process.execPath, [bin, 'ingest', '--header', '--depots', addr(0), '-o', at('stdin.xnd'), '--json'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.stdin.end('a,b\r\n1,2\r\n\r\n3,4.5\r\n');
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code, err).toBe(0);
    expect(JSON.parse(out)).toMatchObject({ rows: 2, cols: 2 });
    const ds = await openDataset(at('stdin.xnd'));
    expect(ds.blocks[0]!.source).toBe('stdin');
    const bytes = await client.load(ds.blocks[0]!.replicas[0]!.read, 0, 32);
    expect(new Float64Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + 32))).toEqual(
      Float64Array.from([1, 2, 3, 4.5]),
    );
  });
});
