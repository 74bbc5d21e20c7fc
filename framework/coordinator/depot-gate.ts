import { Observable } from 'rxjs';

interface Waiter {
  readonly start: (arg: never) => void;
  readonly arg: unknown;
  state: 'waiting' | 'running' | 'done';
}

/**
 * Per-key concurrency limit: at most `limit` holders per key run at once, the rest wait in FIFO order.
 * {@link acquire} is the callback form the engine uses per attempt (no observable per op); {@link run}
 * wraps a cold observable. A waiter that gives up leaves the queue; a running one frees its slot when it
 * releases. Holds no timers.
 */
export class DepotGate {
  readonly #limit: number;
  readonly #active = new Map<string, number>();
  readonly #queues = new Map<string, Waiter[]>();

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Holders running for `key`. */
  active(key: string): number {
    return this.#active.get(key) ?? 0;
  }

  /** Holders waiting for `key`. */
  waiting(key: string): number {
    return this.#queues.get(key)?.length ?? 0;
  }

  /**
   * Calls `start(arg)` as soon as `key` has a free slot (at once if it has one). The returned function
   * releases the slot once started, or leaves the queue if not; calling it again does nothing.
   */
  acquire<T>(key: string, start: (arg: T) => void, arg: T): () => void {
    const waiter: Waiter = { start: start as (arg: never) => void, arg, state: 'waiting' };
    const active = this.#active.get(key) ?? 0;
    if (active < this.#limit) {
      waiter.state = 'running';
      this.#active.set(key, active + 1);
      start(arg);
    } else {
      const q = this.#queues.get(key);
      if (q === undefined) this.#queues.set(key, [waiter]);
      else q.push(waiter);
    }
    return () => {
      if (waiter.state === 'running') {
        waiter.state = 'done';
        this.#active.set(key, (this.#active.get(key) ?? 1) - 1);
        this.#next(key);
      } else if (waiter.state === 'waiting') {
        waiter.state = 'done';
        const q = this.#queues.get(key);
        const i = q?.indexOf(waiter) ?? -1;
        if (i >= 0) q!.splice(i, 1);
        if (q?.length === 0) this.#queues.delete(key);
      }
    };
  }

  /** `source`, subscribed only when `key` has a free slot; the slot is freed when it ends or is unsubscribed. */
  run<T>(key: string, source: Observable<T>): Observable<T> {
    return new Observable<T>((subscriber) => {
      let inner: { unsubscribe(): void } | undefined;
      // Filled once acquire returns (a source may end synchronously inside it).
      const slot: { release?: () => void } = {};
      let ended = false;
      const end = (): void => {
        ended = true;
        slot.release?.();
      };
      const release = this.acquire(
        key,
        () => {
          inner = source.subscribe({
            next: (v) => subscriber.next(v),
            error: (e: unknown) => {
              end();
              subscriber.error(e);
            },
            complete: () => {
              end();
              subscriber.complete();
            },
          });
        },
        undefined,
      );
      // A source that ended synchronously inside acquire frees its slot now.
      if (ended) release();
      else slot.release = release;
      return () => {
        inner?.unsubscribe();
        release();
      };
    });
  }

  #next(key: string): void {
    const q = this.#queues.get(key);
    if (q === undefined) return;
    while (q.length > 0 && (this.#active.get(key) ?? 0) < this.#limit) {
      const w = q.shift()!;
      w.state = 'running';
      this.#active.set(key, (this.#active.get(key) ?? 0) + 1);
      (w.start as (arg: unknown) => void)(w.arg);
    }
    if (q.length === 0) this.#queues.delete(key);
  }
}
