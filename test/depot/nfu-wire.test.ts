import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import type { NfuParamSpec } from '../../ibp/index.js';
import { encodeAttrs } from '../../nfu-kernels/index.js';
import { RawSession, rawAllocate, startDepot, type TestDepot } from '../helpers/depot-fixture.js';

const param = (kind: number, offset: number, length: number, data: string | Uint8Array = '') => {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'latin1') : Buffer.from(data);
  return Buffer.concat([Buffer.from(`${kind} ${offset} ${length} ${bytes.length}\n`), bytes]);
};
const call = (opcode: number, ...params: Buffer[]) =>
  Buffer.concat([Buffer.from(`1 12 ${opcode} ${params.length}\n`), ...params, Buffer.from('\n')]);

describe('NFU on the wire: LoCI replies and every refusal', () => {
  let t: TestDepot;
  let s: RawSession;
  let a: [string, string, string];
  let b: [string, string, string];
  beforeAll(async () => {
    t = await startDepot({ nfu: { workers: 1, maxValueBytes: 4096 } });
    s = await RawSession.open(t.port);
    a = await rawAllocate(s, 64);
    b = await rawAllocate(s, 64);
    s.send(`1 2 ${a[1].split('/')[3]} ${a[1].split('/')[4]} 11 10\nhello world`);
    await s.line();
    await s.line();
  });
  afterAll(async () => {
    s.end();
    await t.close();
  });

  it('xor of an allocation with a VAL_IN into another: "1 \\n0 \\n" (as LoCI), then the bytes', async () => {
    s.send(call(1, param(0, 0, 0, a[0]), param(3, 0, 0, '\x01'), param(1, 0, 64, b[1])));
    expect(await s.line()).toBe('1 \n');
    expect(await s.line()).toBe('0 \n');
    s.send(`1 8 ${b[0].split('/')[3]} 1 0 11 10\n`);
    expect(await s.line()).toBe('1 11 \n');
    expect((await s.bytes(11)).toString()).toBe('idmmn!vnsme');
  });

  it('two VAL_IN and a VAL_OUT: "1 \\n1 \\n2 LEN \\n" + bytes', async () => {
    s.send(call(1, param(3, 0, 0, 'ABCDE'), param(3, 0, 0, '\x00'), param(4, 0, 100)));
    expect(await s.line()).toBe('1 \n');
    expect(await s.line()).toBe('1 \n');
    expect(await s.line()).toBe('2 5 \n');
    expect((await s.bytes(5)).toString()).toBe('ABCDE');
  });

  const refusals: Array<[string, () => Buffer, string]> = [
    ['unknown opcode', () => call(77, param(4, 0, 10)), '-51 \n'],
    ['write cap as REF_RD', () => call(1, param(0, 0, 0, a[1]), param(3, 0, 0, 'x'), param(4, 0, 64)), '-6 \n'],
    ['read cap as REF_WR', () => call(1, param(3, 0, 0, 'x'), param(3, 0, 0, 'x'), param(1, 0, 64, b[0])), '-5 \n'],
    [
      'cap of another depot',
      () => call(1, param(0, 0, 0, a[0].replace(`:${t.port}/`, ':1/')), param(3, 0, 0, 'x'), param(4, 0, 64)),
      '-4 \n',
    ],
    [
      'unknown key',
      () => call(1, param(0, 0, 0, a[0].replace(/#[^/]+/, '#nope')), param(3, 0, 0, 'x'), param(4, 0, 64)),
      '-4 \n',
    ],
    ['same allocation twice, same kind', () => call(1, param(0, 0, 0, a[0]), param(0, 0, 0, a[0]), param(4, 0, 64)), '-52 \n'],
    ['REF_RD offset past the data', () => call(1, param(0, 12, 0, a[0]), param(3, 0, 0, 'x'), param(4, 0, 64)), '-12 \n'],
    ['REF_WR of length 0', () => call(1, param(3, 0, 0, 'x'), param(3, 0, 0, 'x'), param(1, 0, 0, b[1])), '-12 \n'],
    ['bad attributes', () => call(48, param(3, 0, 0, '{"rows": -1}'), param(0, 0, 0, a[0]), param(4, 0, 64)), '-30 \n'],
    ['wrong input count', () => call(48, param(3, 0, 0, encodeAttrs({ rows: 1, cols: 1 })), param(4, 0, 64)), '-30 \n'],
    [
      'input of the wrong size',
      () => call(48, param(3, 0, 0, encodeAttrs({ rows: 2, cols: 1 })), param(0, 0, 0, a[0]), param(4, 0, 64)),
      '-30 \n',
    ],
    [
      'output too small',
      () => call(48, param(3, 0, 0, encodeAttrs({ rows: 1, cols: 1 })), param(3, 0, 0, new Uint8Array(8)), param(4, 0, 7)),
      '-19 \n',
    ],
    ['last parameter not writable', () => call(1, param(3, 0, 0, 'x'), param(3, 0, 0, 'x'), param(0, 0, 0, a[0])), '-30 \n'],
  ];
  it.each(refusals)('%s → exact status, connection kept, outputs unchanged', async (_name, make, expected) => {
    s.send(make());
    expect(await s.line()).toBe(expected);
    s.send(`1 8 ${b[0].split('/')[3]} 1 0 11 10\n`);
    expect(await s.line()).toBe('1 11 \n');
    expect((await s.bytes(11)).toString()).toBe('idmmn!vnsme');
  });

  it.each([
    ['too many parameters', '1 12 1 17\n', '-21 \n'],
    ['VAL_IN over nfu.maxValueBytes, refused before buffering', `1 12 1 3\n3 0 0 5000\n`, '-19 \n'],
    ['a malformed parameter line', '1 12 1 1\n9 0 0 0\n', '-21 \n'],
    ['no empty line after the parameters', '1 12 1 1\n4 0 10 0\n1 4 3 10\n', '-21 \n'],
  ])('%s → %j and close', async (_name, text, expected) => {
    const r = await RawSession.open(t.port);
    r.send(text);
    expect(await r.line()).toBe(expected);
    expect(await r.closedWithin()).toBe(true);
    r.end();
  });
});

describe('NFU execution limits', () => {
  it('an op past nfu.timeoutMs is stopped (-46), writes nothing, and the depot keeps serving', async () => {
    const t = await startDepot({ nfu: { workers: 1, timeoutMs: 30 } });
    try {
      const rows = 40_000; // ~0.5 s of work: far past the 30 ms deadline
      const cols = 256;
      const A = await t.client.allocate(t, { size: rows * cols * 8, durationSec: 60 });
      await t.client.store(A.write, Buffer.alloc(rows * cols * 8, 1));
      const out = await t.client.allocate(t, { size: 128 * cols * 8, durationSec: 60 });
      const started = Date.now();
      const e = await t.client
        .nfu(t, 33, [
          { kind: 3, data: encodeAttrs({ rows, cols, k: 128 }) },
          { kind: 0, cap: A.read },
          { kind: 1, cap: out.write, length: 128 * cols * 8 },
        ])
        .catch((x: unknown) => x);
      expect(e).toMatchObject({ status: -46 });
      expect(Date.now() - started).toBeLessThan(5_000);
      expect((await t.client.probe(out.manage)).size).toBe(0);
      const again = await t.client.nfu(t, 1, [
        { kind: 3, data: Buffer.from('ok') },
        { kind: 3, data: Buffer.from([0]) },
        { kind: 4, length: 2 },
      ]);
      expect(again.get(2)?.toString()).toBe('ok');
    } finally {
      await t.close();
    }
  });

  it('with every worker busy and the queue full, a call answers "-66 <retry>"', async () => {
    const t = await startDepot({ nfu: { workers: 1, maxQueue: 0, timeoutMs: 10_000 }, limits: { overloadRetrySec: 3 } });
    try {
      const rows = 40_000; // busy for ~0.5 s while the second call arrives
      const cols = 256;
      const A = await t.client.allocate(t, { size: rows * cols * 8, durationSec: 60 });
      await t.client.store(A.write, Buffer.alloc(rows * cols * 8, 1));
      const slow = t.client.nfu(t, 33, [
        { kind: 3, data: encodeAttrs({ rows, cols, k: 128 }) },
        { kind: 0, cap: A.read },
        { kind: 4, length: 128 * cols * 8 },
      ]);
      await new Promise((r) => setTimeout(r, 50));
      const e = await t.client
        .nfu(t, 1, [
          { kind: 3, data: Buffer.from('x') },
          { kind: 3, data: Buffer.from([0]) },
          { kind: 4, length: 1 },
        ])
        .catch((x: unknown) => x);
      expect(e).toMatchObject({ code: 'IBP_E_OUT_OF_SOCKETS', status: -66, retryAfterSec: 3 });
      expect((await slow).get(2)!.length).toBe(128 * cols * 8);
    } finally {
      await t.close();
    }
  });

  it('nfu.enable limits the ops served and advertised', async () => {
    const t = await startDepot({ nfu: { enable: ['xor', 48] } });
    try {
      expect((await t.client.status(t)).nfuOps).toEqual([1, 48]);
      await expect(
        t.client.nfu(t, 16, [
          { kind: 3, data: Buffer.from('x') },
          { kind: 4, length: 32 },
        ]),
      ).rejects.toMatchObject({ status: -51 });
    } finally {
      await t.close();
    }
    await expect(startDepot({ nfu: { enable: ['nope'] } })).rejects.toMatchObject({ code: 'DEPOT_ERR_CONFIG' });
  });
});

describe('NFU inputs in reused shared buffers', () => {
  it('a REF_RDWR input past its data reads zeros even when the buffer last held another op’s bytes', async () => {
    const t = await startDepot({ nfu: { workers: 1 } });
    try {
      const n = 100_000;
      const X = await t.client.allocate(t, { size: n, durationSec: 60 });
      await t.client.store(X.write, Buffer.alloc(n, 0xaa));
      const sha = async (p: NfuParamSpec) =>
        Buffer.from((await t.client.nfu(t, 16, [p, { kind: 4, length: 32 }])).get(1)!).toString('hex');
      const first = await sha({ kind: 0, cap: X.read });
      expect(first).toBe(createHash('sha256').update(Buffer.alloc(n, 0xaa)).digest('hex'));
      // Same size class: the pooled input buffer of the first op, full of 0xaa, is reused here.
      const Y = await t.client.allocate(t, { size: n, durationSec: 60 });
      await t.client.store(Y.write, Buffer.from('0123456789'));
      const second = await sha({ kind: 2, cap: Y.write, length: n });
      const want = Buffer.alloc(n);
      want.write('0123456789');
      expect(second).toBe(createHash('sha256').update(want).digest('hex'));
    } finally {
      await t.close();
    }
  });
});
