import { randomUUID } from 'node:crypto';
import { parseCapability } from '../../ibp/index.js';
import { FrameworkError, FrameworkErrorCode } from '../errors.js';
import {
  ANVIL_MAPPING_META,
  anvilMappingMeta,
  readAnvilMappingMeta,
  validateExnode,
  type Dtype,
  type Exnode,
  type Mapping,
} from './exnode.js';
import { invalidExnode as invalid, metaFromJson, metaToJson, type MetaEntry } from './metadata.js';

export const EXNODE_SCHEMA = 'http://unis.crest.iu.edu/schema/exnode/4/exnode#';
export const IBP_EXTENT_SCHEMA = 'http://unis.crest.iu.edu/schema/exnode/ext/1/ibp#';

/**
 * Serializes an exNode as UNIS JSON: the `exnode` schema (times in µs) with its IBP extents inline
 * (`mapping {read, write, manage}`, `alloc_offset`, `alloc_length`, `lifetime {start, end}` as µs
 * strings, `location` `ibp://host:port`). Matrix shape, per-extent SHA-256 and dataset fields
 * (`rows`, `summary`, `source`) go in `properties`, with metadata read from other tools (LoRS's
 * `duration`, unknown UNIS keys) that Anvil keeps without interpreting.
 */
export function toUnisJson(x: Exnode, id: string = randomUUID()): string {
  const extents = x.mappings.map((m) => {
    const cap = parseCapability(m.read)!;
    const host = cap.host.includes(':') ? `[${cap.host}]` : cap.host;
    return {
      $schema: IBP_EXTENT_SCHEMA,
      location: `ibp://${host}:${cap.port}`,
      offset: m.exnodeOffset,
      size: m.logicalLength,
      parent: { href: `#${id}`, rel: 'full' },
      mapping: {
        read: m.read,
        ...(m.write === undefined ? {} : { write: m.write }),
        ...(m.manage === undefined ? {} : { manage: m.manage }),
      },
      alloc_offset: m.allocOffset,
      alloc_length: m.allocLength,
      lifetime: { start: String(m.leaseStartMs * 1000), end: String(m.leaseEndMs * 1000) },
      ...propertiesOf([...anvilMappingMeta(m), ...(m.extra ?? [])]),
    };
  });
  const doc = {
    $schema: EXNODE_SCHEMA,
    id,
    name: x.name,
    size: x.size,
    created: x.createdMs * 1000,
    modified: x.modifiedMs * 1000,
    parent: null,
    mode: 'file',
    ...propertiesOf(x.extra ?? [], {
      ...(x.dtype === undefined ? {} : { dtype: x.dtype }),
      ...(x.shape === undefined ? {} : { shape: x.shape }),
    }),
    extents,
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

/** `{ properties }` holding `entries` (as JSON values) after `fixed`, or nothing when both are empty. */
function propertiesOf(
  entries: readonly MetaEntry[],
  fixed: Record<string, unknown> = {},
): { properties?: Record<string, unknown> } {
  const props: Record<string, unknown> = { ...fixed };
  for (const e of entries) if (!(e.name in props)) props[e.name] = metaToJson(e);
  return Object.keys(props).length === 0 ? {} : { properties: props };
}

/** Keys of an exNode document and of an extent that this serializer reads or writes itself. */
const EXNODE_KEYS = new Set(['$schema', 'id', 'name', 'size', 'created', 'modified', 'parent', 'mode', 'properties', 'extents']);
const EXTENT_KEYS = new Set([
  '$schema',
  'id',
  'location',
  'offset',
  'size',
  'parent',
  'mapping',
  'alloc_offset',
  'alloc_length',
  'lifetime',
  'lifetimes',
  'properties',
]);
const FILE_PROPERTIES = new Set(['dtype', 'shape']);
const MAPPING_PROPERTIES = new Set<string>(ANVIL_MAPPING_META);

/**
 * Metadata this serializer does not interpret: the `properties` it does not know, then keys beside
 * the UNIS fields (which are written back inside `properties`).
 */
function extraOf(
  element: Record<string, unknown>,
  props: Record<string, unknown>,
  known: Set<string>,
  own: Set<string>,
): MetaEntry[] {
  const out: MetaEntry[] = [];
  for (const [k, v] of Object.entries(props)) if (!known.has(k)) out.push(metaFromJson(k, v));
  for (const [k, v] of Object.entries(element)) if (!own.has(k) && !(k in props)) out.push(metaFromJson(k, v));
  return out;
}

function num(v: unknown, field: string): number {
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw invalid(field, 'must be a non-negative integer', v);
  return n;
}

function obj(v: unknown, field: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalid(field, 'must be an object', v);
  return v as Record<string, unknown>;
}

/**
 * Parses a UNIS JSON exNode with inline IBP extents. Accepts both lease forms seen in producers
 * (`lifetime {start,end}` and `lifetimes: [{start,end}]`). Throws `FW_ERR_EXNODE_INVALID`.
 */
export function fromUnisJson(text: string): Exnode {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new FrameworkError(FrameworkErrorCode.EXNODE_INVALID, `invalid exNode: not valid JSON: ${(e as Error).message}`, {
      cause: e,
    });
  }
  const doc = obj(raw, 'exnode');
  if (doc['mode'] !== undefined && doc['mode'] !== 'file') throw invalid('mode', 'must be "file"', doc['mode']);
  if (!Array.isArray(doc['extents'])) throw invalid('extents', 'must be a list of extents', doc['extents']);
  const mappings: Mapping[] = (doc['extents'] as unknown[]).map((e, i) => {
    const f = `extents[${i}].`;
    const ext = obj(e, `extents[${i}]`);
    const mapping = obj(ext['mapping'], `${f}mapping`);
    const life = ext['lifetime'] ?? (Array.isArray(ext['lifetimes']) ? (ext['lifetimes'] as unknown[])[0] : undefined);
    const lifetime = life === undefined ? { start: 0, end: 0 } : obj(life, `${f}lifetime`);
    const props = ext['properties'] === undefined ? {} : obj(ext['properties'], `${f}properties`);
    if (typeof mapping['read'] !== 'string') throw invalid(`${f}mapping.read`, 'is required', mapping['read']);
    const size = num(ext['size'], `${f}size`);
    const anvil = readAnvilMappingMeta(
      (name) => (props[name] === undefined ? undefined : metaFromJson(name, props[name])),
      (name) => `${f}properties.${name}`,
    );
    const extra = extraOf(ext, props, MAPPING_PROPERTIES, EXTENT_KEYS);
    return {
      exnodeOffset: num(ext['offset'], `${f}offset`),
      logicalLength: size,
      allocOffset: ext['alloc_offset'] === undefined ? 0 : num(ext['alloc_offset'], `${f}alloc_offset`),
      allocLength: ext['alloc_length'] === undefined ? size : num(ext['alloc_length'], `${f}alloc_length`),
      read: mapping['read'],
      write: typeof mapping['write'] === 'string' ? mapping['write'] : undefined,
      manage: typeof mapping['manage'] === 'string' ? mapping['manage'] : undefined,
      leaseStartMs: Math.floor(num(lifetime['start'], `${f}lifetime.start`) / 1000),
      leaseEndMs: Math.floor(num(lifetime['end'], `${f}lifetime.end`) / 1000),
      ...anvil,
      ...(extra.length > 0 ? { extra } : {}),
    };
  });
  const props = doc['properties'] === undefined ? {} : obj(doc['properties'], 'properties');
  const extra = extraOf(doc, props, FILE_PROPERTIES, EXNODE_KEYS);
  return validateExnode({
    name: typeof doc['name'] === 'string' ? doc['name'] : '',
    size: num(doc['size'], 'size'),
    createdMs: Math.floor(num(doc['created'] ?? 0, 'created') / 1000),
    modifiedMs: Math.floor(num(doc['modified'] ?? 0, 'modified') / 1000),
    dtype: props['dtype'] as Dtype | undefined,
    shape: props['shape'] as number[] | undefined,
    mappings,
    ...(extra.length > 0 ? { extra } : {}),
  });
}
