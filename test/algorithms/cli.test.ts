import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { existsSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IbpClient, ingest, startLoopbackDepots, type LoopbackDepots } from '../../framework/index.js';
import { normals } from '../../nfu-kernels/index.js';
import { tempDir } from '../helpers/temp-dir.js';
import { formatProbability } from '../../cli/format-value.js';

const run = promisify(execFile);
const BIN = new URL('../../bin/anvil.js', import.meta.url).pathname;

function anvil(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return run(process.execPath, [BIN, ...args], { timeout: 120_000 }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number | null; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}

describe('anvil run pca|least-squares|fd … --dataset EXNODE', () => {
  const tmp = tempDir('anvil-alg-cli-');
  let depots: LoopbackDepots;
  const client = new IbpClient({ timeoutMs: 10_000 });
  const path = join(tmp.path, 'data.xnd');
  const reliability = join(tmp.path, 'reliability.json');
  const n = 1200;
  const d = 8;
  beforeAll(async () => {
    depots = await startLoopbackDepots(3, { capacity: '16MiB' });
    // Three strong directions (σ ≈ 10, 5, 2 per row) plus small noise; column 7 = 2·col0 − col1 + noise (a regression target).
    const A = new Float64Array(n * d);
    normals(3, 1, 0, 0, A);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < d; j++) A[i * d + j]! *= j === 0 ? 10 : j === 1 ? 5 : j === 2 ? 2 : 0.1;
      A[i * d + 7] = 2 * A[i * d]! - A[i * d + 1]! + 0.01 * A[i * d + 7]!;
    }
    // Blocks appended into shared allocations (offsets > 0), three sources.
    const batches = [0, 1, 2].map((s) => ({ source: `site/s${s}`, data: A.subarray(s * 400 * d, (s + 1) * 400 * d), rows: 400 }));
    await ingest(client, batches, {
      name: 'cli',
      cols: d,
      depots: depots.depots,
      blockRows: 100,
      allocationBytes: 3 * 100 * d * 8,
      path,
    });
  }, 60_000);
  afterAll(async () => {
    client.close();
    await depots?.stop();
    tmp.cleanup();
  });

  it('pca prints the components, explained variance and the bound; --json gives the estimate', async () => {
    const text = await anvil(['run', 'pca', '--dataset', path, '--rank', '3', '--seed', '1', '--reliability', reliability]);
    expect(text.stderr).toBe('');
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/explained variance ratio: /);
    expect(text.stdout).toMatch(/bound: ε [\d.e+-]+ \(spectral\)/);
    expect(text.stdout).toMatch(/component 1: σ ∈ \[/);
    const json = await anvil([
      'run',
      'pca',
      '--dataset',
      path,
      '--rank',
      '3',
      '--seed',
      '1',
      '--json',
      '--deadline',
      '20s',
      '--reliability',
      reliability,
    ]);
    const e = JSON.parse(json.stdout.trim().split('\n').at(-1)!);
    expect(e.final).toBe(true);
    expect(e.blocksMissing).toBe(0);
    expect(e.value.rank).toBe(3);
    // Column 0 dominates the first component (it and column 7 = 2·col0 − col1).
    const ratio: number[] = e.value.explainedVarianceRatio;
    expect(ratio[0]).toBeGreaterThan(0.5);
    expect(e.bytesMoved).toBeGreaterThan(0);
  }, 120_000);

  it('least-squares recovers the coefficients; fd and trace run', async () => {
    const ls = JSON.parse(
      (await anvil(['run', 'least-squares', '--dataset', path, '--json', '--reliability', reliability])).stdout,
    );
    const x: number[] = ls.value.coefficients;
    expect(x[0]).toBeCloseTo(2, 2);
    expect(x[1]).toBeCloseTo(-1, 2);
    const fd = await anvil(['run', 'fd', '--dataset', path, '--sketch-rows', '6', '--reliability', reliability]);
    expect(fd.code).toBe(0);
    expect(fd.stdout).toMatch(/1200 rows absorbed/);
    const bad = await anvil(['run', 'pca', '--dataset', path, '--rank', '0']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/COORD_E_INVALID_ARGUMENT/);
  }, 120_000);

  it('says what ε is for each algorithm; narrow spectral norm is tight; trace --power 1 never reports the column count', async () => {
    const r = ['--reliability', reliability, '--seed', '1'];
    const pcaText = await anvil(['run', 'pca', '--dataset', path, '--rank', '3', ...r]);
    expect(pcaText.stdout).toMatch(/bound: ε [\d.e+-]+ \(spectral\), δ 0; ε = ‖A − AVVᵀ‖₂ from the whole Gram/);
    expect(pcaText.stdout).not.toMatch(/\[sampling ε/);
    const sn = await anvil(['run', 'spectral-norm', '--dataset', path, ...r]);
    expect(sn.code).toBe(0);
    const m = /σ₁ ([\d.e+-]+) ∈ \[([\d.e+-]+), ([\d.e+-]+)\]/.exec(sn.stdout)!;
    // 4 significant digits printed: the interval (exact up to rounding) prints as one value.
    expect(m[2]).toBe(m[1]);
    expect(m[3]).toBe(m[1]);
    expect(sn.stdout).toMatch(/ε = max\(σ̂₁ − lower, upper − σ̂₁\)/);
    // Two different "ranks": each output names its definition.
    expect(sn.stdout).toMatch(/stable rank ‖A‖_F²\/σ₁² [\d.e+-]+ \(uncentred A\)/);
    expect(sn.stdout).not.toMatch(/effective rank/);
    const t1 = await anvil(['run', 'trace', '--dataset', path, '--power', '1', ...r]);
    expect(t1.code).toBe(0);
    const t2 = await anvil(['run', 'trace', '--dataset', path, '--power', '2', ...r]);
    const er1 = /effective rank \(tr C\)²\/tr\(C²\) ([\d.e+-]+)/.exec(t1.stdout)![1];
    const er2 = /effective rank \(tr C\)²\/tr\(C²\) ([\d.e+-]+)/.exec(t2.stdout)![1];
    expect(er1).toBe(er2);
    expect(t2.stdout).toMatch(/effective rank \(tr C\)²\/tr\(C²\) [\d.e+-]+ \(C the centred covariance\)/);
    expect(Number(er1)).toBeLessThan(d);
    expect(t1.stdout).toMatch(/ε = rounding only/);
    const fd = await anvil(['run', 'fd', '--dataset', path, '--sketch-rows', '6', ...r]);
    expect(fd.stdout).toMatch(/ε = shrinkage Δ \+ missing blocks' Gram norms = [\d.e+-]+ \+ 0\.000/);
    const ls = await anvil(['run', 'least-squares', '--dataset', path, ...r]);
    expect(ls.stdout).toMatch(/ε = min\(objective bound, solve \+ sampling\) = /);
    expect(ls.stdout).toMatch(/residual norm [\d.e+-]+ \(all rows\), /);
  }, 240_000);

  it('an empty input: the run ends with exit 2 and a stable code naming the empty dataset', async () => {
    const csv = join(tmp.path, 'empty.csv');
    writeFileSync(csv, '');
    const empty = join(tmp.path, 'empty.xnd');
    const dep = depots.depots.map((x) => `${x.host}:${x.port}`).join(',');
    await anvil(['ingest', '--input', csv, '--cols', '1', '--depots', dep, '-o', empty]);
    for (const args of [['pca', '--rank', '1'], ['fd'], ['trace', '--power', '1'], ['least-squares'], ['spectral-norm']]) {
      const out = await anvil(['run', ...args, '--dataset', empty, '--reliability', reliability]);
      // An ingest that refuses the empty input is as good: then there is no exNode to run on.
      expect(out.code).toBe(2);
      if (out.stderr.includes('COORD_E'))
        expect(out.stderr).toMatch(/COORD_E_INVALID_ARGUMENT: invalid argument: the dataset "[^"]*" is empty \(0 rows/);
      expect(out.stderr).not.toMatch(/planned/);
      expect(out.stdout).toBe('');
    }
    // A job file naming the empty exNode.
    const job = join(tmp.path, 'empty-job.json');
    writeFileSync(job, JSON.stringify({ dataset: 'empty.xnd', job: { kind: 'column-means' } }));
    const out = await anvil(['run', job, '--reliability', reliability]);
    expect(out.code).toBe(2);
    // Without an exNode (the ingest refused the empty input) the job file names a file that cannot be read.
    expect(out.stderr).toMatch(
      existsSync(empty)
        ? /COORD_E_INVALID_ARGUMENT: invalid argument: the dataset "[^"]*" is empty \(0 rows/
        : /COORD_E_INVALID_ARGUMENT: cannot read the dataset exNode .*empty\.xnd/,
    );
  }, 240_000);

  it('prints δ rounded', () => {
    expect(formatProbability(0.05 + 0.01)).toBe('0.06');
    expect(formatProbability(0.025)).toBe('0.025');
    expect(formatProbability(0)).toBe('0');
    expect(formatProbability(1e-7)).toBe('1e-7');
  });
});
