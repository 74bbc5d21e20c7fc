import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { capTokens, formatCapability, parseCapability, type Capability } from '../../ibp/index.js';

const keyArb = fc.stringMatching(/^[A-Za-z0-9_+=-]{1,64}$/);
const hostArb = fc.oneof(fc.ipV4(), fc.constantFrom('localhost', 'depot.example.org', '::1', 'fe80::1'));

describe('capabilities', () => {
  it('format → parse round-trips', () => {
    fc.assert(
      fc.property(
        hostArb,
        fc.integer({ min: 1, max: 65535 }),
        fc.stringMatching(/^[1-9][0-9]{0,3}$/),
        keyArb,
        fc.stringMatching(/^[0-9]{1,19}$/),
        fc.constantFrom(1, 2, 3),
        (host, port, rid, key, wrmKey, type) => {
          const cap: Capability = { host, port, rid, key, wrmKey, type: type as 1 | 2 | 3 };
          expect(parseCapability(formatCapability(cap))).toEqual(cap);
        },
      ),
      { seed: 7, numRuns: 300 },
    );
  });

  it('parses peer caps, with and without RID', () => {
    expect(parseCapability('ibp://127.0.0.1:16714/1#+RenN4VhKWIA/1265030327564187498/READ')).toEqual({
      host: '127.0.0.1',
      port: 16714,
      rid: '1',
      key: '+RenN4VhKWIA',
      wrmKey: '1265030327564187498',
      type: 1,
    });
    const old = parseCapability('ibp://h:6714/IBP-abc/42/MANAGE');
    expect(old).toMatchObject({ rid: '', key: 'IBP-abc', type: 3 });
    expect(capTokens(old!)).toEqual(['IBP-abc', '42']);
  });

  it.each([
    'http://h:1/1#k/1/READ',
    'ibp://h/1#k/1/READ',
    'ibp://h:0/1#k/1/READ',
    'ibp://h:70000/1#k/1/READ',
    'ibp://h:1/1#k/1/DELETE',
    'ibp://h:1/1#k/READ',
    'ibp://h:1/x#k/1/READ',
    'ibp://h:1/1#/1/READ',
    'ibp://h:1/1#k k/1/READ',
    'ibp://h:1/1#k/1/READ/extra',
    `ibp://h:1/1#${'k'.repeat(2100)}/1/READ`,
  ])('rejects %s', (text) => {
    expect(parseCapability(text)).toBeUndefined();
  });
});
