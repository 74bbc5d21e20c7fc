import { parseCapability, type Capability } from '../../ibp/index.js';
import { invalidExnode as invalid, validateMeta, type MetaEntry } from './metadata.js';

/** Element types a matrix-valued exNode may declare. */
export type Dtype = 'float32' | 'float64';

/**
 * One mapping of an exNode: `logicalLength` bytes of the file at `exnodeOffset` held by one
 * allocation at `allocOffset`. Replicas are mappings with the same offset on other depots.
 */
export interface Mapping {
  exnodeOffset: number;
  logicalLength: number;
  allocOffset: number;
  allocLength: number;
  /** Cap strings; write and manage may have been trimmed away. */
  read: string;
  write: string | undefined;
  manage: string | undefined;
  /** Lease bounds, ms since the epoch (as last known). */
  leaseStartMs: number;
  leaseEndMs: number;
  /** End-to-end check of the mapped bytes: SHA-256, hex. */
  sha256: string | undefined;
  /** Dataset: the rows of the matrix this block holds. */
  rows?: RowRange;
  /** Dataset: the block's ingest summary. */
  summary?: ExnodeBlockSummary;
  /** Dataset: the sensor, source or site that produced the block. */
  source?: string;
  /** Metadata of the mapping that Anvil does not interpret, kept as read (LoRS or other tools). */
  extra?: MetaEntry[];
}

/** Rows `start … start + count - 1` of a row-major matrix. */
export interface RowRange {
  start: number;
  count: number;
}

/** What was recorded at ingest for a row block (column sums and sums of squares, norms, hash). */
export interface ExnodeBlockSummary {
  rows: number;
  colSums: number[];
  colSumSq: number[];
  /** Squared Frobenius norm. */
  frob2: number;
  maxAbs: number;
  /** SHA-256 of the block's bytes, lowercase hex. */
  hash: string;
  /** Optional spectral bounds: largest and smallest eigenvalue of the block's centred scatter matrix. */
  scatterEigMax?: number;
  scatterEigMin?: number;
  /** Optional: ‖K − tr(K)·Ref‖₂ ≤ scatterRadius for the dataset's reference scatter named by its id. */
  scatterRadius?: number;
  scatterReference?: string;
  /** Optional: K − tr(K)·Ref ⪯ scatterRho·(Ref + scatterRhoTau·I) for the same reference. */
  scatterRho?: number;
  scatterRhoTau?: number;
  /** Optional: the exact centred scatter, its upper triangle packed row by row (cols·(cols + 1)/2 numbers). */
  exactScatter?: number[];
}

/** A file composed of allocations on IBP depots, striped and replicated. */
export interface Exnode {
  name: string;
  size: number;
  createdMs: number;
  modifiedMs: number;
  /** Set when the file is a row-major matrix. */
  dtype: Dtype | undefined;
  shape: number[] | undefined;
  mappings: Mapping[];
  /** File metadata that Anvil does not interpret, kept as read (LoRS's `duration`, `parent`, …). */
  extra?: MetaEntry[];
}

/** `host:port` of the depot a mapping lives on (from its read cap). */
export function depotOf(m: Mapping): { host: string; port: number } {
  const cap = parseCapability(m.read)!;
  return { host: cap.host, port: cap.port };
}

export function depotKey(m: Mapping): string {
  const d = depotOf(m);
  return `${d.host}:${d.port}`;
}

/** The distinct `[offset, length]` ranges of an exNode, in order. */
/**
 * The byte ranges `[start, end)` of the file that no mapping covers (after a trim dropped their last
 * replicas): the file can no longer be read whole, and no augment can bring them back.
 */
export function uncoveredRanges(x: Exnode): Array<{ start: number; end: number }> {
  const spans = x.mappings.map((m) => [m.exnodeOffset, m.exnodeOffset + m.logicalLength] as const).sort((a, b) => a[0] - b[0]);
  const out: Array<{ start: number; end: number }> = [];
  let at = 0;
  for (const [start, end] of spans) {
    if (start > at) out.push({ start: at, end: start });
    at = Math.max(at, end);
  }
  if (at < x.size) out.push({ start: at, end: x.size });
  return out;
}

export function blocksOf(x: Exnode): Array<{ offset: number; length: number; replicas: Mapping[] }> {
  const byOffset = new Map<number, Mapping[]>();
  for (const m of x.mappings) {
    const list = byOffset.get(m.exnodeOffset) ?? [];
    list.push(m);
    byOffset.set(m.exnodeOffset, list);
  }
  return [...byOffset.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([offset, replicas]) => ({ offset, length: Math.max(...replicas.map((r) => r.logicalLength)), replicas }));
}

