import { ClientErrorCode, formatCapability, parseCapability, type DepotAddress, type IbpClient } from '../../ibp/index.js';
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
   * The depot answered and the bytes are gone (the allocation does not exist, holds less than the
   * mapping, or was found damaged and is no longer served): a definitive loss, unlike a depot that did
   * not answer.
   */
  readonly gone: boolean;
  readonly size?: number;
  readonly maxSize?: number;
  readonly secondsLeft?: number;
  readonly error?: string;
}

/** Progress of a tool that works mapping by mapping: called once per mapping done. */
export interface MappingProgress {
  readonly onProgress?: (mappings: number) => void;
}

/** Whether `e` is a request that had no reply within the client's timeout. */
export function isTimeout(e: unknown): boolean {
  return (e as { code?: unknown } | undefined)?.code === ClientErrorCode.TIMEOUT;
}

/**
 * Probes every mapping (`anvil stat`): with a manage cap, MANAGE PROBE, then (with a read cap) a
 * one-byte LOAD of its last byte; with only a read cap, that LOAD. A mapping is alive when its depot
 * answers and serves its bytes; it is `gone` when the depot answers that they are not there, or that
 * it will not serve them (`-15`: an allocation found damaged is never read again). Once a request to a depot has had no reply
 * within the client's timeout, that depot's remaining mappings are not asked again (a stalled depot
 * costs one timeout, not one per mapping): they are neither alive nor gone.
 */
export async function statMappings(
  client: IbpClient,
  x: Exnode,
  threads = 8,
  options: MappingProgress = {},
): Promise<MappingStatus[]> {
  const out: MappingStatus[] = new Array(x.mappings.length);
  const stalled = new Map<string, string>(); // depot → the timeout it gave
  await forEachBounded(x.mappings.length, threads, async (i) => {
    await probeOne(i);
    options.onProgress?.(1);
  });
  return out;

  /** A one-byte LOAD of the mapping's last byte; a `-15` (not served) is asked once more before it counts. */
  async function loadLastByte(m: Exnode['mappings'][number]): Promise<void> {
    try {
      await client.load(m.read, m.allocOffset + m.logicalLength - 1, 1);
    } catch (e) {
      if ((e as { status?: number }).status !== -15) throw e;
      await client.load(m.read, m.allocOffset + m.logicalLength - 1, 1);
    }
  }

  async function probeOne(i: number): Promise<void> {
    const m = x.mappings[i]!;
    const base = { index: i, depot: depotKey(m), exnodeOffset: m.exnodeOffset };
    const timedOut = stalled.get(base.depot);
    if (timedOut !== undefined) {
      out[i] = { ...base, alive: false, gone: false, error: `not asked: an earlier request ${timedOut}` };
      return;
    }
    try {
      if (m.manage !== undefined) {
        const p = await client.probe(m.manage);
        const alive = p.size >= m.allocOffset + m.logicalLength;
        // PROBE answers for a damaged allocation too: only a LOAD says its bytes are not served.
        if (alive && m.logicalLength > 0) await loadLastByte(m);
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
        await loadLastByte(m);
        out[i] = { ...base, alive: true, gone: false };
      }
    } catch (e) {
      const status = (e as { status?: number }).status;
      if (isTimeout(e)) stalled.set(base.depot, `got ${(e as Error).message}`);
      // -4: no such allocation; -19: it holds less than the mapping; -15 twice: its bytes are not served
      // (a damaged allocation answers it for good). Anything else may pass.
      out[i] = {
        ...base,
        alive: false,
        gone: status === -4 || status === -19 || status === -15,
        error: (e as Error).message,
      };
    }
  }
}

/**
 * `anvil trim --dead`: drops mappings whose depot says their bytes are gone (the allocation does
 * not exist, `-4`, holds less than the mapping, `-19`, or is damaged, `-15`); with `unreachable`, also those whose
 * depot did not answer or answered another error. Returns how many were dropped.
 */
