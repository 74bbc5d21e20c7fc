import { DepotError, parseByteSize } from '../depot/index.js';

/**
 * A byte size flag of a client command (`--block-size 4MiB`). A bad value is that command's
 * argument error, made by `toError` — not a depot configuration error (`DEPOT_ERR_CONFIG`).
 */
export function sizeFlag(value: unknown, flag: string, toError: (message: string) => Error): number {
  try {
    return parseByteSize(value, flag);
  } catch (e) {
    if (!(e instanceof DepotError)) throw e;
    throw toError(
      `${flag} must be a size in bytes, an integer with an optional unit B, KiB, MiB, GiB, TiB, kB, MB, GB or TB (got ${String(value)})`,
    );
  }
}

/**
 * A duration flag of a client command (`--timeout 30s`): `250ms`, `30s`, `2m` or a number of seconds,
 * as whole milliseconds (at least 1). A bad value is that command's argument error, made by `toError`.
 */
export function durationFlag(value: unknown, flag: string, toError: (message: string) => Error): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(String(value).trim());
  const ms = m === null ? NaN : Math.ceil(Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 'm' ? 60_000 : 1000));
  if (!Number.isSafeInteger(ms) || ms < 1 || ms > 2 ** 31 - 1)
    throw toError(`${flag} must be a duration such as 30s, 500ms or 2m (got ${JSON.stringify(value)})`);
  return ms;
}
