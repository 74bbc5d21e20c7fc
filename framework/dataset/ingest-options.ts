import { lstatSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { DepotAddress } from '../../ibp/index.js';
import { systemClock, type Clock } from '../clock.js';
import type { Dtype } from '../exnode/exnode.js';
import { DatasetError, DatasetErrorCode, checkInteger, invalidArgument } from './errors.js';
import { bytesPerElement } from './dataset.js';

/** Options of an ingest ({@link DatasetWriter}, {@link ingest}). */
export interface IngestOptions {
  /** Name recorded in the exNode. */
  readonly name: string;
  /** Values per row. */
  readonly cols: number;
  /** Element type stored (default float64). */
  readonly dtype?: Dtype;
  /** Depots of each site: a source's blocks go to the depots of its site. */
  readonly sites?: Readonly<Record<string, readonly DepotAddress[]>>;
  /** Depots for sources whose site is not in `sites` (or that have no site). */
  readonly depots?: readonly DepotAddress[];
  /** The site of a source (default: the part of its id before the first `/`, e.g. `site-1/sensor-0` → `site-1`). */
  readonly siteOf?: (source: string) => string | undefined;
  /** Source of rows given without one (default `default`). */
  readonly defaultSource?: string;
  /** Replicas of every block, on distinct depots of the source's site (default 1). */
  readonly copies?: number;
  /** Rows per block, the unit of summaries and of NFU ops later (default {@link DEFAULT_BLOCK_ROWS}). */
  readonly blockRows?: number;
  /**
   * Bytes per allocation; blocks are appended until the next does not fit, then a new one is made. Default:
   * 4 MiB per source split evenly over the depots its blocks rotate on (so spreading reserves no more than one
   * 4 MiB allocation per copy would), at least one block.
   */
  readonly allocationBytes?: number;
  /** Lease of each allocation in seconds (default 86 400); kept alive by the warmer while the ingest runs. */
  readonly durationSec?: number;
  /** Milliseconds between warmer passes over the stored blocks (default: a quarter of the lease, at most 60 000). */
  readonly warmIntervalMs?: number;
  /** Block stores in flight at once over all sources (default 8). */
  readonly maxInflightBlocks?: number;
  /** Where to write the exNode (atomically) when the ingest finishes; `.json` for UNIS JSON, else LoRS XML. */
  readonly path?: string;
  /**
   * With `path`: replace a file already there (default false). An existing file is refused before any depot
   * is contacted, as the exNode there may name live allocations (e.g. those an interrupted ingest with
   * `checkpointBlocks` kept) that nothing would reference once it is overwritten.
   */
  readonly overwrite?: boolean;
  /** With `path`: also publish the stored prefix every N blocks, so jobs can follow the growing dataset (default 0 = only at the end). */
  readonly checkpointBlocks?: number;
  /** Aborts the ingest: what it stored is released and `DATA_E_ABORTED` is thrown. */
  readonly signal?: AbortSignal;
  /** Called after each block is stored on all its replicas. */
  readonly onBlock?: (block: { index: number; rowStart: number; rows: number; bytes: number; source: string }) => void;
  /** Time source of the warmer (default the system clock). */
  readonly clock?: Clock;
}

/** Rows per block by default. */
export const DEFAULT_BLOCK_ROWS = 4096;
/** Bytes per allocation by default. */
export const DEFAULT_ALLOCATION_BYTES = 4 * 1024 * 1024;
export const DEFAULT_INGEST_DURATION_SEC = 86_400;
export const DEFAULT_MAX_INFLIGHT_BLOCKS = 8;

/** Validated ingest options, every default applied (what `DatasetWriter.options` holds). */
export interface ResolvedIngestOptions {
  readonly name: string;
  readonly cols: number;
  readonly dtype: Dtype;
  readonly rowBytes: number;
  readonly sites: ReadonlyMap<string, readonly DepotAddress[]>;
  readonly depots: readonly DepotAddress[];
  readonly siteOf: (source: string) => string | undefined;
  readonly defaultSource: string;
  readonly copies: number;
  readonly blockRows: number;
  /** Bytes per allocation as given; undefined: the default, split over a source's depots ({@link laneAllocationBytes}). */
  readonly allocationBytes: number | undefined;
  readonly blockBytes: number;
  readonly durationSec: number;
  readonly warmIntervalMs: number;
  readonly maxInflightBlocks: number;
  readonly path: string | undefined;
  readonly overwrite: boolean;
  readonly checkpointBlocks: number;
  readonly clock: Clock;
  readonly signal: AbortSignal | undefined;
  readonly onBlock: IngestOptions['onBlock'];
}

function checkDepots(name: string, list: unknown, copies: number): readonly DepotAddress[] {
  if (!Array.isArray(list) || list.some((d) => typeof d?.host !== 'string' || !Number.isInteger(d?.port))) {
    throw invalidArgument(name, 'a list of { host, port } depots', list);
  }
  const keys = new Set((list as DepotAddress[]).map((d) => `${d.host}:${d.port}`));
  if (keys.size !== list.length)
    throw invalidArgument(
      name,
      'a list without duplicates',
      list.map((d: DepotAddress) => `${d.host}:${d.port}`),
    );
  if (list.length < copies) throw invalidArgument(name, `a list of at least copies = ${copies} depots`, list.length);
  return Object.freeze([...(list as DepotAddress[])]);
}

/** Refuses a file (or anything else) already at `path`: overwriting an exNode would orphan the allocations it names. */
function refuseExisting(path: string): void {
  if (lstatSync(path, { throwIfNoEntry: false }) === undefined) return;
  throw new DatasetError(
    DatasetErrorCode.INVALID_ARGUMENT,
    `invalid argument: \`path\` ${path} already exists; the exNode there may reference live allocations (an interrupted ` +
      `ingest with checkpoints keeps them), which nothing would reference once it is overwritten: give another path, or ` +
      `overwrite: true (anvil ingest --force) to replace it; nothing was stored`,
    { details: { argument: 'path', value: path } },
  );
}

/** Refuses a `path` whose directory is missing: found out only after storing, it would cost the whole ingest. */
function refuseMissingDirectory(path: string): void {
  const dir = dirname(resolve(path));
  if (statSync(dir, { throwIfNoEntry: false })?.isDirectory() === true) return;
  throw new DatasetError(
    DatasetErrorCode.INVALID_ARGUMENT,
    `invalid argument: \`path\` ${path}: directory ${dir} does not exist; nothing was stored`,
    { details: { argument: 'path', value: path } },
  );
}

/** @internal Validates ingest options once. */
export function resolveIngestOptions(o: IngestOptions): ResolvedIngestOptions {
  if (typeof o.name !== 'string' || o.name === '') throw invalidArgument('name', 'a non-empty string', o.name);
  const cols = checkInteger('cols', o.cols, 1, 1 << 24);
  const dtype = o.dtype ?? 'float64';
  if (dtype !== 'float32' && dtype !== 'float64') throw invalidArgument('dtype', 'float32 or float64', dtype);
  const rowBytes = cols * bytesPerElement(dtype);
  const copies = checkInteger('copies', o.copies ?? 1, 1, 64);
  const sites = new Map<string, readonly DepotAddress[]>();
  for (const [site, list] of Object.entries(o.sites ?? {})) sites.set(site, checkDepots(`sites.${site}`, list, copies));
  const depots = o.depots === undefined ? [] : checkDepots('depots', o.depots, copies);
  if (sites.size === 0 && depots.length === 0) throw invalidArgument('sites / depots', 'at least one depot', 0);
  const blockRows = checkInteger('blockRows', o.blockRows ?? DEFAULT_BLOCK_ROWS, 1);
  const blockBytes = blockRows * rowBytes;
  const allocationBytes =
    o.allocationBytes === undefined ? undefined : checkInteger('allocationBytes', o.allocationBytes, blockBytes);
  const durationSec = checkInteger('durationSec', o.durationSec ?? DEFAULT_INGEST_DURATION_SEC, 1);
  const defaultSource = o.defaultSource ?? 'default';
  if (typeof defaultSource !== 'string' || defaultSource === '')
    throw invalidArgument('defaultSource', 'a non-empty string', defaultSource);
  if (o.path !== undefined && (typeof o.path !== 'string' || o.path === '')) throw invalidArgument('path', 'a file path', o.path);
  const overwrite = o.overwrite ?? false;
  if (typeof overwrite !== 'boolean') throw invalidArgument('overwrite', 'a boolean', overwrite);
  if (o.path !== undefined && !overwrite) refuseExisting(o.path);
  if (o.path !== undefined) refuseMissingDirectory(o.path);
  return Object.freeze({
    name: o.name,
    cols,
    dtype,
    rowBytes,
    sites,
    depots,
    siteOf: o.siteOf ?? ((s: string) => (s.includes('/') ? s.slice(0, s.indexOf('/')) : undefined)),
    defaultSource,
    copies,
    blockRows,
    allocationBytes,
    blockBytes,
    durationSec,
    warmIntervalMs: checkInteger(
      'warmIntervalMs',
      o.warmIntervalMs ?? Math.min(60_000, Math.max(1, Math.floor((durationSec * 1000) / 4))),
      1,
    ),
    maxInflightBlocks: checkInteger('maxInflightBlocks', o.maxInflightBlocks ?? DEFAULT_MAX_INFLIGHT_BLOCKS, 1, 1024),
    path: o.path,
    overwrite,
    checkpointBlocks: checkInteger('checkpointBlocks', o.checkpointBlocks ?? 0, 0),
    clock: o.clock ?? systemClock,
    signal: o.signal,
    onBlock: o.onBlock,
  });
}

/** @internal Bytes per allocation of a source whose blocks rotate over `lanes` depots. */
export function laneAllocationBytes(o: ResolvedIngestOptions, lanes: number): number {
  return o.allocationBytes ?? Math.max(o.blockBytes, Math.ceil(DEFAULT_ALLOCATION_BYTES / Math.max(1, lanes)));
}
