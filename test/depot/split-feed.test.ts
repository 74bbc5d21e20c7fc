import { describe, expect, it } from 'vitest';
import { runMemorySession, seededKey } from '../helpers/memory-session.js';

const R = `1#${seededKey(0)} 1`;
const W = `1#${seededKey(1)} 1`;
const M = `1#${seededKey(2)} 1`;

/** One session exercising every served command, pipelined, with bodies right behind commands. */
const SESSION = Buffer.from(
  [
    '1 1 1 2 1 3600 100 10\n',
    `1 2 ${W} 11 10\nhello world`,
    `1 13 ${W} 6 5 10\nWORLD`,
    `1 8 ${R} 0 11 10\n`,
    `1 9 ${M} 40 3 0 0 0 10 \n`,
    `1 9 ${M} 41 1 10\n`,
    `1 9 ${M} 43 3 200 60 1 10\n`,
    `1 9 ${M} 45 150 10\n`,
    `1 8 ${R} 5 100 10\n`,
    '1 4 1 1 ibp 10\n',
    '0 4 1 ibp 10\n',
    '1 4 3 10\n',
    '1 4 5 10\n',
    `1  9 ${M}  42 1 0.5\r\n`,
    `1 9 ${M} 42 1 10\n`,
    `1 9 ${M} 40 3 0 0 0 10\n`,
  ].join(''),
  'latin1',
);

const CAPS = `ibp://127.0.0.1:6714/1#${seededKey(0)}/1/READ ibp://127.0.0.1:6714/1#${seededKey(1)}/1/WRITE ibp://127.0.0.1:6714/1#${seededKey(2)}/1/MANAGE`;
const INQ =
  'VS:1.4:1.0 DT:1 RID:1 RT:2 CT:1073741824 ST:1073741824 UT:150 UH:150 SH:1073741824 CH:1073741824 AT:1073741674 AH:1073741674 DR:2592000 RE \n';
const EXPECTED = [
  `1 ${CAPS} \n`,
  '1 \n1 11 \n',
  '1 \n1 5 \n',
  '1 11 \nhello WORLD',
  '1 1 0 11 100 3600 2 1 \n',
  '1 \n',
  '1 \n',
  '1 \n',
  '-19 \n',
  `1 ${INQ.length} \n${INQ}`,
  '1024 1 1024 1 2592000 \n',
  '1 1 \n',
  '1\nAnvil IBP depot 0.1.0\ntest\nEND\n',
  '1 \n',
  '1 \n',
  '-4 \n',
].join('');

describe('the same session fed whole, split at every byte boundary, and byte by byte', () => {
  it('fed whole: the exact expected replies', async () => {
    expect((await runMemorySession([SESSION])).toString('latin1')).toBe(EXPECTED);
  });

  it(`split in two at each of the ${SESSION.length - 1} boundaries: identical replies`, async () => {
    const mismatches: number[] = [];
    for (let k = 1; k < SESSION.length; k++) {
      const out = await runMemorySession([SESSION.subarray(0, k), SESSION.subarray(k)]);
      if (out.toString('latin1') !== EXPECTED) mismatches.push(k);
    }
    expect(mismatches).toEqual([]);
  });

  it('one byte per chunk: identical replies', async () => {
    const bytes = [...SESSION].map((b) => Buffer.from([b]));
    expect((await runMemorySession(bytes)).toString('latin1')).toBe(EXPECTED);
  });
});
