import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Counter, Gauge, Registry } from 'prom-client';
import type { IbpClient } from '../../ibp/index.js';
import { blocksOf, depotOf, type Exnode, type Mapping } from '../exnode/exnode.js';
import { readExnode, writeExnode } from '../exnode/exnode-file.js';
import { replicateFromAny, statMappings } from '../lors/maintenance.js';
import { depotIdentity } from '../lors/depot-identity.js';
import { sleep, systemClock, type Clock } from '../clock.js';
import type { WarmerPolicy } from './policy.js';

/** What one pass did. */
export interface WarmReport {
  exnodes: number;
  mappings: number;
  refreshed: number;
  replicated: number;
  trimmed: number;
  failures: number;
  /** Blocks still short of their copies after the pass. */
  underReplicated: number;
}

/** Prometheus metrics of a warmer. */
export class WarmerMetrics {
  readonly registry = new Registry();
  readonly passes = new Counter({ name: 'anvil_warmer_passes_total', help: 'Warmer passes run', registers: [this.registry] });
  readonly refreshed = new Counter({
    name: 'anvil_warmer_leases_refreshed_total',
    help: 'Leases renewed',
    registers: [this.registry],
  });
  readonly replicated = new Counter({
    name: 'anvil_warmer_replicas_created_total',
    help: 'Replicas made by depot-to-depot copy',
    registers: [this.registry],
  });
  readonly trimmed = new Counter({
    name: 'anvil_warmer_mappings_trimmed_total',
    help: 'Dead mappings removed',
    registers: [this.registry],
  });
  readonly failures = new Counter({
    name: 'anvil_warmer_failures_total',
    help: 'Operations that failed',
    registers: [this.registry],
  });
  readonly underReplicated = new Gauge({
    name: 'anvil_warmer_under_replicated_blocks',
    help: 'Blocks short of their copies after the last pass',
    registers: [this.registry],
  });
}

/**
 * The warmer (LoDN warmer / IDMS role): applies a policy to every exNode file of a directory —
 * trims dead mappings, restores `copiesPerSite` replicas per site with depot-to-depot copies from a
 * live replica, renews leases that end within `leaseAheadSec` — and rewrites changed exNodes
 * atomically.
 */
export class Warmer {
  constructor(
    private readonly client: IbpClient,
    private readonly policy: WarmerPolicy,
    readonly metrics = new WarmerMetrics(),
    private readonly clock: Clock = systemClock,
  ) {}

  /**
   * The daemon: a pass over `dir`, then one every `policy.intervalSec` on the warmer's clock, until
   * `signal` aborts (a running pass finishes first). `onPass` gets each pass's report. Resolves when
   * stopped; a pass that throws (the directory is unreadable) stops the loop with that error.
   */
  async run(dir: string, options: { signal: AbortSignal; onPass?: (report: WarmReport) => void }): Promise<void> {
    const { signal } = options;
    while (!signal.aborted) {
      options.onPass?.(await this.pass(dir));
      try {
        await sleep(this.clock, this.policy.intervalSec * 1000, signal);
      } catch {
        return; // aborted while waiting
      }
    }
  }

  /** One pass over every `.xnd` / `.json` exNode in `dir`. */
  async pass(dir: string): Promise<WarmReport> {
    const report: WarmReport = {
      exnodes: 0,
      mappings: 0,
      refreshed: 0,
      replicated: 0,
      trimmed: 0,
      failures: 0,
      underReplicated: 0,
    };
    const files = (await readdir(dir)).filter((f) => f.endsWith('.xnd') || f.endsWith('.json')).sort();
    for (const f of files) {
      const path = join(dir, f);
      let x: Exnode;
      try {
        x = await readExnode(path);
      } catch {
        report.failures++;
        continue;
      }
      report.exnodes++;
      try {
        if (await this.warm(x, report)) await writeExnode(path, x);
      } catch {
        report.failures++; // this exNode stays as it was; the pass goes on with the next
      }
      report.mappings += x.mappings.length;
    }
    this.metrics.passes.inc();
    this.metrics.refreshed.inc(report.refreshed);
    this.metrics.replicated.inc(report.replicated);
    this.metrics.trimmed.inc(report.trimmed);
    this.metrics.failures.inc(report.failures);
    this.metrics.underReplicated.set(report.underReplicated);
    return report;
  }

