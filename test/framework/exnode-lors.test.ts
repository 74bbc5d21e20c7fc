import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FrameworkError, fromUnisJson, fromXnd, parseExnode, toUnisJson, toXnd, type Exnode } from '../../framework/index.js';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/${name}`, import.meta.url), 'utf8');
/** A LoRS 2.0 lease string is local time: the same instant as JavaScript's local Date. */
const local = (y: number, mo: number, d: number, h: number, mi: number, s: number) => new Date(y, mo - 1, d, h, mi, s).getTime();

/** Names of the metadata elements directly under `<exnode>` and under the first mapping, in order. */
function metadataNames(xml: string): { file: string[]; mapping: string[] } {
  const [head, ...rest] = xml.split('<exnode:mapping>');
  const names = (s: string) => [...s.matchAll(/<exnode:metadata name="([^"]+)"/g)].map((m) => m[1]!);
  return { file: names(head!), mapping: names(rest[0]!.split('</exnode:mapping>')[0]!) };
}

const sha = 'ab'.repeat(32);

describe('LoRS 2.0 exNodes', () => {
  it('reads the lease strings (local time), size, created and modified that LoRS 2.0 writes', () => {
    const x = fromXnd(fixture('lors2.xnd'));
    expect(x).toMatchObject({ name: 'climate-2026.nc', size: 300, createdMs: 1_796_000_000_000, modifiedMs: 1_796_000_042_000 });
    expect(x.mappings.map((m) => [m.leaseStartMs, m.leaseEndMs])).toEqual([
      [local(2026, 11, 28, 4, 54, 53), local(2026, 11, 30, 4, 54, 53)],
      [local(2026, 11, 28, 4, 54, 53), local(2026, 11, 29, 4, 54, 53)],
    ]);
    expect(x.mappings[1]!.read).toBe('ibp://[::1]:6715/2#DDDD/12/READ');
    // What Anvil does not interpret is kept: the lease asked for at upload, the parent directory id.
    expect(x.extra).toEqual([
      { name: 'duration', type: 'double', value: '86400.000000' },
      { name: 'parent', type: 'string', value: '5a1f0c3e9b2d4e6f8a7c1b0d' },
    ]);
  });

  it('writes what LoRS 2.0 writes: its file metadata, lease strings, metadata sorted by name', () => {
    const x = fromXnd(fixture('lors2.xnd'));
    const text = toXnd(x);
    const { file, mapping } = metadataNames(text);
    for (const name of ['Version', 'created', 'duration', 'filename', 'lorsversion', 'mode', 'modified', 'parent', 'size'])
      expect(file).toContain(name);
    for (const name of ['alloc_length', 'alloc_offset', 'e2e_blocksize', 'end', 'exnode_offset', 'logical_length', 'start'])
      expect(mapping).toContain(name);
    expect(file).toEqual([...file].sort());
    expect(mapping).toEqual([...mapping].sort());
    expect(file).not.toContain('original_filesize');
    expect(text).toContain('<exnode:metadata name="lorsversion" type="double">2.000000</exnode:metadata>');
    expect(text).toContain('<exnode:metadata name="size" type="integer">300</exnode:metadata>');
    expect(text).toContain('<exnode:metadata name="start" type="string">2026-11-28 04:54:53</exnode:metadata>');
    expect(text).toContain('<exnode:metadata name="end" type="string">2026-11-30 04:54:53</exnode:metadata>');
    expect(text).toContain('<exnode:metadata name="created" type="integer">1796000000</exnode:metadata>');
    expect(text).toContain('<exnode:metadata name="parent" type="string">5a1f0c3e9b2d4e6f8a7c1b0d</exnode:metadata>');
    expect(text).toContain('<exnode:metadata name="duration" type="double">86400.000000</exnode:metadata>');
    // Every LoRS line of the input is in the output, unchanged (only Anvil's anvil_* lines are added).
    const lorsLines = fixture('lors2.xnd')
      .split('\n')
      .filter((l) => l.includes('<exnode:metadata') && !l.includes('"lorsversion"'));
    for (const line of lorsLines) expect(text).toContain(line.trim());
    expect(fromXnd(text)).toEqual(x);
  });

  it('an exNode Anvil made gets LoRS defaults: mode file, empty parent', () => {
    const x: Exnode = {
      name: 'a.bin',
      size: 10,
      createdMs: 1_700_000_000_123,
      modifiedMs: 1_700_000_000_456,
      dtype: undefined,
      shape: undefined,
      mappings: [
        {
          exnodeOffset: 0,
          logicalLength: 10,
          allocOffset: 0,
          allocLength: 10,
          read: 'ibp://h:6714/1#r/1/READ',
          write: undefined,
          manage: undefined,
          leaseStartMs: 1_700_000_000_500,
          leaseEndMs: 1_700_003_600_500,
          sha256: sha,
        },
      ],
    };
    const text = toXnd(x);
    expect(text).toContain('<exnode:metadata name="mode" type="string">file</exnode:metadata>');
    expect(text).toContain('<exnode:metadata name="parent" type="string"/>');
    expect(text).not.toContain('name="duration"'); // only when known (upload records it)
    expect(text).toContain(`<exnode:metadata name="anvil_sha256" type="string">${sha}</exnode:metadata>`);
    // Exact to the millisecond for Anvil, seconds for LoRS.
    expect(fromXnd(text)).toEqual(x);
  });

  it("a lease LoRS changed wins over Anvil's exact copy of the old one", () => {
    const x = fromXnd(fixture('lors2.xnd'));
    const text = toXnd(x).replace(
      'name="end" type="string">2026-11-29 04:54:53<',
      'name="end" type="string">2026-12-24 18:00:00<',
    );
    const y = fromXnd(text);
    expect(y.mappings[1]!.leaseEndMs).toBe(local(2026, 12, 24, 18, 0, 0));
    expect(y.mappings[0]!.leaseEndMs).toBe(x.mappings[0]!.leaseEndMs);
  });

  it('keeps metadata it does not understand, nested lists included, through a rewrite', () => {
    const text = fixture('lors2.xnd')
      .replace(
        '<exnode:metadata name="parent"',
        '<exnode:metadata name="owner" type="meta">\n    <exnode:metadata name="site" type="string"> utk  </exnode:metadata>\n    <exnode:metadata name="uid" type="integer">1000</exnode:metadata>\n  </exnode:metadata>\n  <exnode:metadata name="parent"',
      )
      .replace(
        '<exnode:metadata name="start" type="string">2026-11-28 04:54:53</exnode:metadata>\n    <exnode:read>ibp://depot1',
        '<exnode:metadata name="start" type="string">2026-11-28 04:54:53</exnode:metadata>\n    <exnode:metadata name="zone" type="double">0.500000</exnode:metadata>\n    <exnode:read>ibp://depot1',
      );
    const x = fromXnd(text);
    expect(x.extra).toContainEqual({
      name: 'owner',
      type: 'meta',
      children: [
        { name: 'site', type: 'string', value: ' utk  ' },
        { name: 'uid', type: 'integer', value: '1000' },
      ],
    });
    expect(x.mappings[0]!.extra).toEqual([{ name: 'zone', type: 'double', value: '0.500000' }]);
    // A rewrite as trim or refresh does it: the model changes, the metadata stays.
    x.mappings.pop();
    x.modifiedMs += 1000;
    const again = fromXnd(toXnd(x));
    expect(again.extra).toEqual(x.extra);
    expect(again.mappings[0]!.extra).toEqual([{ name: 'zone', type: 'double', value: '0.500000' }]);
    // and through UNIS JSON as well, as JSON values (JSON has one number type: a whole double reads back as an integer)
    expect(fromUnisJson(toUnisJson(again)).extra).toEqual([
      { name: 'duration', type: 'integer', value: '86400' },
      ...again.extra!.slice(1),
    ]);
  });

  it('old Anvil exNodes (integer leases, original_filesize, ms times) still load', () => {
    const x = fromXnd(fixture('sample.xnd'));
    expect(x.size).toBe(300);
    expect(x.mappings[0]!.leaseStartMs).toBe(1_764_000_000_000);
    expect(x.extra).toBeUndefined();
  });

  it.each([
    [
      'a lease that is neither seconds nor a local time',
      fixture('lors2.xnd').replace('2026-11-30 04:54:53', 'next tuesday'),
      /`mappings\[0\]\.end` must be epoch seconds or a local time "YYYY-MM-DD HH:MM:SS" \(got "next tuesday"\)/,
    ],
    [
      'a month 13',
      fixture('lors2.xnd').replace('2026-11-30 04:54:53', '2026-13-30 04:54:53'),
      /`mappings\[0\]\.end` must be epoch seconds/,
    ],
    ['a mode other than file', fixture('lors2.xnd').replace('>file<', '>directory<'), /`mode` must be "file"/],
    [
      'an unknown metadata type',
      fixture('lors2.xnd').replace('name="parent" type="string"', 'name="parent" type="blob"'),
      /`parent` has an unknown metadata type "blob"/,
    ],
  ])('%s → FW_ERR_EXNODE_INVALID', (_name, text, message) => {
    let caught: unknown;
    try {
      parseExnode(text);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(FrameworkError);
    expect(caught).toMatchObject({ code: 'FW_ERR_EXNODE_INVALID' });
    expect((caught as Error).message).toMatch(message);
  });
});

describe('dataset fields of a mapping', () => {
  const base = (): Exnode => ({
    name: 'm.f64',
    size: 48,
    createdMs: 0,
    modifiedMs: 0,
    dtype: 'float64',
    shape: [3, 2],
    mappings: [
      {
        exnodeOffset: 0,
        logicalLength: 32,
        allocOffset: 0,
        allocLength: 32,
        read: 'ibp://h:6714/1#r/1/READ',
        write: undefined,
        manage: undefined,
        leaseStartMs: 0,
        leaseEndMs: 0,
        sha256: sha,
        rows: { start: 0, count: 2 },
        summary: {
          rows: 2,
          colSums: [0.1 + 0.2, -1e-300],
          colSumSq: [1 / 3, 5e300],
          frob2: 5e300,
          maxAbs: Math.PI,
          hash: sha,
          scatterEigMax: 2.5,
          scatterRadius: 0.75,
          scatterReference: sha,
          scatterRho: 1 / 3,
          scatterRhoTau: 1.25e-7,
        },
        source: 'sensor-7 @ utk',
      },
      {
        exnodeOffset: 32,
        logicalLength: 16,
        allocOffset: 0,
        allocLength: 16,
        read: 'ibp://h:6714/1#s/1/READ',
        write: undefined,
        manage: undefined,
        leaseStartMs: 0,
        leaseEndMs: 0,
        sha256: undefined,
      },
    ],
  });

  it.each([
    ['LoRS XML', toXnd],
    ['UNIS JSON', (x: Exnode) => toUnisJson(x)],
  ])('survive %s exactly, and a mapping without them stays without', (_name, write) => {
    const x = base();
    const text = write(x);
    expect(parseExnode(text)).toEqual(x);
    expect(parseExnode(text).mappings[1]).not.toHaveProperty('rows');
  });

  it('LoRS sees them as anvil_* metadata it does not read', () => {
    const text = toXnd(base());
    expect(text).toContain('<exnode:metadata name="anvil_rows" type="meta">');
    expect(text).toContain('<exnode:metadata name="anvil_source" type="string">sensor-7 @ utk</exnode:metadata>');
    expect(text).toContain('<exnode:metadata name="colSums" type="string">0.30000000000000004 -1e-300</exnode:metadata>');
  });

  it('a UNIS document may give the summary vectors as JSON lists', () => {
    const doc = JSON.parse(toUnisJson(base())) as { extents: Array<{ properties: { summary: Record<string, unknown> } }> };
    doc.extents[0]!.properties.summary['colSums'] = [1, 2];
    expect(fromUnisJson(JSON.stringify(doc)).mappings[0]!.summary!.colSums).toEqual([1, 2]);
  });

  it.each([
    ['rows.count', (x: Exnode) => (x.mappings[0]!.rows!.count = -1), /rows\.count` must be a non-negative integer/],
    [
      'summary.rows',
      (x: Exnode) => (x.mappings[0]!.summary!.rows = 3),
      /`mappings\[0\]\.summary\.rows` must equal rows\.count \(2\)/,
    ],
    [
      'summary.hash',
      (x: Exnode) => (x.mappings[0]!.summary!.hash = 'xyz'),
      /`mappings\[0\]\.summary\.hash` must be 64 lowercase hex/,
    ],
    [
      'summary.colSumSq',
      (x: Exnode) => (x.mappings[0]!.summary!.colSumSq = [1]),
      /`mappings\[0\]\.summary\.colSumSq` must have as many entries as colSums/,
    ],
    ['summary.frob2', (x: Exnode) => (x.mappings[0]!.summary!.frob2 = Number.NaN), /summary\.frob2` must be a/],
    ['source', (x: Exnode) => (x.mappings[0]!.source = ''), /`mappings\[0\]\.source` must be a non-empty string/],
  ])('a bad %s is refused on read, naming the field', (_name, spoil, message) => {
    const x = base();
    spoil(x);
    // Written without checks, read back with them.
    for (const text of [toXnd(x), toUnisJson(x)]) expect(() => parseExnode(text)).toThrow(message);
  });
});
