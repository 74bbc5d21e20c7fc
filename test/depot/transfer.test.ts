import { createServer, type Server } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IbpClient, formatCapability, type AllocationCaps, type DepotAddress } from '../../ibp/index.js';
import { RawSession, keyOf } from '../helpers/depot-fixture.js';
import { DepotProcess } from '../helpers/depot-process.js';
import { tempDir } from '../helpers/temp-dir.js';

const pattern = (n: number, salt: number) => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 13 + salt) & 0xff;
  return b;
};

describe('depot-to-depot transfer between two depot processes', () => {
  const dir = tempDir('anvil-transfer-');
  let a: { proc: DepotProcess } & DepotAddress;
  let b: { proc: DepotProcess } & DepotAddress;
  let client: IbpClient;
  const alloc = (at: DepotAddress, size = 1 << 20) => client.allocate(at, { size, durationSec: 600 });

  beforeAll(async () => {
    const bConfig = join(dir.path, 'b.toml');
    writeFileSync(bConfig, '[transfer]\nconnectTimeoutMs = 1000\ntimeoutMs = 1500\n');
    [a, b] = await Promise.all([
      DepotProcess.start(['--port', '0', '--log-level', 'warn']).then((r) => ({ ...r, proc: r.proc })),
      DepotProcess.start(['--port', '0', '--log-level', 'warn', '--data', join(dir.path, 'b'), '--config', bConfig]),
    ]);
    client = new IbpClient({ timeoutMs: 20_000 });
  });
  afterAll(async () => {
    client.close();
    await Promise.all([a.proc.kill('SIGTERM'), b.proc.kill('SIGTERM')]);
    dir.cleanup();
  });

  it('SEND appends a range of the source to the destination (memory → disk), acked after the destination', async () => {
    const src = await alloc(a);
    const data = pattern(3 << 18, 1);
    await client.store(src.write, data);
    const dest = await alloc(b);
    await client.store(dest.write, Buffer.from('head:'));
    expect(await client.copy(src.read, dest.write, { offset: 1000, length: 500_000 })).toBe(500_000);
    expect((await client.load(dest.read, 0, 5)).toString()).toBe('head:');
    expect((await client.load(dest.read, 5, 500_000)).equals(data.subarray(1000, 501_000))).toBe(true);
    expect((await client.probe(dest.manage)).size).toBe(500_005);
  });

  it('PUSH writes at a remote offset or appends (-1); PULL fetches a remote range into a local offset or appends', async () => {
    const src = await alloc(a);
    const data = pattern(200_000, 7);
    await client.store(src.write, data);
    const dest = await alloc(b);
    expect(await client.push(src.read, dest.write, { offset: 10, length: 1000, remoteOffset: 5000 })).toBe(1000);
    expect(await client.push(src.read, dest.write, { offset: 0, length: 10, remoteOffset: -1 })).toBe(10);
    const got = await client.load(dest.read, 0, 6010);
    expect(got.subarray(0, 5000).every((x) => x === 0)).toBe(true);
    expect(got.subarray(5000, 6000).equals(data.subarray(10, 1010))).toBe(true);
    expect(got.subarray(6000).equals(data.subarray(0, 10))).toBe(true);

    const local = await alloc(b);
    expect(await client.pull(local.write, src.read, { remoteOffset: 100, length: 50_000, offset: 20 })).toBe(50_000);
    expect(await client.pull(local.write, src.read, { remoteOffset: 0, length: 7 })).toBe(7); // append
    const pulled = await client.load(local.read, 0, 50_027);
    expect(pulled.subarray(20, 50_020).equals(data.subarray(100, 50_100))).toBe(true);
    expect(pulled.subarray(50_020).equals(data.subarray(0, 7))).toBe(true);
  });

  it('a transfer whose destination is the same depot is done locally (and appends)', async () => {
    const src = await alloc(a);
    await client.store(src.write, Buffer.from('0123456789'));
    const dest = await alloc(a);
    await client.store(dest.write, Buffer.from('>'));
    expect(await client.copy(src.read, dest.write, { offset: 2, length: 5 })).toBe(5);
    expect(await client.push(src.read, dest.write, { offset: 0, length: 2, remoteOffset: -1 })).toBe(2);
    expect((await client.load(dest.read, 0, 8)).toString()).toBe('>2345601');
  });

  it('accepts the ACCRE client wire forms (empty PATH → double spaces) and answers "1 N \\n"', async () => {
    const src = await alloc(a);
    await client.store(src.write, Buffer.from('abcdefgh'));
    const dest = await alloc(b);
    const s = await RawSession.open(a.port);
    try {
      const [key, wrm] = keyOf(capStr(src.read)).split(' ');
      s.send(`1 5  ${key} ${capStr(dest.write)} ${wrm} 0 8 30 30 30\n`);
      expect(await s.line()).toBe('1 8 \n');
      s.send(`1 20 1  ${key} ${capStr(dest.write)} ${wrm} 2 -1 3 30 30 30\n`);
      expect(await s.line()).toBe('1 3 \n');
    } finally {
      s.end();
    }
    expect((await client.load(dest.read, 0, 11)).toString()).toBe('abcdefghcde');
  });

  it('relays the remote depot refusal (-4 for an unknown remote cap, -19 when the remote allocation is full)', async () => {
    const src = await alloc(a);
    await client.store(src.write, pattern(100, 3));
    const dest = await alloc(b, 50);
    const bogus = { ...dest.write, key: 'x'.repeat(43) };
    await expect(client.copy(src.read, bogus, { length: 10 })).rejects.toMatchObject({ status: -4 });
    await expect(client.copy(src.read, dest.write, { length: 100 })).rejects.toMatchObject({ status: -19 });
    await expect(client.copy(src.read, dest.write, { offset: 90, length: 20 })).rejects.toMatchObject({ status: -19 }); // local range
    expect((await client.probe(dest.manage)).size).toBe(0);
  });

  it('destination down → -13 at once; destination silent → -13 within the transfer timeout', async () => {
    const src = await alloc(b);
    await client.store(src.write, pattern(10, 1));
    const dead = await listenAndClose();
    const started = Date.now();
    await expect(client.copy(src.read, fakeCap(dead, src), { length: 10 })).rejects.toMatchObject({ status: -13 });
    const silent = await silentServer();
    try {
      await expect(client.copy(src.read, fakeCap(silent.port, src), { length: 10 })).rejects.toMatchObject({ status: -13 });
      expect(Date.now() - started).toBeLessThan(5_000); // b's transfer.timeoutMs is 1.5 s
      expect(silent.connections()).toBe(1);
    } finally {
      silent.server.close();
    }
  });
});

