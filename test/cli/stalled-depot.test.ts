import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DepotProcess } from '../helpers/depot-process.js';
import { tempDir } from '../helpers/temp-dir.js';

const run = promisify(execFile);
const BIN = new URL('../../bin/anvil.js', import.meta.url).pathname;

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * `anvil ARGS`, killed after 60 s: half the client's former fixed 120 s wait, so a command that still
 * waited that long on a stalled copy fails here. Never rejects.
 */
function anvil(args: readonly string[]): Promise<Ran> {
  return run(process.execPath, [BIN, ...args], { timeout: 60_000, killSignal: 'SIGKILL' }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: Ran) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}

// A stalled depot accepts connections and never replies: a depot process stopped with SIGSTOP.
describe('download and stat with a stalled depot', () => {
  const dir = tempDir('anvil-cli-stalled-');
  let healthy: Awaited<ReturnType<typeof DepotProcess.start>>;
  let stalled: Awaited<ReturnType<typeof DepotProcess.start>>;
  let data: Buffer;
  let xnd: string;

  beforeAll(async () => {
    healthy = await DepotProcess.start(['--port', '0', '--log-level', 'warn']);
    stalled = await DepotProcess.start(['--port', '0', '--log-level', 'warn']);
    data = randomBytes(200_000);
    const file = join(dir.path, 'in.bin');
    writeFileSync(file, data);
    xnd = join(dir.path, 'in.xnd');
    // Every block has a copy on each depot, the stalled one listed first.
    const depots = `${stalled.host}:${stalled.port},${healthy.host}:${healthy.port}`;
    const up = await anvil(['upload', file, '--depots', depots, '--copies', '2', '--block-size', '20000', '-o', xnd]);
    expect(up.stderr).toBe('');
    stalled.proc.child.kill('SIGSTOP');
  }, 60_000);

  afterAll(async () => {
    stalled.proc.child.kill('SIGCONT');
    await stalled.proc.kill('SIGKILL');
    await healthy.proc.kill('SIGKILL');
    dir.cleanup();
  });

  it('download --timeout 1s falls over to the other copy and gives the whole file', async () => {
    const out = join(dir.path, 'out.bin');
    const r = await anvil(['download', xnd, '-o', out, '--timeout', '1s', '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ bytes: data.length, blocksFetched: 10 });
    expect(readFileSync(out).equals(data)).toBe(true);
  });

  it('stat --timeout 1s reports the stalled copies UNREACHABLE (not dead) and exits 1', async () => {
    const r = await anvil(['stat', xnd, '--timeout', '1s']);
    expect(r.code).toBe(1);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines.at(-1)).toBe('10 alive, 0 dead, 10 unreachable');
    const stalledLines = lines.filter((l) => l.includes(`:${stalled.port} `));
    expect(stalledLines).toHaveLength(10);
    for (const l of stalledLines) expect(l).toMatch(/ UNREACHABLE /);
    // trim --dead keeps them (the depot may come back), as stat's words say.
    expect(JSON.parse((await anvil(['trim', xnd, '--dead', '--timeout', '1s', '--json'])).stdout)).toEqual({ removed: 0 });
  });

  it('--timeout is checked before anything is read', async () => {
    const r = await anvil(['download', xnd, '-o', join(dir.path, 'x.bin'), '--timeout', 'soon']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('anvil: FW_ERR_INVALID_ARGUMENT: --timeout must be a duration such as 30s, 500ms or 2m (got "soon")\n');
  });
});
