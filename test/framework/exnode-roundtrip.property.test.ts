import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromUnisJson, fromXnd, toUnisJson, toXnd, type Exnode, type Mapping, type MetaEntry } from '../../framework/index.js';

const word = fc.stringMatching(/^[a-z][a-z0-9]{0,7}$/);
/** Names no serialization reserves for itself. */
const extraName = word.map((w) => `x_${w}`);
const text = fc.string({ maxLength: 24 });
const ms = fc.integer({ min: 0, max: 4_102_444_800_000 }); // 1970 … 2100
const hex64 = fc.stringMatching(/^[0-9a-f]{64}$/);
const finite = fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e300, max: 1e300 });
const nonNegative = fc.double({ noNaN: true, noDefaultInfinity: true, min: 0, max: 1e300 });

/** Entries with distinct names (a JSON object cannot hold two of a name). */
function entries(depth: number, withJson: boolean): fc.Arbitrary<MetaEntry[]> {
  const scalar: fc.Arbitrary<MetaEntry> = fc.oneof(
    fc.record({ name: fc.constant(''), type: fc.constant('string' as const), value: text }),
    fc.record({ name: fc.constant(''), type: fc.constant('integer' as const), value: fc.maxSafeNat().map(String) }),
    fc.record({
      name: fc.constant(''),
      type: fc.constant('double' as const),
      value: finite.filter((d) => !Number.isInteger(d)).map(String),
    }),
    ...(withJson
      ? [
          fc.record({
            name: fc.constant(''),
            type: fc.constant('json' as const),
            value: fc.constantFrom('[1,"a"]', 'true', 'null'),
          }),
        ]
      : []),
  );
  const entry: fc.Arbitrary<MetaEntry> =
    depth === 0
      ? scalar
      : fc.oneof(
          scalar,
          entries(depth - 1, withJson).map((children): MetaEntry => ({ name: '', type: 'meta', children })),
        );
  return fc
    .uniqueArray(fc.tuple(extraName, entry), { maxLength: 3, selector: ([n]) => n })
    .map((list) => list.map(([name, e]) => ({ ...e, name })));
}

const caps = (host: string, port: number, key: string) => ({
  read: `ibp://${host}:${port}/1#${key}r/7/READ`,
  write: `ibp://${host}:${port}/1#${key}w/7/WRITE`,
  manage: `ibp://${host}:${port}/1#${key}m/7/MANAGE`,
});

function mapping(withJson: boolean): fc.Arbitrary<Mapping> {
  return fc
    .record({
      exnodeOffset: fc.nat({ max: 1_000_000 }),
      logicalLength: fc.nat({ max: 1_000_000 }),
      allocOffset: fc.nat({ max: 1_000_000 }),
      host: fc.constantFrom('127.0.0.1', 'depot.example.org', '::1'),
      port: fc.integer({ min: 1, max: 65_535 }),
      key: word,
      hasWrite: fc.boolean(),
      hasManage: fc.boolean(),
      start: ms,
      length: fc.nat({ max: 10 * 365 * 86_400_000 }),
      sha256: fc.option(hex64, { nil: undefined }),
      rows: fc.option(fc.record({ start: fc.nat(), count: fc.nat({ max: 1_000_000 }) }), { nil: undefined }),
      summary: fc.option(
        fc.record(
          {
            cols: fc.nat({ max: 5 }),
            colSums: fc.array(finite, { maxLength: 5 }),
            colSumSq: fc.array(nonNegative, { maxLength: 5 }),
            frob2: nonNegative,
            maxAbs: nonNegative,
            hash: hex64,
            scatterEigMax: nonNegative,
            scatterEigMin: nonNegative,
            scatterRho: nonNegative,
            scatterRhoTau: nonNegative,
          },
          { requiredKeys: ['cols', 'colSums', 'colSumSq', 'frob2', 'maxAbs', 'hash'] },
        ),
        { nil: undefined },
      ),
      source: fc.option(
        text.filter((s) => s !== ''),
        { nil: undefined },
      ),
      extra: entries(2, withJson),
    })
    .map((r) => {
      const c = caps(r.host.includes(':') ? `[${r.host}]` : r.host, r.port, r.key);
      const m: Mapping = {
        exnodeOffset: r.exnodeOffset,
        logicalLength: r.logicalLength,
        allocOffset: r.allocOffset,
        allocLength: r.allocOffset + r.logicalLength,
        read: c.read,
        write: r.hasWrite ? c.write : undefined,
        manage: r.hasManage ? c.manage : undefined,
        leaseStartMs: r.start,
        leaseEndMs: r.start + r.length,
        sha256: r.sha256,
      };
      if (r.rows !== undefined) m.rows = r.rows;
      if (r.summary !== undefined) {
        const { cols, scatterEigMax, scatterEigMin, scatterRho, scatterRhoTau, ...s } = r.summary;
        const n = Math.min(cols, s.colSums.length, s.colSumSq.length);
        m.summary = {
          ...s,
          rows: r.rows?.count ?? 3,
          colSums: s.colSums.slice(0, n).map((v) => v + 0), // no -0: "-0" and "0" are one number in text
          colSumSq: s.colSumSq.slice(0, n),
          ...(scatterEigMax === undefined ? {} : { scatterEigMax }),
          ...(scatterEigMin === undefined ? {} : { scatterEigMin }),
          ...(scatterRho === undefined ? {} : { scatterRho }),
          ...(scatterRhoTau === undefined ? {} : { scatterRhoTau }),
        };
      }
      if (r.source !== undefined) m.source = r.source;
      if (r.extra.length > 0) m.extra = r.extra;
      return m;
    });
}

