import { Matrix, SingularValueDecomposition } from 'ml-matrix';
import { describe, expect, it } from 'vitest';
import {
  CoordinatorErrorCode,
  EXACT_SCATTER_MAX_COLS,
  exactGramOf,
  gramStatistic,
  MatrixAccumulator,
  summarizeBlock,
  summaryFromJson,
  summaryToJson,
  unpackScatter,
} from '../../framework/estimation/index.js';
import {
  anvilMappingMeta,
  readAnvilMappingMeta,
  validateExnode,
  type Exnode,
  type Mapping,
} from '../../framework/exnode/exnode.js';
import { fromUnisJson, fromXnd, toUnisJson, toXnd } from '../../framework/index.js';
import { datasetFromExnode } from '../../framework/dataset/index.js';
import { mulberry32, normal } from './synthetic.js';

/** A rows × cols block with column offsets and scales (seeded). */
function block(rows: number, cols: number, seed: number): Float64Array {
  const z = normal(mulberry32(seed));
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++)
    for (let j = 0; j < cols; j++) out[i * cols + j] = (1 + j) * z() + 3 * j - 5 + (j % 3 === 0 ? 100 : 0);
  return out;
}

/** K = AᵀA − s sᵀ/n computed densely with ml-matrix. */
function denseScatter(data: Float64Array, rows: number, cols: number): Matrix {
  const A = Matrix.from1DArray(rows, cols, Array.from(data));
  const s = Matrix.rowVector(A.sum('column'));
  return A.transpose().mmul(A).sub(s.transpose().mmul(s).div(rows));
}

