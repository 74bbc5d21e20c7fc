import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { endRecord, journalPath, recordHeader, redoJournal } from '../../depot/resources/disk/redo-journal.js';
import { tempDir } from '../helpers/temp-dir.js';

const BLOCK = 64 * 1024;

describe('redo journal', () => {
  const cleanups: Array<() => unknown> = [];
  afterEach(() => {
    for (const c of cleanups.splice(0).reverse()) c();
  });

  /** A 300 000-byte data file of 1s and the journal of a write of 2s at 70 000 (two records). */
  function setUp(): { file: string; journal: Buffer } {
    const d = tempDir();
    cleanups.push(d.cleanup);
    const file = join(d.path, '7');
    writeFileSync(file, Buffer.alloc(300_000, 1));
    const a = Buffer.alloc(60_000, 2);
    const b = Buffer.alloc(40_000, 2);
    const journal = Buffer.concat([recordHeader(5, 70_000, [a]), a, recordHeader(5, 130_000, [b]), b, endRecord(5)]);
    return { file, journal };
  }

  it('re-applies a complete journal newer than the committed sequence number', async () => {
    const { file, journal } = setUp();
    writeFileSync(journalPath(file), journal);
    const done = await redoJournal(file, 4, 300_000, BLOCK);
    expect(done).toMatchObject({ seq: 5, rolledBack: false });
    expect([...(done as { blocks: Set<number> }).blocks].sort()).toEqual([1, 2]);
    const data = readFileSync(file);
    expect(data.subarray(0, 70_000).every((x) => x === 1)).toBe(true);
    expect(data.subarray(70_000, 170_000).every((x) => x === 2)).toBe(true);
    expect(data.subarray(170_000).every((x) => x === 1)).toBe(true);
  });

  it('ignores a stale, torn, corrupted or foreign journal and leaves the data alone', async () => {
    const { file, journal } = setUp();
    const cases: Array<[string, Buffer, number]> = [
      ['stale', journal, 5],
      ['no end record', journal.subarray(0, journal.length - 32), 0],
      ['torn payload', journal.subarray(0, 32 + 30_000), 0],
      ['flipped payload byte', Buffer.from(journal).fill(3, 100, 101), 0],
      ['foreign bytes', Buffer.alloc(200, 0x41), 0],
      ['empty', Buffer.alloc(0), 0],
    ];
    for (const [name, bytes, committed] of cases) {
      writeFileSync(journalPath(file), bytes);
      expect(await redoJournal(file, committed, 300_000, BLOCK), name).toBeUndefined();
      expect(
        readFileSync(file).every((x) => x === 1),
        name,
      ).toBe(true);
    }
  });

  // Records of a newer write over an older journal (one the depot could not empty): whatever follows
  // them is the old journal's, and is not read as theirs.
  it('a newer write over an older journal: only its own records count, up to its end record', async () => {
    const { file, journal } = setUp(); // write 5: 2s at 70 000 (60 000 bytes) and 130 000 (40 000)
    // Write 6: 3s at 10 000, as long as write 5's first record, then its end record.
    const c = Buffer.alloc(60_000, 3);
    const six = Buffer.concat([recordHeader(6, 10_000, [c]), c]);
    const over = (head: Buffer) => Buffer.concat([head, journal.subarray(head.length)]);
    // Complete: applied alone (write 5's records after its end record are not read).
    writeFileSync(journalPath(file), over(Buffer.concat([six, endRecord(6)])));
    expect(await redoJournal(file, 5, 300_000, BLOCK)).toMatchObject({ seq: 6, rolledBack: false });
    let data = readFileSync(file);
    expect(data.subarray(10_000, 70_000).every((x) => x === 3)).toBe(true);
    expect(data.subarray(70_000).every((x) => x === 1)).toBe(true);
    writeFileSync(file, Buffer.alloc(300_000, 1));
    // Cut off after its first record, which ends where write 5's second begins: write 5's record and
    // end record follow, whole, but they are not write 6's; nothing is applied.
    writeFileSync(journalPath(file), over(six));
    expect(await redoJournal(file, 5, 300_000, BLOCK)).toBeUndefined();
    // Nor when write 5 never committed either (its records are older than the first one read).
    expect(await redoJournal(file, 4, 300_000, BLOCK)).toBeUndefined();
    data = readFileSync(file);
    expect(data.every((x) => x === 1)).toBe(true);
  });

  it('writes nothing past the committed size', async () => {
    const { file, journal } = setUp();
    writeFileSync(journalPath(file), journal);
    const done = await redoJournal(file, 0, 100_000, BLOCK);
    expect([...(done as { blocks: Set<number> }).blocks]).toEqual([1]);
    const data = readFileSync(file);
    expect(data.length).toBe(300_000);
    expect(data.subarray(70_000, 100_000).every((x) => x === 2)).toBe(true);
    expect(data.subarray(100_000).every((x) => x === 1)).toBe(true);
  });
});
