import type { DepotAddress } from '../../ibp/index.js';

/**
 * The coordinator runs over the dataset module's types (a matrix stored as row blocks with their replicas
 * and ingest summaries — what `openDataset` returns for an exNode); re-exported here under the names the
 * coordinator has always used.
 */
export type { Dataset, DatasetBlock, DatasetReplica } from '../dataset/dataset.js';

/** `host:port` of a depot, the key of per-depot state. */
export function depotId(depot: DepotAddress): string {
  return `${depot.host}:${depot.port}`;
}
