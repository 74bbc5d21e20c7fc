import { Command as CliCommand } from 'commander';
import { tap, type Observable } from 'rxjs';
import {
  coordinatorContext,
  final,
  frequentDirections,
  IbpLocus,
  leastSquares,
  MissingBlocks,
  pca,
  requireRows,
  rsvd,
  spectralNorm,
  traceEstimate,
  type LocusContext,
} from '../algorithms/index.js';
import {
  Coordinator,
  CoordinatorError,
  CoordinatorErrorCode,
  openDataset,
  type CoordinatorDataset,
  type Estimate,
} from '../framework/index.js';
import { IbpClient } from '../ibp/index.js';
import { formatProbability } from './format-value.js';

function bad(flag: string, rule: string, value: unknown): CoordinatorError {
  return new CoordinatorError(
    CoordinatorErrorCode.INVALID_ARGUMENT,
    `invalid argument: ${flag} must be ${rule} (got ${JSON.stringify(value)})`,
    { details: { argument: flag, value: String(value) } },
  );
}

/** `5s`, `250ms`, `2m` or a number of seconds → milliseconds. */
export function durationMs(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (m === null) throw bad(flag, 'a duration such as 5s, 250ms or 2m', text);
  const v = Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 'm' ? 60_000 : 1000);
  if (!(v > 0)) throw bad(flag, 'positive', text);
  return v;
}

function intFlag(text: string | undefined, flag: string, min: number, max: number): number | undefined {
  if (text === undefined) return undefined;
  const v = Number(text);
  if (!Number.isInteger(v) || v < min || v > max) throw bad(flag, `an integer from ${min} to ${max}`, text);
  return v;
}

function numFlag(text: string | undefined, flag: string, check: (v: number) => boolean, rule: string): number | undefined {
  if (text === undefined) return undefined;
  const v = Number(text);
  if (!check(v)) throw bad(flag, rule, text);
  return v;
}

interface CommonFlags {
  dataset: string;
  deadline?: string;
  delta?: string;
  seed?: string;
  json?: boolean;
  reliability?: string;
  timeout?: string;
}

/** Values as JSON (typed arrays as arrays, maps as objects). */
function jsonable(v: unknown): unknown {
  if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<number>);
  if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [String(k), jsonable(x)]));
  if (Array.isArray(v)) return v.map(jsonable);
  if (typeof v === 'number' && !Number.isFinite(v)) return v > 0 ? 'Infinity' : v < 0 ? '-Infinity' : 'NaN';
  if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, jsonable(x)]));
  return v;
}

const fmt = (v: number): string => (Number.isFinite(v) ? v.toPrecision(4) : String(v));

/**
 * Least squares' residual norm as text: over every row of the dataset — exact when every block answered, else
 * an estimate (the missing blocks' part from their summaries) with the interval the summaries guarantee.
 */
export function residualText(v: { residualNorm: number; residualNormLower: number; residualNormUpper: number }): string {
  // The interval closed at the printed precision (every block answered, or the missing ones pinned by their summaries).
  return fmt(v.residualNormLower) === fmt(v.residualNormUpper)
    ? `residual norm ${fmt(v.residualNorm)} (all rows)`
    : `residual norm ≈ ${fmt(v.residualNorm)} (all rows, estimated: the answered rows' exactly, the missing blocks' from their summaries; surely in [${fmt(v.residualNormLower)}, ${fmt(v.residualNormUpper)}])`;
}
const list = (a: ArrayLike<number>, n = 10): string => Array.from(a).slice(0, n).map(fmt).join(' ') + (a.length > n ? ' …' : '');

/**
 * What ε is made of, as each algorithm forms it (the parts named add up to, or are compared into, ε; the parts of
 * one algorithm are not those of another).
 */
type EpsilonText<V> = (e: Estimate<V>) => string;

/** PCA/rSVD: the probe bound (all answered), exact (narrow, all answered), or the smaller of two (blocks missing). */
function spectralEpsilon(e: Estimate<{ residuals?: { sampled: number; fromSummaries: number } }>): string {
  const r = e.value.residuals;
  if (r !== undefined)
    return (
      `ε = sketch + sampling = ${fmt(e.parts.sketch.epsilon)} + ${fmt(e.parts.sampling.epsilon)}, the smaller of the ` +
      `sampled bound ${fmt(r.sampled)} and the summaries' bound ${fmt(r.fromSummaries)} on ‖A − AVVᵀ‖₂`
    );
  return e.delta === 0
    ? 'ε = ‖A − AVVᵀ‖₂ from the whole Gram (exact up to rounding)'
    : 'ε = the Gaussian probes’ bound on ‖A − AVVᵀ‖₂ (every block answered: no sampling error)';
}

