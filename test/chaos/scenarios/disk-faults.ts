import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { IbpClient } from '../../../ibp/index.js';
import { startDepot } from '../../helpers/depot-fixture.js';
import { interceptedIo } from '../../helpers/filesystems.js';
import { AckLedger } from '../lib/ack-ledger.js';
import { ChaosDepots } from '../lib/chaos-depots.js';
import { MixedLoad, type MixedLoadOptions } from '../lib/mixed-load.js';
import type { Prng } from '../lib/prng.js';
import type { Scenario, ScenarioContext } from '../lib/scenario.js';

/** Disk I/O that fails writes with EIO, tears them (a prefix written, then EIO) and fails datasync, as drawn. */
function faultyIo(
  rand: Prng,
  state: { on: boolean; eio: number; torn: number; syncEio: number; readEio: number; injected: number },
) {
  const err = (what: string) => Object.assign(new Error(`EIO: injected ${what} fault`), { code: 'EIO' });
  const syncing = (target: FileHandle, prop: 'datasync' | 'sync') => async () => {
    if (state.on && rand.chance(state.syncEio)) {
      state.injected++;
      throw err('sync');
    }
    return target[prop]();
  };
  return interceptedIo((target) => ({
    writev: async (buffers: Buffer[], position: number) => {
      if (state.on && rand.chance(state.eio)) {
        state.injected++;
        throw err('write');
      }
      if (state.on && rand.chance(state.torn)) {
        state.injected++;
        const all = Buffer.concat(buffers);
        await target.write(all, 0, rand.int(0, all.length - 1), position);
        throw err('torn write');
      }
      return target.writev(buffers, position);
    },
    datasync: syncing(target, 'datasync'),
    sync: syncing(target, 'sync'),
    read: async (...args: unknown[]) => {
      if (state.on && rand.chance(state.readEio)) {
        state.injected++;
        throw err('read');
      }
      return (target.read as (...a: unknown[]) => unknown)(...args);
    },
  }));
}

/** Why a tmpfs cannot be mounted here, or undefined when it can. */
function tmpfsUnavailable(dir: string): string | undefined {
  if (process.getuid?.() !== 0) return 'not root (a full filesystem needs a tmpfs the test mounts)';
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir], { stdio: 'ignore' });
    execFileSync('umount', [dir], { stdio: 'ignore' });
    return undefined;
  } catch (e) {
    return `mount -t tmpfs failed (${(e as Error).message.split('\n')[0]})`;
  }
}

const loadOptions = (short: boolean, extra: Partial<MixedLoadOptions> = {}): MixedLoadOptions => ({
  workers: 3,
  ops: short ? 80 : 2_000,
  deadlineMs: short ? 2_500 : 45_000,
  hangMs: 8_000,
  maxAllocations: 12,
  allocationBytes: 512 * 1024,
  maxBodyBytes: 128 * 1024,
  transfers: false,
  nfu: true,
  ...extra,
});

async function eioPhase(ctx: ScenarioContext): Promise<void> {
  const short = ctx.scale === 'short';
  const data = join(ctx.dir, 'eio');
  mkdirSync(data);
  const state = { on: true, eio: 0.03, torn: 0.03, syncEio: 0.02, readEio: 0.01, injected: 0 };
  const resource = { resource: [{ rid: '1', path: data, capacityBytes: '64MiB' }] };
  let t = await startDepot(resource, undefined, { diskIo: faultyIo(ctx.rand.fork(), state) });
  const client = new IbpClient({ timeoutMs: 3_000 });
  const ledger = new AckLedger();
  const target = { count: 1, depot: () => ({ host: t.host, port: t.port }) };
  const load = new MixedLoad(client, ledger, ctx.rand.fork(), target, loadOptions(short));
  try {
    await load.run();
    state.on = false;
    await load.verifyAll();
    // A restart on the same directory (full start-up check) must serve the same acknowledged bytes.
    await t.close();
    t = await startDepot(resource);
    await load.verifyAll();
  } finally {
    client.close();
    await t.close();
  }
  const f = ctx.figures;
  f.count('acked_lost', ledger.figures.ackedLost);
  f.count('wrong_bytes', ledger.figures.wrongBytes);
  f.count('hangs', load.figures.hangs);
  f.set('eio_faults_injected', state.injected);
  f.set('eio_ops', load.figures.ops);
  f.set('eio_ops_failed', load.figures.failed);
  f.set('eio_acked_bytes', ledger.figures.ackedBytes);
  f.set('eio_refused_append_visible', load.figures.refusedButChanged);
  f.set('eio_refused_write_partial', load.figures.refusedWritePartial);
  if (load.figures.refusedButChanged > 0)
    f.violate(`disk-faults: ${load.figures.refusedButChanged} refused appends became visible`);
  ctx.log(
    `EIO/torn: ${state.injected} faults, ops ${load.figures.ops} (${load.figures.failed} failed: ${JSON.stringify(load.figures.errors)}), ` +
      `acked ${ledger.figures.ackedBytes} B, lost ${ledger.figures.ackedLost}, wrong ${ledger.figures.wrongBytes}, ` +
      `refused appends visible ${load.figures.refusedButChanged}, refused writes that changed part of their range ${load.figures.refusedWritePartial}`,
  );
}

