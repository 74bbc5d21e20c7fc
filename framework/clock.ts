/**
 * The framework's one source of time. Everything that reads the time or waits (lease decisions, the
 * warmer, the work queue, the coordinator) takes a {@link Clock}, so tests run on virtual time:
 * {@link ManualClock} for plain tests, {@link schedulerClock} to drive the framework from an rxjs
 * scheduler (`TestScheduler`, `VirtualTimeScheduler`) together with the streams it schedules.
 */

/** Opaque: pass it back only to the `clearTimeout` of the clock that returned it. */
export type TimerHandle = unknown;

/** A time source with timers. `now()` is milliseconds since the Unix epoch (or a virtual origin). */
export interface Clock {
  now(): number;
  /** Runs `fn` once, `ms` (≥ 0) from now. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /** Cancels a timer that has not run; unknown or spent handles are ignored. */
  clearTimeout(handle: TimerHandle): void;
}

/** Wall-clock time and Node's timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

interface ManualTimer {
  readonly at: number;
  readonly seq: number;
  readonly fn: () => void;
}

/** Timers a single {@link ManualClock.advance} may fire before it reports a runaway timer loop. */
export const MANUAL_CLOCK_MAX_FIRINGS = 1_000_000;

/**
 * Virtual time for tests: it stands still until {@link advance} moves it, and then fires every timer
 * that falls due on the way, in due-time order (ties in the order they were set), with `now()` at
 * each timer's due time. Timers set by a firing timer run in the same advance when they fall due
 * within it.
 */
export class ManualClock implements Clock {
  #now: number;
  #seq = 0;
  readonly #timers = new Map<number, ManualTimer>();

  constructor(startMs = 0) {
    this.#now = startMs;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const seq = ++this.#seq;
    this.#timers.set(seq, { at: this.#now + Math.max(0, Number.isFinite(ms) ? ms : 0), seq, fn });
    return seq;
  }

  clearTimeout(handle: TimerHandle): void {
    if (typeof handle === 'number') this.#timers.delete(handle);
  }

  /** Timers set and not yet fired or cleared. */
  get pendingTimers(): number {
    return this.#timers.size;
  }

  /** Moves time forward by `ms` (≥ 0), firing the timers due on the way. */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`ManualClock.advance: ms must be ≥ 0 (got ${ms})`);
    this.advanceTo(this.#now + ms);
  }

  /** Moves time forward to `t` (never back), firing the timers due on the way. */
  advanceTo(t: number): void {
    if (!(t >= this.#now)) throw new RangeError(`ManualClock.advanceTo: ${t} is before now (${this.#now})`);
    for (let fired = 0; ; fired++) {
      let next: ManualTimer | undefined;
      for (const timer of this.#timers.values()) {
        if (timer.at <= t && (next === undefined || timer.at < next.at || (timer.at === next.at && timer.seq < next.seq))) {
          next = timer;
        }
      }
      if (next === undefined) break;
      if (fired >= MANUAL_CLOCK_MAX_FIRINGS) throw new RangeError('ManualClock.advanceTo: timers keep setting due timers');
      this.#timers.delete(next.seq);
      this.#now = next.at;
      next.fn();
    }
    this.#now = t;
  }
}

/**
 * The part of an rxjs `SchedulerLike` the framework needs (rxjs itself is not required): `now()` and
 * `schedule(work, delay)` returning something to `unsubscribe()`.
 */
export interface SchedulerLikeClock {
  now(): number;
  schedule(work: () => void, delay?: number): { unsubscribe(): void };
}

/**
 * A clock that reads and waits on a scheduler, so the framework's timers and an rxjs pipeline share
 * one (possibly virtual) time: `schedulerClock(testScheduler)` inside `testScheduler.run(…)`.
 */
export function schedulerClock(scheduler: SchedulerLikeClock): Clock {
  return {
    now: () => scheduler.now(),
    setTimeout: (fn, ms) => scheduler.schedule(() => fn(), Math.max(0, ms)),
    clearTimeout: (handle) => {
      const sub = handle as { unsubscribe?: () => void } | undefined;
      if (typeof sub?.unsubscribe === 'function') sub.unsubscribe();
    },
  };
}

/**
 * Resolves after `ms` on `clock`; rejects with the signal's reason if `signal` aborts first (the
 * timer is then cleared).
 */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted === true) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clock.clearTimeout(handle);
      reject(signal!.reason);
    };
    const handle = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
