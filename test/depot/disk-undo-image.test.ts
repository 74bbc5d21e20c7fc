import { readFileSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import {
  HOLE,
  RECORD_HEADER_BYTES,
  endRecord,
  journalPath,
  recordHeader,
  redoJournal,
  restoreUndo,
  rollbackRecord,
  saveUndo,
  undoMarker,
} from '../../depot/resources/disk/redo-journal.js';
import { tempDir } from '../helpers/temp-dir.js';

const BLOCK = 64 * 1024;

/** 300 000 bytes, no two neighbours alike, so a misplaced byte shows. */
function committed(): Buffer {
  const b = Buffer.alloc(300_000);
  for (let i = 0; i < b.length; i++) b[i] = (i * 7 + (i >> 8)) & 0xff;
  return b;
}

/** The committed checksums of blocks `blocks` of {@link committed} (cut at `size`). */
function committedCrcs(blocks: number[], size = 300_000): Map<number, number> {
  const bytes = committed().subarray(0, size);
  return new Map(blocks.map((b) => [b, crc32(bytes.subarray(b * BLOCK, (b + 1) * BLOCK))]));
}

/** The rollback record of write `seq` as change 6, to the committed size `size` and checksums of `blocks`. */
function rollback(seq = 5, size = 300_000, blocks = [1, 2, 4]): Buffer {
  return rollbackRecord(seq, 6, size, committedCrcs(blocks, size));
}

describe('undo image of an overwrite (after its journal end record)', () => {
  const cleanups: Array<() => unknown> = [];
  afterEach(() => {
    for (const c of cleanups.splice(0).reverse()) c();
  });

  /**
   * A data file of committed bytes and the complete journal of write 5 (2s over [70 000, 170 000),
   * two records), with the undo image of that range saved in runs of 30 000 bytes after the end
   * record. Resolves to the file, the journal's bytes and where the image starts.
   */
  async function setUp(): Promise<{ file: string; undoAt: number; journal: Buffer }> {
    const d = tempDir();
    cleanups.push(d.cleanup);
    const file = join(d.path, '7');
    writeFileSync(file, committed());
    const a = Buffer.alloc(60_000, 2);
    const b = Buffer.alloc(40_000, 2);
    const redo = Buffer.concat([recordHeader(5, 70_000, [a]), a, recordHeader(5, 130_000, [b]), b, endRecord(5)]);
    writeFileSync(journalPath(file), redo);
    const jfh = await open(journalPath(file), 'r+');
    const dfh = await open(file, 'r');
    try {
      const end = await saveUndo(jfh, redo.length, dfh, 70_000, 170_000, 5, 30_000);
      // four runs: 30 000 × 3 + 10 000
      expect(end).toBe(redo.length + 4 * RECORD_HEADER_BYTES + 100_000);
    } finally {
      await jfh.close();
      await dfh.close();
    }
    return { file, undoAt: redo.length, journal: readFileSync(journalPath(file)) };
  }

  /** Copies the redo records in place (what a WRITE does before its commit). */
  function copyInPlace(file: string): void {
    const data = readFileSync(file);
    data.fill(2, 70_000, 170_000);
    writeFileSync(file, data);
  }

  async function restore(file: string, undoAt: number, seq = 5, to = 170_000): Promise<void> {
    const jfh = await open(journalPath(file), 'r');
    const dfh = await open(file, 'r+');
    try {
      await restoreUndo(jfh, undoAt, dfh, seq, 70_000, to);
    } finally {
      await jfh.close();
      await dfh.close();
    }
  }

  it('writes the committed bytes back over a copy in place, and only over its range', async () => {
    const { file, undoAt } = await setUp();
    copyInPlace(file);
    await restore(file, undoAt);
    expect(readFileSync(file).equals(committed())).toBe(true);
  });

  it('without a whole rollback record, recovery finishes the write from its redo records', async () => {
    const { file, journal } = await setUp();
    const cases: Array<[string, Buffer]> = [
      ['image alone', journal],
      ['torn rollback record', Buffer.concat([journal, rollback().subarray(0, 40)])],
      ['rollback record of another write', Buffer.concat([journal, rollback(4)])],
    ];
    for (const [name, bytes] of cases) {
      writeFileSync(file, committed());
      writeFileSync(journalPath(file), bytes);
      const done = await redoJournal(file, 4, 300_000, BLOCK);
      expect(done, name).toEqual({ seq: 5, blocks: new Set([1, 2]), rolledBack: false });
      expect(readFileSync(file).equals(committed().fill(2, 70_000, 170_000)), name).toBe(true);
    }
  });

  it('with its rollback record, recovery writes the image back over a copy in place, once the rollback is newer than the record', async () => {
    const { file, journal } = await setUp();
    writeFileSync(journalPath(file), Buffer.concat([journal, rollback()]));
    // Whatever the metadata recorded of the write itself (5, or less), the rollback is not recorded.
    for (const committedSeq of [4, 5]) {
      copyInPlace(file);
      const done = await redoJournal(file, committedSeq, 300_000, BLOCK);
      // The size and checksums to record are those of the record, whatever the file holds.
      expect(done).toEqual({
        seq: 6,
        rolledBack: true,
        from: 70_000,
        to: 170_000,
        rollbackSeq: 6,
        size: 300_000,
        crcs: committedCrcs([1, 2, 4]),
      });
      expect(readFileSync(file).equals(committed())).toBe(true);
    }
    // Recorded: the journal is stale, the data is left alone.
    copyInPlace(file);
    expect(await redoJournal(file, 6, 300_000, BLOCK)).toBeUndefined();
    expect(readFileSync(file).equals(committed().fill(2, 70_000, 170_000))).toBe(true);
  });

  it('a rollback at recovery writes nothing past the committed size', async () => {
    const { file, journal } = await setUp();
    writeFileSync(journalPath(file), Buffer.concat([journal, rollback(5, 100_000, [1])]));
    writeFileSync(file, Buffer.alloc(100_000, 2));
    // The committed size is the record's, whatever the caller passes.
    const done = await redoJournal(file, 5, 300_000, BLOCK);
    expect(done).toMatchObject({ seq: 6, rolledBack: true, size: 100_000, crcs: committedCrcs([1], 100_000) });
    const data = readFileSync(file);
    expect(data.length).toBe(100_000);
    expect(data.subarray(70_000).equals(committed().subarray(70_000, 100_000))).toBe(true);
  });

  it('an undo marker (a rollback record alone) has recovery record the committed size and checksums, and writes nothing', async () => {
    const { file } = await setUp();
    writeFileSync(file, Buffer.alloc(350_000, 2));
    writeFileSync(journalPath(file), undoMarker(9, 300_000, committedCrcs([4])));
    expect(await redoJournal(file, 8, 350_000, BLOCK)).toEqual({
      seq: 9,
      rolledBack: true,
      from: 0,
      to: 0,
      rollbackSeq: 9,
      size: 300_000,
      crcs: committedCrcs([4]),
    });
    expect(readFileSync(file).equals(Buffer.alloc(350_000, 2))).toBe(true);
    // Recorded, or torn: nothing to do.
    expect(await redoJournal(file, 9, 350_000, BLOCK)).toBeUndefined();
    writeFileSync(journalPath(file), undoMarker(9, 300_000, committedCrcs([4])).subarray(0, 40));
    expect(await redoJournal(file, 8, 350_000, BLOCK)).toBeUndefined();
  });

  it('an undo marker carries blocks that are to be holes again (their checksums dropped) beside committed ones', async () => {
    const { file } = await setUp();
    writeFileSync(file, Buffer.alloc(350_000, 2));
    const blocks = new Map([...committedCrcs([4]), [1, HOLE], [2, HOLE]]);
    writeFileSync(journalPath(file), undoMarker(9, 300_000, blocks));
    const done = await redoJournal(file, 8, 350_000, BLOCK);
    expect(done?.rolledBack).toBe(true);
    expect(done?.rolledBack === true ? done.crcs : undefined).toEqual(blocks);
    // A block number past what the record can name is refused, not wrapped onto another block.
    expect(() => undoMarker(9, 300_000, new Map([[0x8000_0000, HOLE]]))).toThrow(RangeError);
  });

  it('refuses a torn, corrupted, foreign or short image', async () => {
    const { file, undoAt, journal } = await setUp();
    const cases: Array<[string, Buffer, number?, number?]> = [
      ['torn in its last record', journal.subarray(0, journal.length - 5_000)],
      [
        'flipped payload byte',
        Buffer.from(journal).fill(9, undoAt + RECORD_HEADER_BYTES + 10, undoAt + RECORD_HEADER_BYTES + 11),
      ],
      ['flipped header byte', Buffer.from(journal).fill(9, undoAt + 13, undoAt + 14)],
      ['no image', journal.subarray(0, undoAt)],
      ['another write', journal, 6],
      ['a range it does not cover', journal, 5, 180_000],
    ];
    for (const [name, bytes, seq, to] of cases) {
      writeFileSync(file, committed());
      copyInPlace(file);
      writeFileSync(journalPath(file), bytes);
      await expect(restore(file, undoAt, seq, to), name).rejects.toThrow(/undo image reads back torn/);
    }
  });

  it('refuses to save an image of bytes the data file does not hold', async () => {
    const { file, undoAt } = await setUp();
    const jfh = await open(journalPath(file), 'r+');
    const dfh = await open(file, 'r');
    try {
      await expect(saveUndo(jfh, undoAt, dfh, 250_000, 310_000, 5, 30_000)).rejects.toThrow(/ends before byte 310000/);
    } finally {
      await jfh.close();
      await dfh.close();
    }
  });
});
