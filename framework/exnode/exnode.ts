import { parseCapability, type Capability } from '../../ibp/index.js';
import { FrameworkError, FrameworkErrorCode } from '../errors.js';

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

function invalid(field: string, rule: string, actual?: unknown): FrameworkError {
  const got = actual === undefined ? '' : ` (got ${JSON.stringify(actual)?.slice(0, 80)})`;
  return new FrameworkError(FrameworkErrorCode.EXNODE_INVALID, `invalid exNode: \`${field}\` ${rule}${got}`, {
    details: { field },
  });
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
  });
  return x;
}
