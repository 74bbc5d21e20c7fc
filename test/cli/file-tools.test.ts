import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readExnode, upload, writeExnode, type Exnode } from '../../framework/index.js';
import { anvilProgram } from '../../cli/main.js';
import { startDepot, type TestDepot } from '../helpers/depot-fixture.js';
import { tempDir } from '../helpers/temp-dir.js';

const run = promisify(execFile);
const BIN = new URL('../../bin/anvil.js', import.meta.url).pathname;

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `anvil ARGS` as a child process (the depots run in this process); never rejects. */
function anvil(args: readonly string[], env: Record<string, string> = {}): Promise<Ran> {
  return run(process.execPath, [BIN, ...args], { timeout: 60_000, env: { ...process.env, ...env } }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: Ran) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}

describe('anvil file tools as a new user meets them', () => {
  const dir = tempDir('anvil-cli-files-');
  const depots: TestDepot[] = [];
  let file: string;
  const SIZE = 300_000;
  const list = () => depots.map((d) => `${d.host}:${d.port}`).join(',');
  const used = async () => {
    let total = 0;
    for (const d of depots) total += (await d.client.status(d)).resources.reduce((s, r) => s + r.usedBytes, 0);
    return total;
  };
  /** A closed port on loopback: a depot that does not answer. */
  let deadPort: number;

  beforeAll(async () => {
    for (let i = 0; i < 3; i++)
      depots.push(await startDepot({ resource: [{ rid: '1', capacityBytes: '128MiB', maxDurationSec: 100_000 }] }));
    file = join(dir.path, 'in.bin');
    writeFileSync(file, randomBytes(SIZE));
    const gone = await startDepot();
    deadPort = gone.port;
    await gone.close();
  });
  afterAll(async () => {
    for (const d of depots) await d.close();
    dir.cleanup();
  });

  const uploadCli = async (name: string, extra: string[] = []) => {
    const xnd = join(dir.path, name);
    const r = await anvil(['upload', file, '--depots', list(), '--block-size', '100000', ...extra, '-o', xnd, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    return xnd;
  };

  it('upload -o DIR/missing/x.xnd is refused before anything is stored', async () => {
    const before = await used();
    const out = join(dir.path, 'missing', 'x.xnd');
    const r = await anvil(['upload', file, '--depots', list(), '--copies', '2', '-o', out]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `anvil: FW_ERR_INVALID_ARGUMENT: output ${out}: directory ${join(dir.path, 'missing')} does not exist\n`,
    );
    expect(await used()).toBe(before);
  });

  it('upload -o EXISTING is refused before any depot is contacted unless --force', async () => {
    const sub = join(dir.path, 'existing');
    mkdirSync(sub);
    const xnd = join(sub, 'live.xnd');
    writeFileSync(xnd, 'an exNode naming live allocations');
    const before = await used();
    const r = await anvil(['upload', file, '--depots', list(), '-o', xnd]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `anvil: FW_ERR_INVALID_ARGUMENT: output ${xnd} already exists; the exNode there may reference live allocations, ` +
        'which nothing would reference once it is overwritten: give another output, or overwrite: true (anvil upload --force) ' +
        'to replace it; nothing was uploaded\n',
    );
    expect(await used()).toBe(before);
    expect(readFileSync(xnd, 'utf8')).toBe('an exNode naming live allocations');
    expect(readdirSync(sub)).toEqual(['live.xnd']);
    // The library refuses it too, before contacting the (dead) depot.
    await expect(
      upload(depots[0]!.client, file, { depots: [{ host: '127.0.0.1', port: deadPort }], output: xnd }),
    ).rejects.toMatchObject({ code: 'FW_ERR_INVALID_ARGUMENT' });
    const forced = await anvil(['upload', file, '--depots', list(), '--block-size', '100000', '-o', xnd, '--force', '--json']);
    expect(forced.stderr).toBe('');
    expect(forced.code).toBe(0);
    expect((await readExnode(xnd)).size).toBe(SIZE);
    expect(readdirSync(sub)).toEqual(['live.xnd']);
  });

  it('upload releases every stored block when the exNode cannot be written after storing', async () => {
    const before = await used();
    const sub = join(dir.path, 'vanishing');
    mkdirSync(sub);
    let removed = false;
    const attempt = upload(depots[0]!.client, file, {
      depots: depots.map((d) => ({ host: d.host, port: d.port })),
      blockSize: 100_000,
      copies: 2,
      threads: 1,
      output: join(sub, 'x.xnd'),
      onBlockStored: () => {
        if (!removed) rmSync(sub, { recursive: true });
        removed = true;
      },
    });
    await expect(attempt).rejects.toMatchObject({ code: 'FW_ERR_UPLOAD_FAILED' });
    expect(await used()).toBe(before);
  });

  it('Ctrl-C during an upload releases every block stored so far', async () => {
    const before = await used();
    const big = join(dir.path, 'big.bin');
    writeFileSync(big, randomBytes(40 * 1024 * 1024));
    const child = spawn(
      process.execPath,
      [
        BIN,
        'upload',
        big,
        '--depots',
        list(),
        '--block-size',
        '256KiB',
        '--copies',
        '2',
        '--threads',
        '1',
        '-o',
        join(dir.path, 'big.json'),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    for (let i = 0; i < 500 && (await used()) === before; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await used()).toBeGreaterThan(before); // it is storing
    child.kill('SIGINT');
    expect(await exited).toBe(2);
    expect(stderr).toBe('anvil: FW_ERR_UPLOAD_FAILED: interrupted; every stored block was released\n');
    expect(await used()).toBe(before);
    expect(existsSync(join(dir.path, 'big.json'))).toBe(false);
    rmSync(big);
  });

  it('download -o DIR is refused up front and leaves no DIR.partial', async () => {
    const xnd = await uploadCli('dl.json');
    const target = join(dir.path, 'outdir');
    mkdirSync(target);
    const r = await anvil(['download', xnd, '-o', target]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^anvil: FW_ERR_INVALID_ARGUMENT: output .*outdir: is a directory/);
    expect(existsSync(`${target}.partial`)).toBe(false);
    expect(readdirSync(target)).toEqual([]);
  });

  it('download -o EXISTING is refused before anything is fetched unless --force', async () => {
    const xnd = await uploadCli('dl-existing.json');
    const out = join(dir.path, 'precious.csv');
    writeFileSync(out, 'precious');
    const r = await anvil(['download', xnd, '-o', out]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `anvil: FW_ERR_INVALID_ARGUMENT: output ${out} already exists: give another output, or overwrite: true ` +
        '(anvil download --force) to replace it; nothing was downloaded\n',
    );
    expect(readFileSync(out, 'utf8')).toBe('precious');
    expect(existsSync(`${out}.partial`)).toBe(false);
    const forced = await anvil(['download', xnd, '-o', out, '--force', '--json']);
    expect(forced.stderr).toBe('');
    expect(forced.code).toBe(0);
    expect(readFileSync(out).equals(readFileSync(file))).toBe(true);
    expect(existsSync(`${out}.partial`)).toBe(false);
    expect(existsSync(`${out}.partial.json`)).toBe(false);
  });

  it('refresh --extend-to never shortens a lease unless --allow-shorten', async () => {
    const xnd = await uploadCli('refresh.json', ['--duration', '7000']);
    const soon = new Date(Date.now() + 3_600_000).toISOString();
    const kept = JSON.parse((await anvil(['refresh', xnd, '--extend-to', soon, '--json'])).stdout);
    expect(kept).toMatchObject({ refreshed: 0, kept: 3, failed: 0 });
    const x = await readExnode(xnd);
    for (const m of x.mappings) expect((await depots[0]!.client.probe(m.manage!)).secondsLeft).toBeGreaterThan(6000);
    const shortened = JSON.parse((await anvil(['refresh', xnd, '--extend-to', soon, '--allow-shorten', '--json'])).stdout);
    expect(shortened).toMatchObject({ refreshed: 3, kept: 0, failed: 0 });
    for (const m of x.mappings) expect((await depots[0]!.client.probe(m.manage!)).secondsLeft).toBeLessThanOrEqual(3600);
  });

  /** An exNode with `n` extra mappings of block 0 whose depot does not answer. */
  const withUnreachable = async (name: string, n: number): Promise<string> => {
    const xnd = await uploadCli(name);
    const x = await readExnode(xnd);
    const m = x.mappings[0]!;
    const moved = (cap: string | undefined) => cap?.replace(/:\d+\//, `:${deadPort}/`);
    const ghosts = Array.from({ length: n }, () => ({
      ...m,
      read: moved(m.read)!,
      write: moved(m.write),
      manage: moved(m.manage),
    }));
    const y: Exnode = { ...x, mappings: [...x.mappings, ...ghosts] };
    await writeExnode(xnd, y);
    return xnd;
  };

  it('stat exits 1 when a mapping is dead; trim --dead keeps unreachable ones, --unreachable drops them', async () => {
    const xnd = await withUnreachable('trim.json', 2);
    const stat = await anvil(['stat', xnd]);
    expect(stat.code).toBe(1);
    expect(stat.stdout).toMatch(/\n#3 127\.0\.0\.1:\d+ @0 UNREACHABLE [^\n]*\n/);
    expect(stat.stdout).toMatch(/3 alive, 0 dead, 2 unreachable\n$/);
    expect(JSON.parse((await anvil(['trim', xnd, '--dead', '--json'])).stdout)).toEqual({ removed: 0 });
    expect(JSON.parse((await anvil(['trim', xnd, '--dead', '--unreachable', '--json'])).stdout)).toEqual({ removed: 2 });
    expect((await anvil(['stat', xnd])).code).toBe(0);
    // A released allocation: its depot says the bytes are gone; stat calls it DEAD and trim --dead drops it.
    await depots[0]!.client.decr((await readExnode(xnd)).mappings[1]!.manage!, 'read');
    const gone = await anvil(['stat', xnd]);
    expect(gone.code).toBe(1);
    expect(gone.stdout).toMatch(/\n#1 127\.0\.0\.1:\d+ @100000 DEAD [^\n]*\n/);
    expect(gone.stdout).toMatch(/2 alive, 1 dead, 0 unreachable\n$/);
    expect(JSON.parse((await anvil(['trim', xnd, '--dead', '--json'])).stdout)).toEqual({ removed: 1 });
    const help = (await anvil(['trim', '--help'])).stdout.replace(/\s+/g, ' ');
    expect(help).toContain('a depot that does not answer keeps its mappings');
    expect(help).toContain('--unreachable with --dead: also drop mappings whose depot does not answer');
  });

  it('trim --unreachable refuses to drop the only replica of a range unless --force; --dead warns when it does', async () => {
    const xnd = await uploadCli('last.json');
    const x = await readExnode(xnd);
    const moved = (cap: string | undefined) => cap?.replace(/:\d+\//, `:${deadPort}/`);
    const m = x.mappings[1]!;
    x.mappings[1] = { ...m, read: moved(m.read)!, write: moved(m.write), manage: moved(m.manage) };
    await writeExnode(xnd, x);
    const before = readFileSync(xnd, 'utf8');
    const refused = await anvil(['trim', xnd, '--dead', '--unreachable']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toBe(
      `anvil: FW_ERR_INVALID_ARGUMENT: trim would leave bytes ${m.exnodeOffset} to ${m.exnodeOffset + m.logicalLength - 1} ` +
        'with no mapping (their only replicas are unreachable or dead; an unreachable depot may come back); nothing was changed; ' +
        'give --force to drop them anyway\n',
    );
    expect(readFileSync(xnd, 'utf8')).toBe(before);
    const forced = await anvil(['trim', xnd, '--dead', '--unreachable', '--force', '--json']);
    expect(forced.code).toBe(0);
    expect(JSON.parse(forced.stdout)).toEqual({ removed: 1 });
    expect(forced.stderr).toBe(
      `anvil: warning: bytes ${m.exnodeOffset} to ${m.exnodeOffset + m.logicalLength - 1} now have no mapping\n`,
    );
    // --dead alone drops a released last replica (its bytes are gone) and says what that leaves.
    const y = await readExnode(await uploadCli('last-dead.json'));
    await depots[0]!.client.decr(y.mappings[0]!.manage!, 'read');
    const dead = await anvil(['trim', join(dir.path, 'last-dead.json'), '--dead']);
    expect(dead.code).toBe(0);
    expect(dead.stdout).toBe('removed 1 mappings\n');
    expect(dead.stderr).toBe(`anvil: warning: bytes 0 to ${y.mappings[0]!.logicalLength - 1} now have no mapping\n`);
    // The hole stays visible: stat and augment say so and exit 1, though every mapping left is alive.
    const hole = `bytes 0 to ${y.mappings[0]!.logicalLength - 1} have no mapping`;
    const st = await anvil(['stat', join(dir.path, 'last-dead.json')]);
    expect(st.code).toBe(1);
    expect(st.stdout).toMatch(/ 0 dead, 0 unreachable\n$/);
    expect(st.stderr).toBe(`anvil: warning: ${hole}: the file cannot be read whole (upload it again to restore them)\n`);
    const all = depots.map((d) => `${d.host}:${d.port}`).join(',');
    const aug = await anvil(['augment', join(dir.path, 'last-dead.json'), '--copies', '1', '--depots', all]);
    expect(aug.code).toBe(1);
    expect(aug.stderr).toContain(`anvil: warning: ${hole}: augment copies existing replicas and cannot restore them`);
  });

  it('refresh with 30 failing mappings prints one summary line, not 30', async () => {
    const xnd = await withUnreachable('many.json', 30);
    const r = await anvil(['refresh', xnd, '--extend-by', '60']);
    expect(r.code).toBe(1);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('refreshed 3 leases, 0 kept (they end later), 30 failed');
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(
      new RegExp(`^ {2}30 mappings \\(3, 4, 5, 6, 7, 8, 9, 10, … 22 more\\) on 127\\.0\\.0\\.1:${deadPort}: `),
    );
  });

  it('augment --copies N with fewer depots than N is refused before copying anything', async () => {
    const xnd = join(dir.path, 'aug.json');
    const one = `${depots[0]!.host}:${depots[0]!.port}`;
    expect((await anvil(['upload', file, '--depots', one, '--block-size', '100000', '-o', xnd])).code).toBe(0);
    const before = await used();
    const r = await anvil(['augment', xnd, '--copies', '3', '--depots', `${one},${depots[1]!.host}:${depots[1]!.port}`]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /^anvil: FW_ERR_INVALID_ARGUMENT: --copies 3 needs 3 distinct depots per block; the block at offset 0 is held by 1 and 2 are listed, 2 distinct in all/,
    );
    expect(await used()).toBe(before);
    expect((await readExnode(xnd)).mappings).toHaveLength(3);
  });

  it('progress: the upload bar counts the file bytes its summary reports; stat counts mappings', async () => {
    const xnd = join(dir.path, 'bar.json');
    const r = await anvil(['upload', file, '--depots', list(), '--block-size', '100000', '--copies', '2', '-o', xnd], {
      ANVIL_PROGRESS: '1',
    });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`upload \\[[^\\]]+\\] 100% ${SIZE}/${SIZE} bytes`));
    expect(r.stdout).toMatch(new RegExp(`^uploaded ${SIZE} bytes \\(2 copies, 6 mappings\\)`));
    for (const cmd of ['stat', 'refresh', 'trim', 'augment']) {
      const extra =
        cmd === 'refresh'
          ? ['--extend-by', '10']
          : cmd === 'trim'
            ? ['--dead']
            : cmd === 'augment'
              ? ['--copies', '2', '--depots', list()]
              : [];
      const s = await anvil([cmd, xnd, ...extra], { ANVIL_PROGRESS: '1' });
      expect(s.code).toBe(0);
      const total = cmd === 'augment' ? '9/9 mappings probed \\+ blocks' : '6/6 mappings';
      expect(s.stderr).toMatch(new RegExp(`${cmd} \\[[^\\]]+\\] 100% ${total}`));
    }
  });

  it('messages: one error code, what --mapping expects, client flag errors, unknown before missing, no binary echo', async () => {
    const missing = join(dir.path, 'nope.xnd');
    expect((await anvil(['stat', missing])).stderr).toBe(`anvil: ENOENT: no such file or directory, open '${missing}'\n`);
    const xnd = await uploadCli('msg.json');
    expect((await anvil(['trim', xnd, '--mapping', 'a,b'])).stderr).toBe(
      'anvil: FW_ERR_INVALID_ARGUMENT: --mapping expects comma-separated mapping indexes (0, 1, … as `anvil stat` numbers them), e.g. 0,3 (got "a,b")\n',
    );
    const size = await anvil(['upload', file, '--depots', list(), '--block-size', '4XB', '-o', join(dir.path, 'y.xnd')]);
    expect(size.stderr).toMatch(/^anvil: FW_ERR_INVALID_ARGUMENT: --block-size must be a size in bytes/);
    const ingestSize = await anvil([
      'ingest',
      '--depots',
      list(),
      '--input',
      '/dev/null',
      '--allocation-size',
      '4XB',
      '-o',
      join(dir.path, 'z.json'),
    ]);
    expect(ingestSize.stderr).toMatch(
      /^anvil: DATA_E_INVALID_ARGUMENT: invalid argument: --allocation-size must be a size in bytes/,
    );
    const unknown = await anvil(['upload', file, '--bogus']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^error: unknown option '--bogus'/);
    const missingOpt = await anvil(['upload', file, '--depots', list()]);
    expect(missingOpt.stderr).toMatch(/^error: required option '-o, --output <exnode>' not specified/);
    const garbage = join(dir.path, 'garbage.xnd');
    writeFileSync(garbage, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0x1b, 0x5b, 0x32, 0x4a, 0x00, 0x07, 0xff, 0xfe]));
    const g = await anvil(['ls', garbage]);
    expect(g.code).toBe(2);
    expect(g.stderr).toMatch(/^anvil: FW_ERR_EXNODE_INVALID: /);
    expect(g.stderr).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f\ufffd]/); // eslint-disable-line no-control-regex
  });
});

describe('every option of every command has a help text', () => {
  it('walks the command tree', () => {
    const missing: string[] = [];
    const visit = (cmd: ReturnType<typeof anvilProgram>, path: string) => {
      for (const o of cmd.options) if ((o.description ?? '').trim() === '') missing.push(`${path} ${o.flags}`);
      for (const c of cmd.commands) visit(c, `${path} ${c.name()}`);
    };
    visit(anvilProgram(), 'anvil');
    expect(missing).toEqual([]);
  });
});
