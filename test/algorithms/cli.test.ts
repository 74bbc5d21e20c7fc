import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IbpClient, ingest, startLoopbackDepots, type LoopbackDepots } from '../../framework/index.js';
import { normals } from '../../nfu-kernels/index.js';
import { tempDir } from '../helpers/temp-dir.js';

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
});
