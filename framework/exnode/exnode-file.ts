import { randomBytes } from 'node:crypto';
import { readFile, rename, writeFile, rm } from 'node:fs/promises';
import type { Exnode } from './exnode.js';
import { fromUnisJson, toUnisJson } from './unis-json.js';
import { fromXnd, toXnd } from './xnd.js';

/** Parses an exNode document, XML (`.xnd`) or UNIS JSON, told apart by its first character. */
export function parseExnode(text: string): Exnode {
  return text.trimStart().startsWith('<') ? fromXnd(text) : fromUnisJson(text);
}

export async function readExnode(path: string): Promise<Exnode> {
  return parseExnode(await readFile(path, 'utf8'));
}

/** The serialization for a path: JSON for `.json`, LoRS XML otherwise. */
export function formatFor(path: string): 'json' | 'xnd' {
  return path.endsWith('.json') ? 'json' : 'xnd';
}

/** Writes an exNode atomically: a temporary file in the same directory, then a rename. */
export async function writeExnode(path: string, x: Exnode): Promise<void> {
  const text = formatFor(path) === 'json' ? toUnisJson(x) : toXnd(x);
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, text);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}
