import { FrameworkError, FrameworkErrorCode } from '../errors.js';

/**
 * One metadata entry as LoRS types it: a scalar kept as its text (so an integer or a double written by
 * another tool comes back byte for byte), or a `meta` list of entries. `json` holds a JSON value that
 * has no LoRS type (an array, a boolean, null) read from a UNIS document; LoRS XML stores it as a string.
 */
export type MetaEntry =
  | { readonly name: string; readonly type: 'string' | 'integer' | 'double' | 'json'; readonly value: string }
  | { readonly name: string; readonly type: 'meta'; readonly children: readonly MetaEntry[] };

export function invalidExnode(field: string, rule: string, actual?: unknown): FrameworkError {
  const got = actual === undefined ? '' : ` (got ${JSON.stringify(actual)?.slice(0, 80)})`;
  return new FrameworkError(FrameworkErrorCode.EXNODE_INVALID, `invalid exNode: \`${field}\` ${rule}${got}`, {
    details: { field },
  });
}

/** Nesting depth of `meta` lists that a document may have. */
export const MAX_META_DEPTH = 16;

/** Checks entries built by hand or parsed: names non-empty, scalars typed, nesting bounded. */
export function validateMeta(entries: readonly MetaEntry[], where: string, depth = 0): void {
  if (depth > MAX_META_DEPTH) throw invalidExnode(where, `nests metadata deeper than ${MAX_META_DEPTH} levels`);
  entries.forEach((e, i) => {
    const f = `${where}[${i}]`;
    if (typeof e.name !== 'string' || e.name === '') throw invalidExnode(`${f}.name`, 'must be a non-empty string', e.name);
    if (e.type === 'meta') {
      if (!Array.isArray(e.children)) throw invalidExnode(`${f}.children`, 'must be a list of metadata');
      validateMeta(e.children, `${f}.children`, depth + 1);
      return;
    }
    if (typeof e.value !== 'string') throw invalidExnode(`${f}.value`, 'must be a string', e.value);
    if (e.type === 'integer' && !/^\s*-?\d+(\.0*)?\s*$/.test(e.value))
      throw invalidExnode(`${f}.value`, 'must be an integer', e.value);
    if (e.type === 'double' && !Number.isFinite(Number(e.value))) throw invalidExnode(`${f}.value`, 'must be a number', e.value);
    if (e.type === 'json') {
      try {
        JSON.parse(e.value);
      } catch {
        throw invalidExnode(`${f}.value`, 'must be JSON text', e.value);
      }
    }
    if (!['string', 'integer', 'double', 'json'].includes(e.type))
      throw invalidExnode(`${f}.type`, 'is not a metadata type', e.type);
  });
}

/** A JSON value as metadata: objects become `meta` lists, numbers integers or doubles. */
export function metaFromJson(name: string, v: unknown): MetaEntry {
  if (typeof v === 'string') return { name, type: 'string', value: v };
  if (typeof v === 'number' && Number.isFinite(v)) {
    return Number.isSafeInteger(v) ? { name, type: 'integer', value: String(v) } : { name, type: 'double', value: String(v) };
  }
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    return { name, type: 'meta', children: Object.entries(v as Record<string, unknown>).map(([k, c]) => metaFromJson(k, c)) };
  }
  return { name, type: 'json', value: JSON.stringify(v) ?? 'null' };
}

/** The JSON value of an entry (the inverse of {@link metaFromJson}). */
export function metaToJson(e: MetaEntry): unknown {
  switch (e.type) {
    case 'string':
      return e.value;
    case 'integer':
    case 'double':
      return Number(e.value);
    case 'json':
      return JSON.parse(e.value) as unknown;
    case 'meta':
      return Object.fromEntries(e.children.map((c) => [c.name, metaToJson(c)]));
  }
}

// ---- Lease times -------------------------------------------------------------------------------

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** `YYYY-MM-DD HH:MM:SS` in the local time zone, as LoRS writes a mapping's lease bounds. */
export function formatLocalTime(ms: number): string {
  const d = new Date(ms);
  return `${pad(d.getFullYear(), 4)}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

const LOCAL_TIME = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})$/;

/**
 * A lease bound as either tool writes it, in ms since the epoch: integer epoch seconds (Anvil before
 * LoRS 2.0 compatibility, LoRS 0.8) or a LoRS 2.0 local-time string. Undefined when it is neither.
 */
export function parseLeaseTime(text: string): number | undefined {
  const t = text.trim();
  if (/^\d+(\.0*)?$/.test(t)) return Number.parseInt(t, 10) * 1000;
  const m = LOCAL_TIME.exec(t);
  if (m === null) return undefined;
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) return undefined;
  const ms = new Date(y, mo - 1, d, h, mi, s).getTime();
  return Number.isFinite(ms) && ms >= 0 ? ms : undefined;
}

/** `%f` as C prints a double (LoRS's `duration`, `lorsversion`). */
export function formatDouble(v: number): string {
  return v.toFixed(6);
}
