import type { SchedulerLike, Subscription } from 'rxjs';

/** A pending timer of a {@link TimerQueue}; `cancel()` is idempotent. */
export interface TimerHandle {
  cancel(): void;
}

class Entry implements TimerHandle {
  constructor(
    readonly due: number,
    readonly seq: number,
    public fn: ((arg: never) => void) | undefined,
    readonly arg: unknown,
  ) {}

  cancel(): void {
    this.fn = undefined;
  }
}

/**
 * @internal Many timers on one scheduled action: a binary heap of due times (ties fire in insertion order)
 * and a single scheduler action armed for the earliest one. A job's per-op timeouts and hedge delays go
 * here instead of one scheduler action (a `setInterval`) each; cancelled timers are dropped lazily.
 */
export class TimerQueue {
  readonly #scheduler: SchedulerLike;
  readonly #heap: Entry[] = [];
  #seq = 0;
  #armed: { due: number; action: Subscription } | undefined;
  #closed = false;

  constructor(scheduler: SchedulerLike) {
    this.#scheduler = scheduler;
  }

  /**
   * Calls `fn(arg)` once, `delayMs` from now (scheduler time), unless cancelled or the queue closed first
   * (`arg` lets callers share one `fn` instead of allocating a closure per timer).
   */
  add<T>(delayMs: number, fn: (arg: T) => void, arg: T): TimerHandle {
    const entry = new Entry(this.#scheduler.now() + Math.max(0, delayMs), this.#seq++, fn as (arg: never) => void, arg);
    if (this.#closed) return entry;
    this.#push(entry);
    if (this.#armed === undefined || entry.due < this.#armed.due) this.#arm();
    return entry;
  }

  /** Cancels every timer and the scheduled action. */
  close(): void {
    this.#closed = true;
    this.#heap.length = 0;
    this.#armed?.action.unsubscribe();
    this.#armed = undefined;
  }

  #arm(): void {
    this.#armed?.action.unsubscribe();
    this.#armed = undefined;
    while (this.#heap.length > 0 && this.#heap[0]!.fn === undefined) this.#pop();
    const top = this.#heap[0];
    if (top === undefined) return;
    const due = top.due;
    const action = this.#scheduler.schedule(() => this.#fire(), Math.max(0, due - this.#scheduler.now()));
    // A scheduler that ran the action synchronously already re-armed the queue.
    if (!action.closed) this.#armed = { due, action };
  }

  #fire(): void {
    this.#armed = undefined;
    const now = this.#scheduler.now();
    while (!this.#closed && this.#heap.length > 0 && this.#heap[0]!.due <= now) {
      const e = this.#pop();
      const fn = e.fn as ((arg: unknown) => void) | undefined;
      e.fn = undefined;
      fn?.(e.arg);
    }
    if (!this.#closed && this.#armed === undefined) this.#arm();
  }

  #less(a: Entry, b: Entry): boolean {
    return a.due < b.due || (a.due === b.due && a.seq < b.seq);
  }

  #push(e: Entry): void {
    const h = this.#heap;
    let i = h.push(e) - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.#less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  #pop(): Entry {
    const h = this.#heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.#less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.#less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}
