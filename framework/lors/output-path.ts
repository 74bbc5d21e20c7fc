import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { FrameworkError, FrameworkErrorCode } from '../errors.js';

/**
 * Checks, before any work, that a tool can create `path`: its directory exists and is writable,
 * and `path` is not a directory. Throws `FW_ERR_INVALID_ARGUMENT` naming the path and the reason.
 */
export async function checkOutputPath(path: string, flag = 'output'): Promise<void> {
  const fail = (why: string) => new FrameworkError(FrameworkErrorCode.INVALID_ARGUMENT, `${flag} ${path}: ${why}`);
  const existing = await stat(path).catch(() => undefined);
  if (existing?.isDirectory() === true) throw fail('is a directory; give a file name (e.g. a name inside it)');
  const dir = dirname(resolve(path));
  const parent = await stat(dir).catch(() => undefined);
  if (parent === undefined) throw fail(`directory ${dir} does not exist`);
  if (!parent.isDirectory()) throw fail(`${dir} is not a directory`);
  await access(dir, constants.W_OK).catch(() => {
    throw fail(`directory ${dir} is not writable`);
  });
}
