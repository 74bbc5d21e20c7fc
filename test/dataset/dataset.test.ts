import { describe, expect, it } from 'vitest';
import { centredScatter, makeScatterReference, summarizeBlock } from '../../framework/estimation/index.js';
import { fromUnisJson, fromXnd, toUnisJson, toXnd, type Exnode, type Mapping } from '../../framework/index.js';
import { DatasetError, SCATTER_REFERENCE_META, datasetFromExnode } from '../../framework/dataset/index.js';

const cap = (port: number, k: string, type: 'READ' | 'WRITE' | 'MANAGE') => `ibp://127.0.0.1:${port}/1#${k}/w${k}/${type}`;

function mapping(port: number, k: string, offset: number, length: number, extra: Partial<Mapping> = {}): Mapping {
  return {
    exnodeOffset: offset,
    logicalLength: length,
    allocOffset: 16,
    allocLength: 4096,
    read: cap(port, k, 'READ'),
    write: cap(port, k, 'WRITE'),
    manage: cap(port, k, 'MANAGE'),
    leaseStartMs: 1_700_000_000_000,
    leaseEndMs: 1_700_086_400_000,
    sha256: undefined,
    ...extra,
  };
}

function exnode(mappings: Mapping[], rows: number, cols: number, extra: Partial<Exnode> = {}): Exnode {
  return {
    name: 'm',
    size: rows * cols * 8,
    createdMs: 1,
    modifiedMs: 2,
    dtype: 'float64',
    shape: [rows, cols],
    mappings,
    ...extra,
  };
}

/** A 5 × 3 dataset in blocks of 3 and 2 rows, the first block on two depots, with summaries and sources. */
function withDatasetFields(): Exnode {
  const a = Float64Array.from({ length: 9 }, (_, i) => Math.sin(i) * 1e3 + 1 / 3);
  const b = Float64Array.from({ length: 6 }, (_, i) => -Math.cos(i) / 7);
  const json = (s: ReturnType<typeof summarizeBlock>) => ({
    rows: s.rows,
    colSums: Array.from(s.colSums),
    colSumSq: Array.from(s.colSumSq),
    frob2: s.frob2,
    maxAbs: s.maxAbs,
    hash: s.hash,
  });
  const sa = summarizeBlock(a, 3, 3, { spectrum: false });
  const sb = summarizeBlock(b, 2, 3, { spectrum: false });
  return exnode(
    [
      mapping(7001, 'a', 0, 72, { rows: { start: 0, count: 3 }, summary: json(sa), source: 'site-0/sensor-1', sha256: sa.hash }),
      mapping(7002, 'a2', 0, 72, { rows: { start: 0, count: 3 }, summary: json(sa), source: 'site-0/sensor-1', sha256: sa.hash }),
      mapping(7001, 'b', 72, 48, { rows: { start: 3, count: 2 }, summary: json(sb), source: 'site-1/sensor-0', sha256: sb.hash }),
    ],
    5,
    3,
  );
}

