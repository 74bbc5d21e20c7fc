import { execFileSync } from 'node:child_process';
import { existsSync, openSync, closeSync, writeSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AllocationCaps } from '../../ibp/index.js';
import { startDepot, type TestDepot } from '../helpers/depot-fixture.js';
import { tempDir } from '../helpers/temp-dir.js';

const fileOf = (dir: string, id: number) => join(dir, 'data', (id % 256).toString(16).padStart(2, '0'), String(id));

/** Whether this process may mount a tmpfs (root, and mounting allowed); the reason when not. */
function tmpfsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root';
  const d = tempDir();
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', d.path], { stdio: 'ignore' });
    execFileSync('umount', [d.path], { stdio: 'ignore' });
    return undefined;
  } catch (e) {
    return `mount -t tmpfs failed (${(e as Error).message.split('\n')[0]})`;
  } finally {
    d.cleanup();
  }
}
const noTmpfs = tmpfsUnavailable();
if (noTmpfs !== undefined) console.log(`skipping the real full-filesystem tests: ${noTmpfs}`);

/** Fills the filesystem of `dir` to the last byte with a file of its own; returns its path. */
function fillUp(dir: string): string {
  const path = join(dir, `filler-${Math.random().toString(36).slice(2)}`);
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(4096, 0xee);
  try {
    for (let i = 0; i < 1 << 20; i++) writeSync(fd, chunk);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    closeSync(fd);
  }
  return path;
}

async function waitFor(cond: () => boolean, ms = 3_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return cond();
}

/** Disk I/O whose writes fail with ENOSPC while `state.full`. */
function fullIo(state: { full: boolean }) {
  return {
    open: async (path: string, flags: number): Promise<FileHandle> => {
      const fh = await open(path, flags, 0o600);
      return new Proxy(fh, {
        get(target, prop, receiver) {
          if (prop === 'writev' || prop === 'write') {
            return async (...args: unknown[]) => {
              if (state.full) throw Object.assign(new Error('ENOSPC: injected fault'), { code: 'ENOSPC' });
              return (target[prop] as (...a: unknown[]) => unknown).apply(target, args);
            };
          }
          const v = Reflect.get(target, prop, receiver) as unknown;
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
    },
  };
}

describe('a full filesystem is not a dead end', () => {
  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('injected ENOSPC: writes refused with -23, loads and deletes served, a store works once space returns', async () => {
    const d = tempDir();
    cleanups.push(d.cleanup);
    const state = { full: false };
    const t = await startDepot({ resource: [{ rid: '1', path: d.path, capacityBytes: '64MiB', trashGraceSec: 0 }] }, undefined, {
      diskIo: fullIo(state),
    });
    cleanups.push(() => t.close());
    const a = await t.client.allocate(t, { size: 1 << 20, durationSec: 60 });
    const b = await t.client.allocate(t, { size: 1 << 20, durationSec: 60 });
    await t.client.store(a.write, Buffer.alloc(1 << 20, 1));
    await t.client.store(b.write, Buffer.alloc(1000, 2));
    state.full = true;
    await expect(t.client.store(b.write, Buffer.alloc(1000, 3))).rejects.toMatchObject({ status: -23 });
    await expect(t.client.write(a.write, 10, Buffer.alloc(1000, 3))).rejects.toMatchObject({ status: -23 });
    expect((await t.client.load(a.read, 0, 1 << 20)).every((x) => x === 1)).toBe(true);
    await t.client.decr(a.manage, 'read');
    expect(await waitFor(() => !existsSync(fileOf(d.path, Number(a.read.wrmKey))))).toBe(true);
    state.full = false;
    expect(await t.client.store(b.write, Buffer.alloc(1000, 3))).toBe(1000);
    expect((await t.client.load(b.read, 0, 2000)).subarray(1000).every((x) => x === 3)).toBe(true);
  });

  describe.skipIf(noTmpfs !== undefined)('a real full filesystem (tmpfs)', () => {
    function mountTmpfs(size: string): string {
      const d = tempDir();
      cleanups.push(d.cleanup);
      execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', d.path]);
      cleanups.push(() => execFileSync('umount', ['-l', d.path]));
      return d.path;
    }
    const ports = new Map<string, number>();
    async function depot(dir: string): Promise<TestDepot> {
      const t = await startDepot({
        port: ports.get(dir) ?? 0,
        resource: [{ rid: '1', path: dir, capacityBytes: '64MiB', fsync: 'safe', trashGraceSec: 0 }],
      });
      ports.set(dir, t.port);
      cleanups.push(() => t.close());
      return t;
    }
    /** Allocations of 1 MiB stored full until the filesystem refuses; the last one may be partial. */
    async function fill(t: TestDepot): Promise<AllocationCaps[]> {
      const out: AllocationCaps[] = [];
      for (let i = 0; i < 64; i++) {
        const a = await t.client.allocate(t, { size: 1 << 20, durationSec: 600 });
        out.push(a);
        try {
          await t.client.store(a.write, Buffer.alloc(1 << 20, i + 1));
        } catch (e) {
          expect(e).toMatchObject({ status: -23 });
          return out;
        }
      }
      throw new Error('the filesystem never filled up');
    }

    it('deletes free the bytes at once, a store then works, and the depot restarts on the full filesystem', async () => {
      const dir = mountTmpfs('6m');
      let t = await depot(dir);
      const caps = await fill(t);
      fillUp(dir); // not a byte left, not even for the metadata store
      const [first, second] = caps as [AllocationCaps, AllocationCaps];
      // the operator's first move: delete something
      await t.client.decr(first.manage, 'read');
      expect(await waitFor(() => !existsSync(fileOf(dir, Number(first.read.wrmKey))))).toBe(true);
      // the freed space takes new data
      const c = await t.client.allocate(t, { size: 1 << 20, durationSec: 600 });
      expect(await t.client.store(c.write, Buffer.alloc(1 << 19, 0x77))).toBe(1 << 19);
      fillUp(dir);
      await expect(t.client.store(c.write, Buffer.alloc(1 << 18, 0x78))).rejects.toMatchObject({ status: -23 });

      // a restart on the full filesystem: loads and deletes served, writes refused with -23
      await t.close();
      cleanups.pop();
      fillUp(dir);
      t = await depot(dir);
      expect((await t.client.load(second.read, 0, 1 << 20)).every((x) => x === 2)).toBe(true);
      expect((await t.client.load(c.read, 0, 1 << 19)).every((x) => x === 0x77)).toBe(true);
      await expect(t.client.store(c.write, Buffer.alloc(1 << 18, 0x78))).rejects.toMatchObject({ status: -23 });
      await t.client.decr(second.manage, 'read');
      expect(await waitFor(() => !existsSync(fileOf(dir, Number(second.read.wrmKey))))).toBe(true);
      expect(await t.client.store(c.write, Buffer.alloc(1 << 18, 0x78))).toBe(1 << 18);
      expect((await t.client.load(c.read, 1 << 19, 1 << 18)).every((x) => x === 0x78)).toBe(true);
      expect((await t.client.probe(c.manage)).size).toBe((1 << 19) + (1 << 18));
    });
  });
});