function natural(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw invalid(field, 'must be a non-negative integer', v);
  return v;
}

function cap(v: unknown, field: string, type: 1 | 2 | 3, optional: boolean): string | undefined {
  if (v === undefined || v === null || v === '') {
    if (optional) return undefined;
    throw invalid(field, 'is required');
  }
  const parsed: Capability | undefined = typeof v === 'string' ? parseCapability(v) : undefined;
  if (parsed === undefined || parsed.type !== type) {
    throw invalid(field, `must be an IBP ${['', 'read', 'write', 'manage'][type]} capability`, v);
  }
  return v as string;
}

/**
 * Checks an exNode built from any serialization: every field typed and in range, mappings inside
 * the file, caps well-formed. Throws `FW_ERR_EXNODE_INVALID` naming the field.
 */
export function validateExnode(x: Exnode, where = ''): Exnode {
  if (typeof x.name !== 'string') throw invalid(`${where}name`, 'must be a string', x.name);
  natural(x.size, `${where}size`);
  natural(x.createdMs, `${where}created`);
  natural(x.modifiedMs, `${where}modified`);
  if (x.dtype !== undefined && x.dtype !== 'float32' && x.dtype !== 'float64')
    throw invalid(`${where}dtype`, 'must be float32 or float64', x.dtype);
  if (x.shape !== undefined) {
    if (!Array.isArray(x.shape) || x.shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
      throw invalid(`${where}shape`, 'must be a list of non-negative integers', x.shape);
    }
  }
  x.mappings.forEach((m, i) => {
    const f = `${where}mappings[${i}].`;
    natural(m.exnodeOffset, `${f}exnode_offset`);
    natural(m.logicalLength, `${f}logical_length`);
    natural(m.allocOffset, `${f}alloc_offset`);
    natural(m.allocLength, `${f}alloc_length`);
    natural(m.leaseStartMs, `${f}start`);
    natural(m.leaseEndMs, `${f}end`);
    if (m.exnodeOffset + m.logicalLength > x.size) {
      throw invalid(
        `${f}exnode_offset`,
        `+ logical_length must lie within the file size ${x.size}`,
        m.exnodeOffset + m.logicalLength,
      );
    }
    cap(m.read, `${f}read`, 1, false);
    cap(m.write, `${f}write`, 2, true);
    cap(m.manage, `${f}manage`, 3, true);
    if (m.sha256 !== undefined && !/^[0-9a-f]{64}$/.test(m.sha256))
      throw invalid(`${f}sha256`, 'must be 64 lowercase hex digits', m.sha256);
    validateDatasetFields(m, f);
    if (m.extra !== undefined) validateMeta(m.extra, `${f}extra`);
  });
  if (x.extra !== undefined) validateMeta(x.extra, `${where}extra`);
  return x;
}

function finite(v: unknown, field: string, nonNegative: boolean): void {
  if (typeof v !== 'number' || !Number.isFinite(v) || (nonNegative && v < 0))
    throw invalid(field, nonNegative ? 'must be a finite non-negative number' : 'must be a finite number', v);
}

