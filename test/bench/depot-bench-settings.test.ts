import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
/** The built bench (`npm run bench:depot` runs it after a build). */
const BENCH = new URL('../../dist/bench/depot-throughput.js', import.meta.url).pathname;

/** The bench with `env` added; never rejects. */
function bench(
  env: Record<string, string | undefined>,
  timeout = 20_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return run(process.execPath, [BENCH], { env: { ...process.env, ...env }, timeout }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number | null; stdout: string; stderr: string }) => e,
  );
}

describe('bench:depot refuses a bad setting before it starts anything', () => {
  for (const [env, message] of [
    [{ BENCH_KINDS: 'memory,disk' }, 'BENCH_KINDS: unknown kind "disk" (use memory, disk-fast, disk-safe)'],
    [{ BENCH_ROUNDS: 'abc' }, 'BENCH_ROUNDS must be a whole number of at least 1 (got "abc")'],
    [{ BENCH_READ_PASSES: '2.5' }, 'BENCH_READ_PASSES must be a whole number of at least 1 (got "2.5")'],
    [{ BENCH_BLOCK_KB: '1000' }, 'BENCH_BLOCK_KB (1000) must divide the allocation'],
    [{ BENCH_WRITE_ORDER: 'backwards' }, 'BENCH_WRITE_ORDER must be one of append, reverse (got "backwards")'],
    [{ BENCH_READ_ORDER: 'backwards' }, 'BENCH_READ_ORDER must be one of ascending, descending (got "backwards")'],
    [{ BENCH_SMALL: 'false' }, 'BENCH_SMALL must be 0 or 1 (got "false")'],
    [{ BENCH_SMALL_IO: '-1' }, 'BENCH_SMALL_IO must be a whole number of at least 0 (got "-1")'],
    [{ BENCH_SMALL_READ_FRACTION: '1.5' }, 'BENCH_SMALL_READ_FRACTION must be a number from 0 to 1 (got "1.5")'],
    [{ BENCH_ANVIL_BINS: '/nonexistent/anvil.js' }, 'BENCH_ANVIL_BINS: no launcher at /nonexistent/anvil.js'],
    [
      { BENCH_CLIENT: 'compiled', CXX: 'false' },
      'BENCH_CLIENT names compiled, which does not build: CXX (false): false failed (exit 1)',
    ],
    [{ BENCH_CLIENT: 'compiled,java' }, 'BENCH_CLIENT: unknown client "java" (use compiled, node)'],
    [
      { BENCH_CLIENT: 'compiled', CXX: '/nonexistent/c++ -O1' },
      'BENCH_CLIENT names compiled, which does not build: CXX (/nonexistent/c++ -O1): /nonexistent/c++ is not there',
    ],
    // Asked for by name, a client that cannot be built stops the bench (no compiler on the PATH).
    [
      { BENCH_CLIENT: 'compiled', PATH: '/nonexistent', CXX: '' },
      'BENCH_CLIENT names compiled, which does not build: no C++ compiler',
    ],
  ] as const) {
    it(
      Object.entries(env)
        .map(([k, v]) => `${k}=${v}`)
        .join(' '),
      async () => {
        // Its own temporary directory: a refused run leaves nothing in it.
        const tmp = mkdtempSync(join(tmpdir(), 'bench-refuse-'));
        try {
          const r = await bench({ ...env, TMPDIR: tmp });
          expect(r.code).toBe(2);
          expect(r.stderr).toContain(`bench:depot: ${message}`);
          expect(r.stderr).not.toContain('    at '); // no stack trace
          expect(r.stdout).toBe(''); // nothing measured
          expect(readdirSync(tmp)).toEqual([]);
        } finally {
          rmSync(tmp, { recursive: true, force: true });
        }
      },
    );
  }
});

/** A bench run small enough for the suite: one memory depot, two 1 MiB allocations, 256 KiB blocks. */
const TINY = {
  BENCH_KINDS: 'memory',
  BENCH_ROUNDS: '1',
  BENCH_SMALL: '0',
  BENCH_ALLOCATIONS: '2',
  BENCH_ALLOCATION_MB: '1',
  BENCH_BLOCK_KB: '256',
  BENCH_CLIENTS: '2',
};

interface BenchOutput {
  summary: { kind: string; client: string; writeMBps: number; readMBps: number }[];
  shape: { bulkClients: string[]; clientNote?: string; smallIo: number | { commands: number } };
  rows: {
    name: string;
    client: string;
    writeMBps: number;
    readMBps: number;
    writeClientCpuS: number;
    smallWriteOpsPerSec?: number;
    smallReadOpsPerSec?: number;
    smallMixOpsPerSec?: number;
    smallMixLoads?: number;
    smallMixDigest?: number;
    leastDepotWriteMBps?: number;
    leastDepotReadMBps?: number;
    writeOfLeast?: number;
    md5DepotWriteMBps?: number;
    md5DepotReadMBps?: number;
    writeOfMd5Depot?: number;
    readOfMd5Depot?: number;
  }[];
}

