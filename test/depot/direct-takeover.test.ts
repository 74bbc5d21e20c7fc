import { once } from 'node:events';
import { createServer, connect, type Socket } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { DirectSocket, checkDirectReads, directReadStats, directReadsEnabled } from '../../depot/server/direct-socket.js';
import { RawSession, startDepot, type TestDepot } from '../helpers/depot-fixture.js';

async function until(cond: () => boolean, what: string, ms = 3_000): Promise<void> {
  for (const deadline = Date.now() + ms; !cond();) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The prototype of Node's TCP handle that owns useUserBuffer. */
async function userBufferProto(): Promise<Record<string, unknown>> {
  const server = createServer((s) => s.destroy());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const c = connect({ host: '127.0.0.1', port: (server.address() as { port: number }).port });
  await once(c, 'connect');
  let p = Object.getPrototypeOf((c as unknown as { _handle: object })._handle) as Record<string, unknown> | null;
  c.destroy();
  server.close();
  while (p !== null && !Object.prototype.hasOwnProperty.call(p, 'useUserBuffer')) p = Object.getPrototypeOf(p);
  return p!;
}

describe('taking over an accepted socket where the handle is not as expected', () => {
  const undo: (() => void)[] = [];
  let t: TestDepot | undefined;
  afterEach(async () => {
    for (const f of undo.splice(0).reverse()) f();
    await t?.close();
    t = undefined;
    directReadStats.offReason = undefined;
  });

  /** Replaces useUserBuffer for the test (undefined: removes it). */
  async function replaceUserBuffer(f: ((this: unknown, b: Uint8Array) => unknown) | undefined): Promise<void> {
    const p = await userBufferProto();
    const orig = p['useUserBuffer'];
    if (f === undefined) delete p['useUserBuffer'];
    else p['useUserBuffer'] = f;
    undo.push(() => (p['useUserBuffer'] = orig));
  }

  /** Accepts one connection, adopting it, and sends a line over it. */
  async function exercise(): Promise<{ adopted: DirectSocket | undefined; got: string; clientClosed: boolean }> {
    let adopted = 'none' as DirectSocket | undefined | 'none';
    const got: Buffer[] = [];
    const server = createServer((s: Socket) => {
      adopted = DirectSocket.adopt(s);
      // Not taken over: the accepted socket is read through 'data' events.
      (adopted?.socket ?? s).on('data', (b: Buffer) => got.push(Buffer.from(b)));
      adopted?.attach(undefined);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    undo.push(() => server.close());
    const c = connect({ host: '127.0.0.1', port: (server.address() as { port: number }).port });
    c.on('error', () => undefined);
    let clientClosed = false;
    c.once('close', () => (clientClosed = true));
    await once(c, 'connect');
    undo.push(() => c.destroy());
    await until(() => adopted !== 'none', 'the accept');
    c.write('hello');
    await until(() => Buffer.concat(got).toString() === 'hello' || clientClosed, 'the bytes, or the connection closed');
    return { adopted: adopted as DirectSocket | undefined, got: Buffer.concat(got).toString(), clientClosed };
  }

  it('no useUserBuffer: not taken over, the bytes come as data events, direct reads stay on for others', async () => {
    await replaceUserBuffer(undefined);
    const r = await exercise();
    expect(r.adopted).toBeUndefined();
    expect(r.got).toBe('hello');
    expect(directReadStats.offReason).toBeUndefined();
  });

  it('a useUserBuffer that throws once the takeover began: that connection is closed, direct reads go off', async () => {
    await replaceUserBuffer(function () {
      throw new TypeError('changed signature');
    });
    const r = await exercise();
    expect(r.adopted).toBeUndefined();
    expect(r.clientClosed).toBe(true);
    expect(r.got).toBe('');
    expect(directReadsEnabled()).toBe(false);
    expect(directReadStats.offReason).toMatch(/changed signature/);
  });

  it('a depot whose first takeover fails closes that connection at once and serves the next one', async () => {
    t = await startDepot();
    await replaceUserBuffer(function () {
      throw new TypeError('changed signature');
    });
    const s = await RawSession.open(t.port);
    s.send(`1 1 1 2 1 600 1000 10\n`);
    await expect(s.line(3_000)).rejects.toThrow();
    await s.closed;
    const s2 = await RawSession.open(t.port);
    s2.send(`1 1 1 2 1 600 1000 10\n`);
    expect(await s2.line(3_000)).toMatch(/^1 /);
    s2.end();
  });

  it('the start-up check passes on this Node, and turns direct reads off where reads do not go where aimed', async () => {
    expect(await checkDirectReads(3_000, true)).toBe(true);
    expect(directReadStats.offReason).toBeUndefined();
    // A handle that ignores the buffer it is given: reads are not where the socket says.
    await replaceUserBuffer(function () {
      return undefined;
    });
    expect(await checkDirectReads(3_000, true)).toBe(false);
    expect(directReadStats.offReason).toMatch(/direct read check failed/);
    expect(directReadsEnabled()).toBe(false);
  });

  it('a depot says in its listening line whether bodies are read in place, and why not', async () => {
    const lines: string[] = [];
    t = await startDepot({}, undefined, { logger: pino({ level: 'info' }, { write: (l: string) => void lines.push(l) }) });
    const listening = () =>
      lines.map((l) => JSON.parse(l) as { msg: string; directReads?: string }).find((l) => l.msg === 'depot listening');
    expect(listening()?.directReads).toBe('on');
    await t.close();
    lines.length = 0;
    await replaceUserBuffer(function () {
      return undefined;
    });
    await checkDirectReads(3_000, true);
    t = await startDepot({}, undefined, { logger: pino({ level: 'info' }, { write: (l: string) => void lines.push(l) }) });
    expect(listening()?.directReads).toMatch(/direct read check failed/);
  });
});
