import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { endRecord, journalPath, recordHeader, rollbackRecord, saveUndo } from '../../depot/resources/disk/redo-journal.js';
import { startDepot, type TestDepot } from '../helpers/depot-fixture.js';
import { tempDir } from '../helpers/temp-dir.js';

const BLOCK = 64 * 1024;
const OLD = 1;
const NEW = 2;

/** The CRC-32 of each block of `bytes` (the last one cut at its end). */
function blockCrcs(bytes: Buffer): Map<number, number> {
  const crcs = new Map<number, number>();
  for (let at = 0; at < bytes.length; at += BLOCK) crcs.set(at / BLOCK, crc32(bytes.subarray(at, at + BLOCK)));
  return crcs;
}

describe('disk: start-up finishes a refused overwrite’s rollback', () => {
  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  /**
   * An allocation of 200 000 acknowledged bytes, then the depot stopped, and the allocation's file
   * as a crash left it while a refused WRITE of `[100, 150 100)` (sequence number 1) was rolled
   * back: its journal holds its records, end record, undo image (taken from the file) and rollback
   * record (change 2, with the committed size and checksums), and its bytes are in place. `before`
   * changes the file before the undo image is taken.
   */
  async function interruptedRollback(before: (bytes: Buffer) => void) {
    const dir = tempDir();
    cleanups.push(dir.cleanup);
    const resource = [{ rid: '1', path: dir.path, capacityBytes: '64MiB', fsync: 'safe' as const }];
    const t: TestDepot = await startDepot({ resource });
    const caps = await t.client.allocate(t, { size: 1 << 20, durationSec: 600 });
    await t.client.store(caps.write, Buffer.alloc(200_000, OLD));
    await t.close();
    const rel = readdirSync(join(dir.path, 'data'), { recursive: true, encoding: 'utf8' }).find((f) => /\/\d+$/.test(f))!;
    const file = join(dir.path, 'data', rel);
    const committed = readFileSync(file);
    const crcs = blockCrcs(committed);
    const bytes = Buffer.from(committed);
    before(bytes);
    const body = Buffer.alloc(150_000, NEW);
    const redo = Buffer.concat([recordHeader(1, 100, [body]), body, endRecord(1)]);
    writeFileSync(file, bytes);
    writeFileSync(journalPath(file), redo);
    const j = await open(journalPath(file), 'r+');
    const d = await open(file, 'r');
    try {
      const end = await saveUndo(j, redo.length, d, 100, 150_100, 1, 1 << 20);
      const record = rollbackRecord(1, 2, 200_000, new Map([...crcs].filter(([b]) => b <= 3)));
      await j.write(record, 0, record.length, end);
    } finally {
      await j.close();
      await d.close();
    }
    writeFileSync(file, Buffer.from(bytes).fill(NEW, 100, 150_100));
    const t2 = await startDepot({ port: t.port, resource: [{ ...resource[0]!, startupCheck: 'full' as const }] });
    cleanups.push(() => t2.close());
    return { t2, caps, file };
  }

  it('puts the old bytes back and serves them', async () => {
    const { t2, caps, file } = await interruptedRollback(() => undefined);
    const got = await t2.client.load(caps.read, 0, 200_000);
    expect(got.equals(Buffer.alloc(200_000, OLD))).toBe(true);
    expect(existsSync(journalPath(file))).toBe(false);
  });

  it('records the committed checksums, never ones computed from the file: a byte corrupted before the write is not served', async () => {
    const { t2, caps } = await interruptedRollback((bytes) => (bytes[120_000] = 0x5a));
    const got = await t2.client.load(caps.read, 0, 200_000).catch((e: Error) => e.message);
    expect(typeof got === 'string' ? got : `served, byte 120000 = ${got[120_000]}`).toMatch(/-15\b/);
  });
});
