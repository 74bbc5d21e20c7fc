import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientError } from '../../ibp/index.js';
import { startDepot, type TestDepot } from '../helpers/depot-fixture.js';

describe('IbpClient against an Anvil depot', () => {
  let t: TestDepot;
  beforeAll(async () => {
    t = await startDepot();
  });
  afterAll(async () => {
    await t.close();
  });

  it('allocates, stores, writes, loads, probes and deletes', async () => {
    const caps = await t.client.allocate(t, { size: 64, durationSec: 600 });
    expect(await t.client.store(caps.write, Buffer.from('hello world'))).toBe(11);
    expect(await t.client.write(caps.write, 6, Buffer.from('WORLD'))).toBe(5);
    expect((await t.client.load(caps.read, 0, 11)).toString()).toBe('hello WORLD');
    const p = await t.client.probe(caps.manage);
    expect(p).toMatchObject({ readRefs: 1, writeRefs: 0, size: 11, maxSize: 64, reliability: 2, type: 1 });
    expect(p.secondsLeft).toBeGreaterThan(595);
    await t.client.decr(caps.manage, 'read');
    const err = await t.client.probe(caps.manage).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClientError);
    expect(err).toMatchObject({ code: 'IBP_E_CAP_NOT_FOUND', status: -4 });
  });

  it('reports status, resources and version', async () => {
    const inq = await t.client.status(t);
    expect(inq.version).toBe('1.4:1.0');
    expect(inq.resources.map((r) => r.rid)).toEqual(['1']);
    expect(await t.client.resources(t)).toEqual(['1']);
    expect((await t.client.version(t))[0]).toMatch(/^Anvil IBP depot/);
    const v0 = await t.client.statusV0(t);
    expect(v0.hardMb).toBe(1024);
  });
});
