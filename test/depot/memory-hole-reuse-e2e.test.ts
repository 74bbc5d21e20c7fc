import { expect, it } from 'vitest';
import { formatCapability } from '../../ibp/index.js';
import { RawSession, keyOf, startDepot } from '../helpers/depot-fixture.js';

it("an aborted WRITE into a hole of a memory allocation never shows a deleted allocation's bytes", async () => {
  const t = await startDepot({ resource: [{ rid: '1', kind: 'memory', capacityBytes: '64MiB' }] });
  const addr = { host: t.host, port: t.port };
  const MiB = 1 << 20;
  try {
    const a = await t.client.allocate(addr, { size: 8 * MiB, durationSec: 600 });
    await t.client.store(a.write, Buffer.alloc(8 * MiB, 0x5a));
    await t.client.decr(a.manage, 'read'); // deleted: its segments go to the warm pool
    const b = await t.client.allocate(addr, { size: 8 * MiB, durationSec: 600 });
    await t.client.write(b.write, 6 * MiB, Buffer.from([1])); // [0, 6 MiB) is a hole: zeros
    expect((await t.client.load(b.read, 0, 16)).every((x) => x === 0)).toBe(true);
    // A WRITE of 1000 bytes at 0 whose client sends 10 and goes away.
    const s = await RawSession.open(t.port);
    s.send(`1 13 ${keyOf(formatCapability(b.write))} 0 1000 10\n`);
    expect(await s.line()).toBe('1 \n');
    s.send(Buffer.alloc(10, 0));
    // While the WRITE waits for the rest of its body, a LOAD of the hole reads zeros.
    expect((await t.client.load(b.read, 0, 2 * MiB)).every((x) => x === 0)).toBe(true);
    s.end();
    await s.closed;
    // And after the depot has given up on it (a later request on the same depot is served after).
    await t.client.write(b.write, 7 * MiB, Buffer.from([2]));
    const got = await t.client.load(b.read, 0, 6 * MiB);
    expect(got.every((x) => x === 0)).toBe(true);
  } finally {
    await t.close();
  }
});
