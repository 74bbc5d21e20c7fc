import { XMLBuilder, XMLParser } from 'fast-xml-parser';
import { FrameworkError, FrameworkErrorCode } from '../errors.js';
import { validateExnode, type Dtype, type Exnode, type Mapping } from './exnode.js';

/** Namespace of LoRS `.xnd` exNodes. */
export const XND_NAMESPACE = 'http://loci.cs.utk.edu/exnode';

type MetaType = 'string' | 'integer' | 'double' | 'meta';
interface XmlMeta {
  '@_name': string;
  '@_type': MetaType;
  '#text'?: string | number;
}

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  parseTagValue: false,
  trimValues: true,
  isArray: (name) => ['exnode:metadata', 'exnode:mapping', 'exnode:argument', 'exnode:function'].includes(name),
});
const builder = new XMLBuilder({ ignoreAttributes: false, attributeNamePrefix: '@_', format: true, suppressEmptyNode: true });

function meta(name: string, type: MetaType, value: string | number): XmlMeta {
  return { '@_name': name, '@_type': type, '#text': String(value) };
}

/**
 * Serializes an exNode as a LoRS `.xnd` document: root `<exnode>` with the `exnode` namespace,
 * file metadata, and per mapping `exnode_offset`, `logical_length`, `alloc_offset`, `alloc_length`,
 * `e2e_blocksize`, lease `start`/`end` (seconds) metadata and the read/write/manage caps. The
 * SHA-256 of a mapping travels as metadata `anvil_sha256`, which LoRS readers ignore.
 */
export function toXnd(x: Exnode): string {
  const top: XmlMeta[] = [
    meta('Version', 'string', '3.0'),
    meta('filename', 'string', x.name),
    meta('lorsversion', 'double', '0.828000'),
    meta('original_filesize', 'integer', x.size),
    meta('anvil_created_ms', 'integer', x.createdMs),
    meta('anvil_modified_ms', 'integer', x.modifiedMs),
  ];
  if (x.dtype !== undefined) top.push(meta('anvil_dtype', 'string', x.dtype));
  if (x.shape !== undefined) top.push(meta('anvil_shape', 'string', x.shape.join('x')));
  const mappings = x.mappings.map((m) => {
    const md: XmlMeta[] = [
      meta('exnode_offset', 'integer', m.exnodeOffset),
      meta('logical_length', 'integer', m.logicalLength),
      meta('alloc_offset', 'integer', m.allocOffset),
      meta('alloc_length', 'integer', m.allocLength),
      meta('e2e_blocksize', 'integer', 0),
      meta('start', 'integer', Math.floor(m.leaseStartMs / 1000)),
      meta('end', 'integer', Math.floor(m.leaseEndMs / 1000)),
    ];
    if (m.sha256 !== undefined) md.push(meta('anvil_sha256', 'string', m.sha256));
    const node: Record<string, unknown> = { 'exnode:metadata': md, 'exnode:read': m.read };
    if (m.write !== undefined) node['exnode:write'] = m.write;
    if (m.manage !== undefined) node['exnode:manage'] = m.manage;
    return node;
  });
  const doc = { exnode: { '@_xmlns:exnode': XND_NAMESPACE, 'exnode:metadata': top, 'exnode:mapping': mappings } };
  return `<?xml version="1.0"?>\n${builder.build(doc) as string}`;
}

function invalid(field: string, rule: string): FrameworkError {
  return new FrameworkError(FrameworkErrorCode.EXNODE_INVALID, `invalid exNode: \`${field}\` ${rule}`, { details: { field } });
}

function metaMap(list: unknown, where: string): Map<string, string> {
  const out = new Map<string, string>();
  if (list === undefined) return out;
  for (const [i, m] of (list as XmlMeta[]).entries()) {
    if (typeof m !== 'object' || m === null || typeof m['@_name'] !== 'string') {
      throw invalid(`${where}metadata[${i}]`, 'must have a name attribute');
    }
    out.set(m['@_name'], m['#text'] === undefined ? '' : String(m['#text']));
  }
  return out;
}

function intMeta(md: Map<string, string>, name: string, where: string, fallback?: number): number {
  const v = md.get(name);
  if (v === undefined) {
    if (fallback !== undefined) return fallback;
    throw invalid(`${where}${name}`, 'is required');
  }
  // LoRS writes integers, sometimes as doubles ("3600.000000").
  if (!/^-?\d+(\.0*)?$/.test(v.trim())) throw invalid(`${where}${name}`, `must be an integer (got ${JSON.stringify(v)})`);
  return Number.parseInt(v, 10);
}

/** Parses a LoRS `.xnd` document. Throws `FW_ERR_EXNODE_INVALID` naming the field. */
export function fromXnd(text: string): Exnode {
  let doc: Record<string, unknown>;
  try {
    doc = parser.parse(text, true) as Record<string, unknown>;
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
  const md = metaMap(root['exnode:metadata'], '');
  const mappings: Mapping[] = ((root['exnode:mapping'] as Record<string, unknown>[] | undefined) ?? []).map((m, i) => {
    const where = `mappings[${i}].`;
    const mm = metaMap(m['exnode:metadata'], where);
    // LoRS end-to-end conditioning (encryption, compression, checksummed blocks) changes the stored
    // bytes; serving them as file content would be wrong, so such exNodes are refused outright.
    const fn = (m['exnode:function'] as Array<Record<string, unknown>> | undefined)?.[0]?.['@_name'];
    if (fn !== undefined) throw invalid(`${where}function`, `LoRS end-to-end function "${String(fn)}" is not supported`);
    if ((mm.get('e2e_blocksize') ?? '0').trim().replace(/\.0*$/, '') !== '0') {
      throw invalid(`${where}e2e_blocksize`, 'end-to-end blocks (LoRS conditioning) are not supported');
    }
    const logicalLength = intMeta(mm, 'logical_length', where);
    const capText = (k: string) => {
      const v = m[`exnode:${k}`];
      return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
    };
    const read = capText('read');
    if (read === undefined) throw invalid(`${where}read`, 'is required');
    return {
      exnodeOffset: intMeta(mm, 'exnode_offset', where),
      logicalLength,
      allocOffset: intMeta(mm, 'alloc_offset', where, 0),
      allocLength: intMeta(mm, 'alloc_length', where, logicalLength),
      read,
      write: capText('write'),
      manage: capText('manage'),
      leaseStartMs: intMeta(mm, 'start', where, 0) * 1000,
      leaseEndMs: intMeta(mm, 'end', where, 0) * 1000,
      sha256: mm.get('anvil_sha256'),
    };
  });
  const sizeMeta = md.get('original_filesize') ?? md.get('size');
  const size =
    sizeMeta !== undefined
      ? intMeta(md, md.has('original_filesize') ? 'original_filesize' : 'size', '')
      : Math.max(0, ...mappings.map((m) => m.exnodeOffset + m.logicalLength));
  const dtype = md.get('anvil_dtype') as Dtype | undefined;
  const shapeText = md.get('anvil_shape');
  return validateExnode({
    name: md.get('filename') ?? '',
    size,
    createdMs: intMeta(md, 'anvil_created_ms', '', 0),
    modifiedMs: intMeta(md, 'anvil_modified_ms', '', 0),
    dtype,
    shape: shapeText === undefined ? undefined : shapeText.split('x').map(Number),
    mappings,
  });
}
