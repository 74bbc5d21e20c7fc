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