function exnode(withJson: boolean): fc.Arbitrary<Exnode> {
  return fc
    .record({
      name: text,
      created: ms,
      modified: ms,
      matrix: fc.option(
        fc.record({
          dtype: fc.constantFrom('float32' as const, 'float64' as const),
          shape: fc.array(fc.nat(), { maxLength: 3 }),
        }),
        {
          nil: undefined,
        },
      ),
      mappings: fc.array(mapping(withJson), { maxLength: 4 }),
      slack: fc.nat({ max: 1000 }),
      extra: entries(2, withJson),
    })
    .map((r) => {
      const x: Exnode = {
        name: r.name,
        size: Math.max(0, ...r.mappings.map((m) => m.exnodeOffset + m.logicalLength)) + r.slack,
        createdMs: r.created,
        modifiedMs: r.modified,
        dtype: r.matrix?.dtype,
        shape: r.matrix?.shape,
        mappings: r.mappings,
      };
      if (r.extra.length > 0) x.extra = r.extra;
      return x;
    });
}

/** What LoRS XML keeps of metadata: entries in name order (as LoRS writes them), JSON values as strings. */
function asXnd(list: readonly MetaEntry[] | undefined): MetaEntry[] | undefined {
  if (list === undefined) return undefined;
  return [...list]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((e) => (e.type === 'meta' ? { ...e, children: asXnd(e.children)! } : e.type === 'json' ? { ...e, type: 'string' } : e));
}

describe('exNode round trips over random exNodes', () => {
  it('LoRS XML: parse(write(x)) = x (metadata in LoRS name order)', () => {
    fc.assert(
      fc.property(exnode(false), (x) => {
        const expected: Exnode = {
          ...x,
          ...(x.extra === undefined ? {} : { extra: asXnd(x.extra)! }),
          mappings: x.mappings.map((m) => (m.extra === undefined ? m : { ...m, extra: asXnd(m.extra)! })),
        };
        const once = fromXnd(toXnd(x));
        expect(once).toEqual(expected);
        expect(toXnd(once)).toBe(toXnd(x)); // and writing is stable
      }),
      { numRuns: 150 },
    );
  });

  it('UNIS JSON: parse(write(x)) = x (times in whole ms, which the µs format holds)', () => {
    fc.assert(
      fc.property(exnode(true), (x) => {
        expect(fromUnisJson(toUnisJson(x))).toEqual(x);
      }),
      { numRuns: 150 },
    );
  });

  it('XML → JSON → XML keeps every field Anvil knows', () => {
    fc.assert(
      fc.property(exnode(false), (x) => {
        const strip = (e: Exnode) => ({ ...e, extra: undefined, mappings: e.mappings.map((m) => ({ ...m, extra: undefined })) });
        expect(strip(fromXnd(toXnd(fromUnisJson(toUnisJson(fromXnd(toXnd(x)))))))).toEqual(strip(x));
      }),
      { numRuns: 100 },
    );
  });
});
