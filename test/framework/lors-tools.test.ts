import { createServer } from 'node:net';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ManualClock,
  augment,
  blocksOf,
  depotKey,
  download,
  readExnode,
  refreshLeases,
  trimMappings,
  upload,
  writeExnode,
  type Exnode,
} from '../../framework/index.js';

const BIN = new URL('../../bin/anvil.js', import.meta.url).pathname;
import { startDepot, type TestDepot } from '../helpers/depot-fixture.js';
import { tempDir } from '../helpers/temp-dir.js';

describe('LoRS-style tools against in-process depots', () => {
  const dir = tempDir('anvil-tools-');
  const depots: TestDepot[] = [];
  let file: string;
  let data: Buffer;
  beforeAll(async () => {
    for (let i = 0; i < 3; i++)
      depots.push(await startDepot({ resource: [{ rid: '1', capacityBytes: '64MiB', maxDurationSec: 7200 }] }));
    data = randomBytes(300_000);
    file = join(dir.path, 'in.bin');
    writeFileSync(file, data);
  });
  afterAll(async () => {
    for (const d of depots) await d.close();
    dir.cleanup();
  });
  const client = () => depots[0]!.client;
  const addrs = () => depots.map((d) => ({ host: d.host, port: d.port }));

  it('upload retries a block on the next depot when one is down', async () => {
    const dead = createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    const deadPort = (dead.address() as { port: number }).port;
    await new Promise((r) => dead.close(r));
    const retried: string[] = [];
    const x = await upload(client(), file, {
      depots: [{ host: '127.0.0.1', port: deadPort }, ...addrs()],
      blockSize: 64 * 1024,
      copies: 2,
      durationSec: 3600,
      onRetry: (d) => retried.push(`${d.host}:${d.port}`),
    });
    expect(retried.length).toBeGreaterThan(0);
    expect(x.mappings.every((m) => depotKey(m) !== `127.0.0.1:${deadPort}`)).toBe(true);
    for (const b of blocksOf(x)) expect(new Set(b.replicas.map(depotKey)).size).toBe(2);
  });

  it('download falls over from a replica whose bytes fail the checksum', async () => {
    const x = await upload(client(), file, { depots: addrs(), blockSize: 100_000, copies: 2, durationSec: 3600 });
    const victim = blocksOf(x)[1]!.replicas[0]!;
    await client().write(victim.write!, 10, Buffer.from('tampered'));
    const out = join(dir.path, 'out.bin');
    const r = await download(client(), x, out, { threads: 1 });
    expect(r.failovers).toBeGreaterThanOrEqual(1);
    expect(readFileSync(out).equals(data)).toBe(true);
  });

  it('download handles replicas of different block sizes: each byte range comes from a replica holding all of it', async () => {
    const big = await upload(client(), file, { depots: addrs().slice(0, 1), blockSize: 300_000, copies: 1, durationSec: 3600 });
    const small = await upload(client(), file, { depots: addrs().slice(1, 2), blockSize: 100_000, copies: 1, durationSec: 3600 });
    const mixed: Exnode = { ...big, mappings: [...big.mappings, ...small.mappings.slice(0, 2)] };
    const out = join(dir.path, 'mixed.bin');
    // the whole-file replica dies: the rest must come from the two 100 kB pieces, and then nothing is left
    await client().decr(big.mappings[0]!.manage!, 'read');
    await expect(download(client(), mixed, out)).rejects.toMatchObject({ code: 'FW_ERR_DOWNLOAD_FAILED' });
    const both: Exnode = {
      ...small,
      mappings: [
        ...small.mappings,
        ...(await upload(client(), file, { depots: addrs().slice(2), blockSize: 300_000, copies: 1, durationSec: 3600 }))
          .mappings,
      ],
    };
    const r = await download(client(), both, out, { resume: false });
    expect(readFileSync(out).equals(data)).toBe(true);
    expect(r.blocksFetched).toBe(3);
  });

  it('a resume only trusts a partial download of the same exNode, and only if its file is there', async () => {
    const a = await upload(client(), file, { depots: addrs(), blockSize: 100_000, copies: 1, durationSec: 3600 });
    const otherData = Buffer.from(data).reverse();
    const otherFile = join(dir.path, 'other.bin');
    writeFileSync(otherFile, otherData);
    const b = await upload(client(), otherFile, { depots: addrs(), blockSize: 100_000, copies: 1, durationSec: 3600 });
    const out = join(dir.path, 'resume.bin');
    const abort = new AbortController();
    let n = 0;
    await expect(
      download(client(), a, out, {
        threads: 1,
        signal: abort.signal,
        onFetch: () => void (++n === 2 && abort.abort(new Error('stop'))),
      }),
    ).rejects.toThrow('stop');
    const rb = await download(client(), b, out); // same layout, other allocations: starts over
    expect(rb.blocksResumed).toBe(0);
    expect(readFileSync(out).equals(otherData)).toBe(true);
    n = 0;
    const abort2 = new AbortController();
    await expect(
      download(client(), a, out, {
        threads: 1,
        overwrite: true,
        signal: abort2.signal,
        onFetch: () => void (++n === 2 && abort2.abort(new Error('stop'))),
      }),
    ).rejects.toThrow('stop');
    rmSync(`${out}.partial`);
    // `out` holds b's download now: refused unless overwrite, and left as it was.
    await expect(download(client(), a, out)).rejects.toMatchObject({ code: 'FW_ERR_INVALID_ARGUMENT' });
    expect(readFileSync(out).equals(otherData)).toBe(true);
    const ra = await download(client(), a, out, { overwrite: true }); // the state file alone proves nothing
    expect(ra.blocksResumed).toBe(0);
    expect(readFileSync(out).equals(data)).toBe(true);
  });

  it('augment adds replicas by depot-to-depot copy; trim --mapping --decrement releases them', async () => {
    const x: Exnode = await upload(client(), file, {
      depots: addrs().slice(0, 1),
      blockSize: 100_000,
      copies: 1,
      durationSec: 3600,
    });
    const r = await augment(client(), x, { copies: 3, depots: addrs(), durationSec: 600 });
    expect(r).toEqual({ added: 6, short: 0 });
    for (const b of blocksOf(x)) expect(new Set(b.replicas.map(depotKey)).size).toBe(3);
    const added = x.mappings.slice(3);
    const out = join(dir.path, 'aug.bin');
    await download(client(), { ...x, mappings: added }, out);
    expect(readFileSync(out).equals(data)).toBe(true);
    const victim = x.mappings[3]!;
    await trimMappings(client(), x, [3], true);
    expect(x.mappings).toHaveLength(8);
    await expect(client().probe(victim.manage!)).rejects.toMatchObject({ status: -4 });
    await expect(trimMappings(client(), x, [99], false)).rejects.toMatchObject({ code: 'FW_ERR_INVALID_ARGUMENT' });
  });

  it('anvil warm as a daemon: passes every intervalSec, serves Prometheus metrics, stops on SIGTERM', async () => {
    const exDir = join(dir.path, 'warm');
    mkdirSync(exDir);
    const x = await upload(client(), file, { depots: addrs().slice(0, 1), blockSize: 150_000, copies: 1, durationSec: 3600 });
    await writeExnode(join(exDir, 'f.xnd'), x);
    const policy = join(dir.path, 'policy.json');
    writeFileSync(
      policy,
      JSON.stringify({
        sites: { all: addrs().map((a) => `${a.host}:${a.port}`) },
        copiesPerSite: 2,
        intervalSec: 1,
        leaseAheadSec: 60,
        leaseDurationSec: 3600,
      }),
    );
    const child = spawn(
      process.execPath,
      [BIN, 'warm', '--policy', policy, '--exnodes', exDir, '--metrics-port', '0', '--json'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    let text = '';
    try {
      for (const deadline = Date.now() + 15_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 200))) {
        const port = /metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(stderr)?.[1];
        if (port === undefined) continue;
        text = await fetch(`http://127.0.0.1:${port}/metrics`)
          .then((r) => r.text())
          .catch(() => '');
        if (/anvil_warmer_passes_total [2-9]/.test(text)) break;
      }
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(text).toMatch(/anvil_warmer_passes_total [2-9]/);
    expect(text).toContain('anvil_warmer_replicas_created_total 2');
    expect(text).toContain('anvil_warmer_under_replicated_blocks 0');
    const after = await readExnode(join(exDir, 'f.xnd'));
    expect(after.mappings).toHaveLength(4);
  });

  it('refresh: --extend-by, --extend-to and --max (the depot maximum from ST_INQ)', async () => {
    const x = await upload(client(), file, { depots: addrs(), blockSize: 150_000, copies: 1, durationSec: 100 });
    expect(await refreshLeases(client(), x, { extendBySec: 50 })).toEqual({
      refreshed: 2,
      kept: 0,
      failed: 0,
      errors: [],
      failures: [],
    });
    for (const m of x.mappings) expect((await client().probe(m.manage!)).secondsLeft).toBeGreaterThan(140);
    const now = Date.now();
    await refreshLeases(client(), x, { extendToMs: now + 1000_000 }, new ManualClock(now));
    for (const m of x.mappings) expect((await client().probe(m.manage!)).secondsLeft).toBeGreaterThan(990);
    await refreshLeases(client(), x, { max: true });
    for (const m of x.mappings) expect((await client().probe(m.manage!)).secondsLeft).toBeGreaterThan(7190);
    // after --max, an earlier --extend-to keeps the longer leases; only allowShorten shortens them
    const soon = { extendToMs: Date.now() + 3_600_000 };
    expect(await refreshLeases(client(), x, soon)).toMatchObject({ refreshed: 0, kept: 2, failed: 0 });
    for (const m of x.mappings) expect((await client().probe(m.manage!)).secondsLeft).toBeGreaterThan(7000);
    expect(await refreshLeases(client(), x, { ...soon, allowShorten: true })).toMatchObject({ refreshed: 2, kept: 0 });
    for (const m of x.mappings) expect((await client().probe(m.manage!)).secondsLeft).toBeLessThanOrEqual(3600);
  });
});
