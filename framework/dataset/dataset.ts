import { parseCapability, type DepotAddress } from '../../ibp/index.js';
import { scatterReferenceFromJson, summaryFromJson, type BlockSummary, type ScatterReference } from '../estimation/index.js';
import { blocksOf, type Dtype, type Exnode, type Mapping } from '../exnode/exnode.js';
import { metaToJson, type MetaEntry } from '../exnode/metadata.js';
import { readExnode } from '../exnode/exnode-file.js';
import { DatasetError, DatasetErrorCode } from './errors.js';

/** One copy of a block: where its bytes sit (depot, caps, offset in the allocation). */
export interface DatasetReplica {
  depot: DepotAddress;
  read: string;
  write?: string;
  manage?: string;
  /** Offset of the block's first byte in the allocation. */
  allocOffset: number;
  /** Bytes of the block (rows · cols · element size). */
  length: number;
}

/** A row block `A_b`: rows `rowStart … rowStart + rows − 1` of the matrix, on one or more depots. */
export interface DatasetBlock {
  /** Position in row order (0, 1, …). */
  index: number;
  rowStart: number;
  rows: number;
  bytes: number;
  replicas: DatasetReplica[];
  /**
   * The ingest summary. Absent for blocks of exNodes written before summaries existed:
   * their mass is unknown until someone reads them (see docs/datasets.md).
   */
  summary?: BlockSummary;
  /** The source (sensor) whose rows the block holds, when recorded. */
  source?: string;
}

/** A row-major matrix stored in place as row blocks (rows = samples/time, cols = channels/features). */
export interface Dataset {
  name: string;
  dtype: Dtype;
  rows: number;
  cols: number;
  /** In row order; together they hold every row exactly once. */
  blocks: DatasetBlock[];
}

/** Bytes per element of a dtype. */
export function bytesPerElement(dtype: Dtype): 4 | 8 {
  return dtype === 'float32' ? 4 : 8;
}

/** Name of the exNode file metadata entry that holds the dataset's reference scatter (JSON). */
export const SCATTER_REFERENCE_META = 'scatterReference';

/** The file metadata entry of a dataset's reference scatter. */
export function scatterReferenceMeta(r: ScatterReference): MetaEntry {
  return {
    name: SCATTER_REFERENCE_META,
    type: 'json',
    value: JSON.stringify({ id: r.id, cols: r.cols, matrix: Array.from(r.matrix) }),
  };
}

/** The dataset's reference scatter from the exNode's file metadata (JSON, or a `meta` list after UNIS JSON). */
function scatterReferenceOf(x: Exnode, cols: number): ScatterReference[] {
  const entry = x.extra?.find((e) => e.name === SCATTER_REFERENCE_META);
  if (entry === undefined) return [];
  try {
    const v = metaToJson(entry);
    const ref = scatterReferenceFromJson(typeof v === 'string' ? (JSON.parse(v) as unknown) : v, SCATTER_REFERENCE_META);
    if (ref.cols !== cols) throw new Error(`${SCATTER_REFERENCE_META} has ${ref.cols} columns, not ${cols}`);
    return [ref];
  } catch (e) {
    throw notADataset(x.name, (e as Error).message, {}, e);
  }
}

function notADataset(name: string, why: string, details: Record<string, unknown> = {}, cause?: unknown): DatasetError {
  return new DatasetError(DatasetErrorCode.NOT_A_DATASET, `exNode ${JSON.stringify(name)} is not a dataset: ${why}`, {
    details: { exnode: name, ...details },
    ...(cause === undefined ? {} : { cause }),
  });
}

function replicaOf(m: Mapping): DatasetReplica {
  const cap = parseCapability(m.read)!;
  return {
    depot: { host: cap.host, port: cap.port },
    read: m.read,
    ...(m.write === undefined ? {} : { write: m.write }),
    ...(m.manage === undefined ? {} : { manage: m.manage }),
    allocOffset: m.allocOffset,
    length: m.logicalLength,
  };
}

/**
 * The dataset an exNode describes. Needs `dtype` and a two-dimensional `shape` [rows, cols]; each block's
 * rows come from its mappings' `rows` field or, for exNodes without it (a plain file uploaded with a
 * dtype and shape), from its byte offset and length, which must then fall on row boundaries. Blocks must
 * tile the rows exactly; summaries and sources are taken from whichever replica records them.
 *
 * @throws DatasetError `DATA_E_NOT_A_DATASET` naming what does not fit (missing dtype/shape, misaligned
 *   or overlapping blocks, a gap, replicas that disagree, a malformed summary)
 * @example
 * const ds = datasetFromExnode(await readExnode('field.xnd'));
 * ds.blocks.map((b) => [b.rowStart, b.rows, b.summary?.frob2]);
 */
