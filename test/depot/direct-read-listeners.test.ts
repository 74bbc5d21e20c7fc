import { once } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { DirectSocket, directReadStats } from '../../depot/server/direct-socket.js';
import { StreamReader, type DirectTarget } from '../../ibp/index.js';
import { RawSession, keyOf, rawAllocate, startDepot, type TestDepot } from '../helpers/depot-fixture.js';

/**
 * Every `useUserBuffer` call on a stream handle pushes a native listener that lives as long as
 * the connection: a connection must not make one per read, nor one per body.
 */

/** The prototype that owns useUserBuffer (Node's StreamBase methods of the TCP handle). */
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

/** Counts useUserBuffer calls until the returned undo runs. */
async function countCalls(): Promise<{ calls: () => number; undo: () => void }> {
  const p = await userBufferProto();
  const orig = p['useUserBuffer'] as (this: unknown, b: Uint8Array) => unknown;
  let calls = 0;
  p['useUserBuffer'] = function (this: unknown, b: Uint8Array) {
    calls++;
    return orig.call(this, b);
  };
  return { calls: () => calls, undo: () => (p['useUserBuffer'] = orig) };
}

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7 + (i >> 11)) & 0xff;
  return b;
}

/** A target over one buffer offering spans of at most 300 KiB, checking the span protocol. */
function bufferTarget(dst: Buffer): DirectTarget & { writes(c: Buffer): void; landings: number } {
  let out: number | undefined;
  let cursor = 0;
  const t = {
    landings: 0,
    span(max: number) {
      if (out !== undefined) throw new Error('span already out');
      out = Math.min(max, 300 * 1024, dst.length - cursor);
      return dst.subarray(cursor, cursor + out);
    },
    landed(n: number) {
      if (out === undefined || n > out) throw new Error('landed without a span, or past it');
      cursor += n;
      out = undefined;
      t.landings++;
    },
    cancel() {
      out = undefined;
    },
    writes(c: Buffer) {
      if (out !== undefined) throw new Error('a write while a span is out');
      c.copy(dst, cursor);
      cursor += c.length;
    },
  };
  return t;
}

