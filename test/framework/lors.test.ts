import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  IbpClient,
  ManualClock,
  Warmer,
  blocksOf,
  depotKey,
  download,
  parsePolicy,
  readExnode,
  statMappings,
  upload,
  writeExnode,
  type DepotAddress,
  type Exnode,
} from '../../framework/index.js';
import { DepotProcess } from '../helpers/depot-process.js';
import { tempDir } from '../helpers/temp-dir.js';

const run = promisify(execFile);
const BIN = new URL('../../bin/anvil.js', import.meta.url).pathname;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('files over depots: 4 depot processes on loopback', () => {
  const dir = tempDir('anvil-lors-');
  const depots: Array<{ proc: DepotProcess } & DepotAddress> = [];
  let client: IbpClient;
  let file: string;
  let data: Buffer;
  let exnode: Exnode;
  const BLOCK = 256 * 1024;

  beforeAll(async () => {
    for (const r of await Promise.all([0, 1, 2, 3].map(() => DepotProcess.start(['--port', '0', '--log-level', 'warn']))))
      depots.push(r);
    client = new IbpClient({ timeoutMs: 15_000, connectTimeoutMs: 2_000 });
    data = randomBytes(5 * 1024 * 1024 + 12_345);
    file = join(dir.path, 'input.bin');
    writeFileSync(file, data);
  });
  afterAll(async () => {
    client.close();
    await Promise.all(depots.map((d) => (d.proc.child.exitCode === null ? d.proc.kill('SIGTERM') : undefined)));
    dir.cleanup();
  });

  it('uploads with copies=2: every block on two distinct depots, striped over all four', async () => {
    let stored = 0;
    exnode = await upload(client, file, {
      depots,
      blockSize: BLOCK,
      copies: 2,
      threads: 4,
      durationSec: 600,
      onProgress: (n) => (stored += n),
    });
    const blocks = blocksOf(exnode);
    expect(blocks).toHaveLength(Math.ceil(data.length / BLOCK));
    for (const b of blocks) expect(new Set(b.replicas.map(depotKey)).size).toBe(2);
    expect(new Set(exnode.mappings.map(depotKey)).size).toBe(4);
    expect(stored).toBe(2 * data.length);
    await writeExnode(join(dir.path, 'input.xnd'), exnode);
  });

  it('a resumed download fetches only the blocks it lacks and gives the identical file', async () => {
    const out = join(dir.path, 'resumed.bin');
    const abort = new AbortController();
    let first = 0;
    await expect(
      download(client, exnode, out, {
        threads: 2,
        signal: abort.signal,
        onFetch: () => {
          if (++first === 6) abort.abort(new Error('interrupted'));
        },
      }),
    ).rejects.toThrow('interrupted');
    expect(existsSync(out)).toBe(false);
    expect(existsSync(`${out}.partial.json`)).toBe(true);
    let second = 0;
    const r = await download(client, exnode, out, { threads: 4, onFetch: () => second++ });
    const blocks = blocksOf(exnode).length;
    expect(r.blocksResumed).toBeGreaterThanOrEqual(4);
    expect(r.blocksFetched).toBe(blocks - r.blocksResumed);
    expect(second).toBe(blocks - r.blocksResumed); // no failovers: every fetch was a needed block
    expect(sha(readFileSync(out))).toBe(sha(data));
    expect(existsSync(`${out}.partial.json`)).toBe(false);
  });

  it('with one depot killed, download still gives the same bytes (fails over to the other replica)', async () => {
    await depots[1]!.proc.kill('SIGKILL');
    const out = join(dir.path, 'after-kill.bin');
    const r = await download(client, exnode, out, { threads: 4 });
    expect(r.failovers).toBeGreaterThan(0);
    expect(sha(readFileSync(out))).toBe(sha(data));
  });

  it('the warmer trims the dead mappings and restores 2 copies per block within a bounded time', async () => {
    const live = depots.filter((_, i) => i !== 1).map((d) => `${d.host}:${d.port}`);
    const policy = parsePolicy({
      sites: { loopback: [...live, `${depots[1]!.host}:${depots[1]!.port}`] },
      copiesPerSite: 2,
      leaseAheadSec: 60,
      leaseDurationSec: 600,
      trimUnreachable: true,
    });
    const warmer = new Warmer(client, policy);
    const started = Date.now();
    const report = await warmer.pass(dir.path);
    expect(Date.now() - started).toBeLessThan(20_000);
    const lost = exnode.mappings.filter((m) => depotKey(m) === `${depots[1]!.host}:${depots[1]!.port}`).length;
    expect(report).toMatchObject({ exnodes: 1, trimmed: lost, replicated: lost, underReplicated: 0 });
    const warmed = await readExnode(join(dir.path, 'input.xnd'));
    const status = await statMappings(client, warmed);
    expect(status.every((s) => s.alive)).toBe(true);
    for (const b of blocksOf(warmed)) expect(new Set(b.replicas.map(depotKey)).size).toBe(2);
    const out = join(dir.path, 'after-warm.bin');
    await download(client, warmed, out);
    expect(sha(readFileSync(out))).toBe(sha(data));
    expect((await warmer.metrics.registry.getSingleMetricAsString('anvil_warmer_replicas_created_total')).trim()).toMatch(
      new RegExp(`anvil_warmer_replicas_created_total ${lost}$`),
    );
  });

  it('renews leases before they expire, judged on the warmer clock (virtual time)', async () => {
    const path = join(dir.path, 'input.xnd');
    const x = await readExnode(path);
    const policy = parsePolicy({
      sites: { loopback: depots.filter((_, i) => i !== 1).map((d) => `${d.host}:${d.port}`) },
      copiesPerSite: 2,
      leaseAheadSec: 120,
      leaseDurationSec: 3000,
    });
    const latestEnd = Math.max(...x.mappings.map((m) => m.leaseEndMs));
    const clock = new ManualClock(latestEnd - 100_000); // 100 s before the last lease ends: all are within 120 s
    const report = await new Warmer(client, policy, undefined, clock).pass(dir.path);
    expect(report.refreshed).toBe(x.mappings.length);
    const after = await readExnode(path);
    for (const m of after.mappings) {
      expect(m.leaseEndMs).toBe(clock.now() + 3_000_000);
      expect((await client.probe(m.manage!)).secondsLeft).toBeGreaterThan(2990);
    }
    const again = await new Warmer(client, policy, undefined, clock).pass(dir.path);
    expect(again.refreshed).toBe(0); // nothing due any more
  });

  it('the CLI: upload, ls, stat, download, refresh, trim, warm --once, with --json', async () => {
    const live = depots.filter((_, i) => i !== 1).map((d) => `${d.host}:${d.port}`);
    const xnd = join(dir.path, 'cli.json');
    const up = JSON.parse(
      (
        await run(process.execPath, [
          BIN,
          'upload',
          file,
          '--depots',
          live.join(','),
          '--block-size',
          '1MiB',
          '--copies',
          '2',
          '-o',
          xnd,
          '--json',
        ])
      ).stdout,
    );
    expect(up).toMatchObject({ bytes: data.length, mappings: 12 });
    const ls = JSON.parse((await run(process.execPath, [BIN, 'ls', xnd, '--json'])).stdout);
    expect(ls.blocks).toHaveLength(6);
    const stat = JSON.parse((await run(process.execPath, [BIN, 'stat', xnd, '--json'])).stdout) as Array<{ alive: boolean }>;
    expect(stat.every((s) => s.alive)).toBe(true);
    const out = join(dir.path, 'cli.bin');
    const down = JSON.parse((await run(process.execPath, [BIN, 'download', xnd, '-o', out, '--json'])).stdout);
    expect(down).toMatchObject({ bytes: data.length, blocksFetched: 6 });
    expect(sha(readFileSync(out))).toBe(sha(data));
    const refreshed = JSON.parse((await run(process.execPath, [BIN, 'refresh', xnd, '--extend-by', '100', '--json'])).stdout);
    expect(refreshed).toMatchObject({ refreshed: 12, failed: 0, errors: [] });
    const trimmed = JSON.parse((await run(process.execPath, [BIN, 'trim', xnd, '--dead', '--json'])).stdout);
    expect(trimmed).toEqual({ removed: 0 });
    const policy = join(dir.path, '..', `anvil-policy-${process.pid}.json`); // outside the exNode directory
    writeFileSync(policy, JSON.stringify({ sites: { a: live }, copiesPerSite: 3, leaseAheadSec: 60, leaseDurationSec: 600 }));
    const warm = JSON.parse(
      (await run(process.execPath, [BIN, 'warm', '--policy', policy, '--exnodes', dir.path, '--once', '--json'])).stdout,
    );
    rmSync(policy, { force: true });
    expect(warm).toMatchObject({ exnodes: 2, underReplicated: 0 });
    expect(warm.replicated).toBeGreaterThanOrEqual(6);
    const bad = await run(process.execPath, [BIN, 'upload', file, '--depots', 'nohost', '-o', xnd]).catch(
      (e: { stderr: string; code: number }) => e,
    );
    expect(bad).toMatchObject({ code: 2, stderr: 'anvil: FW_ERR_DEPOT_LIST: --depots: "nohost" is not host:port\n' });
  });
});
