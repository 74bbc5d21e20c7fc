import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { IbpClient } from '../../framework/index.js';

const BIN = new URL('../../bin/anvil.js', import.meta.url).pathname;

interface Run {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exit: Promise<number | null>;
}

function run(args: string[]): Run {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, stdout: () => out, stderr: () => err, exit };
}

async function listening(r: Run, timeoutMs = 10_000): Promise<{ host: string; port: number }> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const m = /^listening on ibp:\/\/([^:]+):(\d+)$/m.exec(r.stdout());
    if (m) return { host: m[1]!, port: Number(m[2]) };
    if (r.child.exitCode !== null) break;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`depot did not start: ${r.stderr()}`);
}

describe('anvil depot as a real process', () => {
  it('starts, serves IBP over TCP, and stops cleanly on SIGTERM', async () => {
    const r = run(['depot', '--port', '0', '--log-level', 'info', '--capacity', '8MiB']);
    const addr = await listening(r);
    expect(addr.host).toBe('127.0.0.1');
    const client = new IbpClient();
    try {
      const caps = await client.allocate(addr, { size: 1 << 20, durationSec: 60 });
      expect(caps.read.port).toBe(addr.port);
      const data = Buffer.alloc(1 << 20, 0x5a);
      expect(await client.store(caps.write, data)).toBe(1 << 20);
      expect((await client.load(caps.read, 0, 1 << 20)).equals(data)).toBe(true);
      const inq = await client.status(addr);
      expect(inq.resources[0]).toMatchObject({ rid: '1', totalBytes: 8 << 20, usedBytes: 1 << 20 });
    } finally {
      client.close();
    }
    r.child.kill('SIGTERM');
    expect(await r.exit).toBe(0);
    const logs = r
      .stderr()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { msg: string });
    expect(logs.map((l) => l.msg)).toEqual(expect.arrayContaining(['depot listening', 'shutting down', 'depot closed']));
    expect(r.stderr()).not.toMatch(/#[A-Za-z0-9_-]{43}/); // no capability key in any log line
  });

  it('a disk depot keeps data across SIGTERM and restart: same caps, same bytes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'anvil-restart-'));
    let r = run(['depot', '--data', dir, '--port', '0', '--log-level', 'warn']);
    const addr = await listening(r);
    const client = new IbpClient();
    const data = Buffer.alloc(3 << 20);
    for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(i, i);
    let caps;
    try {
      caps = await client.allocate(addr, { size: 4 << 20, durationSec: 600 });
      await client.store(caps.write, data);
    } finally {
      client.close();
    }
    r.child.kill('SIGTERM');
    expect(await r.exit).toBe(0);
    r = run(['depot', '--data', dir, '--port', String(addr.port), '--log-level', 'warn']);
    await listening(r);
    const again = new IbpClient();
    try {
      expect((await again.load(caps.read, 0, data.length)).equals(data)).toBe(true);
      expect(await again.probe(caps.manage)).toMatchObject({ size: 3 << 20, maxSize: 4 << 20 });
    } finally {
      again.close();
      r.child.kill('SIGTERM');
    }
    expect(await r.exit).toBe(0);
  });

  it('reads a TOML config file; flags override it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'anvil-'));
    const file = join(dir, 'depot.toml');
    writeFileSync(
      file,
      [
        'port = 1',
        'statusPassword = "s3cret"',
        '[[resource]]',
        'rid = "7"',
        'capacityBytes = "2MiB"',
        'maxDurationSec = 600',
        '[limits]',
        'maxConnections = 5',
      ].join('\n'),
    );
    const r = run(['depot', '--config', file, '--port', '0', '--log-level', 'silent']);
    const addr = await listening(r);
    const client = new IbpClient();
    try {
      const inq = await client.status(addr, { password: 's3cret' });
      expect(inq.resources).toMatchObject([{ rid: '7', totalBytes: 2 << 20, maxDurationSec: 600 }]);
      await expect(client.status(addr)).rejects.toMatchObject({ code: 'IBP_E_WRONG_PASSWD', status: -29 });
    } finally {
      client.close();
      r.child.kill('SIGINT');
    }
    expect(await r.exit).toBe(0);
  });

  it.each([
    [['--port', '99999'], 'DEPOT_ERR_CONFIG: invalid config: `port` must be an integer from 0 to 65535 (got 99999)'],
    [
      ['--capacity', 'lots'],
      'DEPOT_ERR_CONFIG: invalid config: `resource[0].capacityBytes` must be a byte size such as 1048576 or "64MiB" (got "lots")',
    ],
    [
      ['--host', '0.0.0.0'],
      'DEPOT_ERR_CONFIG: invalid config: `publicHost` is required when binding the wildcard address 0.0.0.0 (it is written into caps)',
    ],
    [['--config', '/nonexistent/anvil.toml'], 'DEPOT_ERR_CONFIG: cannot read config file /nonexistent/anvil.toml'],
  ])('refuses bad configuration %j with a precise message and exit code 2', async (args, message) => {
    const r = run(['depot', ...args]);
    expect(await r.exit).toBe(2);
    expect(r.stderr()).toContain(message);
  });
});
