import { afterEach, describe, expect, it } from 'vitest';
import { RawSession, startDepot } from '../helpers/depot-fixture.js';

/** The trailing timeout token is optional (old LoRS clients omit it); it once was required by ALLOCATE. */
describe('a command line without its timeout token', () => {
  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('ALLOCATE without its timeout token is accepted (v0 and v1)', async () => {
    const t = await startDepot({});
    cleanups.push(() => t.close());
    const s = await RawSession.open(t.port);
    cleanups.push(() => s.end());
    s.send('1 1 1 2 1 3600 1000\n');
    expect(await s.line()).toMatch(/^1 ibp:\/\//);
    s.send('0 1 2 1 3600 1000\n');
    expect(await s.line()).toMatch(/^1 ibp:\/\//);
  });
});
