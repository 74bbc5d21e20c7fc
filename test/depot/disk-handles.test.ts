import { readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { formatCapability } from '../../ibp/index.js';
import { RawSession, keyOf, startDepot } from '../helpers/depot-fixture.js';
import { tempDir } from '../helpers/temp-dir.js';

/** Paths of the files this process holds open under `dir`. */
function openFilesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(join('/proc/self/fd', fd));
      if (target.startsWith(dir)) out.push(target);
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

describe('allocation file descriptors kept between commands', () => {
  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it.runIf(process.platform === 'linux')('are all closed when the depot closes', async () => {
    const d = tempDir();
    cleanups.push(d.cleanup);
    const t = await startDepot({ resource: [{ rid: '1', path: d.path, capacityBytes: '64MiB' }] });
    for (let i = 0; i < 3; i++) {
      const a = await t.client.allocate(t, { size: 1 << 20, durationSec: 60 });
      await t.client.store(a.write, Buffer.alloc(100_000, i));
      expect((await t.client.load(a.read, 0, 10)).every((x) => x === i)).toBe(true);
    }
    expect(openFilesUnder(join(d.path, 'data')).length).toBeGreaterThan(0); // kept while it runs
    await t.close();
    for (let i = 0; i < 100 && openFilesUnder(join(d.path, 'data')).length > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(openFilesUnder(join(d.path, 'data'))).toEqual([]);
  });

  it('a command whose file is new while every kept descriptor is in use keeps its own', async () => {
    const d = tempDir();
    cleanups.push(d.cleanup);
    const t = await startDepot({ resource: [{ rid: '1', path: d.path, capacityBytes: '256MiB' }] });
    cleanups.push(() => t.close());
    // 64 STOREs (as many as the depot keeps descriptors for) halfway through their bodies: each
    // holds its file's descriptor.
    const held: RawSession[] = [];
    for (let i = 0; i < 64; i++) {
      const a = await t.client.allocate(t, { size: 1 << 20, durationSec: 60 });
      const s = await RawSession.open(t.port);
      cleanups.push(() => s.end());
      s.send(`1 2 ${keyOf(formatCapability(a.write))} 1000 10\n`);
      expect(await s.line()).toBe('1 \n');
      s.send(Buffer.alloc(500, i));
      held.push(s);
    }
    await new Promise((r) => setTimeout(r, 100)); // their halves are in
    // One more file: its new descriptor is cached too, and not closed under it.
    const b = await t.client.allocate(t, { size: 1 << 20, durationSec: 60 });
    expect(await t.client.store(b.write, Buffer.alloc(1000, 7))).toBe(1000);
    expect((await t.client.load(b.read, 0, 1000)).every((x) => x === 7)).toBe(true);
    for (const [i, s] of held.entries()) {
      s.send(Buffer.alloc(500, i));
      expect(await s.line()).toBe('1 1000 \n');
    }
  });
});
