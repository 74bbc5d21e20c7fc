import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';

const cache = new Map<string, Promise<string>>();

/**
 * A depot's identity for comparisons: `address:port` with the host resolved, so a cap written as
 * `localhost:6714` and a policy entry `127.0.0.1:6714` name the same depot. Unresolvable hosts
 * keep their name.
 */
export function depotIdentity(host: string, port: number): Promise<string> {
  const key = `${host}:${port}`;
  let id = cache.get(key);
  if (id === undefined) {
    id =
      isIP(host) !== 0
        ? Promise.resolve(`${host}:${port}`)
        : lookup(host).then(
            (r) => `${r.address}:${port}`,
            () => `${host.toLowerCase()}:${port}`,
          );
    cache.set(key, id);
  }
  return id;
}
