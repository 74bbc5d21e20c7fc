import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatValue } from '../../cli/format-value.js';
import { startDepot, type TestDepot } from '../helpers/depot-fixture.js';
import { spawnAnvil, type Ran } from '../helpers/spawn-cli.js';
import { tempDir } from '../helpers/temp-dir.js';

function anvil(args: readonly string[]): Promise<Ran> {
  return spawnAnvil(args, { timeoutMs: 60_000 });
}

describe('CLI messages a new user meets', () => {
  const dir = tempDir('anvil-cli-polish-');
  let depot: TestDepot;
  let deadPort: number;
  let file: string;
  const used = async () => (await depot.client.status(depot)).resources.reduce((s, r) => s + r.usedBytes, 0);
  beforeAll(async () => {
    depot = await startDepot({ resource: [{ rid: '1', capacityBytes: '64MiB', maxDurationSec: 100_000 }] });
    const gone = await startDepot();
    deadPort = gone.port;
    await gone.close();
    file = join(dir.path, 'in.bin');
    writeFileSync(file, randomBytes(50_000));
  });
  afterAll(async () => {
    await depot?.close();
    dir.cleanup();
  });

  it('usage errors print the command’s usage after the error, exit code 1 (docs/cli.md)', async () => {
    const unknown = await anvil(['upload', file, '--bogus']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^error: unknown option '--bogus'\n/);
    expect(unknown.stderr).toContain('Usage: anvil upload [options] <file>');
    const missing = await anvil(['run', 'pca', '--dataset', join(dir.path, 'x.xnd')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^error: required option '--rank <k>' not specified\n/);
    expect(missing.stderr).toContain('Usage: anvil run pca [options]');
  });

  it('simulate names the flag, not the option behind it', async () => {
    const r = await anvil(['simulate', '--rows', '-5']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('anvil: DATA_E_INVALID_ARGUMENT: invalid argument: --rows must be an integer ≥ 1 (got -5)\n');
    const s = await anvil(['simulate', '--sensors', '0', '-o', join(dir.path, 'never.csv')]);
    expect(s.stderr).toContain('--sensors must be');
    const b = await anvil(['simulate', '--batch', '0', '-o', join(dir.path, 'never.csv')]);
    expect(b.stderr).toContain('--batch must be');
    expect(existsSync(join(dir.path, 'never.csv'))).toBe(false);
  });

  it('upload -o s.txt is refused before anything is stored', async () => {
    const before = await used();
    const r = await anvil(['upload', file, '--depots', `${depot.host}:${depot.port}`, '-o', join(dir.path, 's.txt')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /^anvil: FW_ERR_INVALID_ARGUMENT: -o .*s\.txt: an exNode file name must end in \.xnd \(LoRS XML\) or \.json/,
    );
    expect(await used()).toBe(before);
    expect(existsSync(join(dir.path, 's.txt'))).toBe(false);
  });

  it('a failed download names the partial files it keeps and what they are for', async () => {
    const xnd = join(dir.path, 'f.xnd');
    const up = await anvil(['upload', file, '--depots', `${depot.host}:${depot.port}`, '--block-size', '10000', '-o', xnd]);
    expect(up.code, up.stderr).toBe(0);
    // Point the exNode at a depot that does not answer.
    const { readFileSync } = await import('node:fs');
    const dead = join(dir.path, 'dead.xnd');
    writeFileSync(dead, readFileSync(xnd, 'utf8').replaceAll(`:${depot.port}/`, `:${deadPort}/`));
    const out = join(dir.path, 'out.bin');
    const r = await anvil(['download', dead, '-o', out]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^anvil: FW_ERR_DOWNLOAD_FAILED: /);
    expect(r.stderr).toContain(`kept in ${out}.partial (with its progress in ${out}.partial.json)`);
    expect(r.stderr).toContain('the same download again resumes there');
  });

  it('job files: a JSON array, a missing dataset', async () => {
    const arr = join(dir.path, 'arr.json');
    writeFileSync(arr, '[1,2]');
    const a = await anvil(['run', arr]);
    expect(a.code).toBe(2);
    expect(a.stderr).toContain('it must hold a JSON object');
    expect(a.stderr).toContain('not an array');
    const none = join(dir.path, 'none.json');
    writeFileSync(none, '{"job":{"kind":"gram"}}');
    const n = await anvil(['run', none]);
    expect(n.code).toBe(2);
    expect(n.stderr).toContain('`dataset` must be an exNode path string ("data.xnd")');
  });

  it('ingest to an unreachable depot says why', async () => {
    const csv = join(dir.path, 'rows.csv');
    writeFileSync(csv, '1,2\n3,4\n');
    const r = await anvil(['ingest', '--depots', `127.0.0.1:${deadPort}`, '--input', csv, '-o', join(dir.path, 'h.xnd')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`127.0.0.1:${deadPort}: cannot connect`);
    expect(r.stderr).toContain('ECONNREFUSED');
  });
});

describe('formatValue', () => {
  it('prints a matrix as rows with its shape, a vector on one line', () => {
    expect(formatValue(Float64Array.from([1, 2, 3, 4]), 2)).toBe('value (2 × 2):\n  1.00000 2.00000\n  3.00000 4.00000\n');
    expect(formatValue(Float64Array.from([1, -2]), 2)).toBe('value: 1.00000 -2.00000\n');
    expect(formatValue(Float64Array.from([10, -2, 3, 4, 5, 6]), 3)).toBe(
      'value (2 × 3):\n   10.0000 -2.00000  3.00000\n   4.00000  5.00000  6.00000\n',
    );
  });
});