export async function trimDead(
  client: IbpClient,
  x: Exnode,
  unreachable = false,
  clock: Clock = systemClock,
  options: MappingProgress = {},
): Promise<number> {
  const status = await statMappings(client, x, 8, options);
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

/**
 * How `anvil refresh` sets each lease. `extendToMs` and `max` never shorten a lease that already
 * ends later unless `allowShorten` is set (as the warmer, which never shortens).
 */
export type RefreshMode =
  { extendBySec: number } | { extendToMs: number; allowShorten?: boolean } | { max: true; allowShorten?: boolean };

/** One mapping whose lease could not be refreshed. */
export interface RefreshFailure {
  readonly index: number;
  readonly depot: string;
  readonly message: string;
}

export interface RefreshResult {
  readonly refreshed: number;
  /** Leases left as they were because they already end later than asked (no `allowShorten`). */
  readonly kept: number;
  readonly failed: number;
  /** `mapping I (host:port): message`, one per failure. */
  readonly errors: string[];
  readonly failures: RefreshFailure[];
}

/**
 * `anvil refresh`: extends every mapping's lease (MANAGE CHNG, size unchanged). `max` asks each
 * depot for its maximum lease (from ST_INQ). Mappings without a manage cap are skipped. A lease
 * is never shortened unless the mode says `allowShorten`. Once a request to a depot has had no reply
 * within the client's timeout, that depot's remaining mappings fail without being asked (a stalled
 * depot costs one timeout, not one per mapping).
 */
export async function refreshLeases(
  client: IbpClient,
  x: Exnode,
  mode: RefreshMode,
  clock: Clock = systemClock,
  options: MappingProgress = {},
): Promise<RefreshResult> {
  const now = clock.now();
  let refreshed = 0;
  let kept = 0;
  let failed = 0;
  const failures: RefreshFailure[] = [];
  const maxByDepot = new Map<string, number>();
  const stalled = new Map<string, string>(); // depot → the timeout it gave
  const allowShorten = 'extendBySec' in mode ? false : mode.allowShorten === true;
  await forEachBounded(x.mappings.length, 8, async (i) => {
    await refreshOne(i);
    options.onProgress?.(1);
  });
  if (refreshed > 0) x.modifiedMs = clock.now();
  failures.sort((a, b) => a.index - b.index);
  return { refreshed, kept, failed, errors: failures.map((f) => `mapping ${f.index} (${f.depot}): ${f.message}`), failures };

  async function refreshOne(i: number): Promise<void> {
    const m = x.mappings[i]!;
    if (m.manage === undefined) return;
    const earlier = stalled.get(depotKey(m));
    if (earlier !== undefined) {
      failed++;
      failures.push({ index: i, depot: depotKey(m), message: `not asked: an earlier request ${earlier}` });
      return;
    }
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
      if (durationSec < p.secondsLeft && !allowShorten) {
        kept++; // it already ends later than asked
        return;
      }
      if (durationSec < 1)
        throw new FrameworkError(FrameworkErrorCode.INVALID_ARGUMENT, `lease would end in the past (${durationSec} s)`);
      await client.change(m.manage, { maxSize: p.maxSize, durationSec });
      m.leaseEndMs = now + durationSec * 1000;
      refreshed++;
    } catch (e) {
      if (isTimeout(e)) stalled.set(depotKey(m), `got ${(e as Error).message}`);
      failed++;
      failures.push({ index: i, depot: depotKey(m), message: (e as Error).message });
    }
  }
}

/**
 * Adds a replica of `m` on `depot` with a depot-to-depot SEND from `m`'s depot (the bytes do not
 * pass through this process). Returns the new mapping. With `stalled`, a depot whose request had no
 * reply within the client's timeout is added to it (`host:port`): `depot` when allocating there timed
 * out, `m`'s depot when the copy did.
 */