function validateDatasetFields(m: Mapping, f: string): void {
  if (m.rows !== undefined) {
    if (typeof m.rows !== 'object' || m.rows === null) throw invalid(`${f}rows`, 'must be {start, count}', m.rows);
    natural(m.rows.start, `${f}rows.start`);
    natural(m.rows.count, `${f}rows.count`);
  }
  const s = m.summary;
  if (s !== undefined) {
    if (typeof s !== 'object' || s === null) throw invalid(`${f}summary`, 'must be an object', s);
    natural(s.rows, `${f}summary.rows`);
    for (const k of ['colSums', 'colSumSq'] as const) {
      if (!Array.isArray(s[k])) throw invalid(`${f}summary.${k}`, 'must be a list of numbers', s[k]);
      s[k].forEach((v, j) => finite(v, `${f}summary.${k}[${j}]`, k === 'colSumSq'));
    }
    if (s.colSums.length !== s.colSumSq.length)
      throw invalid(`${f}summary.colSumSq`, `must have as many entries as colSums (${s.colSums.length})`, s.colSumSq.length);
    finite(s.frob2, `${f}summary.frob2`, true);
    finite(s.maxAbs, `${f}summary.maxAbs`, true);
    if (s.scatterEigMax !== undefined) finite(s.scatterEigMax, `${f}summary.scatterEigMax`, true);
    if (s.scatterEigMin !== undefined) finite(s.scatterEigMin, `${f}summary.scatterEigMin`, true);
    if (s.scatterRadius !== undefined) finite(s.scatterRadius, `${f}summary.scatterRadius`, true);
    if (s.scatterRho !== undefined) finite(s.scatterRho, `${f}summary.scatterRho`, true);
    if (s.scatterRhoTau !== undefined) finite(s.scatterRhoTau, `${f}summary.scatterRhoTau`, true);
    if (s.exactScatter !== undefined) {
      const n = (s.colSums.length * (s.colSums.length + 1)) / 2;
      if (!Array.isArray(s.exactScatter) || s.exactScatter.length !== n)
        throw invalid(`${f}summary.exactScatter`, `must be a list of ${n} numbers (a packed upper triangle)`, s.exactScatter);
      s.exactScatter.forEach((v, j) => finite(v, `${f}summary.exactScatter[${j}]`, false));
    }
    if (typeof s.hash !== 'string' || !/^[0-9a-f]{64}$/.test(s.hash))
      throw invalid(`${f}summary.hash`, 'must be 64 lowercase hex digits', s.hash);
    if (m.rows !== undefined && m.rows.count !== s.rows)
      throw invalid(`${f}summary.rows`, `must equal rows.count (${m.rows.count})`, s.rows);
  }
  if (m.source !== undefined && (typeof m.source !== 'string' || m.source === ''))
    throw invalid(`${f}source`, 'must be a non-empty string', m.source);
}

// ---- Anvil's per-mapping metadata, shared by every serialization -------------------------------------

const numbers = (v: readonly number[]) => v.map((n) => String(n)).join(' ');

/**
 * Anvil's own metadata of a mapping (SHA-256 and the dataset fields) as metadata entries, named
 * without a prefix; each serialization places them (LoRS XML as `anvil_<name>`, UNIS JSON in the
 * extent's `properties`). Numbers travel as strings in shortest round-trip form, so no tool that
 * rewrites doubles with fewer digits can change them.
 */
export function anvilMappingMeta(m: Mapping): MetaEntry[] {
  const out: MetaEntry[] = [];
  if (m.sha256 !== undefined) out.push({ name: 'sha256', type: 'string', value: m.sha256 });
  if (m.rows !== undefined) {
    out.push({
      name: 'rows',
      type: 'meta',
      children: [
        { name: 'start', type: 'integer', value: String(m.rows.start) },
        { name: 'count', type: 'integer', value: String(m.rows.count) },
      ],
    });
  }
  const s = m.summary;
  if (s !== undefined) {
    const children: MetaEntry[] = [
      { name: 'rows', type: 'integer', value: String(s.rows) },
      { name: 'colSums', type: 'string', value: numbers(s.colSums) },
      { name: 'colSumSq', type: 'string', value: numbers(s.colSumSq) },
      { name: 'frob2', type: 'string', value: String(s.frob2) },
      { name: 'maxAbs', type: 'string', value: String(s.maxAbs) },
      { name: 'hash', type: 'string', value: s.hash },
    ];
    if (s.scatterEigMax !== undefined) children.push({ name: 'scatterEigMax', type: 'string', value: String(s.scatterEigMax) });
    if (s.scatterEigMin !== undefined) children.push({ name: 'scatterEigMin', type: 'string', value: String(s.scatterEigMin) });
    if (s.scatterRadius !== undefined) children.push({ name: 'scatterRadius', type: 'string', value: String(s.scatterRadius) });
    if (s.scatterReference !== undefined) children.push({ name: 'scatterReference', type: 'string', value: s.scatterReference });
    if (s.scatterRho !== undefined) children.push({ name: 'scatterRho', type: 'string', value: String(s.scatterRho) });
    if (s.scatterRhoTau !== undefined) children.push({ name: 'scatterRhoTau', type: 'string', value: String(s.scatterRhoTau) });
    if (s.exactScatter !== undefined) children.push({ name: 'exactScatter', type: 'string', value: numbers(s.exactScatter) });
    out.push({ name: 'summary', type: 'meta', children });
  }
  if (m.source !== undefined) out.push({ name: 'source', type: 'string', value: m.source });
  return out;
}

