import { IbpClient, type DepotAddress } from '../../ibp/index.js';
import { depotId } from '../../framework/index.js';

/** How the demo's status line sees a depot right now. */
export type DemoDepotState = 'up' | 'slow' | 'paused' | 'down' | 'silent';

/** Counts of depots per state, for the status line. */
export interface DepotCounts {
  readonly up: number;
  readonly slow: number;
  readonly paused: number;
  readonly down: number;
  readonly silent: number;
  readonly total: number;
}

export interface DepotStatusOptions {
  /** A depot counts as up only if it answered (an op or a probe) within this long (ms). Default 5000. */
  readonly freshMs?: number;
  /** An answer slower than this (ms), or a late attempt since the last answer, shows the depot as slow. Default 750. */
  readonly slowMs?: number;
  readonly now?: () => number;
}

interface Entry {
  lastAnswerAt: number | undefined;
  lastLatencyMs: number;
  lastLateAt: number | undefined;
  lastFailureAt: number | undefined;
  /** Set by the demo's own chaos (it knows what it did to the process). */
  disrupted: 'paused' | 'killed' | undefined;
}

/**
 * What the demo's status line says about each depot: `up` only when it answered recently (an op of the job
 * or the demo's liveness probe) at a normal speed and the demo has not paused or killed it; `slow` when its
 * last answer was slow or an attempt ran late since; `paused` / `down` when the demo's chaos paused or killed
 * it or its last attempts failed; `silent` when it has not answered for `freshMs` (a hung depot).
 */
export class DepotStatusBoard {
  readonly #entries = new Map<string, Entry>();
  readonly #freshMs: number;
  readonly #slowMs: number;
  readonly #now: () => number;

  constructor(
    readonly depots: readonly string[],
    options: DepotStatusOptions = {},
  ) {
    this.#freshMs = options.freshMs ?? 5000;
    this.#slowMs = options.slowMs ?? 750;
    this.#now = options.now ?? Date.now;
    for (const d of depots) {
      this.#entries.set(d, {
        lastAnswerAt: undefined,
        lastLatencyMs: 0,
        lastLateAt: undefined,
        lastFailureAt: undefined,
        disrupted: undefined,
      });
    }
  }

  #entry(depot: string): Entry | undefined {
    return this.#entries.get(depot);
  }

  /** The depot answered (an op or a probe) after `latencyMs`. */
  answered(depot: string, latencyMs: number): void {
    const e = this.#entry(depot);
    if (e === undefined) return;
    e.lastAnswerAt = this.#now();
    e.lastLatencyMs = latencyMs;
  }

  /** An attempt on the depot has run late (no answer yet after the slow threshold, or abandoned for another replica). */
  late(depot: string): void {
    const e = this.#entry(depot);
    if (e !== undefined) e.lastLateAt = this.#now();
  }

  /** An attempt on the depot failed (refused, reset, an error status). */
  failed(depot: string): void {
    const e = this.#entry(depot);
    if (e !== undefined) e.lastFailureAt = this.#now();
  }

  /** The demo paused (SIGSTOP) or killed the depot's process, or undid it (`undefined`: resumed or restarted). */
  disrupted(depot: string, how: 'paused' | 'killed' | undefined): void {
    const e = this.#entry(depot);
    if (e === undefined) return;
    e.disrupted = how;
    // An answer from before the disruption says nothing about now.
    if (how !== undefined) e.lastAnswerAt = undefined;
  }

  state(depot: string): DemoDepotState {
    const e = this.#entry(depot);
    if (e === undefined) return 'silent';
    if (e.disrupted === 'paused') return 'paused';
    if (e.disrupted === 'killed') return 'down';
    const now = this.#now();
    const answeredAt = e.lastAnswerAt;
    if (e.lastFailureAt !== undefined && (answeredAt === undefined || e.lastFailureAt > answeredAt)) return 'down';
    if (answeredAt === undefined || now - answeredAt > this.#freshMs) return 'silent';
    if (e.lastLatencyMs > this.#slowMs || (e.lastLateAt !== undefined && e.lastLateAt > answeredAt)) return 'slow';
    return 'up';
  }

  counts(): DepotCounts {
    const c = { up: 0, slow: 0, paused: 0, down: 0, silent: 0, total: this.depots.length };
    for (const d of this.depots) c[this.state(d)]++;
    return c;
  }
}

/** `depots up 3/4 (1 paused)`: up only counts depots that answered recently; the others by state. */
export function formatDepotCounts(c: DepotCounts): string {
  const rest = (
    [
      ['slow', c.slow],
      ['paused', c.paused],
      ['down', c.down],
      ['silent', c.silent],
    ] as const
  )
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${n} ${k}`);
  return `depots up ${c.up}/${c.total}${rest.length === 0 ? '' : ` (${rest.join(', ')})`}`;
}

/**
 * A liveness probe: every `everyMs` an IBP status request to each depot (one at a time per depot), so the
 * status line knows a depot's state even when the job sends it no op. An answer within `timeoutMs` counts as
 * an answer (with its latency); none counts as late; an error as a failure.
 */
export class DepotProbe {
  readonly #client: IbpClient;
  readonly #inFlight = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(
    private readonly depots: readonly DepotAddress[],
    private readonly board: DepotStatusBoard,
    private readonly timeoutMs: number,
  ) {
    this.#client = new IbpClient({ timeoutMs, connectTimeoutMs: timeoutMs });
  }

  start(everyMs: number): void {
    this.tick();
    this.#timer = setInterval(() => this.tick(), everyMs);
    this.#timer.unref();
  }

  /** One round: a status request to each depot that has none in flight. */
  tick(): void {
    for (const d of this.depots) {
      const id = depotId(d);
      if (this.#stopped || this.#inFlight.has(id)) continue;
      this.#inFlight.add(id);
      const t0 = performance.now();
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'late'>((resolve) => {
        timer = setTimeout(() => resolve('late'), this.timeoutMs);
      });
      void Promise.race([this.#client.status(d).then(() => 'answer' as const), timeout])
        .then(
          (r) => (r === 'answer' ? this.board.answered(id, performance.now() - t0) : this.board.late(id)),
          () => this.board.failed(id),
        )
        .finally(() => {
          clearTimeout(timer);
          this.#inFlight.delete(id);
        });
    }
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#client.close();
  }
}
