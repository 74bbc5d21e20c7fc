import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Counter, Gauge, Registry } from 'prom-client';
import type { IbpClient } from '../../depot/index.js';
import { blocksOf, depotKey, type Exnode, type Mapping } from '../exnode/exnode.js';
import { readExnode, writeExnode } from '../exnode/exnode-file.js';
import { replicate, statMappings } from '../lors/maintenance.js';
import type { WarmerPolicy } from './policy.js';

/** Time source of the warmer's lease decisions (injectable for tests). */
export interface WarmerClock {
  now(): number;
}

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
    private readonly clock: WarmerClock = { now: () => Date.now() },
  ) {}

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
      if (await this.warm(x, report)) await writeExnode(path, x);
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
    const dead = new Set(status.filter((s) => !s.alive).map((s) => s.index));
    const live = x.mappings.filter((_, i) => !dead.has(i));
    if (this.policy.trimDead && dead.size > 0) {
      x.mappings = live.slice();
      report.trimmed += dead.size;
      changed = true;
    }
    const now = this.clock.now();
    // Renew leases that end too soon (as recorded in the exNode, on the warmer's clock).
    for (const m of live) {
      if (m.manage === undefined || m.leaseEndMs - now > this.policy.leaseAheadSec * 1000) continue;
      try {
        const p = await this.client.probe(m.manage);
        await this.client.change(m.manage, { maxSize: p.maxSize, durationSec: this.policy.leaseDurationSec });
        m.leaseEndMs = now + this.policy.leaseDurationSec * 1000;
        report.refreshed++;
        changed = true;
      } catch {
        report.failures++;
      }
    }
    // Restore replicas per site.
    const liveSet = new Set<Mapping>(live);
    for (const b of blocksOf(x)) {
      const sources = b.replicas.filter((m) => liveSet.has(m));
      for (const [, depots] of this.policy.sites) {
        const siteKeys = new Set(depots.map((d) => `${d.host}:${d.port}`));
        const holders = new Set(sources.map(depotKey).filter((k) => siteKeys.has(k)));
        let need = this.policy.copiesPerSite - holders.size;
        if (need <= 0) continue;
        if (sources.length === 0) {
          report.underReplicated++;
          continue;
        }
        for (const d of depots) {
          if (need <= 0) break;
          if (holders.has(`${d.host}:${d.port}`)) continue;
          try {
            const m = await replicate(this.client, sources[0]!, d, this.policy.leaseDurationSec);
            x.mappings.push(m);
            holders.add(`${d.host}:${d.port}`);
            report.replicated++;
            need--;
            changed = true;
          } catch {
            report.failures++;
          }
        }
        if (need > 0) report.underReplicated++;
      }
    }
    if (changed) x.modifiedMs = Date.now();
    return changed;
  }
}
