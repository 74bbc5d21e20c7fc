import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RingStateFile, partDigest } from '../../depot/resources/ring-state-file.js';
import type { RingPart } from '../../depot/core/ring-allocation.js';

/**
 * What start-up makes of a ring's state file after a crash at each point of a wrapping STORE: the
 * record (counters before, the two parts with their digests) is durable before any byte lands, and
 * each part is all old or all new once the disk layer has redone or cut it.
 */
describe('ring state after a crash', () => {
  let dir: string;
  let data: string;
  let state: RingStateFile;
  const size = 16;
  const old = Buffer.from('ABCDEFGHIJKLMNOP');
  // a CIRQ of 16 bytes at write position 28 (28 mod 16 = 12): a STORE of 6 bytes wraps into the
  // parts [12, 16) and [0, 2)
  const before = { written: 28, consumed: 0 };
  const parts: RingPart[] = [
    { at: 12, length: 4, after: { written: 32, consumed: 0 } },
    { at: 0, length: 2, after: { written: 34, consumed: 0 } },
  ];
  const bytes = [Buffer.from('wxyz'), Buffer.from('12')];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'anvil-ringstate-'));
    data = join(dir, 'data', '01', '1');
    state = new RingStateFile(join(dir, 'rings', '1.test'), 'safe');
    await mkdir(join(dir, 'data', '01'), { recursive: true });
    await writeFile(data, old);
    await state.record(before, [
      { part: parts[0]!, digest: partDigest([bytes[0]!]) },
      { part: parts[1]!, digest: partDigest([bytes[1]!]) },
    ]);
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const patch = async (at: number, b: Buffer) => {
    const fh = await open(data, 'r+');
    await fh.write(b, 0, b.length, at);
    await fh.close();
  };
  const reload = () => new RingStateFile(state.path, 'safe').load(data, size);

  it('no part in place: the counters before the STORE', async () => {
    expect(await reload()).toEqual(before);
  });
  it('the first part in place: the counters after it (a consistent prefix of the STORE)', async () => {
    await patch(12, bytes[0]!);
    expect(await reload()).toEqual(parts[0]!.after);
  });
  it('both parts in place: the counters after the STORE', async () => {
    await patch(12, bytes[0]!);
    await patch(0, bytes[1]!);
    expect(await reload()).toEqual(parts[1]!.after);
  });
  it('the second part without the first is not taken (parts land in order)', async () => {
    await patch(0, bytes[1]!);
    expect(await reload()).toEqual(before);
  });
  it('a part past the committed physical size is not taken (an append the disk layer cut)', async () => {
    await patch(12, bytes[0]!);
    expect(await new RingStateFile(state.path, 'safe').load(data, 12)).toEqual(before);
  });
  it('a torn newer record falls back to the older slot', async () => {
    await state.record(parts[1]!.after, []); // seq 2, slot 0
    expect(await reload()).toEqual(parts[1]!.after);
    const fh = await open(state.path, 'r+');
    await fh.write(Buffer.from('garbage'), 0, 7, 10); // tear slot 0
    await fh.close();
    expect(await reload()).toEqual(before); // slot 1 (seq 1), none of its parts in place
  });
  it('no state file: a ring nothing was written to', async () => {
    await rm(state.path);
    expect(await reload()).toEqual({ written: 0, consumed: 0 });
  });
});
