import { describe, expect, it } from 'vitest';
import { parseCsvRows, parseRawRows, type RowBatch } from '../../framework/dataset/index.js';

async function all(it: AsyncIterable<RowBatch>): Promise<RowBatch[]> {
  const out: RowBatch[] = [];
  for await (const b of it) out.push(b);
  return out;
}

async function failure(it: AsyncIterable<RowBatch>): Promise<{ code?: string; message: string; details?: unknown }> {
  try {
    await all(it);
  } catch (e) {
    return e as { code?: string; message: string };
  }
  throw new Error('no error');
}

describe('parseCsvRows', () => {
  it('parses rows split anywhere across chunks, CRLF, blank lines, header, batches and source runs', async () => {
    const text = 'src,x,y\r\ns1, 1.5 ,-2e3\r\n\ns1,.25,+4\ns2,1E-2,0\ns2,7,8';
    for (let cut = 0; cut <= text.length; cut++) {
      const batches = await all(
        parseCsvRows([text.slice(0, cut), Buffer.from(text.slice(cut))], { header: true, sourceColumn: true, batchRows: 3 }),
      );
      expect(batches.map((b) => [b.source, b.rows, Array.from(b.data)])).toEqual([
        ['s1', 2, [1.5, -2000, 0.25, 4]],
        ['s2', 2, [0.01, 0, 7, 8]],
      ]);
    }
    const big = await all(parseCsvRows(['1\n2\n3\n4\n5\n'], { batchRows: 2 }));
    expect(big.map((b) => b.rows)).toEqual([2, 2, 1]);
  });

  it.each([
    ['1,2\n3,x\n', {}, 'input: line 2, column 2: "x" is not a number', { line: 2, column: 2 }],
    ['1,2\n3\n', {}, 'input: line 2: 1 values, expected 2', { line: 2, expected: 2, actual: 1 }],
    ['1,2,3\n', { cols: 2 }, 'input: line 1: 3 values, expected 2', { line: 1 }],
    ['1,,3\n', {}, 'input: line 1, column 2: "" is not a number', { line: 1, column: 2 }],
    ['1,0x10\n', {}, 'input: line 1, column 2: "0x10" is not a number', { column: 2 }],
    ['1,NaN\n', {}, 'input: line 1, column 2: "NaN" is not a number', { column: 2 }],
    ['1,1e999\n', {}, 'input: line 1, column 2: Infinity is not a finite number', { column: 2 }],
    ['1,1e39\n', { dtype: 'float32' as const }, 'input: line 1, column 2: 1e+39 is out of the float32 range', { column: 2 }],
    ['s,1\n,2\n', { sourceColumn: true }, 'input: line 2, column 1: the source id is empty', { line: 2, column: 1 }],
    ['s,1\ns,z\n', { sourceColumn: true, name: 'stdin' }, 'stdin: line 2, column 2: "z" is not a number', { line: 2, column: 2 }],
  ])('%j → DATA_E_PARSE', async (text, opts, message, details) => {
    const e = await failure(parseCsvRows([text], opts));
    expect(e.code).toBe('DATA_E_PARSE');
    expect(e.message).toBe(message);
    expect(e.details).toMatchObject(details);
  });

  it('refuses invalid UTF-8 and overlong lines', async () => {
    expect((await failure(parseCsvRows([Buffer.from('1,2\n'), Buffer.from([0xff, 0x0a])]))).message).toBe(
      'input: line 2: the input is not valid UTF-8',
    );
    expect((await failure(parseCsvRows(['1'.repeat((1 << 20) + 2)]))).message).toBe(
      'input: line 1: the line is longer than 1048576 characters',
    );
  });
});

describe('parseRawRows', () => {
  it('parses f32 and f64 rows split anywhere, into the dataset dtype', async () => {
    const values = [1.5, -2, 3.25, 4, 5, 6];
    const f32 = Buffer.from(Float32Array.from(values).buffer);
    for (let cut = 0; cut <= f32.length; cut += 3) {
      const b = await all(
        parseRawRows([f32.subarray(0, cut), f32.subarray(cut)], { cols: 3, inputDtype: 'float32', batchRows: 1 }),
      );
      expect(b.map((x) => Array.from(x.data))).toEqual([values.slice(0, 3), values.slice(3)]);
      expect(b[0]!.data).toBeInstanceOf(Float64Array);
    }
    const f64 = Buffer.from(Float64Array.from(values).buffer);
    const b = await all(parseRawRows([f64], { cols: 2, inputDtype: 'float64', dtype: 'float32' }));
    expect(b[0]!.data).toEqual(Float32Array.from(values));
  });

  it('names the row, column and byte of a bad value, and the row the input ends inside', async () => {
    const bad = Buffer.from(Float64Array.from([1, 2, 3, Infinity]).buffer);
    const e = await failure(parseRawRows([bad], { cols: 2, name: 'stdin' }));
    expect(e).toMatchObject({
      code: 'DATA_E_PARSE',
      message: 'stdin: row 2, column 2 (byte 24): Infinity is not a finite number',
    });
    const short = Buffer.from(Float32Array.from([1, 2, 3]).buffer);
    expect((await failure(parseRawRows([short], { cols: 2, inputDtype: 'float32' }))).message).toBe(
      'input: row 2: the input ends inside the row (4 of 8 bytes; 2 × float32)',
    );
    const big = Buffer.from(Float64Array.from([1e39]).buffer);
    expect((await failure(parseRawRows([big], { cols: 1, inputDtype: 'float64', dtype: 'float32' }))).message).toBe(
      'input: row 1, column 1 (byte 0): 1e+39 is out of the float32 range',
    );
  });
});
