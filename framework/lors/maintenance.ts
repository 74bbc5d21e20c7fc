import { formatCapability, parseCapability, type DepotAddress, type IbpClient } from '../../ibp/index.js';
import { FrameworkError, FrameworkErrorCode } from '../errors.js';
import { blocksOf, depotKey, depotOf, type Exnode, type Mapping } from '../exnode/exnode.js';
import { systemClock, type Clock } from '../clock.js';
import { forEachBounded } from '../work-queue.js';
import { depotIdentity } from './depot-identity.js';

/** What probing a mapping found. */
export interface MappingStatus {
  readonly index: number;
  readonly depot: string;
  readonly exnodeOffset: number;
  readonly alive: boolean;
  /**
   * The depot answered and the bytes are gone (the allocation does not exist, or holds less than
   * the mapping): a definitive loss, unlike a depot that did not answer.
   */
  readonly gone: boolean;
  readonly size?: number;
  readonly maxSize?: number;
  readonly secondsLeft?: number;
  readonly error?: string;
}

/**
 * Probes every mapping (`anvil stat`): with a manage cap, MANAGE PROBE; with only a read cap, a
 * one-byte LOAD. A mapping is alive when its depot answers and the allocation holds its bytes.
 */
export async function statMappings(client: IbpClient, x: Exnode, threads = 8): Promise<MappingStatus[]> {
  const out: MappingStatus[] = new Array(x.mappings.length);
  await forEachBounded(x.mappings.length, threads, async (i) => {
    const m = x.mappings[i]!;
    const base = { index: i, depot: depotKey(m), exnodeOffset: m.exnodeOffset };
    try {
      if (m.manage !== undefined) {
        const p = await client.probe(m.manage);
        const alive = p.size >= m.allocOffset + m.logicalLength;
        out[i] = {
          ...base,
          alive,
          gone: !alive,
          size: p.size,
          maxSize: p.maxSize,
          secondsLeft: p.secondsLeft,
          ...(alive ? {} : { error: 'short data' }),
        };
      } else {
        await client.load(m.read, m.allocOffset + m.logicalLength - 1, 1);
        out[i] = { ...base, alive: true, gone: false };
      }
    } catch (e) {
      const status = (e as { status?: number }).status;
      // -4: no such allocation; -19: it holds less than the mapping. Anything else may pass.
      out[i] = { ...base, alive: false, gone: status === -4 || status === -19, error: (e as Error).message };
    }
  });
  return out;
}

/**
 * `anvil trim --dead`: drops mappings whose depot says their bytes are gone; with `unreachable`,
 * also those whose depot did not answer. Returns how many were dropped.
 */
export async function trimDead(client: IbpClient, x: Exnode, unreachable = false, clock: Clock = systemClock): Promise<number> {
  const status = await statMappings(client, x);
  const dead = new Set(status.filter((s) => s.gone || (unreachable && !s.alive)).map((s) => s.index));
  x.mappings = x.mappings.filter((_, i) => !dead.has(i));
  if (dead.size > 0) x.modifiedMs = clock.now();
  return dead.size;
}

/** `anvil trim --mapping i,j`: drops the given mappings; with `decrement`, also releases their allocations. */
export async function trimMappings(
  client: IbpClient,
  x: Exnode,
  indexes: readonly number[],
  decrement: boolean,
  clock: Clock = systemClock,
): Promise<number> {
  for (const i of indexes) {
    if (!Number.isInteger(i) || i < 0 || i >= x.mappings.length) {
      throw new FrameworkError(
        FrameworkErrorCode.INVALID_ARGUMENT,
        `mapping ${i} does not exist (the exNode has ${x.mappings.length})`,
      );
    }
  }
  const drop = new Set(indexes);
  if (decrement) {
    for (const i of drop) {
      const m = x.mappings[i]!;
      if (m.manage !== undefined) await client.decr(m.manage, 'read').catch(() => undefined);
    }
  }
  x.mappings = x.mappings.filter((_, i) => !drop.has(i));
  x.modifiedMs = clock.now();
  return drop.size;
}

export type RefreshMode = { extendBySec: number } | { extendToMs: number } | { max: true };

/**
 * `anvil refresh`: extends every mapping's lease (MANAGE CHNG, size unchanged). `max` asks each
 * depot for its maximum lease (from ST_INQ). Mappings without a manage cap are skipped.
 */
