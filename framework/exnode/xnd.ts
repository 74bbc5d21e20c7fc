import { XMLBuilder, XMLParser } from 'fast-xml-parser';
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
import { formatDouble, formatLocalTime, invalidExnode, parseLeaseTime, type MetaEntry } from './metadata.js';

/** Namespace of LoRS `.xnd` exNodes. */
export const XND_NAMESPACE = 'http://loci.cs.utk.edu/exnode';
/** The LoRS version this serializer writes as (`lorsversion`). */
export const XND_LORS_VERSION = 2;
/** Prefix of the metadata Anvil adds to a LoRS document (LoRS keeps it and does not read it). */
export const XND_ANVIL_PREFIX = 'anvil_';

interface XmlMeta {
  '@_name'?: unknown;
  '@_type'?: unknown;
  '#text'?: unknown;
  'exnode:metadata'?: XmlMeta[];
}

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  parseTagValue: false,
  parseAttributeValue: false,
  // String metadata is kept exactly, spaces included; caps are trimmed where they are read.
  trimValues: false,
  isArray: (name) => ['exnode:metadata', 'exnode:mapping', 'exnode:argument', 'exnode:function'].includes(name),
});
const builder = new XMLBuilder({ ignoreAttributes: false, attributeNamePrefix: '@_', format: true, suppressEmptyNode: true });

/** File metadata this serializer reads into the model (and writes from it). */
const FILE_NAMES = new Set([
  'Version',
  'filename',
  'lorsversion',
  'mode',
  'size',
  'original_filesize',
  'created',
  'modified',
  'anvil_created_ms',
  'anvil_modified_ms',
  'anvil_dtype',
  'anvil_shape',
]);
/** Mapping metadata this serializer reads into the model (and writes from it). */
const MAPPING_NAMES = new Set([
  'exnode_offset',
  'logical_length',
  'alloc_offset',
  'alloc_length',
  'e2e_blocksize',
  'start',
  'end',
  'anvil_start_ms',
  'anvil_end_ms',
  ...ANVIL_MAPPING_META.map((n) => `${XND_ANVIL_PREFIX}${n}`),
]);

function toXml(e: MetaEntry): XmlMeta {
  if (e.type === 'meta') {
    return { '@_name': e.name, '@_type': 'meta', 'exnode:metadata': sortByName(e.children).map(toXml) };
  }
  // LoRS has no JSON type: a JSON value from a UNIS document travels as its text.
  return { '@_name': e.name, '@_type': e.type === 'json' ? 'string' : e.type, '#text': e.value };
}