describe('bench:depot bulk clients', () => {
  it('the compiled client writes and reads last block first and checks every block stamp, beside the TypeScript client', async () => {
    const r = await bench(
      // 13 small commands of each kind: shared unevenly by the 2 connections.
      {
        ...TINY,
        BENCH_WRITE_ORDER: 'reverse',
        BENCH_READ_ORDER: 'descending',
        BENCH_CLIENT: 'compiled,node',
        BENCH_SMALL_IO: '13',
      },
      120_000,
    );
    expect(r.stderr).not.toContain('failed');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as BenchOutput;
    expect(out.shape.bulkClients).toEqual(['compiled', 'node']);
    expect(out.shape.smallIo).toMatchObject({ commands: 13, mixReadFraction: 0.5 });
    expect(out.rows.map((row) => row.client)).toEqual(['compiled', 'node']);
    for (const row of out.rows) {
      expect(row.writeMBps).toBeGreaterThan(0);
      expect(row.readMBps).toBeGreaterThan(0);
      expect(row.writeClientCpuS).toBeGreaterThanOrEqual(0);
      expect(row.smallWriteOpsPerSec).toBeGreaterThan(0);
      expect(row.smallReadOpsPerSec).toBeGreaterThan(0);
      expect(row.smallMixOpsPerSec).toBeGreaterThan(0);
    }
    // Each client counts the LOADs it sent in the mixed phase and digests the commands it drew: both
    // sent the same ones.
    const [compiled, node] = out.rows;
    expect(compiled!.smallMixDigest).toBe(node!.smallMixDigest);
    expect(compiled!.smallMixLoads).toBe(node!.smallMixLoads);
    expect(compiled!.smallMixLoads).toBeGreaterThan(0);
    expect(compiled!.smallMixLoads).toBeLessThan(13);
    expect(out.summary.map((s) => `${s.kind}:${s.client}`)).toEqual(['memory:compiled', 'memory:node']);
    // The least depot measures disk kinds only; with MD5 block digests, every kind.
    expect(out.rows.every((row) => row.leastDepotWriteMBps === undefined)).toBe(true);
    for (const row of out.rows) {
      expect(row.md5DepotWriteMBps).toBeGreaterThan(0);
      expect(row.md5DepotReadMBps).toBeGreaterThan(0);
      expect(row.readOfMd5Depot).toBeCloseTo(row.readMBps / row.md5DepotReadMBps!, 1);
    }
  }, 150_000);

  it('disk rows stand next to the least depot (plain files, with and without MD5 block digests) in the same window', async () => {
    const r = await bench(
      { ...TINY, BENCH_KINDS: 'disk-fast,disk-safe', BENCH_CLIENT: 'compiled', BENCH_SMALL_IO: '0' },
      120_000,
    );
    expect(r.stderr).not.toContain('failed');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as BenchOutput;
    expect(out.rows.map((row) => row.name)).toEqual(['bulk:disk-fast', 'bulk:disk-safe']);
    for (const row of out.rows) {
      expect(row.leastDepotWriteMBps).toBeGreaterThan(0);
      expect(row.leastDepotReadMBps).toBeGreaterThan(0);
      expect(row.writeOfLeast).toBeCloseTo(row.writeMBps / row.leastDepotWriteMBps!, 1);
      expect(row.md5DepotWriteMBps).toBeGreaterThan(0);
      expect(row.writeOfMd5Depot).toBeCloseTo(row.writeMBps / row.md5DepotWriteMBps!, 1);
    }
  }, 150_000);

  it('without a compiler and not asked for by name, the compiled client is left out and the run says so', async () => {
    const r = await bench({ ...TINY, PATH: '/nonexistent', CXX: '', BENCH_CLIENT: undefined }, 120_000);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as BenchOutput;
    expect(out.shape.bulkClients).toEqual(['node']);
    expect(out.shape.clientNote).toContain('compiled client left out: no C++ compiler');
    expect(r.stderr).toContain('bench:depot: compiled client left out');
    expect(out.rows.map((row) => row.client)).toEqual(['node']);
  }, 150_000);
});

describe('bench:depot interrupted', () => {
  it('stops its depots and removes what it made on SIGINT', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'bench-interrupt-'));
    try {
      const child = spawn(process.execPath, [BENCH], {
        env: { ...process.env, ...TINY, BENCH_KINDS: 'disk-fast', BENCH_ROUNDS: '200', BENCH_CLIENT: 'node', TMPDIR: tmp },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let err = '';
      const firstRow = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no round finished in 60 s: ${err}`)), 60_000);
        child.stderr.on('data', (d: Buffer) => {
          err += d.toString();
          if (err.includes('"name":"bulk:disk-fast"')) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      await firstRow;
      child.kill('SIGINT');
      const [code] = (await once(child, 'exit')) as [number | null];
      expect(code).toBe(130);
      expect(err).toContain('bench:depot: stopped by SIGINT');
      expect(readdirSync(tmp)).toEqual([]);
      // No process it started (its depot runs on a directory under `tmp`) is left.
      const left = readdirSync('/proc')
        .filter((p) => /^\d+$/.test(p))
        .filter((p) => {
          try {
            return readFileSync(`/proc/${p}/cmdline`, 'latin1').includes(tmp);
          } catch {
            return false;
          }
        });
      expect(left).toEqual([]);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }, 90_000);
});
