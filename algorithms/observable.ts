import { lastValueFrom, Observable } from 'rxjs';
import type { Estimate } from '../framework/index.js';

/**
 * An algorithm as a cold Observable: subscribing starts it, intermediate estimates are emitted as they come,
 * the last value is final; unsubscribing aborts the run (its ops are abandoned).
 */
export function algorithm$<V>(
  run: (emit: (e: Estimate<V>) => void, signal: AbortSignal) => Promise<Estimate<V>>,
  outer?: AbortSignal,
): Observable<Estimate<V>> {
  return new Observable<Estimate<V>>((subscriber) => {
    const controller = new AbortController();
    const onAbort = (): void => controller.abort(outer?.reason);
    if (outer?.aborted === true) controller.abort(outer.reason);
    else outer?.addEventListener('abort', onAbort, { once: true });
    run((e) => subscriber.next(e), controller.signal).then(
      (e) => {
        subscriber.next(e);
        subscriber.complete();
      },
      (e: unknown) => subscriber.error(e),
    );
    return () => {
      outer?.removeEventListener('abort', onAbort);
      controller.abort(new Error('unsubscribed'));
    };
  });
}

/** The final estimate of an algorithm's stream (a Promise helper). */
export function final<V>(estimates: Observable<Estimate<V>>): Promise<Estimate<V>> {
  return lastValueFrom(estimates);
}
