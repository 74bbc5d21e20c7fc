import { PassThrough } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  MAX_CAP_LENGTH,
  NfuParamKind,
  ReadError,
  StreamReader,
  encodeNfuParam,
  formatNfuParamHeader,
  isNfuRefKind,
  parseNfuParamHeader,
  readNfuParams,
  type NfuParamKindNumber,
} from '../../ibp/index.js';

const LIMITS = { maxLineBytes: 1024, lineTimeoutMs: 1_000, progressTimeoutMs: 1_000, maxValueBytes: 64 };

function feed(...parts: Array<string | Uint8Array>): StreamReader {
  const stream = new PassThrough();
  const reader = new StreamReader(stream, { highWaterBytes: 1 << 20 });
  for (const p of parts) stream.write(typeof p === 'string' ? Buffer.from(p, 'latin1') : p);
  return reader;
}

describe('NFU parameter framing (codec)', () => {
  it('reference kinds are REF_RD, REF_WR and REF_RDWR', () => {
    expect(Object.values(NfuParamKind).filter((k) => isNfuRefKind(k))).toEqual([
      NfuParamKind.REF_RD,
      NfuParamKind.REF_WR,
      NfuParamKind.REF_RDWR,
    ]);
  });

  it('parse(format(h)) = h for every valid header', () => {
    const kinds = Object.values(NfuParamKind);
    fc.assert(
      fc.property(
        fc.constantFrom(...kinds),
        fc.nat(1e9),
        fc.nat(64),
        fc.integer({ min: 1, max: 64 }),
        (kind: NfuParamKindNumber, offset, length, data) => {
          const dataLength = kind === NfuParamKind.VAL_OUT ? 0 : data;
          const h = { kind, offset, length, dataLength };
          expect(parseNfuParamHeader(formatNfuParamHeader(h).trimEnd(), 0, 64)).toEqual(h);
        },
      ),
    );
  });

  it.each([
    ['3 0 0', 'IBP_ERR_BAD_FORMAT'],
    ['6 0 0 1', 'IBP_ERR_BAD_FORMAT'],
    ['x 0 0 1', 'IBP_ERR_BAD_FORMAT'],
    ['3 -1 0 1', 'IBP_ERR_BAD_FORMAT'],
    ['0 0 0 0', 'IBP_ERR_BAD_FORMAT'], // a reference without its cap
    ['3 0 0 65', 'IBP_ERR_WOULD_EXCEED_LIMIT'],
    [`0 0 0 ${MAX_CAP_LENGTH + 1}`, 'IBP_ERR_WOULD_EXCEED_LIMIT'],
    ['4 0 0 1', 'IBP_ERR_WOULD_EXCEED_LIMIT'], // a VAL_OUT carries no data
    ['4 0 65 0', 'IBP_ERR_WOULD_EXCEED_LIMIT'],
  ])('header %j → %s', (line, code) => {
    expect(() => parseNfuParamHeader(line, 0, 64)).toThrow(expect.objectContaining({ code }));
  });

  it('reads every parameter and the closing empty line; the data is owned by the parameter', async () => {
    const cap = 'ibp://127.0.0.1:6714/1#key/1/READ';
    const parts = [
      ...encodeNfuParam({ kind: NfuParamKind.REF_RD, offset: 5, length: 10 }, Buffer.from(cap)),
      ...encodeNfuParam({ kind: NfuParamKind.VAL_IN, offset: 0, length: 0 }, Buffer.from('abc')),
      ...encodeNfuParam({ kind: NfuParamKind.VAL_OUT, offset: 0, length: 8 }, new Uint8Array(0)),
      '\n',
    ];
    const params = await readNfuParams(feed(...parts), 3, LIMITS);
    expect(params.map((p) => [p.kind, p.offset, p.length, p.data.toString()])).toEqual([
      [NfuParamKind.REF_RD, 5, 10, cap],
      [NfuParamKind.VAL_IN, 0, 0, 'abc'],
      [NfuParamKind.VAL_OUT, 0, 8, ''],
    ]);
  });

  it('a missing empty line is a bad format', async () => {
    await expect(readNfuParams(feed('3 0 0 1\nx', '1 4 3 10\n'), 1, LIMITS)).rejects.toMatchObject({
      code: 'IBP_ERR_BAD_FORMAT',
    });
  });

  it('data past its deadline fails with body-timeout, however steadily it trickles', async () => {
    const stream = new PassThrough();
    const reader = new StreamReader(stream, { highWaterBytes: 1 << 20 });
    stream.write('3 0 0 50\n');
    const timer = setInterval(() => stream.write('z'), 10);
    try {
      const read = readNfuParams(reader, 1, { ...LIMITS, dataDeadline: () => Date.now() + 100 });
      const e = await read.then(
        () => undefined,
        (x: unknown) => x,
      );
      expect(e).toBeInstanceOf(ReadError);
      expect((e as ReadError).reason).toBe('body-timeout');
    } finally {
      clearInterval(timer);
    }
  });
});
