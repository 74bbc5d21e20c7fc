import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { firstValueFrom, filter, take, toArray } from 'rxjs';
import { LiveServer, liveStream, type LiveMessage, type LiveEstimate } from '../../framework/index.js';

const servers: LiveServer[] = [];
const sockets: WebSocket[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.terminate();
  for (const s of servers.splice(0)) await s.close();
});

async function start(options: ConstructorParameters<typeof LiveServer>[0] = {}): Promise<LiveServer> {
  const s = await new LiveServer({ port: 0, ...options }).listen();
  servers.push(s);
  return s;
}

function estimate(i: number, final = false, pad = 0): LiveEstimate {
  return {
    series: [
      { name: 'λ1', value: i, lo: i - 1, hi: i + 1 },
      ...Array.from({ length: pad }, (_, k) => ({ name: `p${k}`, value: k })),
    ],
    epsilon: 1,
    delta: 0.05,
    norm: 'spectral',
    coverage: 0.9,
    blocksUsed: i,
    blocksMissing: 0,
    bytesMoved: 100 * i,
    method: 'test',
    parts: { sampling: { epsilon: 1, delta: 0.05 }, sketch: { epsilon: 0, delta: 0 } },
    final,
  };
}

/** Opens a client that records every message; resolves once the hello arrived. */
async function client(server: LiveServer, headers: Record<string, string> = {}): Promise<{ ws: WebSocket; got: LiveMessage[] }> {
  const ws = new WebSocket(`ws://127.0.0.1:${server.port}/live`, { headers });
  sockets.push(ws);
  const got: LiveMessage[] = [];
  ws.on('message', (d) => got.push(JSON.parse(d.toString()) as LiveMessage));
  await new Promise<void>((resolve, reject) => {
    ws.once('error', reject);
    ws.on('message', () => resolve());
  });
  return { ws, got };
}

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function upgradeStatus(port: number, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/live`, { headers });
    sockets.push(ws);
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.on('open', () => resolve(101));
    ws.on('error', () => undefined);
  });
}

describe('live server', () => {
  it('greets, replays the present to a late client, then streams', async () => {
    const server = await start();
    const hub = server.hub;
    hub.publish({ v: 1, type: 'job-started', jobId: 'j1', name: 'pca', at: 1 });
    hub.publish({ v: 1, type: 'estimate', jobId: 'j1', seq: 1, at: 2, estimate: estimate(1) });
    hub.publish({ v: 1, type: 'depot-health', depot: '127.0.0.1:1', state: 'failed', reliability: 0.4, at: 3 });
    const { got } = await client(server);
    await until(() => got.length >= 4, 'the replay');
    expect(got.map((m) => m.type)).toEqual(['hello', 'job-started', 'estimate', 'depot-health']);
    expect(got[0]).toMatchObject({ type: 'hello', jobs: [{ jobId: 'j1', name: 'pca', state: 'running' }] });
    hub.publish({ v: 1, type: 'estimate', jobId: 'j1', seq: 2, at: 4, estimate: estimate(2, true) });
    hub.publish({ v: 1, type: 'job-done', jobId: 'j1', at: 5 });
    await until(() => got.length >= 6, 'the live messages');
    expect(got.slice(4).map((m) => m.type)).toEqual(['estimate', 'job-done']);
  });

  it('filters by subscription', async () => {
    const server = await start();
    const { ws, got } = await client(server);
    ws.send(JSON.stringify({ v: 1, type: 'subscribe', jobs: ['a'] }));
    await new Promise((r) => setTimeout(r, 50));
    server.hub.publish({ v: 1, type: 'job-started', jobId: 'b', name: 'other', at: 1 });
    server.hub.publish({ v: 1, type: 'job-started', jobId: 'a', name: 'mine', at: 1 });
    server.hub.publish({ v: 1, type: 'event', kind: 'info', text: 'global', at: 2 });
    await until(() => got.length >= 3, 'messages');
    expect(got.slice(1).map((m) => ('jobId' in m ? m.jobId : m.type))).toEqual(['a', 'event']);
  });

  it('answers bad client messages with a typed error and keeps serving every client', async () => {
    const server = await start();
    const a = await client(server);
    const b = await client(server);
    a.ws.send('{not json');
    a.ws.send(JSON.stringify({ v: 9, type: 'subscribe', jobs: '*' }));
    a.ws.send(JSON.stringify({ v: 1, type: 'subscribe', jobs: ['bad id with spaces'] }));
    a.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    await until(() => a.got.filter((m) => m.type === 'error').length === 4, 'four errors');
    const codes = a.got.filter((m) => m.type === 'error').map((m) => (m as { code: string }).code);
    expect(codes).toEqual(['LIVE_E_BAD_MESSAGE', 'LIVE_E_VERSION', 'LIVE_E_BAD_MESSAGE', 'LIVE_E_BAD_MESSAGE']);
    server.hub.publish({ v: 1, type: 'event', kind: 'info', text: 'still here', at: 1 });
    await until(() => a.got.some((m) => m.type === 'event') && b.got.some((m) => m.type === 'event'), 'both clients');
    expect(b.got.some((m) => m.type === 'error')).toBe(false);
  });

  it('refuses foreign origins, clients past the bound, and oversized messages', async () => {
    const server = await start({ maxClients: 2, maxPayload: 256, allowedOrigins: ['http://dash.example:1'] });
    expect(await upgradeStatus(server.port, { Origin: 'http://evil.example' })).toBe(403);
    expect(await upgradeStatus(server.port, { Origin: 'http://dash.example:1' })).toBe(101);
    const big = await client(server);
    expect(await upgradeStatus(server.port, {})).toBe(503);
    const closed = new Promise<number>((resolve) => big.ws.on('close', (code) => resolve(code)));
    big.ws.send('x'.repeat(1000));
    expect(await closed).toBe(1009);
  });

  it('drops intermediate estimates for a slow client, keeps the latest, and cuts it off past the hard cap', async () => {
    const server = await start({ softBufferBytes: 64 * 1024, hardBufferBytes: 512 * 1024 * 1024 });
    const slow = await client(server);
    const fast = await client(server);
    server.hub.publish({ v: 1, type: 'job-started', jobId: 'j', name: 'big', at: 0 });
    // Stop reading: the server's queue to this client grows once the socket buffers fill.
    (slow.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
    const n = 400;
    for (let i = 1; i <= n; i++) {
      server.hub.publish({ v: 1, type: 'estimate', jobId: 'j', seq: i, at: i, estimate: estimate(i, i === n, 2000) });
      await new Promise((r) => setImmediate(r));
    }
    await until(() => fast.got.some((m) => m.type === 'estimate' && m.estimate.final), 'the fast client');
    (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    await until(() => slow.got.some((m) => m.type === 'estimate' && m.estimate.final), 'the final estimate', 20_000);
    const seqs = slow.got.filter((m) => m.type === 'estimate').map((m) => (m as { seq: number }).seq);
    const fastSeqs = fast.got.filter((m) => m.type === 'estimate').map((m) => (m as { seq: number }).seq);
    expect(seqs.length).toBeLessThan(n);
    expect(seqs.length).toBeLessThan(fastSeqs.length);
    expect(seqs[seqs.length - 1]).toBe(n);
    expect([...seqs].sort((x, y) => x - y)).toEqual(seqs);

    const capped = await start({ softBufferBytes: 1024, hardBufferBytes: 256 * 1024 });
    const victim = await client(capped);
    const closed = new Promise<number>((resolve) => victim.ws.on('close', (code) => resolve(code)));
    (victim.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    for (let i = 0; i < 400; i++) capped.hub.publish({ v: 1, type: 'event', kind: 'info', text: 'y'.repeat(64 * 1024), at: i });
    (victim.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    expect(await closed).toBe(1013);
  });

  it('terminates a peer that stops answering pings', async () => {
    const server = await start({ heartbeatMs: 50 });
    const dead = await client(server);
    expect(server.clientCount).toBe(1);
    (dead.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    await until(() => server.clientCount === 0, 'the dead peer to be dropped');
  });

  it('serves the dashboard and uPlot from the repository, nothing else', async () => {
    const server = await start();
    const page = await fetch(server.url);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('/vendor/uPlot.iife.min.js');
    expect((await fetch(`${server.url}vendor/uPlot.iife.min.js`)).status).toBe(200);
    expect((await fetch(`${server.url}dashboard/app.js`)).status).toBe(200);
    expect((await fetch(`${server.url}dashboard/..%2f..%2fpackage.json`)).status).toBe(404);
    expect((await fetch(`${server.url}package.json`)).status).toBe(404);
  });

  it('liveStream follows the server across a restart on the same port', async () => {
    const first = await start();
    const port = first.port;
    const stream = liveStream(`ws://127.0.0.1:${port}/live`, { retryMs: 50 });
    const events = firstValueFrom(
      stream.pipe(
        filter((m) => m.type === 'event'),
        take(2),
        toArray(),
      ),
    );
    await new Promise((r) => setTimeout(r, 100));
    first.hub.publish({ v: 1, type: 'event', kind: 'info', text: 'before', at: 1 });
    await new Promise((r) => setTimeout(r, 50));
    await first.close();
    servers.splice(servers.indexOf(first), 1);
    const second = await start({ port });
    await until(() => second.clientCount === 1, 'the reconnection');
    second.hub.publish({ v: 1, type: 'event', kind: 'info', text: 'after', at: 2 });
    expect((await events).map((m) => (m as { text: string }).text)).toEqual(['before', 'after']);
  });
});
