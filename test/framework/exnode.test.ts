import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  FrameworkError,
  fromUnisJson,
  fromXnd,
  parseExnode,
  toUnisJson,
  toXnd,
  blocksOf,
  uncoveredRanges,
  type Exnode,
} from '../../framework/index.js';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/${name}`, import.meta.url), 'utf8');

describe('exNode serializations', () => {
  it('reads a LoRS .xnd: metadata, replicas, legacy caps, doubles for integers, IPv6 depots', () => {
    const x = fromXnd(fixture('sample.xnd'));
    expect(x).toMatchObject({ name: 'results.dat', size: 300 });
    expect(x.mappings).toHaveLength(3);
    expect(x.mappings[0]).toEqual({
      exnodeOffset: 0,
      logicalLength: 200,
      allocOffset: 0,
      allocLength: 200,
      read: 'ibp://depot1.example.org:6714/1#AAAA/11/READ',
      write: 'ibp://depot1.example.org:6714/1#BBBB/11/WRITE',
      manage: 'ibp://depot1.example.org:6714/1#CCCC/11/MANAGE',
      leaseStartMs: 1_764_000_000_000,
      leaseEndMs: 1_764_086_400_000,
      sha256: undefined,
    });
    expect(x.mappings[1]).toMatchObject({ allocOffset: 0, allocLength: 200, write: undefined, manage: undefined, leaseEndMs: 0 });
    expect(x.mappings[2]).toMatchObject({
      allocOffset: 50,
      allocLength: 150,
      sha256: '2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae',
    });
    expect(blocksOf(x).map((b) => [b.offset, b.length, b.replicas.length])).toEqual([
      [0, 200, 2],
      [200, 100, 1],
    ]);
    expect(uncoveredRanges(x)).toEqual([]);
    // Holes at the start, between overlapping mappings, and at the end.
    const [a, b, c] = x.mappings;
    expect(uncoveredRanges({ ...x, mappings: [c!] })).toEqual([{ start: 0, end: 200 }]);
    expect(uncoveredRanges({ ...x, mappings: [a!, b!] })).toEqual([{ start: 200, end: 300 }]);
    expect(uncoveredRanges({ ...x, mappings: [] })).toEqual([{ start: 0, end: 300 }]);
    expect(
      uncoveredRanges({ ...x, mappings: [{ ...a!, logicalLength: 50 }, { ...b!, exnodeOffset: 40, logicalLength: 60 }, c!] }),
    ).toEqual([{ start: 100, end: 200 }]);
  });

  it('reads a UNIS JSON exNode with both lease forms, dtype and shape', () => {
    const x = fromUnisJson(fixture('sample-unis.json'));
    expect(x).toMatchObject({
      name: 'matrix.f64',
      size: 4096,
      createdMs: 1_764_000_000_000,
      modifiedMs: 1_764_000_100_000,
      dtype: 'float64',
      shape: [128, 4],
    });
    expect(x.mappings.map((m) => [m.leaseStartMs, m.leaseEndMs, m.manage !== undefined])).toEqual([
      [1_764_000_000_000, 1_764_086_400_000, true],
      [1_764_000_000_000, 1_764_003_600_000, false],
    ]);
  });

  it.each([
    ['xnd', (x: Exnode) => toXnd(x)],
    ['unis json', (x: Exnode) => toUnisJson(x)],
  ])('round-trips through %s', (_name, write) => {
    for (const source of [fromXnd(fixture('sample.xnd')), fromUnisJson(fixture('sample-unis.json'))]) {
      const text = write(source);
      expect(parseExnode(text)).toEqual(source);
      expect(parseExnode(write(parseExnode(text)))).toEqual(source);
    }
  });

  it('writes what LoRS expects: root <exnode> in the exnode namespace, metadata then caps', () => {
    const text = toXnd(fromXnd(fixture('sample.xnd')));
    expect(text).toMatch(/^<\?xml version="1\.0"\?>\n<exnode xmlns:exnode="http:\/\/loci\.cs\.utk\.edu\/exnode">/);
    expect(text).toContain('<exnode:metadata name="exnode_offset" type="integer">200</exnode:metadata>');
    expect(text).toContain('<exnode:read>ibp://[::1]:6715/2#DDDD/12/READ</exnode:read>');
  });

  it.each([
    ['xnd: not XML', '<exnode><unclosed>', /^invalid exNode: not well-formed XML/],
    [
      'xnd: no read cap',
      fixture('sample.xnd').replace(/<exnode:read>ibp:\/\/10\.0\.0\.7[^<]*<\/exnode:read>/, ''),
      /^invalid exNode: `mappings\[1\]\.read` is required$/,
    ],
    [
      'xnd: bad offset',
      fixture('sample.xnd').replace(
        'type="integer">200</exnode:metadata>\n    <exnode:metadata name="logical_length" type="integer">100',
        'type="integer">2x0</exnode:metadata>\n    <exnode:metadata name="logical_length" type="integer">100',
      ),
      /^invalid exNode: `mappings\[2\]\.exnode_offset` must be an integer \(got "2x0"\)$/,
    ],
    [
      'xnd: write cap in read slot',
      fixture('sample.xnd').replace('1#AAAA/11/READ', '1#AAAA/11/WRITE'),
      /^invalid exNode: `mappings\[0\]\.read` must be an IBP read capability/,
    ],
    [
      'xnd: mapping past the end',
      fixture('sample.xnd').replace('type="integer">300</exnode:metadata>', 'type="integer">250</exnode:metadata>'),
      /^invalid exNode: `mappings\[2\]\.exnode_offset` \+ logical_length must lie within the file size 250/,
    ],
    ['json: not JSON', '{"size": ', /^invalid exNode: not valid JSON/],
    ['json: extents missing', '{"size": 1}', /^invalid exNode: `extents` must be a list of extents$/],
    [
      'json: negative size',
      fixture('sample-unis.json').replace('"size": 4096,\n  "created"', '"size": -1,\n  "created"'),
      /^invalid exNode: `size` must be a non-negative integer \(got -1\)$/,
    ],
    [
      'json: mapping without read',
      fixture('sample-unis.json').replace('"mapping": { "read": "ibp://127.0.0.2:6714/1#rk2/6/READ" }', '"mapping": {}'),
      /^invalid exNode: `extents\[1\]\.mapping\.read` is required$/,
    ],
    [
      'json: bad lifetime',
      fixture('sample-unis.json').replace('"end": "1764003600000000"', '"end": "soon"'),
      /^invalid exNode: `extents\[1\]\.lifetime\.end` must be a non-negative integer \(got "soon"\)$/,
    ],
  ])('%s → FW_ERR_EXNODE_INVALID naming the field', (_name, text, message) => {
    let caught: unknown;
    try {
      parseExnode(text);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(FrameworkError);
    expect((caught as FrameworkError).code).toBe('FW_ERR_EXNODE_INVALID');
    expect((caught as FrameworkError).message).toMatch(message);
  });
});

describe('LoRS exNodes this tool cannot read correctly are refused', () => {
  const base = readFileSync(new URL('../fixtures/sample.xnd', import.meta.url), 'utf8');
  it.each([
    [
      'an end-to-end function',
      base.replace(
        '<exnode:read>ibp://depot1',
        '<exnode:function name="aes_encrypt"><exnode:argument name="blocksize" type="integer">4096</exnode:argument></exnode:function>\n    <exnode:read>ibp://depot1',
      ),
      /`mappings\[0\]\.function` LoRS end-to-end function "aes_encrypt" is not supported/,
    ],
    [
      'e2e blocks',
      base.replace('name="e2e_blocksize" type="integer">0<', 'name="e2e_blocksize" type="integer">4096<'),
      /`mappings\[0\]\.e2e_blocksize` end-to-end blocks/,
    ],
    ['a default namespace', base.replace('xmlns:exnode=', 'xmlns='), /must declare xmlns:exnode=/],
    ['no namespace', base.replace(' xmlns:exnode="http://loci.cs.utk.edu/exnode"', ''), /must declare xmlns:exnode=/],
  ])('%s', (_name, text, message) => {
    expect(() => parseExnode(text)).toThrow(message);
  });
});
