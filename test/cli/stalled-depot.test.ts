import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { upload } from '../../framework/index.js';
import { IbpClient, type DepotAddress } from '../../ibp/index.js';
import { DepotProcess } from '../helpers/depot-process.js';
import { spawnAnvil, type Ran } from '../helpers/spawn-cli.js';
import { tempDir } from '../helpers/temp-dir.js';

/**
 * `anvil ARGS`, killed after 60 s: half the client's former fixed 120 s wait, so a command that still
 * waited that long on a stalled copy fails here. Never rejects.
 */
function anvil(args: readonly string[]): Promise<Ran> {
  return spawnAnvil(args, { timeoutMs: 60_000, killSignal: 'SIGKILL' });
}

// A stalled depot accepts connections and never replies: a depot process stopped with SIGSTOP.
describe('the file tools with a stalled depot', () => {
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
    // The text summary says so too.
    const text = await anvil(['download', xnd, '-o', out, '--force', '--timeout', '1s']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(
      /^downloaded \d+ bytes \(10 blocks fetched, 0 resumed, \d+ replica reads? failed over to another\) in /,
    );
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

  /** Bytes the healthy depot holds (ST_INQ), asked with a short timeout. */
  async function healthyUsed(): Promise<number> {
    const client = new IbpClient({ timeoutMs: 5_000, connectTimeoutMs: 5_000 });
    try {
      const inq = await client.status({ host: healthy.host, port: healthy.port });
      return inq.resources.reduce((sum, r) => sum + r.usedBytes, 0);
    } finally {
      client.close();
    }
  }

  /** The depots (`host:port`) an exNode's mappings name, as `anvil ls --json` lists them. */
  async function depotsOf(exnode: string): Promise<string[]> {
    const ls = await anvil(['ls', exnode, '--json']);
    expect(ls.stderr).toBe('');
    const blocks = (JSON.parse(ls.stdout) as { blocks: Array<{ depots: string[] }> }).blocks;
    return [...new Set(blocks.flatMap((b) => b.depots))];
  }

  it('upload --timeout 1s places the blocks the stalled depot does not answer for on the other depot', async () => {
    const out = join(dir.path, 'up1.xnd');
    const depots = `${stalled.host}:${stalled.port},${healthy.host}:${healthy.port}`;
    const r = await anvil([
      'upload',
      join(dir.path, 'in.bin'),
      '--depots',
      depots,
      '--block-size',
      '20000',
      '--timeout',
      '1s',
      '-o',
      out,
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(await depotsOf(out)).toEqual([`${healthy.host}:${healthy.port}`]);
    const back = join(dir.path, 'up1.bin');
    expect((await anvil(['download', out, '-o', back, '--timeout', '1s'])).code).toBe(0);
    expect(readFileSync(back).equals(data)).toBe(true);
  });

  it('upload asks a depot that timed out nothing more: one timeout in all, not one per block', async () => {
    const client = new IbpClient({ timeoutMs: 1_000, connectTimeoutMs: 1_000 });
    const retried: DepotAddress[] = [];
    try {
      const x = await upload(client, join(dir.path, 'in.bin'), {
        depots: [
          { host: stalled.host, port: stalled.port },
          { host: healthy.host, port: healthy.port },
        ],
        blockSize: 20_000,
        threads: 1,
        onRetry: (d) => retried.push(d),
      });
      expect(x.mappings).toHaveLength(10);
    } finally {
      client.close();
    }
    // Blocks 0, 2, 4, 6 and 8 try the stalled depot first: only block 0 waits for it.
    expect(retried).toEqual([{ host: stalled.host, port: stalled.port }]);
  });

  it('upload --timeout 1s --copies 2 fails when a copy has only the stalled depot left, and leaves nothing behind', async () => {
    const out = join(dir.path, 'up2.xnd');
    const before = await healthyUsed();
    const depots = `${stalled.host}:${stalled.port},${healthy.host}:${healthy.port}`;
    const r = await anvil([
      'upload',
      join(dir.path, 'in.bin'),
      '--depots',
      depots,
      '--copies',
      '2',
      '--block-size',
      '20000',
      '--timeout',
      '1s',
      '-o',
      out,
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/^anvil: FW_ERR_UPLOAD_FAILED: block at offset \d+: no depot left for copy \d of 2/);
    expect(existsSync(out)).toBe(false);
    expect(await healthyUsed()).toBe(before);
  });

  it('augment --timeout 1s onto the stalled depot adds nothing, leaves the exNode as it was and exits 1', async () => {
    const one = join(dir.path, 'one.xnd');
    const depots = `${stalled.host}:${stalled.port},${healthy.host}:${healthy.port}`;
    expect(
      (
        await anvil([
          'upload',
          join(dir.path, 'in.bin'),
          '--depots',
          depots,
          '--block-size',
          '20000',
          '--timeout',
          '1s',
          '-o',
          one,
        ])
      ).code,
    ).toBe(0);
    const text = readFileSync(one, 'utf8');
    const before = await healthyUsed();
    const r = await anvil([
      'augment',
      one,
      '--copies',
      '2',
      '--depots',
      `${stalled.host}:${stalled.port}`,
      '--timeout',
      '1s',
      '--json',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toEqual({ added: 0, short: 10 });
    expect(readFileSync(one, 'utf8')).toBe(text);
    expect(await healthyUsed()).toBe(before);
  });

  it('refresh --timeout 1s renews the healthy copies, reports the stalled ones failed and exits 1', async () => {
    const r = await anvil(['refresh', xnd, '--extend-by', '600', '--timeout', '1s', '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout) as { refreshed: number; failed: number; failures: Array<{ depot: string }> };
    expect(report).toMatchObject({ refreshed: 10, kept: 0, failed: 10 });
    expect(new Set(report.failures.map((f) => f.depot))).toEqual(new Set([`${stalled.host}:${stalled.port}`]));
  });

  it('warm --once --timeout 1s finishes its pass, renewing the live copies', async () => {
    const exnodes = join(dir.path, 'warm');
    mkdirSync(exnodes);
    writeFileSync(join(exnodes, 'in.xnd'), readFileSync(xnd));
    const policy = join(dir.path, 'policy.json');
    writeFileSync(
      policy,
      JSON.stringify({
        sites: { here: [`${stalled.host}:${stalled.port}`, `${healthy.host}:${healthy.port}`] },
        copiesPerSite: 1,
        leaseAheadSec: 100_000, // more than the leases have left: every one is renewed
        leaseDurationSec: 172_800,
        trimDead: false,
        intervalSec: 60,
      }),
    );
    const r = await anvil(['warm', '--policy', policy, '--exnodes', exnodes, '--once', '--timeout', '1s', '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    // The stalled copies are not live: the warmer renews the 10 live ones and leaves those alone.
    expect(JSON.parse(r.stdout)).toMatchObject({ exnodes: 1, mappings: 20, refreshed: 10, failures: 0, underReplicated: 0 });
  });

  it.each([
    ['download', ['download', 'x.xnd', '-o', 'x.bin']],
    ['upload', ['upload', 'in.bin', '--depots', '127.0.0.1:1', '-o', 'x.xnd']],
    ['augment', ['augment', 'x.xnd', '--copies', '2', '--depots', '127.0.0.1:1']],
    ['refresh', ['refresh', 'x.xnd', '--extend-by', '60']],
    ['warm', ['warm', '--policy', 'p.json', '--exnodes', '.', '--once']],
  ])('%s --timeout is checked before anything is read', async (_name, args) => {
    // Relative names of files that do not exist: the flag is refused before any of them is looked at.
    const r = await anvil([...args, '--timeout', 'soon']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('anvil: FW_ERR_INVALID_ARGUMENT: --timeout must be a duration such as 30s, 500ms or 2m (got "soon")\n');
  });
});
