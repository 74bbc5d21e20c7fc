import { once } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DirectSocket, directReadStats } from '../../depot/server/direct-socket.js';
import { MemoryData, SEGMENT_BYTES, segmentPool, zeroFill } from '../../depot/resources/memory-data.js';
import type { DirectTarget } from '../../ibp/index.js';
import type { RangeWriter } from '../../depot/core/allocation.js';
import { RawSession, keyOf, rawAllocate, startDepot, type TestDepot } from '../helpers/depot-fixture.js';
import { filledMemory } from '../helpers/memory-data.js';
import { pattern } from '../helpers/patterns.js';

/** A memory writer into segments: it also offers spans. */
type SpanWriter = RangeWriter & DirectTarget;

/** A listening server whose accepted sockets are handed to `onSocket`. */
async function listen(onSocket: (s: Socket) => void): Promise<{ server: Server; port: number }> {
  const server = createServer({ noDelay: true }, onSocket);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as { port: number }).port };
}

async function connected(port: number): Promise<Socket> {
  const c = connect({ host: '127.0.0.1', port, noDelay: true });
  await once(c, 'connect');
  return c;
}

function connectionsOf(server: Server): Promise<number> {
  return new Promise((resolve, reject) => server.getConnections((e, n) => (e ? reject(e) : resolve(n))));
}

