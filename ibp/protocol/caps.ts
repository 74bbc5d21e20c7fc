import { CAP_TYPE_WORD, type CapTypeNumber } from './commands.js';

/** Longest capability string accepted (`MAX_CAP_LEN` of the IBP headers). */
export const MAX_CAP_LENGTH = 2048;

/** A parsed IBP capability `ibp://HOST:PORT/RID#KEY/WRMKEY/READ|WRITE|MANAGE`. */
export interface Capability {
  readonly host: string;
  readonly port: number;
  /** Resource id; empty for pre-1.4 caps that carry no `RID#`. */
  readonly rid: string;
  /** The secret part after `RID#`. */
  readonly key: string;
  /** The middle token (ignored by ACCRE-style depots, checked by LoCI-style ones). */
  readonly wrmKey: string;
  readonly type: CapTypeNumber;
}

const TYPE_BY_WORD: Readonly<Record<string, CapTypeNumber>> = { READ: 1, WRITE: 2, MANAGE: 3 };

/** Formats a cap string; IPv6 hosts are bracketed. */
export function formatCapability(cap: Capability): string {
  const host = cap.host.includes(':') ? `[${cap.host}]` : cap.host;
  const ridPart = cap.rid === '' ? cap.key : `${cap.rid}#${cap.key}`;
  return `ibp://${host}:${cap.port}/${ridPart}/${cap.wrmKey}/${CAP_TYPE_WORD[cap.type]}`;
}

/** The two request tokens that name a cap on the wire: `RID#KEY` and the WRM key. */
export function capTokens(cap: Capability): readonly [string, string] {
  return [cap.rid === '' ? cap.key : `${cap.rid}#${cap.key}`, cap.wrmKey];
}

/**
 * Parses a cap string. Returns `undefined` for anything malformed (wrong scheme, bad port,
 * missing parts, spaces or control characters, unknown type word, over {@link MAX_CAP_LENGTH}).
 */
export function parseCapability(text: string): Capability | undefined {
  if (text.length > MAX_CAP_LENGTH || !text.startsWith('ibp://')) return undefined;
  // Printable ASCII only: no spaces, control characters or non-ASCII bytes.
  if (!/^[\x21-\x7e]+$/.test(text)) return undefined;
  const rest = text.slice('ibp://'.length);
  const slash = rest.indexOf('/');
  if (slash < 0) return undefined;
  const authority = rest.slice(0, slash);
  const parts = rest.slice(slash + 1).split('/');
  if (parts.length !== 3) return undefined;
  const [ridKey, wrmKey, word] = parts as [string, string, string];
  const type = TYPE_BY_WORD[word];
  if (type === undefined || ridKey === '' || wrmKey === '') return undefined;

  let host: string;
  let portText: string;
  const bracket = /^\[([0-9A-Fa-f:.]+)\]:(\d{1,5})$/.exec(authority);
  if (bracket !== null) {
    host = bracket[1]!;
    portText = bracket[2]!;
  } else {
    const colon = authority.lastIndexOf(':');
    if (colon <= 0) return undefined;
    host = authority.slice(0, colon);
    portText = authority.slice(colon + 1);
    if (host.includes(':') || !/^\d{1,5}$/.test(portText)) return undefined;
  }
  const port = Number(portText);
  if (port < 1 || port > 65_535) return undefined;

  const hash = ridKey.indexOf('#');
  const rid = hash < 0 ? '' : ridKey.slice(0, hash);
  const key = hash < 0 ? ridKey : ridKey.slice(hash + 1);
  if (key === '' || (hash >= 0 && !/^\d+$/.test(rid))) return undefined;
  return { host, port, rid, key, wrmKey, type };
}
