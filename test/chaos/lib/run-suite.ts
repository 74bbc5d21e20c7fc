import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Prng } from './prng.js';
import { Figures, type Scale, type Scenario } from './scenario.js';

export interface SuiteOptions {
  readonly seed: number;
  readonly scale: Scale;
  /** Only these scenarios (by name); default all. */
  readonly only?: readonly string[];
  /**
   * Scenarios run side by side in this many lanes (default 1: one after another). Exclusive scenarios
   * (timing measurements) still run alone, first. Each scenario's random stream is the same either way.
   */
  readonly lanes?: number;
  readonly log?: (line: string) => void;
}

/**
 * Runs the scenarios, each with its own stream forked from the seed (so one scenario's draws never shift
 * another's, whatever runs and in which order) and its own scratch directory. A scenario that throws is
 * recorded as a violation with its message, and the run goes on.
 */
export async function runSuite(scenarios: readonly Scenario[], options: SuiteOptions): Promise<Figures> {
  const figures = new Figures(options.seed);
  const log = options.log ?? ((line: string) => console.log(line));
  const root = Prng.fromSeed(options.seed);
  const started = Date.now();
  // Forked in list order, skipped ones included, so --only replays the same draws.
  const planned = scenarios
    .map((s) => ({ s, rand: root.fork() }))
    .filter(({ s }) => options.only === undefined || options.only.includes(s.name));
  const runOne = async ({ s, rand }: { s: Scenario; rand: Prng }): Promise<void> => {
    const dir = mkdtempSync(join(tmpdir(), `anvil-chaos-${s.name}-`));
    const t0 = Date.now();
    try {
      await s.run({ rand, scale: options.scale, dir, figures, log: (m) => log(`[chaos ${s.name}] ${m}`) });
    } catch (e) {
      figures.violate(`${s.name} threw: ${(e as Error).stack ?? String(e)}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    figures.set(`seconds_${s.name.replace(/-/g, '_')}`, Number(((Date.now() - t0) / 1000).toFixed(1)));
  };
  const lanes = Math.max(1, Math.floor(options.lanes ?? 1));
  if (lanes === 1) for (const p of planned) await runOne(p);
  else {
    for (const p of planned.filter(({ s }) => s.exclusive === true)) await runOne(p);
    const queue = planned.filter(({ s }) => s.exclusive !== true);
    await Promise.all(
      Array.from({ length: lanes }, async () => {
        for (let p = queue.shift(); p !== undefined; p = queue.shift()) await runOne(p);
      }),
    );
  }
  figures.set('seconds_total', Number(((Date.now() - started) / 1000).toFixed(1)));
  return figures;
}

/**
 * One line for people: the zero-figures, then the command that replays the run (`flags`: the other
 * options of the run, e.g. ` --short --only a,b`).
 */
export function summaryLine(f: Figures, flags = ''): string {
  const z = f.zero;
  return (
    `chaos ${f.clean ? 'PASSED' : 'FAILED'}: acked_lost=${z.acked_lost} wrong_bytes=${z.wrong_bytes} depot_crashes=${z.depot_crashes} ` +
    `forged_caps_accepted=${z.forged_caps_accepted} hangs=${z.hangs} violations=${f.violations.length} — replay: npm run test:chaos -- --seed ${f.seed}${flags}`
  );
}