describe('transfer allow-list', () => {
  it('a destination outside transfer.allow is refused without any connection, same status as unreachable', async () => {
    const silent = await silentServer();
    const { proc, host, port } = await DepotProcess.start([
      '--port',
      '0',
      '--log-level',
      'warn',
      '--transfer-allow',
      '10.0.0.0/8,depot.example.org:6714',
    ]);
    const client = new IbpClient();
    try {
      const src = await client.allocate({ host, port }, { size: 10, durationSec: 60 });
      await client.store(src.write, Buffer.from('x'));
      await expect(client.copy(src.read, fakeCap(silent.port, src), { length: 1 })).rejects.toMatchObject({ status: -13 });
      expect(silent.connections()).toBe(0);
      // the depot itself is always a valid destination (a local copy never leaves it)
      const dest = await client.allocate({ host, port }, { size: 10, durationSec: 60 });
      expect(await client.copy(src.read, dest.write, { length: 1 })).toBe(1);
    } finally {
      client.close();
      silent.server.close();
      await proc.kill('SIGTERM');
    }
  });
});

function capStr(c: AllocationCaps['read']): string {
  return formatCapability(c);
}

function fakeCap(port: number, like: AllocationCaps) {
  return { ...like.write, host: '127.0.0.1', port };
}

async function listenAndClose(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function silentServer(): Promise<{ server: Server; port: number; connections: () => number }> {
  let n = 0;
  const server = createServer((sock) => {
    n++;
    sock.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port, connections: () => n };
}