export async function replicate(
  client: IbpClient,
  m: Mapping,
  depot: DepotAddress,
  durationSec: number,
  clock: Clock = systemClock,
  stalled?: Set<string>,
): Promise<Mapping> {
  const caps = await client.allocate(depot, { size: m.logicalLength, durationSec }).catch((e: unknown) => {
    if (isTimeout(e)) stalled?.add(`${depot.host}:${depot.port}`);
    throw e;
  });
  const leaseStartMs = clock.now();
  try {
    await client.copy(m.read, caps.write, { offset: m.allocOffset, length: m.logicalLength });
  } catch (e) {
    if (isTimeout(e)) stalled?.add(depotKey(m));
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
 * hold the block. Refused before any copy (`FW_ERR_INVALID_ARGUMENT`) when a block with a live
 * replica could not reach `copies` distinct depots even if every copy worked. `onProgress` is
 * called with 1 per mapping probed, then 1 per block handled (mappings + blocks in all). A depot
 * whose request has had no reply within the client's timeout is not asked again (its allocation
 * or copy failed, as on a failing depot). Returns how many replicas were added and how many blocks
 * are still short.
 */
export async function augment(
  client: IbpClient,
  x: Exnode,
  options: { copies: number; depots: readonly DepotAddress[]; durationSec: number; clock?: Clock } & MappingProgress,
): Promise<{ added: number; short: number }> {
  const clock = options.clock ?? systemClock;
  if (!Number.isSafeInteger(options.copies) || options.copies < 1)
    throw new FrameworkError(
      FrameworkErrorCode.INVALID_ARGUMENT,
      `\`copies\` must be a positive integer (got ${options.copies})`,
    );
  const targets = await Promise.all(options.depots.map(async (d) => ({ d, id: await depotIdentity(d.host, d.port) })));
  const listed = new Set(targets.map((t) => t.id));
  if (listed.size === 0) throw new FrameworkError(FrameworkErrorCode.DEPOT_LIST, 'augment: no depots given');
  const status = await statMappings(client, x, 8, options);
  const alive = new Set(status.filter((s) => s.alive).map((s) => s.index));
  const indexOf = new Map(x.mappings.map((m, i) => [m, i]));
  const plan: Array<{ live: Mapping[]; holders: Set<string> }> = [];
  for (const b of blocksOf(x)) {
    const live = b.replicas.filter((m) => alive.has(indexOf.get(m)!));
    const holders = new Set(await Promise.all(live.map((m) => depotIdentity(depotOf(m).host, depotOf(m).port))));
    const reachable = new Set([...holders, ...listed]).size;
    if (live.length > 0 && reachable < options.copies) {
      throw new FrameworkError(
        FrameworkErrorCode.INVALID_ARGUMENT,
        `--copies ${options.copies} needs ${options.copies} distinct depots per block; the block at offset ${b.offset} ` +
          `is held by ${holders.size} and ${listed.size} are listed, ${reachable} distinct in all (give more depots)`,
      );
    }
    plan.push({ live, holders });
  }
  let added = 0;
  let short = 0;
  // Depots that had no reply within the client's timeout: not asked again (one timeout each, not one per block).
  const stalled = new Set<string>();
  for (const { live, holders } of plan) {
    await augmentBlock(live, holders);
    options.onProgress?.(1);
  }
  if (added > 0) x.modifiedMs = clock.now();
  return { added, short };

  async function augmentBlock(live: Mapping[], holders: Set<string>): Promise<void> {
    let need = options.copies - holders.size;
    if (need <= 0) return;
    if (live.length === 0) {
      short++;
      return;
    }
    for (const { d, id } of targets) {
      if (need <= 0) break;
      if (holders.has(id)) continue;
      const made = await replicateFromAny(client, live, d, options.durationSec, clock, stalled);
      if (made === undefined) continue;
      x.mappings.push(made);
      holders.add(id);
      added++;
      need--;
    }
    if (need > 0) short++;
  }
}

/**
 * A new replica on `depot` copied from the first of `sources` that works; undefined if none does.
 * With `stalled` (see `replicate`), depots in it are not asked, and depots that time out are added.
 */
export async function replicateFromAny(
  client: IbpClient,
  sources: readonly Mapping[],
  depot: DepotAddress,
  durationSec: number,
  clock: Clock = systemClock,
  stalled?: Set<string>,
): Promise<Mapping | undefined> {
  for (const source of sources) {
    if (stalled?.has(`${depot.host}:${depot.port}`) === true) return undefined;
    if (stalled?.has(depotKey(source)) === true) continue;
    try {
      return await replicate(client, source, depot, durationSec, clock, stalled);
    } catch {
      // the next source (or the caller's next depot)
    }
  }
  return undefined;
}
