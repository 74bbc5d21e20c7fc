import { execFileSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { RawSession, keyOf, startDepot, type TestDepot } from '../helpers/depot-fixture.js';
import { canMountTmpfs, faultyWritevIo } from '../helpers/filesystems.js';
import { tempDir } from '../helpers/temp-dir.js';

describe('disk full and I/O errors', () => {
  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  /** Shared expectations: the exact status, nothing acknowledged, metadata unchanged, loads served. */
  async function expectRefusedWrite(t: TestDepot, status: number): Promise<void> {
    const a = await t.client.allocate(t, { size: 8 << 20, durationSec: 60 });
    await t.client.store(a.write, Buffer.from('kept'));
    const s = await RawSession.open(t.port);
    cleanups.push(() => s.end());
    const body = Buffer.alloc(4 << 20, 0x42);
    s.send(Buffer.concat([Buffer.from(`1 2 ${keyOf(capString(a.write))} ${body.length} 10\n`), body]));
    expect(await s.line()).toBe('1 \n');
    expect(await s.line(10_000)).toBe(`${status} \n`);
    // the connection is still in step and the depot still serves loads
    s.send(`1 8 ${keyOf(capString(a.read))} 0 4 10\n`);
    expect(await s.line()).toBe('1 4 \n');
    expect((await s.bytes(4)).toString()).toBe('kept');
    expect((await t.client.probe(a.manage)).size).toBe(4);
    await expect(t.client.load(a.read, 0, 5)).rejects.toMatchObject({ status: -19 });
  }

  it('an injected ENOSPC → -23, nothing acknowledged, depot serving; writes work again when space returns', async () => {
    const d = tempDir();
    cleanups.push(d.cleanup);
    const state = { budget: 1 << 20, code: 'ENOSPC' };
    const t = await startDepot({ resource: [{ rid: '1', path: d.path, capacityBytes: '64MiB' }] }, undefined, {
      diskIo: faultyWritevIo(state),
    });
    cleanups.push(() => t.close());
    await expectRefusedWrite(t, -23);
    state.budget = 1 << 30;
    const b = await t.client.allocate(t, { size: 4 << 20, durationSec: 60 });
    expect(await t.client.store(b.write, Buffer.alloc(4 << 20, 1))).toBe(4 << 20);
  });

  it('an injected EIO → -16', async () => {
    const d = tempDir();
    cleanups.push(d.cleanup);
    const t = await startDepot({ resource: [{ rid: '1', path: d.path }] }, undefined, {
      diskIo: faultyWritevIo({ budget: 1 << 20, code: 'EIO' }),
    });
    cleanups.push(() => t.close());
    await expectRefusedWrite(t, -16);
  });

  it.runIf(canMountTmpfs())('a real full filesystem (tmpfs) → -23; frees when space returns', async () => {
    const d = tempDir();
    cleanups.push(d.cleanup);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', d.path]);
    cleanups.push(() => execFileSync('umount', ['-l', d.path]));
    const t = await startDepot({ resource: [{ rid: '1', path: d.path, capacityBytes: '64MiB', fsync: 'safe' }] });
    cleanups.push(() => t.close());
    await expectRefusedWrite(t, -23);
    execFileSync('mount', ['-o', 'remount,size=32m', d.path]);
    const b = await t.client.allocate(t, { size: 8 << 20, durationSec: 60 });
    expect(await t.client.store(b.write, Buffer.alloc(6 << 20, 7))).toBe(6 << 20);
    expect((await t.client.load(b.read, (6 << 20) - 3, 3)).every((x) => x === 7)).toBe(true);
  });
});

function capString(cap: { host: string; port: number; rid: string; key: string; wrmKey: string; type: 1 | 2 | 3 }): string {
  return `ibp://${cap.host}:${cap.port}/${cap.rid}#${cap.key}/${cap.wrmKey}/${['', 'READ', 'WRITE', 'MANAGE'][cap.type]}`;
}
