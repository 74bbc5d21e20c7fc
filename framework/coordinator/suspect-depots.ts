/** Answer times {@link SuspectDepots} keeps for its median. */
const LATENCY_SAMPLES = 64;
/** Least time an attempt on a suspect depot waits before it counts as late (ms). */
export const DEFAULT_SUSPECT_WAIT_MS = 1_000;
/** A suspect depot's wait is at least this many times the median answer time of the job's recent attempts. */
export const SUSPECT_WAIT_LATENCY_FACTOR = 4;

/**
 * Depots that gave no answer in time (an op timeout, or still running at a deadline) earlier in the same job —
 * e.g. every round of a multi-round algorithm shares one. An attempt on a suspect depot is tried after the
 * replicas on other depots, is hedged at once, and waits only a shortened time before it counts as late; the
 * depot stops being suspect as soon as it answers again. Only the depot's behaviour decides this, never the
 * block's values.
 */
export class SuspectDepots {
  readonly #since = new Map<string, number>();
  /** Answer times of the latest attempts (a ring of {@link LATENCY_SAMPLES}). */
  readonly #latencies: number[] = [];
  #next = 0;

  /** Marks `depot` (`host:port`) suspect at time `now` (ms); a depot marked already keeps its first time. */
  mark(depot: string, now: number): void {
    if (!this.#since.has(depot)) this.#since.set(depot, now);
  }

  /** `depot` answered after `latencyMs`: it is no longer suspect. */
  answered(depot: string, latencyMs: number): void {
    this.#since.delete(depot);
    if (!Number.isFinite(latencyMs) || latencyMs < 0) return;
    if (this.#latencies.length < LATENCY_SAMPLES) this.#latencies.push(latencyMs);
    else this.#latencies[this.#next] = latencyMs;
    this.#next = (this.#next + 1) % LATENCY_SAMPLES;
  }

  /** The median answer time of the latest attempts that answered (ms; 0 before any answer). */
  medianAnswerMs(): number {
    if (this.#latencies.length === 0) return 0;
    const sorted = [...this.#latencies].sort((a, b) => a - b);
    return sorted[Math.floor((sorted.length - 1) / 2)]!;
  }

  /**
   * How long an attempt on a suspect depot waits before it counts as late: `leastMs` (default
   * {@link DEFAULT_SUSPECT_WAIT_MS}) or {@link SUSPECT_WAIT_LATENCY_FACTOR} × the median answer time if longer (a job
   * whose ops are all slow does not cut a depot off for being as slow as the others), at most `opTimeoutMs`.
   */
  waitMs(opTimeoutMs: number, leastMs = DEFAULT_SUSPECT_WAIT_MS): number {
    return Math.min(opTimeoutMs, Math.max(leastMs, SUSPECT_WAIT_LATENCY_FACTOR * this.medianAnswerMs()));
  }

  has(depot: string): boolean {
    return this.#since.has(depot);
  }

  /** The suspect depots, with the time each was marked. */
  list(): { depot: string; since: number }[] {
    return [...this.#since].map(([depot, since]) => ({ depot, since }));
  }

  get size(): number {
    return this.#since.size;
  }
}
