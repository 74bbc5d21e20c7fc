import type { DepotAddress } from '../../ibp/index.js';
import { FrameworkError, FrameworkErrorCode } from '../errors.js';
import { parseDepotList } from '../lors/depot-list.js';

/**
 * A warmer policy (LoDN sites / IDMS `$replicate` + `$keepalive`): every block keeps
 * `copiesPerSite` live replicas at each site (a named set of depots), and every lease is kept at
 * least `leaseAheadSec` ahead by renewing it to `leaseDurationSec`.
 */
export interface WarmerPolicy {
  readonly sites: ReadonlyMap<string, readonly DepotAddress[]>;
  readonly copiesPerSite: number;
  readonly leaseAheadSec: number;
  readonly leaseDurationSec: number;
  /** Drop mappings whose depot says their bytes are gone (-4, short data). */
  readonly trimDead: boolean;
  /** Also drop mappings whose depot does not answer, keeping at least one replica per block. */
  readonly trimUnreachable: boolean;
  /** Seconds between passes of the daemon. */
  readonly intervalSec: number;
}

const KEYS = new Set([
  'sites',
  'copiesPerSite',
  'leaseAheadSec',
  'leaseDurationSec',
  'trimDead',
  'trimUnreachable',
  'intervalSec',
]);

function bad(field: string, rule: string, actual?: unknown): FrameworkError {
  const got = actual === undefined ? '' : ` (got ${JSON.stringify(actual)?.slice(0, 80)})`;
  return new FrameworkError(FrameworkErrorCode.POLICY_INVALID, `invalid warmer policy: \`${field}\` ${rule}${got}`, {
    details: { field },
  });
}

function int(v: unknown, field: string, min: number, max: number, fallback?: number): number {
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max)
    throw bad(field, `must be an integer from ${min} to ${max}`, v);
  return v;
}

/** Validates a policy document (JSON text or parsed); errors name the field, the rule and the value. */
export function parsePolicy(input: unknown): WarmerPolicy {
  let raw = input;
  if (typeof raw === 'string') {
    try {
      raw = JSON.parse(raw);
    } catch (e) {
      throw new FrameworkError(
        FrameworkErrorCode.POLICY_INVALID,
        `invalid warmer policy: not valid JSON: ${(e as Error).message}`,
      );
    }
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('policy', 'must be a JSON object', raw);
  const obj = raw as Record<string, unknown>;
  for (const k of Object.keys(obj)) if (!KEYS.has(k)) throw bad(k, `is not a policy field (fields: ${[...KEYS].join(', ')})`);
  const sitesRaw = obj['sites'];
  if (typeof sitesRaw !== 'object' || sitesRaw === null || Array.isArray(sitesRaw) || Object.keys(sitesRaw).length === 0) {
    throw bad('sites', 'must map site names to lists of "host:port" depots', sitesRaw);
  }
  const sites = new Map<string, DepotAddress[]>();
  const owner = new Map<string, string>();
  for (const [name, list] of Object.entries(sitesRaw as Record<string, unknown>)) {
    if (!Array.isArray(list) || list.some((e) => typeof e !== 'string'))
      throw bad(`sites.${name}`, 'must be a list of "host:port" strings', list);
    let depots: DepotAddress[];
    try {
      depots = parseDepotList((list as string[]).join(','), `sites.${name}`);
    } catch (e) {
      throw bad(`sites.${name}`, (e as Error).message.replace(/^sites\.[^:]+: /, ''));
    }
    for (const d of depots) {
      const key = `${d.host}:${d.port}`;
      if (owner.has(key)) throw bad(`sites.${name}`, `lists ${key}, which site ${owner.get(key)} lists too`);
      owner.set(key, name);
    }
    sites.set(name, depots);
  }
  const copiesPerSite = int(obj['copiesPerSite'], 'copiesPerSite', 1, 100, 1);
  for (const [name, depots] of sites) {
    if (depots.length < copiesPerSite)
      throw bad(`sites.${name}`, `has ${depots.length} depots, fewer than copiesPerSite (${copiesPerSite})`);
  }
  const leaseDurationSec = int(obj['leaseDurationSec'], 'leaseDurationSec', 60, 10 * 365 * 86_400, 86_400);
  const leaseAheadSec = int(obj['leaseAheadSec'], 'leaseAheadSec', 0, 10 * 365 * 86_400, 3600);
  if (leaseAheadSec >= leaseDurationSec)
    throw bad('leaseAheadSec', `must be less than leaseDurationSec (${leaseDurationSec})`, leaseAheadSec);
  if (obj['trimDead'] !== undefined && typeof obj['trimDead'] !== 'boolean')
    throw bad('trimDead', 'must be true or false', obj['trimDead']);
  return Object.freeze({
    sites,
    copiesPerSite,
    leaseAheadSec,
    leaseDurationSec,
    trimDead: (obj['trimDead'] as boolean | undefined) ?? true,
    trimUnreachable: (obj['trimUnreachable'] as boolean | undefined) ?? false,
    intervalSec: int(obj['intervalSec'], 'intervalSec', 1, 86_400, 300),
  });
}