async function fullPhase(ctx: ScenarioContext): Promise<void> {
  const short = ctx.scale === 'short';
  const mnt = join(ctx.dir, 'tmpfs');
  mkdirSync(mnt);
  const why = tmpfsUnavailable(mnt);
  if (why !== undefined) {
    ctx.figures.skip('disk-faults/full-filesystem', why);
    ctx.log(`skipping the full filesystem: ${why}`);
    return;
  }
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=6m', 'tmpfs', mnt]);
  const data = join(mnt, 'data');
  let depots: ChaosDepots | undefined;
  const client = new IbpClient({ timeoutMs: 3_000 });
  const ledger = new AckLedger();
  try {
    depots = await ChaosDepots.start(1, ctx.dir, { extraArgs: ['--data', data], capacity: '64MiB' });
    const d = depots;
    const target = { count: 1, depot: () => d.depots[0]! };
    const load = new MixedLoad(client, ledger, ctx.rand.fork(), target, loadOptions(short, { maxAllocations: 20, nfu: false }));
    await load.run();
    d.checkAlive();
    await load.verifyAll();
    // Space returns: writes work again, and a restart serves the same bytes.
    execFileSync('mount', ['-o', 'remount,size=64m', mnt]);
    const caps = await client.allocate(d.depots[0]!, { size: 1 << 20, durationSec: 60 });
    const stored = await client.store(caps.write, Buffer.alloc(1 << 20, 7)).catch(() => 0);
    if (stored !== 1 << 20) ctx.figures.violate('disk-faults: a store after space returned did not succeed');
    await d.restart(0);
    await load.verifyAll();
    d.checkAlive();
    const f = ctx.figures;
    f.count('hangs', load.figures.hangs);
    f.set('full_fs_ops', load.figures.ops);
    f.set('full_fs_ops_failed', load.figures.failed);
    f.set('full_fs_errors', JSON.stringify(load.figures.errors));
    f.set('full_fs_acked_bytes', ledger.figures.ackedBytes);
    ctx.log(
      `full filesystem (6 MiB tmpfs): ops ${load.figures.ops} (${load.figures.failed} failed: ${JSON.stringify(load.figures.errors)}), ` +
        `acked ${ledger.figures.ackedBytes} B, lost ${ledger.figures.ackedLost}, wrong ${ledger.figures.wrongBytes}`,
    );
  } finally {
    client.close();
    if (depots !== undefined) {
      await depots.stop();
      ctx.figures.count('depot_crashes', depots.crashes);
    }
    execFileSync('umount', ['-l', mnt]);
  }
  ctx.figures.count('acked_lost', ledger.figures.ackedLost);
  ctx.figures.count('wrong_bytes', ledger.figures.wrongBytes);
}

/** Disk faults: injected EIO, torn writes and failed syncs (in-process seam), and a real full filesystem. */
export const diskFaults: Scenario = {
  name: 'disk-faults',
  async run(ctx) {
    await eioPhase(ctx);
    await fullPhase(ctx);
  },
};
