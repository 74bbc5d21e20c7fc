import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IbpClient } from '../../ibp/index.js';
import { summaryToJson } from '../../framework/estimation/index.js';
import { ingest, type Dataset } from '../../framework/dataset/index.js';
import { startLoopbackDepots, type LoopbackDepots } from '../../framework/dataset/loopback-depots.js';
import { tempDir } from '../helpers/temp-dir.js';
import { blockData, exact, maxAbsDiff } from './fixtures.js';

const BIN = fileURLToPath(new URL('../../bin/anvil.js', import.meta.url));
const COLS = 4;
const ROWS = 25;

/** Runs `anvil ARGS` to its end (bounded), with its output. */
function anvil(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`anvil ${args.join(' ')} did not end: ${out}${err}`));
    }, 30_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

/** The inline dataset of a job file (docs/coordinator.md). */
function inlineDataset(ds: Dataset): unknown {
  return {
    name: ds.name,
    dtype: ds.dtype,
    cols: ds.cols,
    blocks: ds.blocks.map((b) => ({
      replicas: b.replicas.map((r) => ({ read: r.read, allocOffset: r.allocOffset })),
      summary: summaryToJson(b.summary!),
      source: b.source,
    })),
  };
}

describe('anvil run and anvil reliability', () => {
  const dir = tempDir('anvil-coord-cli-');
  let depots: LoopbackDepots;
  let client: IbpClient;
  let dataset: Dataset;
  const data = blockData(6, ROWS, COLS, 17);
  const truth = exact(data, COLS);
  const history = (): string => join(dir.path, 'reliability.json');

  beforeAll(async () => {
    depots = await startLoopbackDepots(2, { capacity: '16MiB' });
    client = new IbpClient({ timeoutMs: 5_000 });
    // Six blocks from two sources, written with an exNode that records summaries and sources.
    const batches = data.map((d, i) => ({ source: `site-${i % 2}/sensor-${i % 2}`, rows: ROWS, data: d }));
    const result = await ingest(client, batches, {
      name: 'cli-field',
      cols: COLS,
      depots: depots.depots,
      blockRows: ROWS,
      path: join(dir.path, 'field.xnd'),
    });
    dataset = result.dataset;
  }, 30_000);
  afterAll(async () => {
    client?.close();
    await depots?.stop();
    dir.cleanup();
  });

  it('a job none of whose blocks answer exits non-zero with COORD_E_COVERAGE naming the depot and why', async () => {
    // A port nothing listens on: every replica is refused.
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const inline = inlineDataset(dataset) as { blocks: { replicas: { read: string }[] }[] };
    for (const b of inline.blocks)
      for (const r of b.replicas) r.read = r.read.replace(/^ibp:\/\/[^/]+\//, `ibp://127.0.0.1:${port}/`);
    for (const kind of ['covariance', 'column-means']) {
      const job = join(dir.path, `dead-${kind}.json`);
      writeFileSync(job, JSON.stringify({ job: { kind }, opTimeoutMs: 5_000, dataset: inline }));
      const r = await anvil(['run', job, '--reliability', join(dir.path, 'dead-history.json')]);
      expect(r.code, r.out).toBe(2);
      expect(r.out).not.toContain('value');
      expect(r.err).toContain(`COORD_E_COVERAGE: ${kind}: 0 of 6 blocks answered`);
      expect(r.err).toMatch(new RegExp(`127\\.0\\.0\\.1:${port}: 6 failure \\(last: .*ECONNREFUSED`));
    }
  });

  it('runs an inline job with --json: the column means equal the exact ones', async () => {
    const job = join(dir.path, 'inline.json');
    writeFileSync(job, JSON.stringify({ job: { kind: 'column-means' }, opTimeoutMs: 5_000, dataset: inlineDataset(dataset) }));
    const r = await anvil(['run', job, '--json', '--reliability', history()]);
    expect(r.code, r.err).toBe(0);
    const e = JSON.parse(r.out.trim().split('\n').at(-1)!) as { value: number[]; coverage: number; final: boolean };
    expect(e.final).toBe(true);
    expect(e.coverage).toBe(1);
    expect(maxAbsDiff(e.value, truth.means)).toBeLessThan(1e-12);
  });

  it('runs a job whose dataset is an exNode path (relative to the job file), with the progress line', async () => {
    const job = join(dir.path, 'exnode.json');
    writeFileSync(job, JSON.stringify({ job: { kind: 'gram' }, dataset: 'field.xnd' }));
    const r = await anvil(['run', job, '--reliability', history()]);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/final: blocks 6\/6 answered, 0 missing \| ε [0-9.e+-]+ \(spectral\)/);
    // The d × d Gram prints as its shape and one line per row.
    expect(r.out).toContain(`value (${Math.sqrt(truth.gram.length)} × ${Math.sqrt(truth.gram.length)}):`);
    const values = r.out
      .split('\n')
      .filter((l) => /^ +[-0-9]/.test(l))
      .flatMap((l) => l.trim().split(/ +/))
      .map(Number);
    expect(maxAbsDiff(values, truth.gram)).toBeLessThan(1e-5 * Math.max(...truth.gram));
    const json = join(dir.path, 'exnode-object.json');
    writeFileSync(json, JSON.stringify({ job: { kind: 'column-sums' }, dataset: { exnode: 'field.xnd' } }));
    const r2 = await anvil(['run', json, '--json', '--reliability', history()]);
    expect(r2.code, r2.err).toBe(0);
    expect(maxAbsDiff((JSON.parse(r2.out) as { value: number[] }).value, truth.sums)).toBeLessThan(1e-9);
  });

  it('refuses a malformed job file or a missing exNode with COORD_E_INVALID_ARGUMENT naming the field', async () => {
    const bad = join(dir.path, 'bad.json');
    writeFileSync(bad, JSON.stringify({ job: { kind: 'column-means' }, dataset: { dtype: 'int8', cols: 2, blocks: [] } }));
    const r = await anvil(['run', bad, '--json', '--reliability', history()]);
    expect(r.code).toBe(2);
    expect(r.err).toContain('COORD_E_INVALID_ARGUMENT');
    expect(r.err).toContain('dataset.dtype');
    const missing = join(dir.path, 'missing.json');
    writeFileSync(missing, JSON.stringify({ job: { kind: 'gram' }, dataset: 'nowhere.xnd' }));
    const m = await anvil(['run', missing, '--reliability', history()]);
    expect(m.code).toBe(2);
    expect(m.err).toContain('COORD_E_INVALID_ARGUMENT');
    expect(m.err).toContain('nowhere.xnd');
  });

  it('anvil reliability lists depots and sources apart (sources are not depots)', async () => {
    const r = await anvil(['reliability', '--json', '--file', history()]);
    expect(r.code, r.err).toBe(0);
    const report = JSON.parse(r.out) as {
      depots: { id: string; answers: number }[];
      sources: { id: string; answers: number; failures: number; p: number }[];
    };
    const ids = depots.depots.map((d) => `${d.host}:${d.port}`).sort();
    expect(report.depots.map((d) => d.id).sort()).toEqual(ids);
    for (const d of report.depots) expect(d.answers).toBeGreaterThan(0);
    expect(report.sources.map((s) => s.id)).toEqual(['site-0/sensor-0', 'site-1/sensor-1']);
    // Three runs of six blocks, three blocks per source each time.
    for (const s of report.sources) {
      expect(s.answers).toBeCloseTo(9, 2);
      expect(s.failures).toBe(0);
      expect(s.p).toBeGreaterThan(0.8);
    }
    const table = await anvil(['reliability', '--file', history()]);
    expect(table.code, table.err).toBe(0);
    expect(table.out).not.toContain('source:');
    expect(table.out).toMatch(/^depot +answers/m);
    expect(table.out).toMatch(/^source +answers +failures +p +quality_weight/m);
    expect(table.out).toMatch(/^site-0\/sensor-0 +9 +0 /m);
  });
});
