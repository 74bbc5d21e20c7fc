import { readFile } from 'node:fs/promises';
import type { DepotAddress } from '../../ibp/index.js';
import { FrameworkError, FrameworkErrorCode } from '../errors.js';

/** Parses `host:port` entries (IPv6 as `[addr]:port`); errors name the entry. */
export function parseDepotList(text: string, source = '--depots'): DepotAddress[] {
  const entries = text
    .split(/[\s,]+/)
    .map((e) => e.replace(/#.*$/, '').trim())
    .filter((e) => e !== '');
  if (entries.length === 0) throw new FrameworkError(FrameworkErrorCode.DEPOT_LIST, `${source}: no depots given`);
  const seen = new Set<string>();
  return entries.map((e) => {
    const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(e);
    const port = m === null ? NaN : Number(m[2]);
    if (m === null || port < 1 || port > 65_535) {
      throw new FrameworkError(FrameworkErrorCode.DEPOT_LIST, `${source}: "${e}" is not host:port`);
    }
    const key = `${m[1]}:${port}`;
    if (seen.has(key)) throw new FrameworkError(FrameworkErrorCode.DEPOT_LIST, `${source}: "${e}" is listed twice`);
    seen.add(key);
    return { host: m[1]!.replace(/^\[(.*)\]$/, '$1'), port };
  });
}

/** Reads a depot file: one `host:port` per line, `#` comments. */
export async function readDepotFile(path: string): Promise<DepotAddress[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new FrameworkError(FrameworkErrorCode.DEPOT_LIST, `cannot read depot file ${path}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  return parseDepotList(
    text
      .split('\n')
      .map((l) => l.replace(/#.*$/, ''))
      .join('\n'),
    path,
  );
}
