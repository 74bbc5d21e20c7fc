import { open, type FileHandle } from 'node:fs/promises';
import { basename } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { formatCapability } from '../../ibp/index.js';
import { RawSession, keyOf, startDepot } from '../helpers/depot-fixture.js';
import { tempDir } from '../helpers/temp-dir.js';

const BLOCK = 64 * 1024;

interface Deferred {
  readonly promise: Promise<void>;
  resolve(): void;
}
function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Hooks on allocation files: each read takes the next read hook (waits before reading, tells when
 * done); each positional `write` (an overwrite being copied in place from its journal) takes the
 * next write hook (tells when written, then waits before returning).
 */
interface Hooks {
  reads: Array<{ entered?: () => void; wait: () => Promise<void>; done?: () => void }>;
  writes: Array<{ written: () => void; resume: Promise<void> }>;
}

function hookedIo(hooks: Hooks): { open(path: string, flags: number): Promise<FileHandle> } {
  return {
    async open(path, flags) {
      const fh = await open(path, flags, 0o600);
      if (!/^\d+$/.test(basename(path))) return fh;
      const read = fh.read.bind(fh) as (...args: unknown[]) => Promise<unknown>;
      const write = fh.write.bind(fh) as (...args: unknown[]) => Promise<unknown>;
      Object.assign(fh, {
        read: async (...args: unknown[]) => {
          const h = hooks.reads.shift();
          if (h === undefined) return read(...args);
          h.entered?.();
          await h.wait();
          const r = await read(...args);
          h.done?.();
          return r;
        },
        write: async (...args: unknown[]) => {
          const r = await write(...args);
          const h = hooks.writes.shift();
          if (h !== undefined) {
            h.written();
            await h.resume;
          }
          return r;
        },
      });
      return fh;
    },
  };
}

/**
 * A LOAD that began before an overwrite and reads its blocks while they are copied in place sees
 * bytes that do not match the committed checksums. It must judge that mismatch while no other
 * in-place change can run: once re-read after the first write settled, the next queued overwrite
 * was copying its bytes in place under the re-read, and a healthy allocation was marked damaged.
 */
describe('a LOAD that meets an overwrite being copied in place', () => {
  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('re-reads under the in-place gate, never marking a healthy allocation damaged', async () => {
    const d = tempDir();
    cleanups.push(d.cleanup);
    const hooks: Hooks = { reads: [], writes: [] };
    const t = await startDepot({ resource: [{ rid: '1', path: d.path, capacityBytes: '64MiB' }] }, undefined, {
      diskIo: hookedIo(hooks),
    });
    cleanups.push(() => t.close());
    const a = await t.client.allocate(t, { size: 1 << 20, durationSec: 60 });
    await t.client.store(a.write, Buffer.alloc(2 * BLOCK, 9));
    const key = keyOf(formatCapability(a.write));

    const loadReading = deferred();
    const loadRead = deferred();
    const firstApplied = deferred();
    const firstGo = deferred();
    const secondApplied = deferred();
    // The LOAD's first read waits until the first overwrite's bytes are in place (not committed);
    // a second read (its re-check) waits until the next overwrite's bytes are in place too, or
    // until it is clear that overwrite cannot start copying.
    hooks.reads.push(
      { entered: loadReading.resolve, wait: () => firstApplied.promise, done: loadRead.resolve },
      { wait: () => Promise.race([secondApplied.promise, sleep(300)]) },
    );
    hooks.writes.push(
      { written: firstApplied.resolve, resume: firstGo.promise },
      { written: secondApplied.resolve, resume: Promise.resolve() },
    );

    const loading = t.client.load(a.read, 0, 2 * BLOCK);
    loading.catch(() => undefined); // judged below, once the writes are acknowledged
    await loadReading.promise; // the LOAD began before either overwrite
    const w1 = await RawSession.open(t.port);
    cleanups.push(() => w1.end());
    w1.send(`1 13 ${key} 0 ${2 * BLOCK} 10\n`);
    expect(await w1.line()).toBe('1 \n');
    w1.send(Buffer.alloc(2 * BLOCK, 3));
    await loadRead.promise; // it read the first overwrite's bytes against the old checksums
    const w2 = await RawSession.open(t.port);
    cleanups.push(() => w2.end());
    w2.send(Buffer.concat([Buffer.from(`1 13 ${key} 0 ${2 * BLOCK} 10\n`), Buffer.alloc(2 * BLOCK, 4)]));
    await sleep(50); // the second overwrite waits for the first's lock
    firstGo.resolve();
    expect(await w1.line()).toBe(`1 ${2 * BLOCK} \n`);
    expect(await w2.line()).toBe('1 \n');
    expect(await w2.line()).toBe(`1 ${2 * BLOCK} \n`);

    const first = await loading;
    // One overwrite's bytes, whole: the LOAD was served, not cut off as damaged.
    expect(first.every((x) => x === first[0]) && (first[0] === 3 || first[0] === 4)).toBe(true);
    expect((await t.client.load(a.read, 0, 2 * BLOCK)).every((x) => x === 4)).toBe(true);
    expect(hooks.reads.length + hooks.writes.length).toBe(0);
  });

  it('a copy inside one allocation over its own range reads what it overwrites, without waiting on itself', async () => {
    const d = tempDir();
    cleanups.push(d.cleanup);
    const t = await startDepot({ resource: [{ rid: '1', path: d.path, capacityBytes: '64MiB' }] });
    cleanups.push(() => t.close());
    const a = await t.client.allocate(t, { size: 4 << 20, durationSec: 60 });
    const data = Buffer.alloc(3 << 20);
    for (let i = 0; i < data.length; i++) data[i] = (i * 13 + (i >> 16)) & 0xff;
    await t.client.store(a.write, data);
    expect(await t.client.push(a.read, a.write, { offset: 0, length: 2 << 20, remoteOffset: 1 << 20 })).toBe(2 << 20);
    const got = await t.client.load(a.read, 0, 3 << 20);
    expect(got.subarray(0, 1 << 20).equals(data.subarray(0, 1 << 20))).toBe(true);
    expect(got.subarray(1 << 20).equals(data.subarray(0, 2 << 20))).toBe(true);
  });
});
