import { checkClosedUnit, checkOpenUnit } from './errors.js';
import type { Inclusion } from './types.js';

/** Default floor π_min of a block's answer probability (keeps 1/π bounded). */
export const DEFAULT_PI_MIN = 0.05;

/**
 * A block's answer probability from its replicas' reliabilities, with hedging over replicas:
 * π_b = 1 − Π_r (1 − p_r), clipped to [π_min, 1]. The same formula on the lower quantiles
 * gives the conservative value used in bounds. Assumes replicas fail independently of each other.
 *
 * @param replicas - one {p, pLower} per replica (an empty list gives π_min)
 * @throws CoordinatorError `COORD_E_INVALID_ARGUMENT` for a probability outside [0, 1] or pLower > p
 */
export function blockInclusion(replicas: readonly Inclusion[], piMin = DEFAULT_PI_MIN): Inclusion {
  checkOpenUnit('piMin', piMin);
  let missP = 1;
  let missLower = 1;
  replicas.forEach((r, i) => {
    checkClosedUnit(`replicas[${i}].p`, r.p);
    checkClosedUnit(`replicas[${i}].pLower`, r.pLower);
    missP *= 1 - r.p;
    missLower *= 1 - Math.min(r.pLower, r.p);
  });
  const clip = (x: number): number => Math.min(1, Math.max(piMin, x));
  return { p: clip(1 - missP), pLower: clip(1 - missLower) };
}
