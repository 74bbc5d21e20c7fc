import { Observable } from 'rxjs';

interface Waiter {
  start(): void;
}

/**
 * Per-key concurrency limit for cold observables: at most `limit` subscriptions per key run at once, the
 * rest wait in FIFO order. A waiter that is unsubscribed leaves the queue; a running one frees its slot when
 * it completes, errs or is unsubscribed. Holds no timers.
 */
export class DepotGate {
  readonly #limit: number;
  readonly #active = new Map<string, number>();
  readonly #queues = new Map<string, Waiter[]>();

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Subscriptions running for `key`. */
  active(key: string): number {
    return this.#active.get(key) ?? 0;
  }

  /** Subscriptions waiting for `key`. */
  waiting(key: string): number {
    return this.#queues.get(key)?.length ?? 0;
  }

  /** `source`, started only when `key` has a free slot. */
  run<T>(key: string, source: Observable<T>): Observable<T> {
    return new Observable<T>((subscriber) => {
      let state: 'waiting' | 'running' | 'done' = 'waiting';
      let inner: { unsubscribe(): void } | undefined;
      const release = (): void => {
        if (state !== 'running') return;
        state = 'done';
        this.#active.set(key, this.active(key) - 1);
        this.#next(key);
      };
      const waiter: Waiter = {
        start: () => {
          state = 'running';
          this.#active.set(key, this.active(key) + 1);
          inner = source.subscribe({
            next: (v) => subscriber.next(v),
            error: (e: unknown) => {
              release();
              subscriber.error(e);
            },
            complete: () => {
              release();
              subscriber.complete();
            },
          });
        },
      };
      if (this.active(key) < this.#limit) waiter.start();
      else {
        const q = this.#queues.get(key) ?? [];
        q.push(waiter);
        this.#queues.set(key, q);
      }
      return () => {
        if (state === 'waiting') {
          const q = this.#queues.get(key);
          const i = q?.indexOf(waiter) ?? -1;
          if (i >= 0) q!.splice(i, 1);
          if (q?.length === 0) this.#queues.delete(key);
          state = 'done';
          return;
        }
        inner?.unsubscribe();
        release();
      };
    });
  }

  #next(key: string): void {
    const q = this.#queues.get(key);
    if (q === undefined) return;
    while (q.length > 0 && this.active(key) < this.#limit) q.shift()!.start();
    if (q.length === 0) this.#queues.delete(key);
  }
}