  /** Applies the policy to one exNode; returns whether it changed. */
  async warm(x: Exnode, report: WarmReport): Promise<boolean> {
    let changed = false;
    const status = await statMappings(this.client, x);
    const byMapping = new Map(x.mappings.map((m, i) => [m, status[i]!]));
    const blocks = blocksOf(x); // the layout before trimming: a block that loses every replica still counts
    const live = x.mappings.filter((m) => byMapping.get(m)!.alive);
    // Trim what the depots say is gone; with trimUnreachable also what did not answer, but never
    // the last replica of a block (an outage must not erase the only caps to the data).
    const drop = new Set<Mapping>();
    for (const b of blocks) {
      for (const m of b.replicas) {
        const st = byMapping.get(m)!;
        if (this.policy.trimDead && st.gone) drop.add(m);
        else if (this.policy.trimUnreachable && !st.alive && b.replicas.some((r) => r !== m && byMapping.get(r)!.alive))
          drop.add(m);
      }
    }
    if (drop.size > 0) {
      x.mappings = x.mappings.filter((m) => !drop.has(m));
      report.trimmed += drop.size;
      changed = true;
    }
    const now = this.clock.now();
    // Renew leases due within leaseAheadSec, by the exNode's record on the warmer's clock or by
    // the depot's own count, whichever is sooner; never shorten a lease.
    for (const m of live) {
      if (m.manage === undefined) continue;
      const probed = byMapping.get(m)!.secondsLeft;
      const leftMs = Math.min(m.leaseEndMs - now, probed === undefined ? Infinity : probed * 1000);
      if (leftMs > this.policy.leaseAheadSec * 1000) continue;
      if (probed !== undefined && probed >= this.policy.leaseDurationSec) continue;
      try {
        const maxSize = byMapping.get(m)!.maxSize ?? (await this.client.probe(m.manage)).maxSize;
        await this.client.change(m.manage, { maxSize, durationSec: this.policy.leaseDurationSec });
        m.leaseEndMs = now + this.policy.leaseDurationSec * 1000;
        report.refreshed++;
        changed = true;
      } catch {
        report.failures++;
      }
    }
    // Restore replicas per site, matching depots by resolved identity, copying from any live replica.
    const liveSet = new Set<Mapping>(live);
    const sites = await Promise.all(
      [...this.policy.sites.values()].map((depots) =>
        Promise.all(depots.map(async (d) => ({ d, id: await depotIdentity(d.host, d.port) }))),
      ),
    );
    for (const b of blocks) {
      const sources = b.replicas.filter((m) => liveSet.has(m));
      const sourceIds = await Promise.all(sources.map((m) => depotIdentity(depotOf(m).host, depotOf(m).port)));
      for (const site of sites) {
        const siteIds = new Set(site.map((e) => e.id));
        const holders = new Set(sourceIds.filter((id) => siteIds.has(id)));
        let need = this.policy.copiesPerSite - holders.size;
        if (need <= 0) continue;
        if (sources.length === 0) {
          report.underReplicated++;
          continue;
        }
        for (const { d, id } of site) {
          if (need <= 0) break;
          if (holders.has(id)) continue;
          const m = await replicateFromAny(this.client, sources, d, this.policy.leaseDurationSec, this.clock);
          if (m === undefined) {
            report.failures++;
            continue;
          }
          x.mappings.push(m);
          holders.add(id);
          report.replicated++;
          need--;
          changed = true;
        }
        if (need > 0) report.underReplicated++;
      }
    }
    if (changed) x.modifiedMs = this.clock.now();
    return changed;
  }
}
