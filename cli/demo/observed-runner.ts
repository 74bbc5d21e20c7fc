import { Observable } from 'rxjs';
import { depotId, type OpAnswer, type OpAttempt, type OpRunner } from '../../framework/index.js';

/** What the demo learns from each op attempt. */
export interface AttemptObserver {
  answered(depot: string, latencyMs: number): void;
  failed(depot: string, reason: string): void;
  /**
   * An attempt has run longer than `slowMs` without an answer, or the depot's last few attempts were all
   * abandoned for a faster replica (hedging hides a hung depot from the job, not from the dashboard).
   */
  slow(depot: string, elapsedMs: number): void;
}

/** Attempts abandoned in a row (a faster replica answered first) before a depot is shown as slow. */
const ABANDONED_BEFORE_SLOW = 3;

/**
 * An op runner that reports every attempt's outcome (for the dashboard's depot states) and otherwise
 * behaves exactly as the runner it wraps.
 */
export class ObservedRunner implements OpRunner {
  /** Attempts abandoned in a row, per depot, since its last answer. */
  readonly #abandoned = new Map<string, number>();

  constructor(
    private readonly inner: OpRunner,
    private readonly observer: AttemptObserver,
    private readonly slowMs: number,
  ) {}

  run(attempt: OpAttempt): Observable<OpAnswer> {
    return new Observable<OpAnswer>((subscriber) => {
      const depot = depotId(attempt.replica.depot);
      const started = performance.now();
      let settled = false;
      const timer = setTimeout(() => this.observer.slow(depot, performance.now() - started), this.slowMs);
      const sub = this.inner.run(attempt).subscribe({
        next: (answer) => {
          settled = true;
          this.#abandoned.set(depot, 0);
          clearTimeout(timer);
          this.observer.answered(answer.ranOn, performance.now() - started);
          subscriber.next(answer);
        },
        error: (e: unknown) => {
          settled = true;
          clearTimeout(timer);
          this.observer.failed(depot, (e as Error).message ?? String(e));
          subscriber.error(e);
        },
        complete: () => subscriber.complete(),
      });
      return () => {
        clearTimeout(timer);
        sub.unsubscribe();
        if (settled) return;
        const n = (this.#abandoned.get(depot) ?? 0) + 1;
        this.#abandoned.set(depot, n);
        if (n >= ABANDONED_BEFORE_SLOW) this.observer.slow(depot, performance.now() - started);
      };
    });
  }

  offers(depots: Parameters<NonNullable<OpRunner['offers']>>[0], op: Parameters<NonNullable<OpRunner['offers']>>[1]) {
    return this.inner.offers?.(depots, op) ?? Promise.resolve(new Map<string, boolean>());
  }
}