function bound<V>(e: Estimate<V>, epsilonText: EpsilonText<V>): string {
  return (
    `bound: ε ${fmt(e.epsilon)} (${e.norm}), δ ${formatProbability(e.delta)}; ${epsilonText(e)}\n` +
    `blocks: ${e.blocksUsed} used, ${e.blocksMissing} missing, coverage ${(100 * e.coverage).toFixed(1)}%, ${e.bytesMoved} bytes moved\n` +
    `method: ${e.method}\n`
  );
}

/** Runs an algorithm over the exNode's dataset with an in-locus coordinator; prints a summary or `--json`. */
async function runAlgorithm<V>(
  flags: CommonFlags,
  start: (
    dataset: CoordinatorDataset,
    ctx: LocusContext,
    common: { deadlineMs?: number; delta?: number; seed?: number; signal: AbortSignal },
  ) => Observable<Estimate<V>>,
  summary: (value: V, dataset: CoordinatorDataset) => string,
  epsilonText: EpsilonText<V>,
): Promise<void> {
  const deadlineMs = flags.deadline === undefined ? undefined : durationMs(flags.deadline, '--deadline');
  const timeoutMs = flags.timeout === undefined ? 30_000 : durationMs(flags.timeout, '--timeout');
  const delta = numFlag(flags.delta, '--delta', (v) => v > 0 && v < 1, 'in (0, 1)');
  const seed = intFlag(flags.seed, '--seed', 0, Number.MAX_SAFE_INTEGER);
  const dataset = (await openDataset(flags.dataset)) as CoordinatorDataset;
  // An empty dataset (an empty input ingested) has nothing to estimate: say so before contacting any depot.
  requireRows(dataset);
  const client = new IbpClient({ timeoutMs });
  const runner = new IbpLocus(client);
  const coordinator = await Coordinator.open({
    client,
    runner,
    ...(flags.reliability === undefined ? {} : { reliabilityPath: flags.reliability }),
  }).catch((e: unknown) => {
    client.close();
    throw e;
  });
  // Ctrl-C stops the algorithm; its per-block state at the depots is released below either way.
  const stop = new AbortController();
  const onSignal = (): void =>
    stop.abort(new Error('interrupted; the per-block state the algorithm kept at the depots was released'));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const missing = new MissingBlocks();
    const ctx = { ...coordinatorContext(coordinator, { opTimeoutMs: timeoutMs }), missing };
    const common = {
      signal: stop.signal,
      ...(deadlineMs === undefined ? {} : { deadlineMs }),
      ...(delta === undefined ? {} : { delta }),
      ...(seed === undefined ? {} : { seed }),
    };
    const live = flags.json !== true && process.stderr.isTTY === true;
    const e = await final(
      start(dataset, ctx, common).pipe(
        tap((x) => {
          if (live && !x.final) process.stderr.write(`\r\x1b[2Kintermediate: ε ${fmt(x.epsilon)} (${x.norm})`);
        }),
      ),
    );
    if (live) process.stderr.write('\r\x1b[2K');
    // Why blocks went missing: each depot's refusal or silence, per round.
    if (missing.size > 0) process.stderr.write(`missing blocks:\n${missing.text().replace(/^/gm, '  ')}\n`);
    if (flags.json === true) process.stdout.write(`${JSON.stringify(jsonable({ ...e, missingReasons: missing.summary() }))}\n`);
    else
      process.stdout.write(
        `${dataset.name}: ${dataset.rows} × ${dataset.cols} ${dataset.dtype}\n${summary(e.value, dataset)}${bound(e, epsilonText)}`,
      );
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    // Per-block state allocations (Y, Q, sketches…) would otherwise hold depot space until their lease ends;
    // after Ctrl-C, also those the ops still running make.
    await runner.release({ drain: stop.signal.aborted });
    await coordinator.close();
    client.close();
  }
}

function common(cmd: CliCommand): CliCommand {
  return cmd
    .requiredOption('--dataset <exnode>', 'the dataset (an exNode file written by anvil ingest)')
    .option('--deadline <duration>', 'answer by then with the blocks that have answered (e.g. 5s)')
    .option('--delta <p>', 'failure probability of the bound')
    .option('--seed <n>', 'random seed (default 0): the same seed and the same answering blocks give the same bits')
    .option('--timeout <duration>', 'time one NFU op may take (default 30s)')
    .option('--reliability <file>', 'reliability history file (default: the user state directory)')
    .option('--json', 'print the final estimate as one JSON object');
}