describe('datasetFromExnode', () => {
  it('reads rows, replicas, summaries and sources', () => {
    const ds = datasetFromExnode(withDatasetFields());
    expect(ds).toMatchObject({ name: 'm', dtype: 'float64', rows: 5, cols: 3 });
    expect(ds.blocks.map((b) => [b.index, b.rowStart, b.rows, b.bytes, b.replicas.length, b.source])).toEqual([
      [0, 0, 3, 72, 2, 'site-0/sensor-1'],
      [1, 3, 2, 48, 1, 'site-1/sensor-0'],
    ]);
    expect(ds.blocks[0]!.replicas.map((r) => r.depot.port)).toEqual([7001, 7002]);
    expect(ds.blocks[0]!.replicas[0]).toMatchObject({ allocOffset: 16, length: 72, read: cap(7001, 'a', 'READ') });
    expect(ds.blocks[0]!.summary!.cols).toBe(3);
    expect(ds.blocks[0]!.summary!.colSums).toBeInstanceOf(Float64Array);
  });

  it.each([
    ['LoRS XML', (x: Exnode) => fromXnd(toXnd(x))],
    ['UNIS JSON', (x: Exnode) => fromUnisJson(toUnisJson(x))],
  ])('the dataset fields survive the %s round trip bit for bit', (_, roundTrip) => {
    const x = withDatasetFields();
    const back = roundTrip(x);
    expect(back.mappings.map((m) => [m.rows, m.summary, m.source])).toEqual(x.mappings.map((m) => [m.rows, m.summary, m.source]));
    expect(datasetFromExnode(back)).toEqual(datasetFromExnode(x));
  });

  it('loads an old exNode without the fields: rows from offsets, no summary, no source', () => {
    const x = exnode([mapping(7001, 'a', 0, 96), mapping(7002, 'b', 96, 96), mapping(7003, 'c', 192, 48)], 15, 2);
    const ds = datasetFromExnode(x);
    expect(ds.blocks.map((b) => [b.rowStart, b.rows, b.summary, b.source])).toEqual([
      [0, 6, undefined, undefined],
      [6, 6, undefined, undefined],
      [12, 3, undefined, undefined],
    ]);
  });

  it.each([
    ['no dtype', exnode([], 0, 2, { dtype: undefined }), 'is not a dataset: it has no dtype'],
    ['a 1-D shape', exnode([], 0, 2, { shape: [4] }), 'its shape must be [rows, cols] (got [4])'],
    ['a size that is not rows · cols', exnode([], 2, 2, { size: 31 }), 'its size 31 is not rows · cols · 8 = 32'],
    [
      'a block off row boundaries',
      exnode([mapping(1, 'a', 0, 20), mapping(1, 'b', 20, 12)], 2, 2),
      'the block at byte 0 (20 bytes) does not fall on row boundaries of 16 bytes',
    ],
    ['a gap', exnode([mapping(1, 'a', 0, 16), mapping(1, 'b', 32, 16)], 3, 2), 'rows 1 to 1 have no block'],
    ['blocks beyond the shape', exnode([mapping(1, 'a', 0, 48)], 2, 2, { size: 48 }), 'is not rows · cols'],
    ['missing tail rows', exnode([mapping(1, 'a', 0, 16)], 3, 2), 'rows 1 to 2 have no block'],
    [
      'rows that contradict the bytes',
      exnode([mapping(1, 'a', 0, 32, { rows: { start: 0, count: 3 } })], 2, 2),
      'records rows 0+3, which do not match its bytes',
    ],
    [
      'replicas of different lengths',
      exnode([mapping(1, 'a', 0, 32), mapping(2, 'b', 0, 16), mapping(1, 'c', 32, 16)], 3, 2),
      'replicas of different lengths (32 and 16)',
    ],
  ])('refuses %s with DATA_E_NOT_A_DATASET', (_, x, message) => {
    let err: unknown;
    try {
      datasetFromExnode(x);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DatasetError);
    expect(err).toMatchObject({ code: 'DATA_E_NOT_A_DATASET' });
    expect((err as Error).message).toContain(message);
  });

  it('reads the reference scatter and the summaries that name it; refuses an altered reference', () => {
    const a = Float64Array.from({ length: 9 }, (_, i) => Math.sin(i) * 1e3 + 1 / 3);
    const reference = makeScatterReference(centredScatter(a, 3, 3), 3);
    const s = summarizeBlock(a, 3, 3, { reference });
    const summary = {
      rows: s.rows,
      colSums: Array.from(s.colSums),
      colSumSq: Array.from(s.colSumSq),
      frob2: s.frob2,
      maxAbs: s.maxAbs,
      hash: s.hash,
      scatterRadius: s.scatterRadius!,
      scatterReference: reference.id,
      scatterRho: s.scatterRho!,
      scatterRhoTau: s.scatterRhoTau!,
    };
    const meta = (matrix: number[]) => ({
      name: SCATTER_REFERENCE_META,
      type: 'json' as const,
      value: JSON.stringify({ id: reference.id, cols: 3, matrix }),
    });
    const x = exnode([mapping(1, 'a', 0, 72, { rows: { start: 0, count: 3 }, summary })], 3, 3, {
      extra: [meta(Array.from(reference.matrix))],
    });
    const ds = datasetFromExnode(x);
    expect(ds.blocks[0]!.summary!.scatterReference).toEqual(reference);
    expect(ds.blocks[0]!.summary!.scatterRadius).toBe(s.scatterRadius);
    expect(ds.blocks[0]!.summary!.scatterRho).toBe(s.scatterRho);
    expect(ds.blocks[0]!.summary!.scatterRhoTau).toBe(s.scatterRhoTau);
    for (const back of [fromXnd(toXnd(x)), fromUnisJson(toUnisJson(x))]) expect(datasetFromExnode(back)).toEqual(ds);
    // Without the reference the radius is not trusted.
    expect(datasetFromExnode({ ...x, extra: [] }).blocks[0]!.summary!.scatterRadius).toBeUndefined();
    expect(datasetFromExnode({ ...x, extra: [] }).blocks[0]!.summary!.scatterRho).toBeUndefined();
    const altered = exnode(x.mappings, 3, 3, { extra: [meta(Array.from(reference.matrix, (v, q) => (q === 4 ? v * 2 : v)))] });
    expect(() => datasetFromExnode(altered)).toThrow(expect.objectContaining({ code: 'DATA_E_NOT_A_DATASET' }));
  });

  it('refuses a summary of the wrong width or row count', () => {
    const x = withDatasetFields();
    x.mappings[2]!.summary = { ...x.mappings[2]!.summary!, colSums: [1, 2], colSumSq: [1, 2] };
    expect(() => datasetFromExnode(x)).toThrow('the block at byte 72 has a summary of 2 columns, not 3');
  });
});
