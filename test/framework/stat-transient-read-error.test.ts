import { open, type FileHandle } from 'node:fs/promises';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { IbpClient, statMappings, trimDead, upload } from '../../framework/index.js';
import { startDepot } from '../helpers/depot-fixture.js';
import { tempDir } from '../helpers/temp-dir.js';

/** Disk I/O whose next `state.failReads` reads fail with EIO (a transient fault: the bytes are fine). */
function flakyReadIo(state: { failReads: number; failOpens?: number }) {
  return {
    open: async (path: string, flags: number): Promise<FileHandle> => {
      if ((state.failOpens ?? 0) > 0) {
        state.failOpens!--;
        throw Object.assign(new Error('EMFILE: injected, too many open files'), { code: 'EMFILE' });
      }
      const fh = await open(path, flags, 0o600);
      return new Proxy(fh, {
        get(target, prop, receiver) {
          if (prop === 'read') {
            return async (...args: unknown[]) => {
              if (state.failReads > 0) {
                state.failReads--;
                throw Object.assign(new Error('EIO: injected transient read fault'), { code: 'EIO' });
              }
              return (target.read as (...a: unknown[]) => unknown)(...args);
            };
          }
          const v = Reflect.get(target, prop, receiver) as unknown;
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
    },
  };
}

describe('stat and a transient depot read error', () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  /** A disk depot whose reads fail as `state` says, and `bytes` bytes uploaded to it in 100 000-byte blocks. */
  async function uploaded(state: { failReads: number; failOpens?: number }, bytes: number) {
    const d = tempDir();
    cleanups.push(d.cleanup);
    const t = await startDepot({ resource: [{ rid: '1', path: d.path, fsync: 'fast' }] }, undefined, {
      diskIo: flakyReadIo(state),
    });
    cleanups.push(() => t.close());
    const client = new IbpClient({ timeoutMs: 10_000 });
    cleanups.push(() => client.close());
    const file = join(d.path, 'in.bin');
    const data = Buffer.alloc(bytes, 9);
    writeFileSync(file, data);
    const x = await upload(client, file, { depots: [{ host: t.host, port: t.port }], blockSize: 100_000 });
    return { client, data, x };
  }

  it('a healthy mapping whose one-byte LOAD hits a transient I/O error is not DEAD, and trim --dead keeps it', async () => {
    const state = { failReads: 0 };
    const { client, data, x } = await uploaded(state, 200_000);
    state.failReads = 1;
    const status = await statMappings(client, x, 1);
    // The depot answered -15 for an EIO; the allocation is not damaged: the very next LOAD serves it.
    for (const m of x.mappings) {
      expect(
        Buffer.from(await client.load(m.read, m.allocOffset, m.logicalLength)).equals(data.subarray(0, m.logicalLength)),
      ).toBe(true);
    }
    expect(status.map((s) => ({ alive: s.alive, gone: s.gone, error: s.error }))).not.toContainEqual(
      expect.objectContaining({ gone: true }),
    );
    state.failReads = 1;
    const before = x.mappings.length;
    const dropped = await trimDead(client, x);
    expect({ dropped, left: x.mappings.length }).toEqual({ dropped: 0, left: before });
  });

  it('a transient EMFILE when a LOAD reopens the file does not make the allocation damaged, nor its mapping DEAD', async () => {
    const state: { failReads: number; failOpens?: number } = { failReads: 0 };
    const { client, x } = await uploaded(state, 100_000);
    const m = x.mappings[0]!;
    // A read error drops the cached descriptor (the LOAD is cut off mid-reply) ...
    state.failReads = 1;
    await client.load(m.read, 0, 10).catch(() => undefined);
    // ... and the next LOAD's open meets a momentary EMFILE.
    state.failOpens = 1;
    const first = await client.load(m.read, 0, 10).then(
      () => 'ok',
      (e: { status?: number }) => e.status,
    );
    // The file is intact and the descriptor table has room again.
    const again = await client.load(m.read, 0, 10).then(
      () => 'ok',
      (e: { status?: number }) => e.status,
    );
    const status = await statMappings(client, x, 1);
    // The first LOAD fails (cut off, or refused): it is not served, and nothing is condemned.
    expect(first).not.toBe('ok');
    expect({ again, gone: status[0]!.gone }).toEqual({ again: 'ok', gone: false });
    expect(await trimDead(client, x)).toBe(0);
  });
});
