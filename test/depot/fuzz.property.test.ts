import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseRequest } from '../../ibp/index.js';
import { RawSession, rawAllocate, startDepot, type TestDepot } from '../helpers/depot-fixture.js';

const vocabulary = fc.constantFrom(
  '0',
  '1',
  '2',
  '-1',
  '4',
  '5',
  '8',
  '9',
  '12',
  '13',
  '40',
  '41',
  '42',
  '43',
  '45',
  '99',
  '3600',
  '1048576',
  '18446744073709551616',
  '-9999999999999999',
  '1#abc',
  '2#',
  '#',
  'ibp',
  'IBP',
  '0.5',
  'nan',
  '1e9',
  '',
  'ibp://127.0.0.1:6714/1#k/1/READ',
  '\t',
  '\x00',
  '\xff',
  '\r',
);
const tokenSoup = fc.array(vocabulary, { minLength: 1, maxLength: 12 }).map((t) => t.join(' '));
const randomBytes = fc
  .uint8Array({ minLength: 1, maxLength: 200 })
  .map((b) => Buffer.from(b).toString('latin1').replace(/\n/g, ' '));

/** Lines that are malformed, or well-formed but naming keys that cannot exist. */
function isMalformed(line: string): boolean {
  if (line.trim() === '') return false;
  try {
    const req = parseRequest(line);
    return req.command !== 'allocate' && req.command !== 'status';
  } catch {
    return true;
  }
}

describe('fuzz: malformed lines only ever yield a negative status or a closed connection', () => {
  let t: TestDepot;
  beforeAll(async () => {
    t = await startDepot({ limits: { dataProgressTimeoutMs: 500 } });
  });
  afterAll(async () => t.close());

  it('random token soup and random bytes', async () => {
    let cases = 0;
    await fc.assert(
      fc.asyncProperty(fc.oneof(tokenSoup, randomBytes), async (line) => {
        fc.pre(isMalformed(line));
        cases++;
        const s = await RawSession.open(t.port);
        try {
          s.send(`${line}\n`);
          const reply = await Promise.race([s.line(3_000), s.closed.then(() => 'closed')]);
          expect(reply).toMatch(/^(-\d+ \n|closed)$/);
        } finally {
          s.end();
        }
      }),
      { seed: 99, numRuns: 400 },
    );
    expect(cases).toBeGreaterThan(300);
    // The depot is alive and unchanged in what matters: it still allocates and serves.
    const s = await RawSession.open(t.port);
    await rawAllocate(s, 10);
    s.end();
    expect(t.depot.core.allocationCount).toBe(1);
  });
});