export function datasetFromExnode(x: Exnode): Dataset {
  const name = x.name;
  if (x.dtype === undefined) throw notADataset(name, 'it has no dtype');
  if (x.shape === undefined || x.shape.length !== 2)
    throw notADataset(name, `its shape must be [rows, cols] (got ${JSON.stringify(x.shape ?? null)})`);
  const [rows, cols] = x.shape as [number, number];
  if (cols < 1) throw notADataset(name, `its shape has ${cols} columns`);
  const rowBytes = cols * bytesPerElement(x.dtype);
  if (x.size !== rows * rowBytes) {
    throw notADataset(name, `its size ${x.size} is not rows · cols · ${bytesPerElement(x.dtype)} = ${rows * rowBytes}`);
  }
  const blocks: DatasetBlock[] = [];
  const references = scatterReferenceOf(x, cols);
  let next = 0;
  for (const group of blocksOf(x)) {
    const at = `the block at byte ${group.offset}`;
    const first = group.replicas[0]!;
    for (const m of group.replicas) {
      if (m.logicalLength !== first.logicalLength) {
        throw notADataset(name, `${at} has replicas of different lengths (${first.logicalLength} and ${m.logicalLength})`);
      }
    }
    const withRows = group.replicas.find((m) => m.rows !== undefined);
    let rowStart: number;
    let count: number;
    if (withRows !== undefined) {
      rowStart = withRows.rows!.start;
      count = withRows.rows!.count;
      if (rowStart * rowBytes !== group.offset || count * rowBytes !== first.logicalLength) {
        throw notADataset(
          name,
          `${at} records rows ${rowStart}+${count}, which do not match its bytes (${first.logicalLength} at ${group.offset}, ${rowBytes} per row)`,
        );
      }
    } else {
      if (group.offset % rowBytes !== 0 || first.logicalLength % rowBytes !== 0) {
        throw notADataset(name, `${at} (${first.logicalLength} bytes) does not fall on row boundaries of ${rowBytes} bytes`);
      }
      rowStart = group.offset / rowBytes;
      count = first.logicalLength / rowBytes;
    }
    if (rowStart !== next) {
      throw notADataset(
        name,
        rowStart > next ? `rows ${next} to ${rowStart - 1} have no block` : `${at} overlaps rows before ${next}`,
      );
    }
    next = rowStart + count;
    const block: DatasetBlock = {
      index: blocks.length,
      rowStart,
      rows: count,
      bytes: first.logicalLength,
      replicas: group.replicas.map(replicaOf),
    };
    const withSummary = group.replicas.find((m) => m.summary !== undefined);
    if (withSummary !== undefined) {
      const s = withSummary.summary!;
      if (s.colSums.length !== cols) throw notADataset(name, `${at} has a summary of ${s.colSums.length} columns, not ${cols}`);
      try {
        block.summary = summaryFromJson({ ...s, cols }, `block ${block.index} summary`, references);
      } catch (e) {
        throw notADataset(name, (e as Error).message, {}, e);
      }
      if (block.summary.rows !== count)
        throw notADataset(name, `${at} has a summary of ${block.summary.rows} rows, not ${count}`);
    }
    const source = group.replicas.find((m) => m.source !== undefined)?.source;
    if (source !== undefined) block.source = source;
    blocks.push(block);
  }
  if (next < rows) throw notADataset(name, `rows ${next} to ${rows - 1} have no block`);
  if (next > rows) throw notADataset(name, `its blocks hold ${next} rows, its shape ${rows}`);
  return { name, dtype: x.dtype, rows, cols, blocks };
}

/**
 * Reads an exNode file (LoRS XML or UNIS JSON) and returns its dataset.
 * @throws FrameworkError `FW_ERR_EXNODE_INVALID` for a malformed exNode; DatasetError `DATA_E_NOT_A_DATASET` (see {@link datasetFromExnode})
 */
export async function openDataset(path: string): Promise<Dataset> {
  return datasetFromExnode(await readExnode(path));
}
