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
