import { describe, expect, it } from 'vitest';
import { FrameworkError, parseDepotList, parsePolicy } from '../../framework/index.js';

describe('warmer policy', () => {
  it('defaults and sites', () => {
    const p = parsePolicy('{"sites": {"utk": ["a.example:6714", "b.example:6714"], "iu": ["[::1]:6714"]}}');
    expect(p).toMatchObject({
      copiesPerSite: 1,
      leaseAheadSec: 3600,
      leaseDurationSec: 86_400,
      trimDead: true,
      intervalSec: 300,
    });
    expect(p.sites.get('iu')).toEqual([{ host: '::1', port: 6714 }]);
  });

  it.each([
    ['{', /^invalid warmer policy: not valid JSON/],
    ['[]', /^invalid warmer policy: `policy` must be a JSON object/],
    ['{"sites": {}}', /^invalid warmer policy: `sites` must map site names/],
    ['{"sites": {"a": "h:1"}}', /^invalid warmer policy: `sites\.a` must be a list of "host:port" strings \(got "h:1"\)$/],
    ['{"sites": {"a": ["h"]}}', /^invalid warmer policy: `sites\.a` "h" is not host:port$/],
    ['{"sites": {"a": ["h:1"], "b": ["h:1"]}}', /^invalid warmer policy: `sites\.b` lists h:1, which site a lists too$/],
    [
      '{"sites": {"a": ["h:1"]}, "copiesPerSite": 2}',
      /^invalid warmer policy: `sites\.a` has 1 depots, fewer than copiesPerSite \(2\)$/,
    ],
    [
      '{"sites": {"a": ["h:1"]}, "copiesPerSite": 0}',
      /^invalid warmer policy: `copiesPerSite` must be an integer from 1 to 100 \(got 0\)$/,
    ],
    [
      '{"sites": {"a": ["h:1"]}, "leaseAheadSec": 90000}',
      /^invalid warmer policy: `leaseAheadSec` must be less than leaseDurationSec \(86400\) \(got 90000\)$/,
    ],
    ['{"sites": {"a": ["h:1"]}, "trimDead": "yes"}', /^invalid warmer policy: `trimDead` must be true or false \(got "yes"\)$/],
    ['{"sites": {"a": ["h:1"]}, "copies": 2}', /^invalid warmer policy: `copies` is not a policy field/],
  ])('%s → FW_ERR_POLICY_INVALID', (text, message) => {
    let caught: unknown;
    try {
      parsePolicy(text);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(FrameworkError);
    expect(caught).toMatchObject({ code: 'FW_ERR_POLICY_INVALID' });
    expect((caught as Error).message).toMatch(message);
  });

  it('depot lists', () => {
    expect(parseDepotList('a:1, b:2\n[::1]:3')).toEqual([
      { host: 'a', port: 1 },
      { host: 'b', port: 2 },
      { host: '::1', port: 3 },
    ]);
    expect(() => parseDepotList('')).toThrow('--depots: no depots given');
    expect(() => parseDepotList('a:0')).toThrow('--depots: "a:0" is not host:port');
    expect(() => parseDepotList('a:1,a:1')).toThrow('--depots: "a:1" is listed twice');
  });
});