describe('a connection read in place keeps no native listener per read or per body', () => {
  const undo: (() => void)[] = [];
  let t: TestDepot | undefined;
  afterEach(async () => {
    for (const f of undo.splice(0)) f();
    await t?.close();
    t = undefined;
  });

  it('aiming and disarming between reads, a million times, calls useUserBuffer never', async () => {
    const counter = await countCalls();
    undo.push(counter.undo);
    let direct: DirectSocket | undefined;
    const server: Server = createServer((s) => (direct = DirectSocket.adopt(s)));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    undo.push(() => server.close());
    const c = connect({ host: '127.0.0.1', port: (server.address() as { port: number }).port });
    await once(c, 'connect');
    undo.push(() => c.destroy());
    for (let i = 0; i < 400 && direct === undefined; i++) await new Promise((r) => setTimeout(r, 5));
    const got: Buffer[] = [];
    let landed = 0;
    direct!.attach({ received: (b) => void got.push(b), landed: (n) => void (landed += n) });
    const target = Buffer.alloc(4096);
    const before = counter.calls();
    for (let i = 0; i < 1_000_000; i++) {
      direct!.aim(target);
      direct!.aim(undefined);
    }
    expect(counter.calls() - before).toBe(0);
    // Aimed outside a read, the next read still ends up in the target.
    direct!.aim(target);
    c.write('landed after all');
    for (let i = 0; i < 400 && landed === 0 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    expect(landed).toBe(16);
    expect(got).toEqual([]);
    expect(target.subarray(0, 16).toString()).toBe('landed after all');
    direct!.socket.destroy();
  });

  it('bodies in uneven pieces between pipelined lines: intact, landed in place, no useUserBuffer call', async () => {
    const counter = await countCalls();
    undo.push(counter.undo);
    let direct: DirectSocket | undefined;
    const server = createServer((s: Socket) => (direct = DirectSocket.adopt(s)));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    undo.push(() => server.close());
    const c = connect({ host: '127.0.0.1', port: (server.address() as { port: number }).port, noDelay: true });
    await once(c, 'connect');
    undo.push(() => c.destroy());
    for (let i = 0; i < 400 && direct === undefined; i++) await new Promise((r) => setTimeout(r, 5));
    undo.push(() => direct?.socket.destroy());
    const reader = new StreamReader(direct!.socket, { highWaterBytes: 1 << 20, source: direct! });
    const bodies = [pattern((3 << 20) + 17, 1), pattern((1 << 20) + 3, 2), pattern(5, 3)];
    const wire = Buffer.concat([
      Buffer.from('A\n'),
      bodies[0]!,
      Buffer.from('B\n'),
      bodies[1]!,
      Buffer.from('C\n'),
      bodies[2]!,
      Buffer.from('D\n'),
    ]);
    const c0 = counter.calls();
    const sending = (async () => {
      for (let at = 0, k = 1; at < wire.length; k++) {
        const n = Math.min(wire.length - at, ((k * 7919) % 40_000) + 1);
        c.write(wire.subarray(at, at + n));
        at += n;
        await new Promise((r) => setImmediate(r));
      }
    })();
    const lines: string[] = [];
    let landings = 0;
    for (const body of bodies) {
      lines.push(await reader.readLine(100, 5000, 5000));
      const dst = Buffer.alloc(body.length);
      const tgt = bufferTarget(dst);
      await reader.readBytes(body.length, 5000, (chunk) => tgt.writes(chunk), Date.now() + 30_000, tgt);
      expect(dst.equals(body)).toBe(true);
      landings += tgt.landings;
    }
    lines.push(await reader.readLine(100, 5000, 5000));
    await sending;
    expect(lines).toEqual(['A', 'B', 'C', 'D']);
    expect(landings).toBeGreaterThan(50);
    expect(counter.calls() - c0).toBe(0);
  });

  it('a depot taking twenty STOREs on one connection, each in a hundred pieces, calls useUserBuffer never', async () => {
    const counter = await countCalls();
    undo.push(counter.undo);
    t = await startDepot();
    const s = await RawSession.open(t.port);
    const [read, write] = await rawAllocate(s, 4 << 20);
    const landed0 = directReadStats.landedBytes;
    const c0 = counter.calls();
    let size = 0;
    for (let b = 0; b < 20; b++) {
      const body = pattern(100 * 1000, b);
      s.send(`1 2 ${keyOf(write)} ${body.length} 30\n`);
      expect(await s.line()).toBe('1 \n');
      for (let k = 0; k < 100; k++) {
        s.send(body.subarray(k * 1000, (k + 1) * 1000));
        await new Promise((r) => setImmediate(r));
      }
      size += body.length;
      expect(await s.line()).toBe(`1 ${body.length} \n`);
    }
    expect(counter.calls() - c0).toBe(0);
    expect(directReadStats.landedBytes - landed0).toBeGreaterThan(size / 2);
    s.send(`1 8 ${keyOf(read)} ${size - 1000} 1000 30\n`);
    expect(await s.line()).toBe('1 1000 \n');
    expect((await s.bytes(1000)).equals(pattern(100 * 1000, 19).subarray(99_000))).toBe(true);
    s.end();
  });

  it('a target given back between reads is swapped for the staging buffer at once: later bytes never reach it', async () => {
    const counter = await countCalls();
    undo.push(counter.undo);
    let direct: DirectSocket | undefined;
    const server = createServer((s: Socket) => (direct = DirectSocket.adopt(s)));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    undo.push(() => server.close());
    const c = connect({ host: '127.0.0.1', port: (server.address() as { port: number }).port, noDelay: true });
    await once(c, 'connect');
    undo.push(() => c.destroy());
    for (let i = 0; i < 400 && direct === undefined; i++) await new Promise((r) => setTimeout(r, 5));
    undo.push(() => direct?.socket.destroy());
    const target = Buffer.alloc(64);
    const got: Buffer[] = [];
    // Aimed while a read is delivered: the handle reads into the target next.
    direct!.attach({
      received: (b) => {
        got.push(Buffer.from(b));
        direct!.aim(target);
      },
      landed: () => undefined,
    });
    c.write('first');
    for (let i = 0; i < 400 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    expect(got.map(String)).toEqual(['first']);
    direct!.attach({ received: (b) => void got.push(Buffer.from(b)), landed: () => undefined });
    const c0 = counter.calls();
    direct!.aim(undefined); // a body that failed gives its span back
    expect(counter.calls() - c0).toBe(1);
    c.write('second');
    for (let i = 0; i < 400 && got.length === 1; i++) await new Promise((r) => setTimeout(r, 5));
    expect(got.map(String)).toEqual(['first', 'second']);
    expect(target.equals(Buffer.alloc(64))).toBe(true);
  });
});

describe('bytes read into the staging buffer and queued hold little more memory than they are', () => {
  it('a 20 KiB read is copied out, not handed over with the whole 64 KiB buffer', async () => {
    let direct: DirectSocket | undefined;
    const server = createServer((s: Socket) => (direct = DirectSocket.adopt(s)));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const c = connect({ host: '127.0.0.1', port: (server.address() as { port: number }).port, noDelay: true });
    try {
      await once(c, 'connect');
      for (let i = 0; i < 400 && direct === undefined; i++) await new Promise((r) => setTimeout(r, 5));
      const got: Buffer[] = [];
      direct!.attach({ received: (b) => void got.push(b), landed: () => undefined });
      c.write(pattern(20 * 1024, 9));
      for (let i = 0; i < 400 && got.reduce((n, b) => n + b.length, 0) < 20 * 1024; i++) {
        await new Promise((r) => setTimeout(r, 5));
      }
      expect(Buffer.concat(got).equals(pattern(20 * 1024, 9))).toBe(true);
      for (const b of got) expect(b.buffer.byteLength).toBeLessThanOrEqual(Math.max(8192, Math.ceil((b.length * 4) / 3)));
    } finally {
      c.destroy();
      direct?.socket.destroy();
      server.close();
    }
  });
});
