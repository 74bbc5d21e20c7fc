import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { formatLoad, keyRefOf, parseCapability } from '../../ibp/index.js';
import type { AllocationCaps } from '../../framework/index.js';
import { startDepot } from '../helpers/depot-fixture.js';
import { tempDir } from '../helpers/temp-dir.js';

const MIB = 1024 * 1024;

function pattern(len: number, salt: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i += 4) b.writeUInt32LE((salt * 0x9e3779b1 + i) >>> 0, i);
  return b;
}

/** Resumes a paused socket and collects the body of its reply (`length` bytes past the reply line). */
async function drainReply(s: Socket, length: number, timeoutMs = 20_000): Promise<Buffer> {
  const parts: Buffer[] = [];
  let held = 0;
  s.on('data', (c: Buffer) => {
    parts.push(c);
    held += c.length;
  });
  s.resume();
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline;) {
    const all = Buffer.concat(parts);
    const nl = all.indexOf(0x0a);
    if (nl >= 0 && held - nl - 1 >= length) return all.subarray(nl + 1, nl + 1 + length);
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`only ${held} bytes arrived`);
}

describe('disk LOAD run buffers', () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('a reader that does not read keeps its bytes while other LOADs reuse the run buffers', async () => {
    const dir = tempDir();
    cleanups.push(dir.cleanup);
    const t = await startDepot({ resource: [{ rid: '1', path: dir.path, capacityBytes: '256MiB', fsync: 'fast' }] });
    cleanups.push(() => t.close());
    const addr = { host: t.host, port: t.port };
    const size = 24 * MIB;
    const caps: AllocationCaps[] = [];
    const data = [pattern(size, 1), pattern(size, 2)];
    for (const d of data) {
      const c = await t.client.allocate(addr, { size, durationSec: 600 });
      await t.client.store(c.write, d);
      caps.push(c);
    }
    const cap = (i: number) => {
      const c = caps[i]!.read;
      return typeof c === 'string' ? parseCapability(c)! : c;
    };

    // A client asks for all of allocation 0 and then reads nothing for a while: the depot is left
    // holding runs it could not hand to the socket yet.
    const slow = connect({ host: t.host, port: t.port });
    cleanups.push(() => slow.destroy());
    await once(slow, 'connect');
    slow.pause();
    slow.write(formatLoad({ version: 1, cap: keyRefOf(cap(0)), offset: 0, length: size, timeoutSec: 60 }), 'latin1');
    await new Promise((r) => setTimeout(r, 300));

    // Meanwhile other LOADs go through the same run buffers, several times over.
    for (let round = 0; round < 3; round++) {
      const got = await t.client.load(caps[1]!.read, 0, size);
      expect(Buffer.compare(got, data[1]!)).toBe(0);
    }

    const slowGot = await drainReply(slow, size);
    expect(slowGot.length).toBe(size);
    expect(Buffer.compare(slowGot, data[0]!)).toBe(0);
  });
});