export async function refreshLeases(
  client: IbpClient,
  x: Exnode,
  mode: RefreshMode,
  clock: Clock = systemClock,
): Promise<{ refreshed: number; failed: number; errors: string[] }> {
  const now = clock.now();
  let refreshed = 0;
  let failed = 0;
  const errors: string[] = [];
  const maxByDepot = new Map<string, number>();
  await forEachBounded(x.mappings.length, 8, async (i) => {
    const m = x.mappings[i]!;
    if (m.manage === undefined) return;
    try {
      const p = await client.probe(m.manage);
      let durationSec: number;
      if ('extendBySec' in mode) durationSec = p.secondsLeft + mode.extendBySec;
      else if ('extendToMs' in mode) durationSec = Math.ceil((mode.extendToMs - now) / 1000);
      else {
        const key = depotKey(m);
        if (!maxByDepot.has(key)) {
          const inq = await client.status(depotOf(m), { rid: parseCapability(m.manage)!.rid || '0' });
          if (inq.resources.length === 0)
            throw new FrameworkError(FrameworkErrorCode.INVALID_ARGUMENT, `${key} reports no resources`);
          // A negative DR (LoCI: unlimited) has no maximum to ask for: use 30 days, the ACCRE default.
          const limits = inq.resources.map((r) => (r.maxDurationSec > 0 ? r.maxDurationSec : 2_592_000));
          maxByDepot.set(key, Math.min(...limits));
        }
        durationSec = maxByDepot.get(key)!;
      }
      if (durationSec < 1)
        throw new FrameworkError(FrameworkErrorCode.INVALID_ARGUMENT, `lease would end in the past (${durationSec} s)`);
      await client.change(m.manage, { maxSize: p.maxSize, durationSec });
      m.leaseEndMs = now + durationSec * 1000;
      refreshed++;
    } catch (e) {
      failed++;
      errors.push(`mapping ${i} (${depotKey(m)}): ${(e as Error).message}`);
    }
  });
  if (refreshed > 0) x.modifiedMs = clock.now();
  return { refreshed, failed, errors };
}

/**
 * Adds a replica of `m` on `depot` with a depot-to-depot SEND from `m`'s depot (the bytes do not
 * pass through this process). Returns the new mapping.
 */
export async function replicate(
  client: IbpClient,
  m: Mapping,
  depot: DepotAddress,
  durationSec: number,
  clock: Clock = systemClock,
): Promise<Mapping> {
  const caps = await client.allocate(depot, { size: m.logicalLength, durationSec });
  const leaseStartMs = clock.now();
  try {
    await client.copy(m.read, caps.write, { offset: m.allocOffset, length: m.logicalLength });
  } catch (e) {
    await client.decr(caps.manage, 'read').catch(() => undefined);
    throw e;
  }
  return {
    exnodeOffset: m.exnodeOffset,
    logicalLength: m.logicalLength,
    allocOffset: 0,
    allocLength: m.logicalLength,
    read: formatCapability(caps.read),
    write: formatCapability(caps.write),
    manage: formatCapability(caps.manage),
    leaseStartMs,
    leaseEndMs: leaseStartMs + durationSec * 1000,
    sha256: m.sha256,
    // The block's dataset fields are the same on every replica; metadata of the source allocation is not.
    ...(m.rows === undefined ? {} : { rows: { ...m.rows } }),
    ...(m.summary === undefined ? {} : { summary: m.summary }),
    ...(m.source === undefined ? {} : { source: m.source }),
  };
}

/**
 * `anvil augment --copies N`: every block gets at least `copies` live replicas on distinct depots,
 * new ones made from a live replica by depot-to-depot copy onto depots from `depots` that do not
 * hold the block. Returns how many replicas were added.
 */
export async function augment(
  client: IbpClient,
  x: Exnode,
  options: { copies: number; depots: readonly DepotAddress[]; durationSec: number; clock?: Clock },
): Promise<{ added: number; short: number }> {
  const clock = options.clock ?? systemClock;
  const status = await statMappings(client, x);
  const alive = new Set(status.filter((s) => s.alive).map((s) => s.index));
  const indexOf = new Map(x.mappings.map((m, i) => [m, i]));
  const targets = await Promise.all(options.depots.map(async (d) => ({ d, id: await depotIdentity(d.host, d.port) })));
  let added = 0;
  let short = 0;
  for (const b of blocksOf(x)) {
    const live = b.replicas.filter((m) => alive.has(indexOf.get(m)!));
    const holders = new Set(await Promise.all(live.map((m) => depotIdentity(depotOf(m).host, depotOf(m).port))));
    let need = options.copies - holders.size;
    if (need <= 0) continue;
    if (live.length === 0) {
      short++;
      continue;
    }
    for (const { d, id } of targets) {
      if (need <= 0) break;
      if (holders.has(id)) continue;
      const made = await replicateFromAny(client, live, d, options.durationSec, clock);
      if (made === undefined) continue;
      x.mappings.push(made);
      holders.add(id);
      added++;
      need--;
    }
    if (need > 0) short++;
  }
  if (added > 0) x.modifiedMs = clock.now();
  return { added, short };
}

/** A new replica on `depot` copied from the first of `sources` that works; undefined if none does. */
export async function replicateFromAny(
  client: IbpClient,
  sources: readonly Mapping[],
  depot: DepotAddress,
  durationSec: number,
  clock: Clock = systemClock,
): Promise<Mapping | undefined> {
  for (const source of sources) {
    try {
      return await replicate(client, source, depot, durationSec, clock);
    } catch {
      // the next source (or the caller's next depot)
    }
  }
  return undefined;
}
