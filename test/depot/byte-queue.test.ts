import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ByteQueue, LINE_TOO_LONG } from '../../ibp/index.js';

describe('ByteQueue', () => {
  it('yields lines and raw bytes whatever the chunking', () => {
    fc.assert(
      fc.property(
        fc.array(fc.stringMatching(/^[ -~]{0,30}$/), { minLength: 1, maxLength: 6 }),
        fc.uint8Array({ maxLength: 40 }),
        fc.array(fc.integer({ min: 1, max: 17 }), { minLength: 1, maxLength: 50 }),
        (lines, tail, cuts) => {
          const input = Buffer.concat([Buffer.from(lines.map((l) => `${l}\n`).join(''), 'latin1'), Buffer.from(tail)]);
          const q = new ByteQueue();
          const got: string[] = [];
          let at = 0;
          let i = 0;
          while (at < input.length) {
            const n = cuts[i++ % cuts.length]!;
            q.push(input.subarray(at, at + n));
            at += n;
            for (;;) {
              if (got.length === lines.length) break;
              const l = q.takeLine(1024);
              if (l === null) break;
              expect(l).not.toBe(LINE_TOO_LONG);
              got.push(l as string);
            }
          }
          expect(got).toEqual(lines);
          const rest: Buffer[] = [];
          for (let b = q.take(7); b.length > 0; b = q.take(7)) rest.push(Buffer.from(b));
          expect(Buffer.concat(rest)).toEqual(Buffer.from(tail));
          expect(q.length).toBe(0);
        },
      ),
      { seed: 42, numRuns: 300 },
    );
  });

  it('strips one trailing CR and keeps spaces', () => {
    const q = new ByteQueue();
    q.push(Buffer.from('1 \r\n2  \n'));
    expect(q.takeLine(100)).toBe('1 ');
    expect(q.takeLine(100)).toBe('2  ');
  });

  it('reports a line longer than the limit without waiting for its end', () => {
    const q = new ByteQueue();
    q.push(Buffer.alloc(63, 0x41));
    expect(q.takeLine(64)).toBeNull();
    q.push(Buffer.from('A'));
    expect(q.takeLine(64)).toBe(LINE_TOO_LONG);
  });

  it('accepts a line of exactly the limit including its newline', () => {
    const q = new ByteQueue();
    q.push(Buffer.concat([Buffer.alloc(63, 0x41), Buffer.from('\n')]));
    expect(q.takeLine(64)).toBe('A'.repeat(63));
  });

  it('take() returns views, not copies', () => {
    const chunk = Buffer.from('abcdef');
    const q = new ByteQueue();
    q.push(chunk);
    const v = q.take(3);
    chunk[0] = 0x7a;
    expect(v.toString()).toBe('zbc');
  });
});
