import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IbpClient, ingest, startLoopbackDepots, type DepotAddress, type LoopbackDepots } from '../../framework/index.js';
import { normals } from '../../nfu-kernels/index.js';
import { ANVIL_BIN as BIN, spawnAnvil, type Ran } from '../helpers/spawn-cli.js';
import { tempDir } from '../helpers/temp-dir.js';

function anvil(args: readonly string[]): Promise<Ran> {
  return spawnAnvil(args, { timeoutMs: 120_000 });
}

/** The sensor-field shape of the docs: 8 channels, 3 sources. */
function field(n: number, d: number): Float64Array {
  const A = new Float64Array(n * d);
  normals(8, 1, 0, 0, A);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) A[i * d + j]! *= j === 0 ? 10 : j === 1 ? 5 : j === 2 ? 2 : 0.1;
    A[i * d + 7] = 2 * A[i * d]! - A[i * d + 1]! + 0.01 * A[i * d + 7]!;
  }
  return A;
}

describe('anvil run on an 8-channel dataset: defaults, depot space, reasons', () => {
  const tmp = tempDir('anvil-run-cli-');
  let depots: LoopbackDepots;
  const client = new IbpClient({ timeoutMs: 10_000 });
  const path = join(tmp.path, 'field.xnd');
  const reliability = join(tmp.path, 'reliability.json');
  const n = 1200;
  const d = 8;
  const used = async (list: readonly DepotAddress[] = depots.depots): Promise<number> => {
    let total = 0;
    for (const a of list) total += (await client.status(a)).resources.reduce((s, r) => s + r.usedBytes, 0);
    return total;
  };
  beforeAll(async () => {
    depots = await startLoopbackDepots(3, { capacity: '16MiB' });
    const A = field(n, d);
    const batches = [0, 1, 2].map((s) => ({ source: `site/s${s}`, data: A.subarray(s * 400 * d, (s + 1) * 400 * d), rows: 400 }));
    await ingest(client, batches, { name: 'field', cols: d, depots: depots.depots, copies: 2, blockRows: 100, path });
  }, 60_000);
  afterAll(async () => {
    client.close();
    await depots?.stop();
    tmp.cleanup();
  });

  it('trace works with its defaults on 8 columns (exact), and --matvecs too few says what to choose', async () => {
    const r = await anvil(['run', 'trace', '--dataset', path, '--json', '--reliability', reliability]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const e = JSON.parse(r.stdout.trim());
    expect(e.blocksMissing).toBe(0);
    expect(e.method).toMatch(/^exact/);
    expect(e.value.trace).toBeGreaterThan(0);
    const hutch = await anvil(['run', 'trace', '--dataset', path, '--matvecs', '6', '--reliability', reliability]);
    expect(hutch.code).toBe(2);
    expect(hutch.stderr).toContain('COORD_E_INVALID_ARGUMENT');
    expect(hutch.stderr).toContain('at least 8 (the number of columns) for the exact trace');
    const bad = await anvil(['run', 'trace', '--dataset', path, '--matvecs', 'x', '--reliability', reliability]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--matvecs must be an integer');
  }, 120_000);

  it('fd, pca and least-squares leave no state allocations at the depots', async () => {
    const before = await used();
    for (const args of [
      ['fd', '--sketch-rows', '4'],
      ['pca', '--rank', '2', '--seed', '3'],
      ['least-squares', '--seed', '3'],
    ]) {
      const r = await anvil(['run', ...args, '--dataset', path, '--json', '--reliability', reliability]);
      expect(r.code, r.stderr).toBe(0);
      expect(await used()).toBe(before);
    }
  }, 120_000);

  it('pca --seed gives the same bits run after run (the history changing between runs)', async () => {
    const outs: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await anvil([
        'run',
        'pca',
        '--rank',
        '3',
        '--seed',
        '3',
        '--dataset',
        path,
        '--json',
        '--reliability',
        reliability,
      ]);
      expect(r.code, r.stderr).toBe(0);
      const e = JSON.parse(r.stdout.trim());
      expect(e.blocksMissing).toBe(0);
      outs.push(JSON.stringify([e.epsilon, e.value.singularValues, e.value.components, e.value.singularValueUpper]));
    }
    expect(new Set(outs).size).toBe(1);
  }, 120_000);

  it('Ctrl-C releases the state too; missing blocks are explained per depot', async () => {
    const live = depots.depots.slice(0, 2);
    const before = await used(live);
    depots.pause(2);
    try {
      const child = spawn(
        process.execPath,
        [BIN, 'run', 'pca', '--rank', '2', '--dataset', path, '--timeout', '8s', '--reliability', reliability],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      // Wait (bounded) until the run holds state at the live depots, then interrupt it.
      for (let i = 0; i < 200 && (await used(live)) === before; i++) await new Promise((r) => setTimeout(r, 50));
      expect(await used(live)).toBeGreaterThan(before);
      child.kill('SIGINT');
      const code = await exited;
      expect(code).toBe(2);
      expect(stderr).toContain('interrupted');
      expect(await used(live)).toBe(before);
    } finally {
      depots.resume(2);
    }
    // A depot that does not answer: its blocks' other replicas answer; with both replicas down, the reason is named.
    depots.pause(1);
    depots.pause(2);
    try {
      const r = await anvil([
        'run',
        'pca',
        '--rank',
        '2',
        '--dataset',
        path,
        '--json',
        '--timeout',
        '1s',
        '--reliability',
        reliability,
      ]);
      expect(r.code, r.stderr).toBe(0);
      const e = JSON.parse(r.stdout.trim());
      expect(e.blocksMissing).toBeGreaterThan(0);
      expect(r.stderr).toMatch(
        /missing blocks:\n {2}range: blocks? [\d, …()]+ not answered by 127\.0\.0\.1:\d+: no answer within the op timeout/,
      );
      expect(e.missingReasons.length).toBeGreaterThan(0);
      expect(e.missingReasons[0]).toMatchObject({ round: 'range' });
    } finally {
      depots.resume(1);
      depots.resume(2);
    }
  }, 120_000);
});