interface SpectralFlags extends CommonFlags {
  rank: string;
  oversampling?: string;
  powerIterations?: string;
  tolerance?: string;
  maxRank?: string;
  robust?: string;
}

function spectral(name: 'pca' | 'rsvd'): CliCommand {
  return common(
    new CliCommand(name).description(
      name === 'pca'
        ? 'principal components of the dataset, computed where its blocks lie, with a certified residual bound'
        : 'randomized SVD of the dataset in locus, with a certified residual bound',
    ),
  )
    .requiredOption('--rank <k>', 'components')
    .option('--oversampling <p>', 'extra sketch columns (default 10)')
    .option('--power-iterations <q>', 'subspace iterations (default 2)')
    .option('--tolerance <t>', 'grow the rank until ε ≤ t·σ₁')
    .option('--max-rank <k>', 'largest rank --tolerance may reach')
    .option('--robust <n>', 'source-reweighting iterations (robust PCA)')
    .action(async (flags: SpectralFlags) => {
      await runAlgorithm(
        flags,
        (dataset, ctx, c) => {
          const rank = intFlag(flags.rank, '--rank', 1, dataset.cols)!;
          const oversampling = intFlag(flags.oversampling, '--oversampling', 0, 10_000);
          const powerIterations = intFlag(flags.powerIterations, '--power-iterations', 0, 50);
          const tolerance = numFlag(flags.tolerance, '--tolerance', (v) => v > 0, 'positive');
          const maxRank = intFlag(flags.maxRank, '--max-rank', 1, dataset.cols);
          const robustIterations = intFlag(flags.robust, '--robust', 0, 20);
          const options = {
            rank,
            ...c,
            ...(oversampling === undefined ? {} : { oversampling }),
            ...(powerIterations === undefined ? {} : { powerIterations }),
            ...(tolerance === undefined ? {} : { tolerance }),
            ...(maxRank === undefined ? {} : { maxRank }),
            ...(robustIterations === undefined ? {} : { robustIterations }),
          };
          return name === 'pca' ? pca(dataset, ctx, options) : rsvd(dataset, ctx, options);
        },
        (v) => {
          let lines = `rank ${v.rank}\nsingular values: ${list(v.singularValues)}\n`;
          lines += `explained variance ratio: ${list(v.explainedVarianceRatio)} (sum ${fmt(v.explainedVarianceRatio.reduce((s, x) => s + x, 0))})\n`;
          for (let t = 0; t < Math.min(v.rank, 5); t++) {
            const col = Array.from({ length: v.cols }, (_, j) => v.components[j * v.rank + t]!);
            const top = col
              .map((x, j) => [j, x] as const)
              .sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]))
              .slice(0, 4)
              .map(([j, x]) => `col ${j}: ${x.toFixed(3)}`)
              .join(', ');
            lines += `component ${t + 1}: σ ∈ [${fmt(v.singularValueLower[t]!)}, ${fmt(v.singularValueUpper[t]!)}]; largest loadings ${top}\n`;
          }
          if (v.sourceWeights.size > 0)
            lines += `source weights: ${[...v.sourceWeights].map(([id, w]) => `${id} ${w.toFixed(2)}`).join(', ')}\n`;
          return lines;
        },
        spectralEpsilon,
      );
    });
}

/**
 * `anvil run pca|rsvd|least-squares|fd|spectral-norm|trace --dataset EXNODE …`: the algorithms in locus, added
 * as subcommands of `anvil run` (which still runs JOB.json files).
 */
