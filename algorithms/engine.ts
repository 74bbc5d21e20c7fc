import { lastValueFrom } from 'rxjs';
import {
  CoordinatorError,
  CoordinatorErrorCode,
  runJob,
  storeReliability,
  ReliabilityStore,
  type Coordinator,
  type CoordinatorDataset as Dataset,
  type CoordinatorDatasetBlock as DatasetBlock,
  type Estimate,
  type JobRunOptions,
  type PlannedBlock,
  type ReliabilityView,
  scatterBounds,
  type BlockSummary,
  type MatrixStatistic,
  OpTimeoutError,
  SuspectDepots,
  type OpOutcome,
} from '../framework/index.js';
import { valuesOf } from './dense.js';
import type { LocusCall, LocusOpSpec, LocusRunner } from './locus.js';

/** Where and how an algorithm runs its ops. */
export interface LocusContext {
  readonly runner: LocusRunner;
  readonly reliability: ReliabilityView;
  /** The reliability and quality history (robust PCA writes source quality here). */
  readonly store?: ReliabilityStore;
  /** Options of every op round (deadline handled by the algorithm). */
  readonly jobOptions?: JobRunOptions;
  /** Collects why blocks went missing (each failed attempt of a block no replica answered), if given. */
  readonly missing?: MissingBlocks;
  /**
   * Depots late earlier in this job, shared by its rounds (default: one set per context object): later rounds
   * try them last, hedge them at once and wait on them only briefly (see `RunJobOptions.suspects`).
   */
  readonly suspects?: SuspectDepots;
}

/** Share of the time left to the deadline a round may use when the algorithm does not say how many rounds are left. */
export const DEFAULT_ROUND_SHARE = 0.5;

/** A round's budget is at least this many times the median time earlier rounds of the job took to their last answer. */
export const ROUND_FLOOR_FACTOR = 2;

/**
 * The time (ms) a round may run when the job must answer by `deadlineAt` and it is now `now`: an equal share
 * `1/roundsLeft` of the time left when the algorithm says how many rounds (this one included) it still runs,
 * else {@link DEFAULT_ROUND_SHARE} of it — so however many rounds follow, each gets a share and together they
 * end by the deadline — but at least `floorMs` (what a round of this job needs when its depots answer, see
 * {@link RoundClock}: rounds that cannot fit still run, and the job ends a little after the deadline rather
 * than with rounds nobody could answer in time). At least 1 ms.
 */
export function roundBudgetMs(deadlineAt: number, now: number, roundsLeft?: number, floorMs = 0): number {
  const left = deadlineAt - now;
  const share = roundsLeft !== undefined && roundsLeft >= 1 ? 1 / Math.floor(roundsLeft) : DEFAULT_ROUND_SHARE;
  return Math.max(1, Math.floor(floorMs), Math.floor(left * share));
}

/** Per job: how long its rounds took to their last answer (the time a round needs when its depots answer). */
export class RoundClock {
  readonly #durations: number[] = [];

  /** A round started at `start` got its last answer at `lastAnswer` (ms since epoch). */
  add(start: number, lastAnswer: number): void {
    this.#durations.push(Math.max(0, lastAnswer - start));
  }

