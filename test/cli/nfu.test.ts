import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatCapability } from '../../ibp/index.js';
import { OPS } from '../../nfu-kernels/index.js';
import { startDepot, type TestDepot } from '../helpers/depot-fixture.js';
import { spawnAnvil, type Ran } from '../helpers/spawn-cli.js';

function anvil(args: readonly string[]): Promise<Ran> {
  return spawnAnvil(args, { timeoutMs: 60_000 });
}

describe('anvil nfu OP: one NFU op from the shell', () => {
  let depot: TestDepot;
  let read: string;
  let at: string;
  // A = [[1, 2], [3, 4], [5, 6]] row-major float64
  const A = Float64Array.from([1, 2, 3, 4, 5, 6]);
  const bytes = Buffer.from(A.buffer);

  beforeAll(async () => {
    depot = await startDepot();
    const caps = await depot.client.allocate(depot, { size: bytes.length, durationSec: 600 });
    await depot.client.store(caps.write, bytes);
    read = formatCapability(caps.read);
    at = `${depot.host}:${depot.port}`;
  });
  afterAll(async () => {
    await depot.close();
  });

  it('gram and column-stats print the float64 output as rows; --json gives shape and values', async () => {
    const g = await anvil(['nfu', 'gram', '--depot', at, '--input', read, '--attr', 'rows=3', '--attr', 'cols=2']);
    expect(g.stderr).toBe('');
    expect(g.stdout).toBe('35 44\n44 56\n'); // AᵀA
    const s = JSON.parse(
      (await anvil(['nfu', 'column-stats', '--depot', at, '--input', read, '--attr', 'rows=3', '--attr', 'cols=2', '--json']))
        .stdout,
    );
    expect(s).toMatchObject({ op: 'column-stats', shape: [6, 2] });
    expect(s.values).toEqual([
      [3, 3],
      [9, 12],
      [35, 56],
      [1, 2],
      [5, 6],
      [8, 8],
    ]);
  });

  it('--timeout takes a duration like the other commands (an old bare millisecond count still works, with a note)', async () => {
    // A depot that accepts connections and never replies.
    const sockets: Socket[] = [];
    const silent = createServer((s) => void sockets.push(s));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as { port: number }).port;
    const dir = mkdtempSync(join(tmpdir(), 'anvil-nfu-timeout-'));
    try {
      writeFileSync(join(dir, 'in.bin'), bytes);
      const base = ['nfu', 'sha256', '--depot', `127.0.0.1:${port}`, '--input', `@${join(dir, 'in.bin')}`];
      const short = await anvil([...base, '--timeout', '300ms']);
      expect(short.code).toBe(2);
      expect(short.stderr).toMatch(/^anvil: CLIENT_ERR_TIMEOUT: /);
      const old = await anvil([...base, '--timeout', '1500']);
      expect(old.code).toBe(2);
      expect(old.stderr).toMatch(
        /^anvil: note: --timeout 1500 is read as milliseconds \(the old form\); write 1500ms or 1\.5s\nanvil: CLIENT_ERR_TIMEOUT: /,
      );
      const bad = await anvil([...base, '--timeout', 'soon']);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toBe(
        'anvil: FW_ERR_INVALID_ARGUMENT: --timeout must be a duration such as 30s, 500ms or 2m (got "soon")\n',
      );
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('sha256 prints the digest in hex', async () => {
    const r = await anvil(['nfu', 'sha256', '--depot', at, '--input', read]);
    expect(r.stdout).toBe(`${createHash('sha256').update(bytes).digest('hex')}\n`);
  });

  it('an unknown op lists the valid ones; an unknown attribute lists the op’s attributes', async () => {
    const r = await anvil(['nfu', 'grma', '--depot', at, '--input', read]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `anvil: FW_ERR_INVALID_ARGUMENT: unknown NFU op "grma"; the ops are ${OPS.map((o) => o.name).join(', ')}\n`,
    );
    const a = await anvil(['nfu', 'gram', '--depot', at, '--input', read, '--attr', 'rows=3', '--attr', 'colz=2']);
    expect(a.stderr).toBe('anvil: FW_ERR_INVALID_ARGUMENT: gram has no attribute "colz"; its attributes are dtype, rows, cols\n');
    const n = await anvil(['nfu', 'gram', '--depot', at, '--attr', 'rows=3', '--attr', 'cols=2']);
    expect(n.stderr).toMatch(/^anvil: FW_ERR_INVALID_ARGUMENT: gram takes 1 --input \(A: `rows × cols` row-major/);
  });

  it('a refusal that is not about an input size comes back as the depot refusal with what the op expects', async () => {
    const r = await anvil([
      'nfu',
      'gaussian-sketch-right',
      '--depot',
      at,
      '--input',
      read,
      '--attr',
      'rows=3',
      '--attr',
      'cols=2',
      '--attr',
      'k=0',
      '--return-bytes',
      '8',
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/-30/);
    expect(r.stderr).toContain(
      "the depot refused gaussian-sketch-right's attributes or inputs: each input must hold its layout (A: `rows × cols`",
    );
    expect(r.stderr.split('\n').filter((l) => l !== '')).toHaveLength(1);
  });

  it('an input that is not the size the attributes need: the refusal says the bytes held and needed', async () => {
    // The allocation holds 3 × 2 float64 = 48 bytes; rows=2 cols=2 needs 32, rows=4 needs 64.
    for (const [rows, needed] of [
      [2, 32],
      [4, 64],
    ] as const) {
      const r = await anvil([
        'nfu',
        'column-stats',
        '--depot',
        at,
        '--input',
        read,
        '--attr',
        `rows=${rows}`,
        '--attr',
        'cols=2',
      ]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(
        `input A holds 48 bytes; rows=${rows} × cols=2 float64 needs ${needed}: an input is its whole allocation, so give the ` +
          'attributes of all of it',
      );
      expect(r.stderr.split('\n').filter((l) => l !== '')).toHaveLength(1);
    }
  });

  it('an inline input of the wrong size is refused before the depot is asked', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'anvil-nfu-'));
    try {
      const file = join(dir, 'a.bin');
      writeFileSync(file, bytes);
      const r = await anvil([
        'nfu',
        'gram',
        '--depot',
        '127.0.0.1:1',
        '--input',
        `@${file}`,
        '--attr',
        'rows=2',
        '--attr',
        'cols=2',
      ]);
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(
        'anvil: FW_ERR_INVALID_ARGUMENT: input A holds 48 bytes; rows=2 × cols=2 float64 needs 32: an input is its whole ' +
          'allocation, so give the attributes of all of it (docs/nfu-ops.md)\n',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
