import { describe, expect, it } from 'vitest';
import { runMemorySession, seededKey } from '../helpers/memory-session.js';

/** `RID#KEY WRM` of the i-th seeded key. */
const K = (i: number) => `1#${seededKey(i)} 1`;
const cap = (i: number, wrm: number, word: string) => `ibp://127.0.0.1:6714/1#${seededKey(i)}/${wrm}/${word}`;
const caps = (first: number, wrm: number) =>
  `1 ${cap(first, wrm, 'READ')} ${cap(first + 1, wrm, 'WRITE')} ${cap(first + 2, wrm, 'MANAGE')} \n`;

/**
 * One pipelined session over the new allocation types and the ACCRE extensions, bodies right
 * behind their commands. Keys are drawn in order: byte array k0–k2, CIRQ k3–k5, RENAME k6–k8,
 * alias k9–k11, SPLIT child k12–k14, FIFO k15–k17.
 */
const STEPS: Array<[string, string]> = [
  ['1 1 1 2 1 3600 100 10\n', caps(0, 1)],
  ['1 1 1 2 4 3600 8 10\n', caps(3, 2)],
  [`1 2 ${K(1)} 10 10\n0123456789`, '1 \n1 10 \n'],
  [`1 2 ${K(4)} 5 10\nabcde`, '1 \n1 5 \n'],
  [`1 2 ${K(4)} 5 10\nfghij`, '1 \n1 5 \n'], // wraps: holds stream bytes [2, 10)
  [`1 8 ${K(3)} 0 8 10\n`, '1 8 \ncdefghij'],
  [`1 8 ${K(3)} 7 4 10\n`, '1 4 \ndefg'], // the window ending at write position 7
  [`1 8 ${K(3)} 2 2 10\n`, '-19 \n'], // overwritten
  [`1 9 ${K(5)} 40 3 0 0 0 10 \n`, '1 1 0 8 8 3600 2 4 10 0 \n'],
  [`1 16 ${K(2)} 10\n`, caps(6, 1)],
  [`1 8 ${K(0)} 0 1 10\n`, '-4 \n'],
  [`1 14 ${K(8)} 2 5 0 10\n`, caps(9, 3)],
  [`1 8 ${K(9)} 0 5 10\n`, '1 5 \n23456'],
  [`1 15 ${K(11)} 40 3 10 \n`, '1 1 0 2 5 3600 \n'],
  [`1 33 ${K(7)} 2 20 2 10 3 10\nXYabc`, '1 \n1 5 \n'],
  [`1 35 ${K(6)} 2 10 3 20 2 10\n`, '1 5 \nabcXY'],
  [`1 18 ${K(8)} 2 1 60 50 10\n`, caps(12, 4)],
  [`1 9 ${K(8)} 40 3 0 0 0 10 \n`, '1 1 0 22 50 3600 2 1 \n'],
  [`1 19 ${K(8)} ${K(14)} 10\n`, '1 \n'],
  [`1 9 ${K(8)} 40 3 0 0 0 10 \n`, '1 1 0 22 100 3600 2 1 \n'],
  [`1 31 ${K(8)} 1 10\n`, '1 0 \n'],
  [`1 32 ${K(8)} 0 10\n`, '1 0\n'],
  [`1 28 0 0 ${K(7)} 3 10\nxyz`, '1 \n1 3 \n'],
  [`1 24 0 0 ${K(6)} 21 4 10\n`, '1 4 \nYxyz'],
  ['1 1 1 2 3 3600 4 10\n', caps(15, 5)],
  [`1 2 ${K(16)} 3 10\nabc`, '1 \n1 3 \n'],
  [`1 8 ${K(15)} 0 2 10\n`, '1 2 \nab'],
  [`1 2 ${K(16)} 3 10\ndef`, '1 \n1 3 \n'],
  [`1 8 ${K(15)} 99 4 10\n`, '1 4 \ncdef'], // FIFO: the offset is ignored
  [`1 9 ${K(17)} 40 3 0 0 0 10 \n`, '1 1 0 0 4 3600 2 3 6 6 \n'],
];

const SESSION = Buffer.from(STEPS.map(([line]) => line).join(''), 'latin1');
const EXPECTED = STEPS.map(([, reply]) => reply).join('');

describe('queue types and ACCRE extensions: one session fed whole, split at every boundary, byte by byte', () => {
  it('fed whole: the exact expected replies', async () => {
    expect((await runMemorySession([SESSION])).toString('latin1')).toBe(EXPECTED);
  });

  it('split in two at every boundary: identical replies', async () => {
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