/** LoRS keeps metadata in a tree keyed by name and writes it in that order; so does this serializer. */
function sortByName(entries: readonly MetaEntry[]): MetaEntry[] {
  return [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

const int = (name: string, v: number): MetaEntry => ({ name, type: 'integer', value: String(v) });
const str = (name: string, v: string): MetaEntry => ({ name, type: 'string', value: v });

/**
 * Serializes an exNode as LoRS 2.0 writes one: root `<exnode>` in the `exnode` namespace; file
 * metadata `Version`, `created`, `filename`, `lorsversion`, `mode`, `modified`, `parent`, `size`
 * (and `duration`, the lease asked for at upload, when the exNode has it in `extra`, as LoRS 0.8
 * files did not); per mapping `alloc_length`, `alloc_offset`, `e2e_blocksize`, `exnode_offset`,
 * `logical_length` and the lease `start`/`end` as local-time strings, then the caps; metadata sorted
 * by name as LoRS sorts it. Anvil's own fields travel as `anvil_*` metadata, which LoRS keeps and
 * ignores (exact times in ms, SHA-256, dataset fields, dtype and shape); metadata read from another
 * tool is written back as it was.
 */
export function toXnd(x: Exnode): string {
  const extra = x.extra ?? [];
  const has = (name: string) => extra.some((e) => e.name === name);
  const top: MetaEntry[] = [
    str('Version', '3.0'),
    str('filename', x.name),
    { name: 'lorsversion', type: 'double', value: formatDouble(XND_LORS_VERSION) },
    str('mode', 'file'),
    int('size', x.size),
    int('created', Math.floor(x.createdMs / 1000)),
    int('modified', Math.floor(x.modifiedMs / 1000)),
    int('anvil_created_ms', x.createdMs),
    int('anvil_modified_ms', x.modifiedMs),
  ];
  if (x.dtype !== undefined) top.push(str('anvil_dtype', x.dtype));
  if (x.shape !== undefined) top.push(str('anvil_shape', x.shape.join('x')));
  if (!has('parent')) top.push(str('parent', ''));
  top.push(...extra);
  const mappings = x.mappings.map((m) => {
    const md: MetaEntry[] = [
      int('exnode_offset', m.exnodeOffset),
      int('logical_length', m.logicalLength),
      int('alloc_offset', m.allocOffset),
      int('alloc_length', m.allocLength),
      int('e2e_blocksize', 0),
      str('start', formatLocalTime(m.leaseStartMs)),
      str('end', formatLocalTime(m.leaseEndMs)),
      int('anvil_start_ms', m.leaseStartMs),
      int('anvil_end_ms', m.leaseEndMs),
      ...anvilMappingMeta(m).map((e) => ({ ...e, name: `${XND_ANVIL_PREFIX}${e.name}` })),
      ...(m.extra ?? []),
    ];
    const node: Record<string, unknown> = { 'exnode:metadata': sortByName(md).map(toXml), 'exnode:read': m.read };
    if (m.write !== undefined) node['exnode:write'] = m.write;
    if (m.manage !== undefined) node['exnode:manage'] = m.manage;
    return node;
  });
  const doc = {
    exnode: { '@_xmlns:exnode': XND_NAMESPACE, 'exnode:metadata': sortByName(top).map(toXml), 'exnode:mapping': mappings },
  };
  return `<?xml version="1.0"?>\n${builder.build(doc) as string}`;
}

/** File metadata equal to what {@link toXnd} writes when it has none: not kept, it comes back by itself. */
function isDefault(e: MetaEntry): boolean {
  return e.name === 'parent' && e.type === 'string' && e.value === '';
}

function invalid(field: string, rule: string): FrameworkError {
  return invalidExnode(field, rule);
}

const META_TYPES = new Set(['string', 'integer', 'double', 'meta']);

/** The metadata elements of a parent as typed entries, in document order. */
function readMeta(list: XmlMeta[] | undefined, where: string, depth = 0): MetaEntry[] {
  if (list === undefined) return [];
  if (depth > 16) throw invalid(`${where}metadata`, 'nests deeper than 16 levels');
  return list.map((m, i) => {
    if (typeof m !== 'object' || m === null || typeof m['@_name'] !== 'string' || m['@_name'] === '') {
      throw invalid(`${where}metadata[${i}]`, 'must have a name attribute');
    }
    const name = m['@_name'];
    const type = m['@_type'] ?? 'string';
    if (typeof type !== 'string' || !META_TYPES.has(type)) {
      throw invalid(`${where}${name}`, `has an unknown metadata type ${JSON.stringify(type)}`);
    }
    if (type === 'meta') return { name, type, children: readMeta(m['exnode:metadata'], `${where}${name}.`, depth + 1) };
    const text = m['#text'];
    return { name, type: type as 'string' | 'integer' | 'double', value: text === undefined ? '' : String(text) };
  });
}

/** Entries by name (the first of a name wins, as a LoRS lookup finds it). */
function byName(entries: readonly MetaEntry[]): Map<string, MetaEntry> {
  const out = new Map<string, MetaEntry>();
  for (const e of entries) if (!out.has(e.name)) out.set(e.name, e);
  return out;
}

function text(md: Map<string, MetaEntry>, name: string, where: string): string | undefined {
  const e = md.get(name);
  if (e === undefined) return undefined;
  if (e.type === 'meta') throw invalid(`${where}${name}`, 'must be a value, not a metadata list');
  return e.value;
}

function intMeta(md: Map<string, MetaEntry>, name: string, where: string, fallback?: number): number {
  const v = text(md, name, where);
  if (v === undefined) {
    if (fallback !== undefined) return fallback;
    throw invalid(`${where}${name}`, 'is required');
  }
  // LoRS writes integers, sometimes as doubles ("3600.000000").
  if (!/^\s*\d+(\.0*)?\s*$/.test(v)) throw invalid(`${where}${name}`, `must be an integer (got ${JSON.stringify(v)})`);
  const n = Number.parseInt(v.trim(), 10);
  if (!Number.isSafeInteger(n)) throw invalid(`${where}${name}`, `must be a safe integer (got ${JSON.stringify(v)})`);
  return n;
}

/**
 * A time kept both in LoRS's form (`lorsText`, seconds) and as Anvil's exact ms: the exact value is
 * used while it still agrees with the LoRS one, which wins once another tool changed it.
 */
function exactTime(lors: number | undefined, lorsText: string | undefined, exact: number | undefined): number {
  if (exact !== undefined) {
    if (lors === undefined) return exact;
    const agrees =
      lorsText !== undefined && !/^\s*\d+(\.0*)?\s*$/.test(lorsText)
        ? formatLocalTime(exact) === lorsText.trim().replace('T', ' ')
        : Math.floor(exact / 1000) * 1000 === lors;
    if (agrees) return exact;
  }
  return lors ?? 0;
}

function leaseMeta(md: Map<string, MetaEntry>, name: 'start' | 'end', where: string): number {
  const v = text(md, name, where);
  const lors = v === undefined ? undefined : parseLeaseTime(v);
  if (v !== undefined && lors === undefined) {
    throw invalid(
      `${where}${name}`,
      `must be epoch seconds or a local time "YYYY-MM-DD HH:MM:SS" (got ${JSON.stringify(v.slice(0, 40))})`,
    );
  }
  const exact = md.has(`anvil_${name}_ms`) ? intMeta(md, `anvil_${name}_ms`, where) : undefined;
  return exactTime(lors, v, exact);
}

/**
 * Parses a LoRS `.xnd` document: LoRS 2.0's vocabulary (lease strings, `size`, `created`, …) and
 * older LoRS and Anvil files (integer leases, `original_filesize`). Metadata it does not interpret is
 * kept in `extra`. Throws `FW_ERR_EXNODE_INVALID` naming the field.
 */
export function fromXnd(textIn: string): Exnode {
  let doc: Record<string, unknown>;
  try {
    doc = parser.parse(textIn, true) as Record<string, unknown>;
  } catch (e) {
    throw new FrameworkError(FrameworkErrorCode.EXNODE_INVALID, `invalid exNode: not well-formed XML: ${(e as Error).message}`, {
      cause: e,
    });
  }
  const root = (doc['exnode'] ?? doc['exnode:exnode']) as Record<string, unknown> | undefined;
  if (root === undefined || typeof root !== 'object') throw invalid('exnode', 'root element is missing');
  // Elements are read by their `exnode:` prefix, so that prefix must be bound to the exNode namespace.
  if (root['@_xmlns:exnode'] !== XND_NAMESPACE) {
    throw invalid('exnode', `must declare xmlns:exnode="${XND_NAMESPACE}" (other prefixes and default namespaces are not read)`);
  }
  const topEntries = readMeta(root['exnode:metadata'] as XmlMeta[] | undefined, '');
  const md = byName(topEntries);
  const mappings: Mapping[] = ((root['exnode:mapping'] as Record<string, unknown>[] | undefined) ?? []).map((m, i) => {
    const where = `mappings[${i}].`;
    const entries = readMeta(m['exnode:metadata'] as XmlMeta[] | undefined, where);
    const mm = byName(entries);
    // LoRS end-to-end conditioning (encryption, compression, checksummed blocks) changes the stored
    // bytes; serving them as file content would be wrong, so such exNodes are refused outright.
    const fn = (m['exnode:function'] as Array<Record<string, unknown>> | undefined)?.[0]?.['@_name'];
    if (fn !== undefined) throw invalid(`${where}function`, `LoRS end-to-end function "${String(fn)}" is not supported`);
    if ((text(mm, 'e2e_blocksize', where) ?? '0').trim().replace(/\.0*$/, '') !== '0') {
      throw invalid(`${where}e2e_blocksize`, 'end-to-end blocks (LoRS conditioning) are not supported');
    }
    const logicalLength = intMeta(mm, 'logical_length', where);
    const capText = (k: string) => {
      const v = m[`exnode:${k}`];
      return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
    };
    const read = capText('read');
    if (read === undefined) throw invalid(`${where}read`, 'is required');
    const anvil = readAnvilMappingMeta(
      (name) => mm.get(`${XND_ANVIL_PREFIX}${name}`),
      (name) => `${where}${XND_ANVIL_PREFIX}${name}`,
    );
    const extra = entries.filter((e) => !MAPPING_NAMES.has(e.name));
    return {
      exnodeOffset: intMeta(mm, 'exnode_offset', where),
      logicalLength,
      allocOffset: intMeta(mm, 'alloc_offset', where, 0),
      allocLength: intMeta(mm, 'alloc_length', where, logicalLength),
      read,
      write: capText('write'),
      manage: capText('manage'),
      leaseStartMs: leaseMeta(mm, 'start', where),
      leaseEndMs: leaseMeta(mm, 'end', where),
      ...anvil,
      ...(extra.length > 0 ? { extra } : {}),
    };
  });
  const mode = text(md, 'mode', '');
  if (mode !== undefined && mode.trim() !== 'file') throw invalid('mode', `must be "file" (got ${JSON.stringify(mode)})`);
  const sizeName = md.has('size') ? 'size' : md.has('original_filesize') ? 'original_filesize' : undefined;
  const size =
    sizeName !== undefined ? intMeta(md, sizeName, '') : Math.max(0, ...mappings.map((m) => m.exnodeOffset + m.logicalLength));
  const seconds = (name: string) => (md.has(name) ? intMeta(md, name, '') * 1000 : undefined);
  const exactMs = (name: string) => (md.has(name) ? intMeta(md, name, '') : undefined);
  const dtype = text(md, 'anvil_dtype', '') as Dtype | undefined;
  const shapeText = text(md, 'anvil_shape', '');
  const extra = topEntries.filter((e) => !FILE_NAMES.has(e.name) && !isDefault(e));
  return validateExnode({
    name: text(md, 'filename', '') ?? '',
    size,
    createdMs: exactTime(seconds('created'), undefined, exactMs('anvil_created_ms')),
    modifiedMs: exactTime(seconds('modified'), undefined, exactMs('anvil_modified_ms')),
    dtype,
    shape: shapeText === undefined ? undefined : shapeText === '' ? [] : shapeText.split('x').map(Number),
    mappings,
    ...(extra.length > 0 ? { extra } : {}),
  });
}