  /** {@link ROUND_FLOOR_FACTOR} × the median duration so far (0 before any round answered). */
  floorMs(): number {
    if (this.#durations.length === 0) return 0;
    const sorted = [...this.#durations].sort((a, b) => a - b);
    return ROUND_FLOOR_FACTOR * sorted[Math.floor((sorted.length - 1) / 2)]!;
  }

  /** {@link ROUND_FLOOR_FACTOR} × the longest duration so far (0 before any round answered). */
  longestMs(): number {
    return ROUND_FLOOR_FACTOR * this.#durations.reduce((m, d) => Math.max(m, d), 0);
  }
}

/** Suspect depots and round durations of contexts that carry none: one per context object (the rounds of one job share it). */
const contextState = new WeakMap<LocusContext, { suspects: SuspectDepots; clock: RoundClock }>();

function stateOf(ctx: LocusContext): { suspects: SuspectDepots; clock: RoundClock } {
  let s = contextState.get(ctx);
  if (s === undefined) contextState.set(ctx, (s = { suspects: ctx.suspects ?? new SuspectDepots(), clock: new RoundClock() }));
  return s;
}

/** One line of {@link MissingBlocks.summary}: blocks `blocks` of round `round` got no answer from `depot` because of `reason`. */
export interface MissingReason {
  readonly round: string;
  /** The depot that did not answer, or {@link MissingBlocks.NOT_ASKED} (empty) when no replica was asked. */
  readonly depot: string;
  readonly reason: string;
  /** Indices of the blocks (a round run several times, e.g. per power iteration, counts each block once). */
  readonly blocks: readonly number[];
}

/** A short reason for a failed attempt: the IBP error code and status if any, else the message's first line. */
export function attemptReason(error: unknown): string {
  if (typeof error === 'object' && error !== null) {
    const { code, status, message } = error as { code?: unknown; status?: unknown; message?: unknown };
    if (typeof code === 'string' && typeof status === 'number') return `${code} (${status})`;
    if (typeof message === 'string') {
      const line = message.split('\n')[0]!;
      return line.length > 120 ? `${line.slice(0, 117)}…` : line;
    }
  }
  return String(error);
}

/**
 * Why blocks went missing, per round and depot: every attempt of a block that no replica answered, with its
 * reason (the depot's refusal, an error, or no answer before the op timeout or the deadline).
 */
export class MissingBlocks {
  /** The `depot` of a block no replica was asked for (e.g. the deadline came first): its line names no depot. */
  static readonly NOT_ASKED = '';

  readonly #lines = new Map<string, { round: string; depot: string; reason: string; blocks: Set<number> }>();

  /** Records the failed attempts (`depot` → reason) of block `block` of `round`, which went missing. */
  add(round: string, block: number, attempts: ReadonlyMap<string, string>): void {
    for (const [depot, reason] of attempts) {
      const key = `${round}\u0000${depot}\u0000${reason}`;
      let e = this.#lines.get(key);
      if (e === undefined) this.#lines.set(key, (e = { round, depot, reason, blocks: new Set() }));
      e.blocks.add(block);
    }
  }

  get size(): number {
    return this.#lines.size;
  }

  summary(): MissingReason[] {
    return [...this.#lines.values()].map((e) => ({ ...e, blocks: [...e.blocks].sort((a, b) => a - b) }));
  }

  /**
   * One line per (round, depot, reason), e.g. `range: blocks 2, 5 not answered by 127.0.0.1:6714: IBP_E_CAP_NOT_FOUND (-4)`,
   * or for blocks never asked `range: block 3 not asked before the deadline`.
   */
  text(): string {
    return this.summary()
      .map((r) => {
        const ids = r.blocks.length > 8 ? `${r.blocks.slice(0, 8).join(', ')} … (${r.blocks.length})` : r.blocks.join(', ');
        const head = `${r.round}: block${r.blocks.length === 1 ? '' : 's'} ${ids}`;
        return r.depot === MissingBlocks.NOT_ASKED ? `${head} ${r.reason}` : `${head} not answered by ${r.depot}: ${r.reason}`;
      })
      .join('\n');
  }
}

/**
 * Why an attempt of a round ended without an answer, in words: the depot's refusal or error, or which limit a
 * late attempt hit (the op timeout, the shortened wait of a depot already late in this job, or the round's
 * deadline).
 */
export function failureNote(outcome: OpOutcome, error: unknown, roundBudget?: number): string {
  if (outcome === 'late' && error instanceof OpTimeoutError) {
    if (error.kind === 'op-timeout') return `no answer within the op timeout (${error.waitMs} ms)`;
    if (error.kind === 'suspect-wait')
      return error.waitMs === 0
        ? 'not asked: the depot timed out earlier in this job and again in this round'
        : `no answer within the shortened wait (${error.waitMs} ms) for a depot that timed out earlier in this job`;
    return roundBudget === undefined
      ? `no answer before the deadline`
      : `no answer before the deadline (the round's ${roundBudget} ms share of it)`;
  }
  return attemptReason(error);
}

/** A context over a coordinator whose runner is a {@link LocusRunner} (e.g. `Coordinator.open({ runner: new IbpLocus(client) })`). */
export function coordinatorContext(coordinator: Coordinator, jobOptions: JobRunOptions = {}): LocusContext {
  const runner = coordinator.runner as Partial<LocusRunner>;
  if (typeof runner.stateOf !== 'function')
    throw new CoordinatorError(
      CoordinatorErrorCode.INVALID_ARGUMENT,
      'invalid argument: the coordinator’s runner does not run algorithms ops; open it with `runner: new IbpLocus(client)`',
      { details: { argument: 'coordinator.runner', value: 'not a LocusRunner' } },
    );
  return { runner: runner as LocusRunner, reliability: coordinator.reliability, store: coordinator.store, jobOptions };
}

/** A context over a runner and an in-memory reliability history (tests, calibration). */
export function runnerContext(
  runner: LocusRunner,
  options: { store?: ReliabilityStore; jobOptions?: JobRunOptions } = {},
): LocusContext {
  const store = options.store ?? new ReliabilityStore({ clock: { now: () => Date.now() } });
  return {
    runner,
    reliability: storeReliability(store),
    store,
    ...(options.jobOptions ? { jobOptions: options.jobOptions } : {}),
  };
}

/** Per-block outputs of one op round, and what the round cost. */
export interface RoundResult {
  readonly outputs: Map<number, Float64Array>;
  readonly bytesMoved: number;
  readonly planned: readonly PlannedBlock[];
  readonly missing: number;
}

/** Options of a round. */
export interface RoundOptions {
  readonly blocks?: readonly DatasetBlock[];
  /**
   * Absolute time (ms since epoch) by which the job must answer. The round itself ends earlier, at its share of
   * the time left ({@link roundBudgetMs}); blocks still running then are missing.
   */
  readonly deadlineAt?: number;
  /** Rounds the algorithm still runs before the deadline, this one included (default: unknown, see {@link roundBudgetMs}). */
  readonly roundsLeft?: number;
  readonly signal?: AbortSignal;
}

/**
 * Runs one op on every block (through the coordinator's engine: concurrency, hedging on replicas, timeouts,
 * deadline) and collects the answered blocks' outputs as float64 values.
 */
export async function round(
  ctx: LocusContext,
  dataset: Dataset,
  name: string,
  call: (block: DatasetBlock) => LocusCall,
  options: RoundOptions = {},
): Promise<RoundResult> {
  const outputs = new Map<number, Float64Array>();
  let bytesMoved = 0;
  let planned: readonly PlannedBlock[] = [];
  const op: LocusOpSpec = {
    name: 'affine-product',
    call,
    outputBytes: (_ds, b) => {
      const c = call(b);
      return 'returnBytes' in c.output ? c.output.returnBytes : 0;
    },
  };
  // The op's name is the kernel of its calls (the same for every block).
  const first = dataset.blocks[0];
  const opNamed: LocusOpSpec = first === undefined ? op : { ...op, name: call(first).kernel as LocusOpSpec['name'] };
  const state = stateOf(ctx);
  const started = Date.now();
  let lastAnswer = started;
  // The round's share of the time left is a soft deadline: a round with no answer yet by then waits for its first
  // one, up to the job's deadline — or, past it, up to twice the longest round of the job so far.
  const shareMs =
    options.deadlineAt === undefined
      ? undefined
      : roundBudgetMs(options.deadlineAt, started, options.roundsLeft, state.clock.floorMs());
  const deadlineMs =
    options.deadlineAt === undefined || shareMs === undefined
      ? undefined
      : Math.max(shareMs, options.deadlineAt - started, state.clock.longestMs());
  // Each failed attempt of a block, by depot: why it gave no answer.
  const notes = new Map<number, Map<string, string>>();
  const userOnFailure = ctx.jobOptions?.onAttemptFailure;
  const onAttemptFailure = (block: DatasetBlock, depot: string, outcome: OpOutcome, error: unknown): void => {
    userOnFailure?.(block, depot, outcome, error);
    if (ctx.missing === undefined) return;
    let m = notes.get(block.index);
    if (m === undefined) notes.set(block.index, (m = new Map()));
    m.set(depot, failureNote(outcome, error, shareMs));
  };
  const e$ = runJob<number>(
    {
      name,
      dataset,
      op: opNamed,
      combiner: () => ({
        add(block, output, wireBytes) {
          outputs.set(block.index, valuesOf(output));
          lastAnswer = Date.now();
          bytesMoved += wireBytes;
        },
        estimate(p): Estimate<number> {
          planned = p;
          return {
            value: outputs.size,
            epsilon: 0,
            delta: 0,
            coverage: 1,
            blocksUsed: outputs.size,
            blocksMissing: p.length - outputs.size,
            bytesMoved,
            method: name,
            norm: 'abs',
            parts: { sampling: { epsilon: 0, delta: 0 }, sketch: { epsilon: 0, delta: 0 } },
            sources: [],
            final: true,
          };
        },
      }),
    },
    {
      ...ctx.jobOptions,
      runner: ctx.runner,
      reliability: ctx.reliability,
      suspects: ctx.jobOptions?.suspects ?? state.suspects,
      onAttemptFailure,
      partialEvery: Number.MAX_SAFE_INTEGER,
      ...(options.blocks === undefined ? {} : { blocks: options.blocks }),
      ...(deadlineMs === undefined ? {} : { deadlineMs, softDeadlineMs: shareMs! }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    },
  );
  await lastValueFrom(e$);
  if (outputs.size > 0) state.clock.add(started, lastAnswer);
  if (ctx.missing !== undefined)
    for (const b of planned) {
      const index = Number(b.id);
      if (outputs.has(index)) continue;
      const block = (options.blocks ?? dataset.blocks).find((x) => x.index === index);
      const why =
        block !== undefined && block.replicas.length === 0
          ? 'not asked: the state an earlier round left for it is missing'
          : 'not asked before the deadline';
      ctx.missing.add(name, index, notes.get(index) ?? new Map([[MissingBlocks.NOT_ASKED, why]]));
    }
  return { outputs, bytesMoved, planned, missing: planned.length - outputs.size };
}

/** The dataset's blocks with their replicas narrowed to the depot holding state `name` (none: the block is missing). */
export function pinnedTo(ctx: LocusContext, dataset: Dataset, name: string): DatasetBlock[] {
  return dataset.blocks.map((b) => {
    const s = ctx.runner.stateOf(b.index, name);
    const replicas = s === undefined ? [] : b.replicas.filter((r) => `${r.depot.host}:${r.depot.port}` === s.depot).slice(0, 1);
    return { ...b, replicas };
  });
}

/** Column means of the dataset, exact from the ingest summaries (optionally weighted per block). */
export function summaryMeans(dataset: Dataset, weight: (b: DatasetBlock) => number = () => 1): Float64Array {
  const d = dataset.cols;
  const mu = new Float64Array(d);
  let n = 0;
  for (const b of dataset.blocks) {
    const w = weight(b);
    if (b.summary === undefined || w === 0) continue;
    n += w * b.summary.rows;
    for (let j = 0; j < d; j++) mu[j]! += w * b.summary.colSums[j]!;
  }
  for (let j = 0; j < d; j++) mu[j]! /= Math.max(n, 1e-300);
  return mu;
}

/** ‖A_b − 1μᵀ‖_F² from the block's summary. */
export function centredFrob2(b: DatasetBlock, mu: Float64Array): number {
  const s = b.summary!;
  let f = 0;
  for (let j = 0; j < s.cols; j++) f += s.colSumSq[j]! - 2 * mu[j]! * s.colSums[j]! + s.rows * mu[j]! * mu[j]!;
  return Math.max(0, f);
}

/** X = [W; −μᵀW]·scale, `(d + 1) × k`: the affine map of the centred block (A_b − 1μᵀ)·W·scale. */
export function affineX(W: Float64Array, d: number, k: number, mu: Float64Array | undefined, scale = 1): Float64Array {
  const X = new Float64Array((d + 1) * k);
  for (let i = 0; i < d * k; i++) X[i] = W[i]! * scale;
  if (mu !== undefined)
    for (let j = 0; j < d; j++) {
      const m = mu[j]!;
      if (m === 0) continue;
      for (let t = 0; t < k; t++) X[d * k + t]! -= m * W[j * k + t]! * scale;
    }
  return X;
}

/** Throws the abort reason when aborted. */
export function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw signal.reason;
}

/**
 * The Gram AᵀA (d × d) as a matrix statistic: s_b s_bᵀ/n_b (s_b = column sums) is known from the summary, the
 * centred scatter K_b is PSD with λ_max, λ_min bounded by the summary.
 */
export function gramStatistic(d: number): MatrixStatistic {
  return {
    name: 'gram',
    rows: d,
    cols: d,
    known: (s: BlockSummary) => {
      const out = new Float64Array(d * d);
      if (s.rows === 0) return out;
      for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) out[i * d + j] = (s.colSums[i]! * s.colSums[j]!) / s.rows;
      return out;
    },
    psdRemainder: true,
    remainderNormBound: (s: BlockSummary) => scatterBounds(s).eigMax,
    remainderEigMinBound: (s: BlockSummary) => scatterBounds(s).eigMin,
  };
}
