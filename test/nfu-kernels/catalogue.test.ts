import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  BUILTIN_KERNELS,
  CATALOGUE,
  OPS,
  Stream,
  WASM_BACKEND,
  atb,
  builtins,
  columnStats,
  gaussianSketchLeft,
  gaussianSketchRight,
  gram,
  matrix,
  normals,
  renderOpsDoc,
  sparseSignSketch,
  srht,
  subMatrix,
  type Attrs,
} from '../../nfu-kernels/index.js';

const root = new URL('../../', import.meta.url);

describe('the NFU op catalogue', () => {
  it('opcodes, names and RNG streams are unique', () => {
    const opcodes = OPS.map((o) => o.opcode);
    expect(new Set(opcodes).size).toBe(opcodes.length);
    expect(new Set(OPS.map((o) => o.name)).size).toBe(OPS.length);
    const streams = OPS.flatMap((o) => o.streams);
    expect(new Set(streams).size).toBe(streams.length);
    expect([...streams].sort((a, b) => a - b)).toEqual(Object.values(Stream).sort((a, b) => a - b));
  });

  it('every op has exactly one kernel, and the kernel takes its identity from the catalogue', () => {
    expect(BUILTIN_KERNELS.map((k) => k.name)).toEqual(OPS.map((o) => o.name));
    for (const k of BUILTIN_KERNELS) {
      const op = CATALOGUE[k.name as keyof typeof CATALOGUE];
      expect(k.opcode).toBe(op.opcode);
      expect(k.inputs).toEqual(op.inputs.map((i) => i.name));
      expect(k.takesAttrs).toBe(op.attrs.length > 0);
      expect(k.rowSplit).toBe(op.rowSplit);
      expect(builtins().byOpcodeOrThrow(op.opcode)).toBe(k);
    }
  });

  it('no kernel file assigns an opcode or a stream id of its own', () => {
    const dirs = ['nfu-kernels/sketch', 'nfu-kernels/reduce', 'nfu-kernels/bytes'];
    for (const dir of dirs)
      for (const f of readdirSync(new URL(dir, root))) {
        const src = readFileSync(new URL(`${dir}/${f}`, root), 'utf8');
        expect(src, `${dir}/${f}`).not.toMatch(/opcode:\s*\d/);
        expect(src, `${dir}/${f}`).not.toMatch(/STREAM_\w+\s*=\s*\d/);
      }
  });

  it('docs/nfu-ops.md is generated from the catalogue', () => {
    const want = renderOpsDoc();
    const path = new URL('docs/nfu-ops.md', root);
    if (process.env['ANVIL_WRITE_DOCS'] === '1') writeFileSync(path, want);
    expect(readFileSync(path, 'utf8')).toBe(want);
  });
});

describe('importing the NFU modules has no side effects', () => {
  it('the worker module loads no addon and starts nothing until it runs an op', () => {
    const script = `
      import { createRequire } from 'node:module';
      await import('./dist/depot/nfu/nfu-worker.js');
      await import('./dist/depot/nfu/nfu-executor.js');
      const addons = Object.keys(createRequire(import.meta.url).cache).filter((k) => k.endsWith('.node'));
      console.log(JSON.stringify({ addons, handles: process.getActiveResourcesInfo().filter((r) => !['TTYWrap', 'PipeWrap', 'CloseReq'].includes(r)) }));`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' });
    expect(JSON.parse(out)).toEqual({ addons: [], handles: [] });
  });
});

describe('matrix views with an offset and a row stride', () => {
  // A 40 × 11 block at (5, 3) of a 60 × 17 matrix: the kernels read it in place.
  const big = new Float64Array(60 * 17);
  normals(9, 99, 0, 0, big);
  const M = subMatrix(matrix(big, 60, 17), 5, 3, 40, 11);
  const dense = new Float64Array(40 * 11);
  for (let i = 0; i < 40; i++) for (let j = 0; j < 11; j++) dense[i * 11 + j] = big[(5 + i) * 17 + 3 + j]!;
  const B = new Float64Array(60 * 17);
  normals(10, 99, 0, 0, B);
  const MB = subMatrix(matrix(B, 60, 17), 2, 1, 40, 4);
  const denseB = new Float64Array(40 * 4);
  for (let i = 0; i < 40; i++) for (let j = 0; j < 4; j++) denseB[i * 4 + j] = B[(2 + i) * 17 + 1 + j]!;
  const a: Attrs = { dtype: 'float64', rows: 40, cols: 11, k: 4, seed: 3, rowOffset: 100, s: 2, blockId: 1 };
  const same = (x: Float64Array, y: Float64Array) => expect(Buffer.from(x.buffer).equals(Buffer.from(y.buffer))).toBe(true);

  it('give the bytes of the copied block, for every matrix kernel', () => {
    const o = { backend: WASM_BACKEND };
    same(gaussianSketchRight(a, M, o), gaussianSketchRight(a, dense, o));
    same(gaussianSketchLeft(a, M, o), gaussianSketchLeft(a, dense, o));
    same(sparseSignSketch(a, M, 2, Stream.SPARSE_SIGN, o), sparseSignSketch(a, dense, 2, Stream.SPARSE_SIGN, o));
    same(srht(a, M), srht(a, dense));
    same(gram(a, M, o), gram(a, dense, o));
    same(columnStats(a, M), columnStats(a, dense));
    same(atb(a, M, MB, o), atb(a, dense, denseB, o));
  });

  it('refuse a view that leaves its array or has a stride below its width', () => {
    expect(() => matrix(big, 60, 18)).toThrow(/needs 1080 elements; the array has 1020/);
    expect(() => matrix(big, 10, 17, { ld: 16 })).toThrow(/row stride 16 is less than the 17 columns/);
    expect(() => subMatrix(matrix(big, 60, 17), 30, 0, 31, 17)).toThrow(/outside the 60×17 matrix/);
    expect(() => gram({ ...a, rows: 41 }, M)).toThrow(/the matrix view is 40×11/);
  });
});
