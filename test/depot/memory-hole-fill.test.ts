import { afterEach, describe, expect, it } from 'vitest';
import { formatCapability } from '../../ibp/index.js';
import { RawSession, keyOf, startDepot, type TestDepot } from '../helpers/depot-fixture.js';
import { pattern } from '../helpers/patterns.js';

const MiB = 1024 * 1024;

/**
 * A memory allocation's segments below the size that no write has attached are holes (zeros). A
 * WRITE that reaches one fills a segment of its own, read straight from the socket, which joins the
 * allocation when the WRITE is complete: until then the hole reads as zeros.
 */
describe('memory resource: WRITEs that fill holes', () => {
  let t: TestDepot | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  async function depot(): Promise<TestDepot> {
    t = await startDepot({ resource: [{ rid: '1', kind: 'memory', capacityBytes: '128MiB' }] });
    return t;
  }

  it('blocks written last first (a perf client order) read back', async () => {
    const d = await depot();
    const caps = await d.client.allocate(d, { size: 16 * MiB, durationSec: 600 });
    const parts = Array.from({ length: 16 }, (_, j) => pattern(MiB, j));
    for (let j = 15; j >= 0; j--) await d.client.write(caps.write, j * MiB, parts[j]!);
    expect((await d.client.probe(caps.manage)).size).toBe(16 * MiB);
    expect(Buffer.from(await d.client.load(caps.read, 0, 16 * MiB)).equals(Buffer.concat(parts))).toBe(true);
  });

  it('while a hole-filling WRITE waits for the rest of its body, the hole reads as zeros; then as written', async () => {
    const d = await depot();
    const caps = await d.client.allocate(d, { size: 8 * MiB, durationSec: 600 });
    await d.client.write(caps.write, 7 * MiB, Buffer.alloc(10, 9)); // [0, 7 MiB) is a hole
    const body = pattern(3 * MiB, 4);
    const s = await RawSession.open(d.port);
    s.send(`1 13 ${keyOf(formatCapability(caps.write))} ${MiB} ${body.length} 10\n`);
    expect(await s.line()).toBe('1 \n');
    s.send(body.subarray(0, 2 * MiB + 12345));
    await new Promise((r) => setTimeout(r, 100));
    expect((await d.client.load(caps.read, 0, 7 * MiB)).every((x) => x === 0)).toBe(true);
    s.send(body.subarray(2 * MiB + 12345));
    expect(await s.line()).toBe(`1 ${body.length} \n`);
    const expected = Buffer.concat([Buffer.alloc(MiB), body, Buffer.alloc(3 * MiB), Buffer.alloc(10, 9)]);
    expect(Buffer.from(await d.client.load(caps.read, 0, expected.length)).equals(expected)).toBe(true);
    s.end();
  });

  it('a hole-filling WRITE whose client goes mid-body leaves zeros; the next one fills the hole', async () => {
    const d = await depot();
    const caps = await d.client.allocate(d, { size: 8 * MiB, durationSec: 600 });
    await d.client.write(caps.write, 6 * MiB, Buffer.alloc(10, 9));
    const s = await RawSession.open(d.port);
    s.send(`1 13 ${keyOf(formatCapability(caps.write))} 0 ${4 * MiB} 10\n`);
    expect(await s.line()).toBe('1 \n');
    s.send(Buffer.alloc(3 * MiB, 0xee));
    s.end();
    await s.closed;
    // Served once the depot has given up on it (requests on one allocation are served in turn).
    await d.client.write(caps.write, 6 * MiB + 10, Buffer.alloc(1, 8));
    expect((await d.client.load(caps.read, 0, 6 * MiB)).every((x) => x === 0)).toBe(true);
    const fill = pattern(4 * MiB, 5);
    await d.client.write(caps.write, 0, fill);
    const expected = Buffer.concat([fill, Buffer.alloc(2 * MiB), Buffer.alloc(10, 9), Buffer.alloc(1, 8)]);
    expect(Buffer.from(await d.client.load(caps.read, 0, expected.length)).equals(expected)).toBe(true);
  });

  it('a WRITE from a hole below the size on past it (after a TRUNCATE into the hole) keeps every byte', async () => {
    const d = await depot();
    const caps = await d.client.allocate(d, { size: 16 * MiB, durationSec: 600 });
    await d.client.write(caps.write, 12 * MiB, Buffer.alloc(10, 9));
    await d.client.truncate(caps.manage, 5 * MiB); // the size ends inside a hole segment
    await d.client.truncate(caps.manage, 16 * MiB);
    expect((await d.client.probe(caps.manage)).size).toBe(5 * MiB);
    const body = pattern(3 * MiB, 6); // from 4 MiB (a hole) to 7 MiB, past the size
    // Sent in pieces with pauses, so that the depot takes the bytes of one segment on both sides of
    // the size in separate reads.
    const s = await RawSession.open(d.port);
    s.send(`1 13 ${keyOf(formatCapability(caps.write))} ${4 * MiB} ${body.length} 10\n`);
    expect(await s.line()).toBe('1 \n');
    for (const [from, to] of [
      [0, MiB - 1000],
      [MiB - 1000, MiB + 1000],
      [MiB + 1000, body.length],
    ] as const) {
      s.send(body.subarray(from, to));
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await s.line()).toBe(`1 ${body.length} \n`);
    s.end();
    const expected = Buffer.concat([Buffer.alloc(4 * MiB), body]);
    expect(Buffer.from(await d.client.load(caps.read, 0, expected.length)).equals(expected)).toBe(true);
  });
});
