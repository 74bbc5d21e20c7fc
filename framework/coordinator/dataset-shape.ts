import type { DepotAddress } from '../../ibp/index.js';
import type { BlockSummary } from '../estimation/index.js';

/** One replica of a row block: an allocation range on a depot (caps as strings). */
export interface DatasetReplica {
  depot: DepotAddress;
  read: string;
  write?: string;
  manage?: string;
  /** Byte offset of the block in the allocation. */
  allocOffset: number;
  /** Bytes of the block (`rows · cols · element size`). */
  length: number;
}

/** A row block `A_b` of a dataset, with its replicas and its ingest summary. */
export interface DatasetBlock {
  index: number;
  /** Global index of the block's first row. */
  rowStart: number;
  rows: number;
  bytes: number;
  replicas: DatasetReplica[];
  summary?: BlockSummary;
  /** The source (sensor, site) the rows came from. */
  source?: string;
}

/** A matrix stored as row blocks in depot allocations (rows = samples, cols = channels). */
export interface Dataset {
  name: string;
  dtype: 'float32' | 'float64';
  rows: number;
  cols: number;
  blocks: DatasetBlock[];
}

/** `host:port` of a depot, the key of per-depot state. */
export function depotId(depot: DepotAddress): string {
  return `${depot.host}:${depot.port}`;
}