describe('exact centred scatter in the block summary', () => {
  it('equals the dense K_b = AᵀA − s sᵀ/n on random blocks, packed upper triangle row by row', () => {
    for (const [rows, cols, seed] of [
      [50, 3, 1],
      [20, 8, 2],
      [200, 13, 3],
      [7, EXACT_SCATTER_MAX_COLS, 4],
      [1, 5, 5],
    ] as const) {
      const data = block(rows, cols, seed);
      const s = summarizeBlock(data, rows, cols);
      expect(s.exactScatter).toBeInstanceOf(Float64Array);
      expect(s.exactScatter!.length).toBe((cols * (cols + 1)) / 2);
      const K = denseScatter(data, rows, cols);
      const full = unpackScatter(s.exactScatter!, cols);
      let scale = 0;
      for (let j = 0; j < cols; j++) scale = Math.max(scale, s.colSumSq[j]!);
      for (let j = 0; j < cols; j++)
        for (let k = 0; k < cols; k++) expect(Math.abs(full[j * cols + k]! - K.get(j, k))).toBeLessThanOrEqual(1e-12 * scale);
      // Packing order: K_00, K_01, …, K_0,d−1, K_11, …
      expect(s.exactScatter![1]).toBe(full[1]);
      expect(s.exactScatter![cols]).toBe(full[cols + 1]);
      // The Gram it gives, with its rounding allowance, covers the dense AᵀA.
      const G = Matrix.from1DArray(rows, cols, Array.from(data));
      const AtA = G.transpose().mmul(G);
      const { gram, error } = exactGramOf(s)!;
      let f2 = 0;
      for (let j = 0; j < cols; j++) for (let k = 0; k < cols; k++) f2 += (gram[j * cols + k]! - AtA.get(j, k)) ** 2;
      expect(Math.sqrt(f2)).toBeLessThanOrEqual(error + 1e-13 * s.frob2);
      expect(error).toBeLessThan(1e-10 * s.frob2);
    }
  });

  it('is absent above EXACT_SCATTER_MAX_COLS columns, or when not asked for', () => {
    const cols = EXACT_SCATTER_MAX_COLS + 1;
    expect(summarizeBlock(block(10, cols, 6), 10, cols).exactScatter).toBeUndefined();
    expect(summarizeBlock(block(10, 4, 7), 10, 4, { exactScatter: false }).exactScatter).toBeUndefined();
    expect(exactGramOf(summarizeBlock(block(10, 4, 7), 10, 4, { exactScatter: false }))).toBeUndefined();
    // Asked for explicitly it is recorded at any width.
    expect(summarizeBlock(block(10, cols, 6), 10, cols, { exactScatter: true }).exactScatter!.length).toBe(
      (cols * (cols + 1)) / 2,
    );
  });

  it('survives the JSON round trip bit for bit, and the exNode metadata round trip', () => {
    const s = summarizeBlock(block(30, 6, 8), 30, 6);
    const json = JSON.parse(JSON.stringify(summaryToJson(s))) as Record<string, unknown>;
    expect((json['exactScatter'] as number[]).length).toBe(21);
    const back = summaryFromJson(json);
    expect(Array.from(back.exactScatter!)).toEqual(Array.from(s.exactScatter!));
    // An old summary without it reads as before.
    const { exactScatter, ...old } = json;
    void exactScatter;
    expect(summaryFromJson(old).exactScatter).toBeUndefined();
    // exNode metadata (numbers as shortest round-trip strings).
    const { cols, ...exnodeSummary } = summaryToJson(s);
    void cols;
    const m = { summary: exnodeSummary } as unknown as Mapping;
    const meta = anvilMappingMeta(m);
    const read = readAnvilMappingMeta(
      (name) => meta.find((e) => e.name === name),
      (name) => name,
    );
    expect(read.summary!.exactScatter).toEqual(Array.from(s.exactScatter!));
  });

  it('refuses a malformed exact scatter with COORD_E_INVALID_ARGUMENT naming the field', () => {
    const s = summarizeBlock(block(30, 4, 9), 30, 4);
    const good = summaryToJson(s);
    const bad = (exactScatter: unknown) => () => summaryFromJson({ ...good, exactScatter });
    const check = (f: () => unknown, pattern: RegExp) => {
      let caught: unknown;
      try {
        f();
      } catch (e) {
        caught = e;
      }
      expect(caught).toMatchObject({ code: CoordinatorErrorCode.INVALID_ARGUMENT });
      expect((caught as Error).message).toMatch(pattern);
    };
    check(bad(good.exactScatter!.slice(0, 9)), /summary\.exactScatter.*length cols·\(cols \+ 1\)\/2 = 10/);
    check(bad([...good.exactScatter!, 0]), /summary\.exactScatter/);
    check(bad('1 2 3'), /summary\.exactScatter/);
    const nan = good.exactScatter!.slice();
    nan[3] = Number.NaN;
    check(bad(nan), /summary\.exactScatter\[3\].*finite/);
    // A diagonal that does not match colSumSq − s²/n: another block's scatter.
    const diag = good.exactScatter!.slice();
    diag[4] = diag[4]! * 1.01 + 1;
    check(bad(diag), /summary\.exactScatter\[4\].*diagonal/);
    // An off-diagonal entry beyond √(K_jj K_kk): not a scatter at all.
    const off = good.exactScatter!.slice();
    off[1] = 2 * Math.sqrt(off[0]! * off[4]!) + 1;
    check(bad(off), /summary\.exactScatter\[1\].*positive semidefinite/);
  });

  it('fills the Gram estimate exactly when every missing block has one: error within the rounding allowance, δ 0', () => {
    const cols = 6;
    for (const seed of [21, 22, 23]) {
      const blocks = Array.from({ length: 16 }, (_, b) => block(30 + b, cols, seed * 100 + b));
      const summaries = blocks.map((data, b) => summarizeBlock(data, 30 + b, cols));
      const planned = summaries.map((summary, b) => ({ id: String(b), summary, group: `g${b % 4}` }));
      let full = new Matrix(cols, cols);
      const acc = new MatrixAccumulator(gramStatistic(cols));
      const bounded = new MatrixAccumulator(gramStatistic(cols));
      blocks.forEach((data, b) => {
        const A = Matrix.from1DArray(30 + b, cols, Array.from(data));
        const G = A.transpose().mmul(A);
        full = full.add(G);
        // Group g1 is missing whole, and every fifth block elsewhere.
        if (b % 4 === 1 || b % 5 === 0) return;
        acc.add(String(b), G.to1DArray());
        bounded.add(String(b), G.to1DArray());
      });
      const e = acc.estimate(planned, { delta: 0.05 });
      expect(e.blocksMissing).toBeGreaterThan(4);
      expect(e.delta).toBe(0);
      expect(e.parts.sampling).toEqual({ epsilon: 0, delta: 0 });
      expect(e.method).toMatch(/^exact gram/);
      const err = Matrix.from1DArray(cols, cols, Array.from(e.value)).sub(full);
      const spectral = new SingularValueDecomposition(err).diagonal[0]!;
      expect(spectral).toBeLessThanOrEqual(e.epsilon);
      expect(e.epsilon).toBeLessThan(1e-11 * full.norm('frobenius'));
      // Without the scatters (older exNodes) the same answers give a bounded estimate with δ.
      const old = bounded.estimate(
        planned.map((p) => {
          const summary = { ...p.summary };
          delete summary.exactScatter;
          return { ...p, summary };
        }),
        { delta: 0.05 },
      );
      expect(old.delta).toBeGreaterThan(0);
      expect(old.epsilon).toBeGreaterThan(1e6 * e.epsilon);
    }
  });

  it('travels in an exNode (LoRS XML, UNIS JSON) into the dataset; a malformed one is refused by the exNode or the dataset', () => {
    const rows = 6;
    const cols = 3;
    const data = block(rows, cols, 31);
    const sm = summarizeBlock(data, rows, cols, { spectrum: false });
    const { cols: c, ...summary } = summaryToJson(sm);
    void c;
    const exnodeWith = (exactScatter: unknown): Exnode => ({
      name: 'm',
      size: rows * cols * 8,
      createdMs: 1,
      modifiedMs: 2,
      dtype: 'float64',
      shape: [rows, cols],
      mappings: [
        {
          exnodeOffset: 0,
          logicalLength: rows * cols * 8,
          allocOffset: 0,
          allocLength: 4096,
          read: 'ibp://127.0.0.1:7001/1#a/wa/READ',
          write: 'ibp://127.0.0.1:7001/1#a/wa/WRITE',
          manage: 'ibp://127.0.0.1:7001/1#a/wa/MANAGE',
          leaseStartMs: 1_700_000_000_000,
          leaseEndMs: 1_700_086_400_000,
          sha256: sm.hash,
          rows: { start: 0, count: rows },
          summary: { ...summary, exactScatter } as NonNullable<Mapping['summary']>,
        },
      ],
    });
    const good = exnodeWith(summary.exactScatter);
    for (const x of [good, fromXnd(toXnd(good)), fromUnisJson(toUnisJson(good))]) {
      const ds = datasetFromExnode(x);
      expect(Array.from(ds.blocks[0]!.summary!.exactScatter!)).toEqual(Array.from(sm.exactScatter!));
    }
    // The exNode itself refuses a wrong length or a non-number.
    expect(() => validateExnode(exnodeWith(summary.exactScatter!.slice(1)))).toThrow(
      expect.objectContaining({ code: 'FW_ERR_EXNODE_INVALID', message: expect.stringMatching(/exactScatter/) }),
    );
    expect(() => validateExnode(exnodeWith([1, 2, 3, 4, 5, 'x']))).toThrow(
      expect.objectContaining({ code: 'FW_ERR_EXNODE_INVALID' }),
    );
    // The dataset refuses one whose diagonal is not the block's.
    const altered = summary.exactScatter!.slice();
    altered[0] = altered[0]! * 2 + 1;
    expect(() => datasetFromExnode(exnodeWith(altered))).toThrow(
      expect.objectContaining({ code: 'DATA_E_NOT_A_DATASET', message: expect.stringMatching(/exactScatter\[0\]/) }),
    );
  });
});