/** Names {@link anvilMappingMeta} writes. */
export const ANVIL_MAPPING_META = ['sha256', 'rows', 'summary', 'source'] as const;

type AnvilMappingFields = Pick<Mapping, 'sha256' | 'rows' | 'summary' | 'source'>;

function scalar(e: MetaEntry | undefined, field: string): string {
  if (e === undefined) throw invalid(field, 'is required');
  if (e.type === 'meta') throw invalid(field, 'must be a value, not a list');
  return e.value;
}

function metaNumber(e: MetaEntry | undefined, field: string): number {
  const text = scalar(e, field).trim();
  const n = text === '' ? Number.NaN : Number(text);
  if (!Number.isFinite(n)) throw invalid(field, 'must be a number', text);
  return n;
}

function metaInteger(e: MetaEntry | undefined, field: string): number {
  const n = metaNumber(e, field);
  if (!Number.isSafeInteger(n) || n < 0) throw invalid(field, 'must be a non-negative integer', n);
  return n;
}

function metaNumbers(e: MetaEntry | undefined, field: string): number[] {
  if (e?.type === 'json') {
    // A UNIS document may hold the vector as a JSON list.
    const v = JSON.parse(e.value) as unknown;
    if (!Array.isArray(v) || !v.every((n) => typeof n === 'number' && Number.isFinite(n)))
      throw invalid(field, 'must be a list of numbers', v);
    return v as number[];
  }
  const text = scalar(e, field).trim();
  if (text === '') return [];
  return text.split(/\s+/).map((t, j) => metaNumber({ name: '', type: 'string', value: t }, `${field}[${j}]`));
}

function childrenOf(e: MetaEntry, field: string): Map<string, MetaEntry> {
  if (e.type !== 'meta') throw invalid(field, 'must be a metadata list');
  return new Map(e.children.map((c) => [c.name, c]));
}

/**
 * Reads Anvil's own entries (see {@link anvilMappingMeta}) by name from `get`; `field` names them in
 * errors as the serialization spells them. Throws `FW_ERR_EXNODE_INVALID`.
 */
export function readAnvilMappingMeta(
  get: (name: (typeof ANVIL_MAPPING_META)[number]) => MetaEntry | undefined,
  field: (name: string) => string,
): AnvilMappingFields {
  const out: AnvilMappingFields = { sha256: undefined };
  const sha = get('sha256');
  if (sha !== undefined) out.sha256 = scalar(sha, field('sha256'));
  const rows = get('rows');
  if (rows !== undefined) {
    const c = childrenOf(rows, field('rows'));
    out.rows = {
      start: metaInteger(c.get('start'), `${field('rows')}.start`),
      count: metaInteger(c.get('count'), `${field('rows')}.count`),
    };
  }
  const summary = get('summary');
  if (summary !== undefined) {
    const f = field('summary');
    const c = childrenOf(summary, f);
    const s: ExnodeBlockSummary = {
      rows: metaInteger(c.get('rows'), `${f}.rows`),
      colSums: metaNumbers(c.get('colSums'), `${f}.colSums`),
      colSumSq: metaNumbers(c.get('colSumSq'), `${f}.colSumSq`),
      frob2: metaNumber(c.get('frob2'), `${f}.frob2`),
      maxAbs: metaNumber(c.get('maxAbs'), `${f}.maxAbs`),
      hash: scalar(c.get('hash'), `${f}.hash`),
    };
    if (c.has('scatterEigMax')) s.scatterEigMax = metaNumber(c.get('scatterEigMax'), `${f}.scatterEigMax`);
    if (c.has('scatterEigMin')) s.scatterEigMin = metaNumber(c.get('scatterEigMin'), `${f}.scatterEigMin`);
    if (c.has('scatterRadius')) s.scatterRadius = metaNumber(c.get('scatterRadius'), `${f}.scatterRadius`);
    if (c.has('scatterReference')) s.scatterReference = scalar(c.get('scatterReference'), `${f}.scatterReference`);
    if (c.has('scatterRho')) s.scatterRho = metaNumber(c.get('scatterRho'), `${f}.scatterRho`);
    if (c.has('scatterRhoTau')) s.scatterRhoTau = metaNumber(c.get('scatterRhoTau'), `${f}.scatterRhoTau`);
    if (c.has('exactScatter')) s.exactScatter = metaNumbers(c.get('exactScatter'), `${f}.exactScatter`);
    out.summary = s;
  }
  const source = get('source');
  if (source !== undefined) out.source = scalar(source, field('source'));
  return out;
}
