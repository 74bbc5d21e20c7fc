import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capTokens } from '../../ibp/index.js';
import { startDepot, type TestDepot } from '../helpers/depot-fixture.js';

/**
 * A reply a slow reader has not taken yet sits partly in the depot's socket queue, as views of the
 * allocation's memory. An overwrite acknowledged meanwhile must not reach into the chunk being sent:
 * the reply would carry bytes of two moments, which no reader can tell from damage.
 */
const MiB = 1024 * 1024;

/** A connection that reads nothing until asked: the depot's reply backs up into its own queue. */
async function stalledRequest(port: number, line: string): Promise<Socket> {
  const s = connect({ host: '127.0.0.1', port, noDelay: true });
  s.on('error', () => undefined);
  await once(s, 'connect');
  s.write(line, 'latin1');
  // Paused from the start: Node reads a little (its high-water mark) and then stops reading.
  s.pause();
  // The reply has begun, and this side has stopped reading, once its buffer is full.
  for (const until = Date.now() + 10_000; s.readableLength < s.readableHighWaterMark;) {
    if (Date.now() > until) throw new Error('the reply did not fill the reader');
    await new Promise((r) => setTimeout(r, 5));
  }
  return s;
}

/** Reads the reply's header line and then `length` body bytes. */
async function drain(s: Socket, length: number): Promise<{ head: string; body: Buffer }> {
  const parts: Buffer[] = [];
  let got = 0;
  let headBytes = -1;
  s.resume();
  const deadline = setTimeout(() => s.destroy(new Error('reply did not complete')), 20_000);
  try {
    for await (const c of s as AsyncIterable<Buffer>) {
      parts.push(c);
      got += c.length;
      // The header line comes first and is short: found once, then bytes are only counted.
      if (headBytes < 0) {
        const nl = Buffer.concat(parts).indexOf(0x0a);
        if (nl >= 0) headBytes = nl + 1;
      }
      if (headBytes >= 0 && got - headBytes >= length) {
        const all = Buffer.concat(parts);
        return { head: all.subarray(0, headBytes).toString('latin1'), body: all.subarray(headBytes, headBytes + length) };
      }
    }
  } finally {
    clearTimeout(deadline);
    s.destroy();
  }
  throw new Error('connection closed before the reply was complete');
}

describe('a reply queued behind a slow reader keeps the bytes of its time (memory resource)', () => {
  let t: TestDepot;
  beforeAll(async () => {
    t = await startDepot({ resource: [{ rid: '1', capacityBytes: '64MiB' }] });
  });
  afterAll(async () => {
    await t.close();
  });

  // 16 MiB in 2 MiB segments: far more than the kernel's socket buffers hold (about 2 MiB here),
  // so part of the reply waits in the depot's queue as a view of a segment when the overwrite is
  // acknowledged. VEC_READ lent segments unpinned before it sent chunks whole; LOAD always pinned
  // them, and its case guards that. (A small allocation's reply fits the kernel's buffers: its pin
  // is tested in memory-data.test.ts.)
  const size = 16 * MiB;
  for (const command of ['LOAD', 'VEC_READ'] as const) {
    it(`${command}: old bytes up to a segment's end, then the new ones`, async () => {
      const caps = await t.client.allocate({ host: '127.0.0.1', port: t.port }, { size, durationSec: 600 });
      await t.client.store(caps.write, Buffer.alloc(size, 0x11));
      const key = capTokens(caps.read).join(' ');
      const line = command === 'LOAD' ? `1 8 ${key} 0 ${size} 30\n` : `1 35 ${key} 1 0 ${size} 30\n`;
      const reader = await stalledRequest(t.port, line);
      // Acknowledged while the reply is still on its way: every byte changes.
      await t.client.write(caps.write, 0, Buffer.alloc(size, 0x22));
      const { head, body } = await drain(reader, size);
      expect(head).toBe(`1 ${size} \n`);
      // Each chunk the depot handed over keeps the bytes of its time; chunks read after the
      // overwrite carry it. A switch inside a chunk is a reply of two moments.
      const firstNew = body.indexOf(0x22);
      expect(firstNew).toBeGreaterThan(0);
      expect(firstNew % (2 * MiB)).toBe(0);
      expect(body.subarray(0, firstNew).every((b) => b === 0x11)).toBe(true);
      expect(body.subarray(firstNew).every((b) => b === 0x22)).toBe(true);
      await t.client.decr(caps.manage, 'read');
    });
  }
});
