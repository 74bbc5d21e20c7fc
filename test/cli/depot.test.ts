import { execFile, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDepotOptions } from '../../depot/index.js';
import { depotOptionsFrom, depotStartupWarnings } from '../../cli/depot-command.js';
import { DepotProcess } from '../helpers/depot-process.js';
import { tempDir } from '../helpers/temp-dir.js';

const run = promisify(execFile);
const BIN = new URL('../../bin/anvil.js', import.meta.url).pathname;
const README = new URL('../../README.md', import.meta.url).pathname;

/** Runs `anvil ARGS`; resolves with the exit code and both streams (never rejects). */
function anvil(args: readonly string[], timeoutMs = 20_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return run(process.execPath, [BIN, ...args], { timeout: timeoutMs }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number | null; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}

describe('anvil depot: what the flags say is what the depot does', () => {
  it('--capacity 4GiB: the largest allocation defaults to the capacity, as --help says', async () => {
    const disk = parseDepotOptions(await depotOptionsFrom({ capacity: '4GiB', data: '/var/tmp/anvil-x' }));
    expect(disk.resources[0]).toMatchObject({ capacityBytes: 4 * 1024 ** 3, maxAllocationBytes: 4 * 1024 ** 3 });
    const memory = parseDepotOptions(await depotOptionsFrom({ capacity: '3GiB' }));
    expect(memory.resources[0]).toMatchObject({ capacityBytes: 3 * 1024 ** 3, maxAllocationBytes: 3 * 1024 ** 3 });
    const help = await anvil(['depot', '--help']);
    expect(help.stdout.replace(/\s+/g, ' ')).toContain('largest single allocation, e.g. 256MiB (default: the capacity');
  });

  it('--fsync fast without --data is refused at start-up (it would have no effect)', async () => {
    const r = await anvil(['depot', '--port', '0', '--fsync', 'fast']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'anvil: DEPOT_ERR_CONFIG: invalid config: `resource[0].fsync` applies to disk resources only (give a path / --data); this one is "memory"\n',
    );
  });

  it('warns at start-up about nfu.workers = 0 and a memory capacity above the machine RAM', () => {
    const o = parseDepotOptions({ nfu: { workers: 0 }, resource: [{ capacityBytes: '8GiB' }] });
    const w = depotStartupWarnings(o, 4 * 1024 ** 3);
    expect(w).toHaveLength(2);
    expect(w[0]).toMatch(/^nfu\.workers = 0 runs NFU ops inline on the event loop/);
    expect(w[1]).toMatch(
      /^memory resources total 8589934592 bytes of capacity, more than this machine's RAM \(4294967296 bytes\)/,
    );
    expect(depotStartupWarnings(parseDepotOptions(), 4 * 1024 ** 3)).toEqual([]);
  });

  it('a depot started with [nfu] workers = 0 logs the warning', async () => {
    const dir = tempDir('anvil-cli-depot-');
    try {
      const config = join(dir.path, 'depot.toml');
      writeFileSync(config, '[nfu]\nworkers = 0\n');
      const d = await DepotProcess.start(['--port', '0', '--config', config, '--log-level', 'warn']);
      await d.proc.kill('SIGTERM');
      expect(d.proc.stderr).toContain('nfu.workers = 0 runs NFU ops inline');
    } finally {
      dir.cleanup();
    }
  });
});

describe('anvil depot: a data directory that cannot be created', () => {
  // Under /proc a level can never be made (ENOENT although the parent exists): the start-up must fail
  // with the error other bad data directories give, not spin.
  for (const data of ['/proc/anvil-no-such-dir', '/proc/self/anvil-no-such-dir/deeper']) {
    it(`--data ${data} is refused with DEPOT_ERR_RESOURCE_UNAVAILABLE and exit code 2`, async () => {
      const r = await run(process.execPath, [BIN, 'depot', '--port', '0', '--data', data], {
        timeout: 15_000,
        killSignal: 'SIGKILL',
      }).then(
        () => ({ code: 0 as number | null, stderr: '', signal: null as string | null }),
        (e: { code: number | null; stderr: string; signal: string | null }) => e,
      );
      expect(r.signal).toBeNull();
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(
        new RegExp(`^anvil: DEPOT_ERR_RESOURCE_UNAVAILABLE: cannot create data directory ${data}: ENOENT`),
      );
    });
  }
});

describe("the README's hand-typed depot session", () => {
  let depot: Awaited<ReturnType<typeof DepotProcess.start>>;
  beforeAll(async () => {
    depot = await DepotProcess.start(['--port', '0', '--log-level', 'warn']);
  });
  afterAll(async () => {
    await depot.proc.kill('SIGTERM');
  });

  it('the shown one-liner returns as soon as the depot has answered (no idle timeout)', async () => {
    const readme = readFileSync(README, 'utf8');
    const line = readme.split('\n').find((l) => l.startsWith("printf '1 4 1 1 ibp 10\\n' | node -e "));
    expect(line).toBeDefined();
    const command = line!.replace(/\s+#.*$/, '').replaceAll('6714', String(depot.port));
    // The depot's idle timeout is 60 s; the session must end on its own long before that.
    const child = spawn('bash', ['-c', command], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      child.on('exit', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    expect(code).toBe(0);
    expect(out).toMatch(/^1 \d+ \nVS:1\.4:1\.0 DT:1 .*RID:1 RT:2 /);
  });
});