export function addAlgorithmCommands(run: CliCommand): CliCommand {
  // `run`'s own options (--json, --reliability) only before a subcommand: after it they are the subcommand's.
  run.enablePositionalOptions();
  run.addCommand(spectral('pca'));
  run.addCommand(spectral('rsvd'));
  run.addCommand(
    common(new CliCommand('least-squares').description('min ‖Ax − b‖ in locus (b: a column of the dataset; A: the others)'))
      .option('--target <col>', 'column holding b (default: the last)')
      .option('--method <m>', 'preconditioned (default) or sketch-and-solve')
      .action(async (flags: CommonFlags & { target?: string; method?: string }) => {
        await runAlgorithm(
          flags,
          (dataset, ctx, c) => {
            const target = intFlag(flags.target, '--target', 0, dataset.cols - 1);
            if (flags.method !== undefined && flags.method !== 'preconditioned' && flags.method !== 'sketch-and-solve')
              throw bad('--method', 'preconditioned or sketch-and-solve', flags.method);
            return leastSquares(dataset, ctx, {
              ...c,
              ...(target === undefined ? {} : { target }),
              ...(flags.method === undefined ? {} : { method: flags.method }),
            });
          },
          (v) =>
            `coefficients (columns ${v.features.join(' ')}; target ${v.target}): ${list(v.coefficients, 20)}\n` +
            `${residualText(v)}, ${v.iterations} iterations, κ(AR⁻¹) ${fmt(v.preconditionedCondition)}\n`,
          (e) => {
            // ε = min(objective bound, solve + sampling); the sampling part is itself capped by the objective bound.
            const solve = e.parts.sketch.epsilon;
            const sampling = e.parts.sampling.epsilon;
            return e.epsilon < (solve + sampling) * (1 - 1e-12)
              ? `ε = min(objective bound, solve + sampling) = the objective bound (the solve part alone is ${fmt(solve)}); bounds ‖x − x*‖₂`
              : `ε = min(objective bound, solve + sampling) = solve + sampling = ${fmt(solve)} + ${fmt(sampling)}; bounds ‖x − x*‖₂`;
          },
        );
      }),
  );
  run.addCommand(
    common(
      new CliCommand('fd').description('Frequent Directions sketch of the dataset in locus (deterministic covariance bound)'),
    )
      .option('--sketch-rows <l>', 'rows ℓ of the sketch')
      .action(async (flags: CommonFlags & { sketchRows?: string }) => {
        await runAlgorithm(
          flags,
          (dataset, ctx, c) => {
            const sketchRows = intFlag(flags.sketchRows, '--sketch-rows', 2, 4096);
            return frequentDirections(dataset, ctx, {
              signal: c.signal,
              ...(sketchRows === undefined ? {} : { sketchRows }),
              ...(c.deadlineMs === undefined ? {} : { deadlineMs: c.deadlineMs }),
            });
          },
          (v) =>
            `ℓ ${v.sketchRows}, ${v.rowsSeen} rows absorbed, shrinkage Δ ${fmt(v.shrinkage)}\nsingular values: ${list(v.singularValues)}\n`,
          (e) =>
            `ε = shrinkage Δ + missing blocks' Gram norms = ${fmt(e.parts.sketch.epsilon)} + ${fmt(e.parts.sampling.epsilon)} ` +
            `(bounds ‖AᵀA − BᵀB‖₂)`,
        );
      }),
  );
  run.addCommand(
    common(
      new CliCommand('spectral-norm').description('‖A‖₂ with a two-sided interval, and the stable rank ‖A‖_F²/σ₁² (uncentred A)'),
    ).action(async (flags: CommonFlags) => {
      await runAlgorithm(
        flags,
        (dataset, ctx, c) => spectralNorm(dataset, ctx, c),
        (v) =>
          `σ₁ ${fmt(v.sigma1)} ∈ [${fmt(v.lower)}, ${fmt(v.upper)}], stable rank ‖A‖_F²/σ₁² ${fmt(v.effectiveRank)} (uncentred A)\n`,
        () => 'ε = max(σ̂₁ − lower, upper − σ̂₁), the interval’s larger side',
      );
    }),
  );
  run.addCommand(
    common(new CliCommand('trace').description('tr(Cᵖ) of the covariance by Hutch++ in locus'))
      .option('--power <p>', 'p (1 … 4, default 2)')
      .option(
        '--matvecs <m>',
        'products with Cᵖ: at least the number of columns gives the exact trace; fewer, Hutch++ (a multiple of 3 whose third exceeds 4·ln(2/δ)); default: exact up to 90 columns (δ = 0.05), else Hutch++ with 90',
      )
      .action(async (flags: CommonFlags & { power?: string; matvecs?: string }) => {
        await runAlgorithm(
          flags,
          (dataset, ctx, c) => {
            const power = intFlag(flags.power, '--power', 1, 4);
            const matvecs = intFlag(flags.matvecs, '--matvecs', 1, 1_000_000);
            return traceEstimate(dataset, ctx, {
              ...c,
              ...(power === undefined ? {} : { power }),
              ...(matvecs === undefined ? {} : { matvecs }),
            });
          },
          (v) =>
            `tr(C^${v.power}) ${fmt(v.trace)}` +
            (v.effectiveRank === undefined
              ? ''
              : `, effective rank ${v.power <= 2 ? '(tr C)²/tr(C²)' : `((tr C)^${v.power}/tr(C^${v.power}))^(1/${v.power - 1})`} ${fmt(v.effectiveRank)} (C the centred covariance)`) +
            '\n',
          (e) =>
            e.parts.rounding !== undefined
              ? 'ε = rounding only (the trace is exact)'
              : 'ε = the Gaussian probes’ bound on the deflated part (Laurent–Massart)',
        );
      }),
  );
  return run;
}
