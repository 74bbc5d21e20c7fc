import { homedir } from 'node:os';
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Observable } from 'rxjs';
import type { Registry } from 'prom-client';
import { IbpClient, type DepotAddress } from '../../ibp/index.js';
import { ReliabilityStore, type Estimate } from '../estimation/index.js';
import { CoordinatorMetrics } from './coordinator-metrics.js';
import type { Dataset } from './dataset-shape.js';
import { DepotGate } from './depot-gate.js';
import { followDataset, type StreamWindow } from './follow-dataset.js';
import { IbpOpRunner } from './ibp-op-runner.js';
import type { Job } from './job.js';
import type { OpRunner } from './op-runner.js';
import type { ReliabilityView } from './reliability-view.js';
import { DEFAULT_PER_DEPOT_CONCURRENCY, runJob, type RunJobOptions } from './run-job.js';
import { storeReliability } from './store-reliability.js';

/** Default reliability state file: `$XDG_STATE_HOME/anvil/reliability.json` (or `~/.local/state/anvil/…`). */
export function defaultReliabilityPath(): string {
  const base = process.env['XDG_STATE_HOME'] ?? join(homedir(), '.local', 'state');
  return join(base, 'anvil', 'reliability.json');
}

/** Job options the coordinator fills in itself. */
export type JobRunOptions = Omit<RunJobOptions, 'runner' | 'reliability' | 'gate' | 'onAttempt'>;

export interface CoordinatorOptions {
  /** IBP client to use (default: a new one, closed by {@link Coordinator.close}). */
  readonly client?: IbpClient;
  /** Op runner (default: an {@link IbpOpRunner} over the client). */
  readonly runner?: OpRunner;
  /** Depots that may transform blocks copied to them when a replica's depot lacks the op. */
  readonly helpers?: readonly DepotAddress[];
  /** Reliability history (default: loaded from `reliabilityPath`). */
  readonly reliability?: ReliabilityStore;
  /** Where the history persists (default {@link defaultReliabilityPath}); `null` keeps it in memory. */
  readonly reliabilityPath?: string | null;
  readonly perDepotConcurrency?: number;
  /** Registry for the metrics (default: a new one, `coordinator.metrics.registry`). */
  readonly registry?: Registry;
  /** Defaults for every job run by this coordinator. */
  readonly jobDefaults?: JobRunOptions;
}

/**
 * Runs jobs over IBP depots: one op runner, one per-depot gate shared by every job, one reliability history
 * (persisted between jobs) and one set of metrics.
 *
 * @example
 * const coordinator = await Coordinator.open({ reliabilityPath: null });
 * coordinator.run(gramJob(dataset), { deadlineMs: 2000 }).subscribe((e) => console.log(e.epsilon, e.coverage));
 */
export class Coordinator {
  readonly store: ReliabilityStore;
  readonly reliability: ReliabilityView;
  readonly metrics: CoordinatorMetrics;
  readonly runner: OpRunner;
  readonly #client: IbpClient | undefined;
  readonly #ownsClient: boolean;
  readonly #gate: DepotGate;
  readonly #path: string | null;
  readonly #defaults: JobRunOptions;

  private constructor(options: CoordinatorOptions, store: ReliabilityStore, path: string | null) {
    this.#ownsClient = options.client === undefined && options.runner === undefined;
    this.#client = options.client ?? (options.runner === undefined ? new IbpClient() : undefined);
    this.runner =
      options.runner ?? new IbpOpRunner(this.#client!, options.helpers === undefined ? {} : { helpers: options.helpers });
    this.store = store;
    this.reliability = storeReliability(store);
    this.metrics = new CoordinatorMetrics(store, options.registry);
    this.#gate = new DepotGate(options.perDepotConcurrency ?? DEFAULT_PER_DEPOT_CONCURRENCY);
    this.#path = path;
    this.#defaults = options.jobDefaults ?? {};
  }

  /**
   * A coordinator with its reliability history loaded (a missing file starts empty).
   * @throws CoordinatorError `COORD_E_RELIABILITY_STATE` for an unreadable or malformed state file
   */
  static async open(options: CoordinatorOptions = {}): Promise<Coordinator> {
    const path = options.reliabilityPath === undefined ? defaultReliabilityPath() : options.reliabilityPath;
    const clock = { now: () => Date.now() };
    const store =
      options.reliability ?? (path === null ? new ReliabilityStore({ clock }) : await ReliabilityStore.load(path, { clock }));
    return new Coordinator(options, store, path);
  }

  /** Runs a job (see {@link runJob}); partial estimates, then the final one. */
  run<V>(job: Job<V>, options: JobRunOptions = {}): Observable<Estimate<V>> {
    return runJob(job, this.#options(options));
  }

  /** Follows a growing dataset (see {@link followDataset}). */
  follow<V>(
    versions$: Observable<Dataset>,
    makeJob: (dataset: Dataset) => Job<V>,
    window: StreamWindow,
    options: JobRunOptions = {},
  ): Observable<Estimate<V>> {
    return followDataset(versions$, makeJob, window, this.#options(options));
  }

  /** Writes the reliability history to its file (no-op when kept in memory). */
  async saveReliability(): Promise<void> {
    if (this.#path === null) return;
    await mkdir(dirname(this.#path), { recursive: true });
    await this.store.save(this.#path);
  }

  /** Saves the history and closes the client if the coordinator created it. */
  async close(): Promise<void> {
    try {
      await this.saveReliability();
    } finally {
      if (this.#ownsClient) this.#client?.close();
    }
  }

  #options(options: JobRunOptions): RunJobOptions {
    return {
      ...this.#defaults,
      ...options,
      runner: this.runner,
      reliability: this.reliability,
      gate: this.#gate,
      onAttempt: (depot, outcome, latencyMs) => this.metrics.observe(depot, outcome, latencyMs),
    };
  }
}
