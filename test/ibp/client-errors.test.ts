import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ClientError, IbpClient } from '../../ibp/index.js';
import { startDepot, type TestDepot } from '../helpers/depot-fixture.js';

/** A scripted fake depot: `onLine` decides what to answer to each line. */
async function fakeDepot(
  onLine: (line: string, socket: Socket) => void,
): Promise<{ server: Server; port: number; connections: () => number }> {
  let count = 0;
  const server = createServer((socket) => {
    count++;
    let buf = '';
    socket.on('data', (d) => {
      buf += d.toString('latin1');
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        onLine(buf.slice(0, i), socket);
        buf = buf.slice(i + 1);
      }
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return { server, port, connections: () => count };
}

describe('IbpClient failures are typed', () => {
  const closers: Array<() => void | Promise<void>> = [];
  afterEach(async () => {
    for (const c of closers.splice(0)) await c();
  });

  it('no reply within timeoutMs → CLIENT_ERR_TIMEOUT', async () => {
    const fake = await fakeDepot(() => undefined);
    closers.push(() => void fake.server.close());
    const client = new IbpClient({ timeoutMs: 200 });
    closers.push(() => client.close());
    const started = Date.now();
    await expect(client.resources({ host: '127.0.0.1', port: fake.port })).rejects.toMatchObject({ code: 'CLIENT_ERR_TIMEOUT' });
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('nobody listening → CLIENT_ERR_CONNECTION', async () => {
    const fake = await fakeDepot(() => undefined);
    const port = fake.port;
    await new Promise((resolve) => fake.server.close(resolve));
    const client = new IbpClient();
    closers.push(() => client.close());
    await expect(client.resources({ host: '127.0.0.1', port })).rejects.toMatchObject({ code: 'CLIENT_ERR_CONNECTION' });
  });

  it('"-66 <seconds>" → IBP_E_OUT_OF_SOCKETS with retryAfterSec', async () => {
    const fake = await fakeDepot((_l, s) => s.end('-66 0.25\n'));
    closers.push(() => void fake.server.close());
    const client = new IbpClient();
    closers.push(() => client.close());
    const e = await client.resources({ host: '127.0.0.1', port: fake.port }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ClientError);
    expect(e).toMatchObject({ code: 'IBP_E_OUT_OF_SOCKETS', status: -66, retryAfterSec: 0.25, depot: `127.0.0.1:${fake.port}` });
  });

  it('a reply of the wrong shape → CLIENT_ERR_PROTOCOL', async () => {
    const fake = await fakeDepot((_l, s) => s.write('hello there\n'));
    closers.push(() => void fake.server.close());
    const client = new IbpClient();
    closers.push(() => client.close());
    await expect(client.resources({ host: '127.0.0.1', port: fake.port })).rejects.toMatchObject({ code: 'CLIENT_ERR_PROTOCOL' });
  });

  it('the connection drops mid-reply → CLIENT_ERR_CONNECTION', async () => {
    const fake = await fakeDepot((_l, s) => s.end('1 100 \nonly a few bytes'));
    closers.push(() => void fake.server.close());
    const client = new IbpClient();
    closers.push(() => client.close());
    const cap = `ibp://127.0.0.1:${fake.port}/1#abc/1/READ`;
    await expect(client.load(cap, 0, 100)).rejects.toMatchObject({ code: 'CLIENT_ERR_CONNECTION' });
  });

  it('bad arguments are refused before anything is sent', async () => {
    const client = new IbpClient();
    closers.push(() => client.close());
    await expect(client.load('ibp://h:1/1#k/1/WRITE', 0, 1)).rejects.toMatchObject({
      code: 'CLIENT_ERR_INVALID_ARGUMENT',
      message: 'load needs a read capability (got a write one)',
    });
    await expect(client.load('not a cap', 0, 1)).rejects.toMatchObject({ code: 'CLIENT_ERR_INVALID_ARGUMENT' });
    await expect(client.allocate({ host: 'h', port: 1 }, { size: 0, durationSec: 1 })).rejects.toMatchObject({
      message: '`size` must be an integer >= 1 (got 0)',
    });
    client.close();
    await expect(client.resources({ host: 'h', port: 1 })).rejects.toMatchObject({ code: 'CLIENT_ERR_CLOSED' });
  });
});

describe('IbpClient connection reuse', () => {
  let t: TestDepot | undefined;
  afterEach(async () => t?.close());

  it('sequential requests share one pooled connection; a refused request does not poison the pool', async () => {
    t = await startDepot();
    const caps = await t.client.allocate(t, { size: 100, durationSec: 60 });
    for (let i = 0; i < 20; i++) await t.client.store(caps.write, Buffer.from('x'));
    expect(t.depot.connectionCount).toBe(1);
    await expect(t.client.load(caps.read, 0, 1000)).rejects.toMatchObject({ code: 'IBP_E_WOULD_EXCEED_LIMIT' });
    expect((await t.client.load(caps.read, 0, 20)).toString()).toBe('x'.repeat(20));
  });

  it('parallel requests open parallel connections, bounded idle pool afterwards', async () => {
    t = await startDepot();
    const client = new IbpClient({ maxIdlePerDepot: 2 });
    try {
      await Promise.all(Array.from({ length: 6 }, () => client.resources(t!)));
      await new Promise((r) => setTimeout(r, 50));
      expect(t.depot.connectionCount).toBe(2);
    } finally {
      client.close();
    }
  });
});
