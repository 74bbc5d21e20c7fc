import { connect } from 'node:net';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capTokens } from '../../ibp/index.js';
import { startDepot, type TestDepot } from '../helpers/depot-fixture.js';

/**
 * A client may send its commands and then shut its side of the connection down (TCP half-close, as
 * `nc -N` or a script's `shutdown(SHUT_WR)` do): it still gets every reply in full, then the depot
 * closes the connection.
 */
describe('a client that half-closes after its commands gets every reply', () => {
  let t: TestDepot;
  beforeAll(async () => {
    t = await startDepot({ resource: [{ rid: '1', capacityBytes: '64MiB' }] });
  });
  afterAll(async () => {
    await t.close();
  });

  it('two pipelined LOADs of 8 MiB, then FIN: both replies whole, then the depot closes', async () => {
    const size = 8 * 1024 * 1024;
    const caps = await t.client.allocate({ host: '127.0.0.1', port: t.port }, { size, durationSec: 600 });
    const data = Buffer.alloc(size);
    for (let i = 0; i < size; i += 4096) data.writeUInt32LE(i, i);
    await t.client.store(caps.write, data);
    const key = capTokens(caps.read).join(' ');
    const s = connect({ host: '127.0.0.1', port: t.port, allowHalfOpen: true });
    s.on('error', () => undefined);
    await once(s, 'connect');
    s.end(`1 8 ${key} 0 ${size} 30\n1 8 ${key} 4096 8192 30\n`);
    const parts: Buffer[] = [];
    const timer = setTimeout(() => s.destroy(), 20_000);
    for await (const c of s as AsyncIterable<Buffer>) parts.push(c);
    clearTimeout(timer);
    const all = Buffer.concat(parts);
    const head1 = `1 ${size} \n`;
    const head2 = `1 8192 \n`;
    expect(all.length).toBe(head1.length + size + head2.length + 8192);
    expect(all.subarray(0, head1.length).toString('latin1')).toBe(head1);
    expect(all.subarray(head1.length, head1.length + size).equals(data)).toBe(true);
    const second = head1.length + size;
    expect(all.subarray(second, second + head2.length).toString('latin1')).toBe(head2);
    expect(all.subarray(second + head2.length).equals(data.subarray(4096, 4096 + 8192))).toBe(true);
  });
});