/** Waits (bounded) until `cond` holds. */
async function until(cond: () => boolean, what: string, ms = 5_000): Promise<void> {
  for (const deadline = Date.now() + ms; !cond();) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('DirectSocket: an accepted socket read into memory its reader picks', () => {
  const cleanup: (() => void)[] = [];
  afterEach(() => {
    for (const f of cleanup.splice(0)) f();
    delete process.env['ANVIL_DIRECT_READS'];
  });

  it('takes over the socket: bytes go to the consumer or land where it aims; closing frees it for its server', async () => {
    let direct: DirectSocket | undefined;
    let accepted: Socket | undefined;
    let acceptedClosed = false;
    const { server, port } = await listen((s) => {
      accepted = s;
      s.once('close', () => (acceptedClosed = true));
      direct = DirectSocket.adopt(s);
    });
    cleanup.push(() => server.close());
    const client = await connected(port);
    await until(() => direct !== undefined, 'the accepted socket');
    const received: Buffer[] = [];
    const target = Buffer.alloc(1000);
    let landed = 0;
    direct!.attach({ received: (b) => void received.push(Buffer.from(b)), landed: (n) => (landed += n) });
    client.write('hello');
    await until(() => received.length > 0, 'the first bytes');
    expect(Buffer.concat(received).toString()).toBe('hello');
    direct!.aim(target);
    const body = pattern(1000, 1);
    client.write(body);
    await until(() => landed === 1000, 'the body in place');
    expect(target.equals(body)).toBe(true);
    // Both sockets still tell the peer's address.
    expect(direct!.socket.remotePort).toBe(client.localPort);
    expect(accepted!.remotePort).toBe(client.localPort);
    // Writes go through the socket that took over.
    direct!.socket.write('reply');
    const [echo] = (await once(client, 'data')) as [Buffer];
    expect(echo.toString()).toBe('reply');
    expect(await connectionsOf(server)).toBe(1);
    client.end();
    await until(() => direct!.socket.destroyed && acceptedClosed, 'both sockets closed');
    expect(await connectionsOf(server)).toBe(0);
  });

  it('closing the accepted socket (a server cutting every socket) closes the one that took over', async () => {
    let accepted: Socket | undefined;
    let direct: DirectSocket | undefined;
    const { server, port } = await listen((s) => {
      accepted = s;
      direct = DirectSocket.adopt(s);
    });
    cleanup.push(() => server.close());
    const client = await connected(port);
    client.on('error', () => undefined);
    client.resume();
    const clientClosed = once(client, 'close');
    await until(() => direct !== undefined, 'the accepted socket');
    accepted!.destroy();
    await until(() => direct!.socket.destroyed, 'the taken-over socket closed');
    await clientClosed;
    expect(await connectionsOf(server)).toBe(0);
  });

  it('once its reader detaches, reads come as data events (a release draining input)', async () => {
    let direct: DirectSocket | undefined;
    const { server, port } = await listen((s) => (direct = DirectSocket.adopt(s)));
    cleanup.push(() => server.close());
    const client = await connected(port);
    cleanup.push(() => client.destroy());
    await until(() => direct !== undefined, 'the accepted socket');
    direct!.attach({ received: () => undefined, landed: () => undefined });
    direct!.attach(undefined);
    const drained: Buffer[] = [];
    direct!.socket.on('data', (b: Buffer) => drained.push(Buffer.from(b)));
    client.write('left over');
    await until(() => Buffer.concat(drained).toString() === 'left over', 'the drained bytes');
  });

  it('bytes that arrive before the reader attaches are handed over when it does', async () => {
    let direct: DirectSocket | undefined;
    const { server, port } = await listen((s) => (direct = DirectSocket.adopt(s)));
    cleanup.push(() => server.close());
    const client = await connected(port);
    cleanup.push(() => client.destroy());
    client.write('early');
    await until(() => direct !== undefined, 'the accepted socket');
    await new Promise((r) => setTimeout(r, 50));
    const got: Buffer[] = [];
    direct!.attach({ received: (b) => void got.push(Buffer.from(b)), landed: () => undefined });
    await until(() => Buffer.concat(got).toString() === 'early', 'the early bytes');
  });

  it('a consumer that fails while a read is delivered ends that connection, nothing else', async () => {
    let direct: DirectSocket | undefined;
    const { server, port } = await listen((s) => (direct = DirectSocket.adopt(s)));
    cleanup.push(() => server.close());
    const client = await connected(port);
    client.on('error', () => undefined);
    client.resume();
    const clientClosed = once(client, 'close');
    await until(() => direct !== undefined, 'the accepted socket');
    let failure: Error | undefined;
    direct!.socket.on('error', (e: Error) => (failure = e));
    direct!.attach({
      received: () => {
        throw new Error('consumer broke');
      },
      landed: () => undefined,
    });
    client.write('boom');
    await clientClosed;
    expect(failure?.message).toBe('consumer broke');
    expect(direct!.socket.destroyed).toBe(true);
  });

  it('ANVIL_DIRECT_READS=0 leaves the socket as it is', async () => {
    process.env['ANVIL_DIRECT_READS'] = '0';
    let result: DirectSocket | undefined | 'none' = 'none';
    let socket: Socket | undefined;
    const { server, port } = await listen((s) => {
      socket = s;
      result = DirectSocket.adopt(s);
    });
    cleanup.push(() => server.close());
    const client = await connected(port);
    cleanup.push(() => client.destroy());
    await until(() => result !== 'none', 'the accepted socket');
    expect(result).toBeUndefined();
    const got: Buffer[] = [];
    socket!.on('data', (b: Buffer) => got.push(b));
    client.write('plain');
    await until(() => Buffer.concat(got).toString() === 'plain', 'plain data events');
  });

  it('a socket that is not a fresh TCP socket is not taken over', async () => {
    let socket: Socket | undefined;
    const { server, port } = await listen((s) => (socket = s));
    cleanup.push(() => server.close());
    const client = await connected(port);
    cleanup.push(() => client.destroy());
    await until(() => socket !== undefined, 'the accepted socket');
    socket!.on('data', () => undefined); // someone already reads it
    expect(DirectSocket.adopt(socket!)).toBeUndefined();
    socket!.destroy();
    expect(DirectSocket.adopt(socket!)).toBeUndefined();
  });
});

describe('memory segments offer their memory to a body read in place', () => {
  beforeEach(() => segmentPool.clear());

  it('a span is offered past the size and below it, and bytes landed there read back', async () => {
    const owner = { size: 0, maxSize: 4 * SEGMENT_BYTES };
    const d = new MemoryData(owner);
    const w = (await d.openWriter(0, SEGMENT_BYTES + 100)) as SpanWriter;
    const first = w.span(1 << 30)!;
    // A span never crosses a segment.
    expect(first.length).toBe(SEGMENT_BYTES);
    const body = pattern(SEGMENT_BYTES + 100, 2);
    first.set(body.subarray(0, 5000));
    w.landed(5000);
    w.write(body.subarray(5000, SEGMENT_BYTES));
    const second = w.span(1 << 30)!;
    expect(second.length).toBe(100);
    second.set(body.subarray(SEGMENT_BYTES));
    w.landed(100);
    await w.finish(SEGMENT_BYTES + 100);
    owner.size = SEGMENT_BYTES + 100;
    const parts: Buffer[] = [];
    await d.read(0, owner.size, (c) => void parts.push(Buffer.from(c)));
    expect(Buffer.concat(parts).equals(body)).toBe(true);
    // An overwrite below the size lands in the attached segment too.
    const over = (await d.openWriter(10, 10)) as SpanWriter;
    const third = over.span(10)!;
    expect(third.length).toBe(10);
    third.fill(0xab);
    over.landed(10);
    await over.finish(10);
    body.fill(0xab, 10, 20);
    const again: Buffer[] = [];
    await d.read(0, owner.size, (c) => void again.push(Buffer.from(c)));
    expect(Buffer.concat(again).equals(body)).toBe(true);
    expect(segmentPool.pinnedCount).toBe(0);
  });

  it('a segment freed while a span is out is not given to another allocation before its bytes land', async () => {
    const owner = { size: 0, maxSize: 2 * SEGMENT_BYTES };
    const d = new MemoryData(owner);
    const w = (await d.openWriter(0, SEGMENT_BYTES)) as SpanWriter;
    const span = w.span(SEGMENT_BYTES)!;
    await d.release(); // DELETE while the body is on its way
    // Another allocation attaches a segment now: it must not be the one the read will land in.
    const { d: d2 } = await filledMemory(10, 1);
    span.fill(0xee); // the read lands
    w.landed(SEGMENT_BYTES);
    const got: Buffer[] = [];
    await d2.read(0, 10, (c) => void got.push(Buffer.from(c)));
    expect(Buffer.concat(got).equals(Buffer.alloc(10, 1))).toBe(true);
    // Landed, the segment is free to be pooled again, and a new taker finds it zeroed.
    segmentPool.clear();
  });

  it('a TRUNCATE while a span is out: the landed bytes go where a write would have put them', async () => {
    const owner = { size: 0, maxSize: 2 * SEGMENT_BYTES };
    const d = new MemoryData(owner);
    const w = (await d.openWriter(0, 1000)) as SpanWriter;
    const span = w.span(1000)!;
    await d.truncate(0, 2 * SEGMENT_BYTES); // zeroes past the size: the held segment is replaced by a copy
    span.set(pattern(1000, 3));
    w.landed(1000);
    await w.finish(1000);
    owner.size = 1000;
    const got: Buffer[] = [];
    await d.read(0, 1000, (c) => void got.push(Buffer.from(c)));
    expect(Buffer.concat(got).equals(pattern(1000, 3))).toBe(true);
  });

  it('an aborted write gives its span back and leaves zeros past the size', async () => {
    const owner = { size: 0, maxSize: 2 * SEGMENT_BYTES };
    const d = new MemoryData(owner);
    const w = (await d.openWriter(0, 1000)) as SpanWriter;
    const span = w.span(1000)!;
    span.fill(9);
    w.landed(500);
    w.span(500);
    expect(segmentPool.pinnedCount).toBe(1);
    await w.abort();
    expect(segmentPool.pinnedCount).toBe(0);
    owner.size = 1000;
    const got: Buffer[] = [];
    await d.read(0, 1000, (c) => void got.push(Buffer.from(c)));
    expect(Buffer.concat(got).every((x) => x === 0)).toBe(true);
  });

  it('zeroFill clears exactly the range, across more than one segment length', () => {
    const b = Buffer.from(new SharedArrayBuffer(2 * SEGMENT_BYTES + 10)).fill(5);
    zeroFill(b, 3, 2 * SEGMENT_BYTES + 7);
    expect(b[2]).toBe(5);
    expect(b.subarray(3, 2 * SEGMENT_BYTES + 7).every((x) => x === 0)).toBe(true);
    expect(b[2 * SEGMENT_BYTES + 7]).toBe(5);
  });
});

describe('a depot reads STORE bodies in place', () => {
  let t: TestDepot | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it('a 5 MiB body sent in uneven pieces, with a LOAD pipelined behind it: stored intact, mostly in place', async () => {
    t = await startDepot();
    const s = await RawSession.open(t.port);
    const [read, write] = await rawAllocate(s, 8 << 20);
    const body = pattern((5 << 20) + 123, 4);
    const landedBefore = directReadStats.landedBytes;
    s.send(`1 2 ${keyOf(write)} ${body.length} 30\n`);
    expect(await s.line()).toBe('1 \n');
    for (let at = 0, k = 1; at < body.length; k++) {
      const n = Math.min(body.length - at, ((k * 7919) % 700_000) + 1);
      const last = at + n >= body.length;
      // The last piece carries the next command with it.
      s.send(
        last
          ? Buffer.concat([body.subarray(at, at + n), Buffer.from(`1 8 ${keyOf(read)} 0 ${body.length} 30\n`)])
          : body.subarray(at, at + n),
      );
      at += n;
      if (k % 3 === 0) await new Promise((r) => setImmediate(r));
    }
    expect(await s.line()).toBe(`1 ${body.length} \n`);
    expect(await s.line()).toBe(`1 ${body.length} \n`);
    expect((await s.bytes(body.length)).equals(body)).toBe(true);
    expect(directReadStats.landedBytes - landedBefore).toBeGreaterThan(body.length / 2);
    s.end();
  });

  it('a body that stalls is refused, and what the client sends afterwards never reaches the allocation', async () => {
    t = await startDepot({ limits: { dataProgressTimeoutMs: 300 } });
    const s = await RawSession.open(t.port);
    const [read, write] = await rawAllocate(s, 4 << 20);
    s.send(`1 2 ${keyOf(write)} ${3 << 20} 30\n`);
    expect(await s.line()).toBe('1 \n');
    s.send(Buffer.alloc(100_000, 0xaa)); // then silence
    expect(await s.line()).toBe('-42 \n');
    // The client keeps sending (as if it had not read the refusal) while the depot drains.
    s.send(Buffer.alloc(200_000, 0xbb));
    await s.closedWithin(5_000);
    const s2 = await RawSession.open(t.port);
    const body = pattern(1 << 20, 5);
    s2.send(`1 2 ${keyOf(write)} ${body.length} 30\n`);
    expect(await s2.line()).toBe('1 \n');
    s2.send(body);
    expect(await s2.line()).toBe(`1 ${body.length} \n`);
    // Size is the second body's; the whole allocation up to its max reads as it should.
    s2.send(`1 8 ${keyOf(read)} 0 ${body.length} 30\n`);
    expect(await s2.line()).toBe(`1 ${body.length} \n`);
    expect((await s2.bytes(body.length)).equals(body)).toBe(true);
    s2.send(`1 8 ${keyOf(read)} ${body.length} 1 30\n`);
    expect((await s2.line()).startsWith('-')).toBe(true);
    s2.end();
  });

  it('the depot closes with a connection idle between commands, and with one in the middle of a body', async () => {
    t = await startDepot({ limits: { shutdownGraceMs: 300 } });
    const idle = await RawSession.open(t.port);
    const busy = await RawSession.open(t.port);
    const [, write] = await rawAllocate(busy, 1 << 20);
    busy.send(`1 2 ${keyOf(write)} ${1 << 20} 30\n`);
    expect(await busy.line()).toBe('1 \n');
    busy.send(Buffer.alloc(1000, 1));
    await t.close();
    t = undefined;
    expect(await idle.closedWithin(5_000)).toBe(true);
    expect(await busy.closedWithin(5_000)).toBe(true);
  });
});
