import { writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runSuite, summaryLine } from './lib/run-suite.js';
import { SCENARIOS } from './scenarios/index.js';
import { plantedFault } from './scenarios/planted-fault.js';

/*
 * The full chaos run, started by `npm run test:chaos` (test/chaos/run-chaos.mjs passes the seed and the
 * result file through the environment). Not part of `npm test`: its name does not end in `.test.ts`.
 */
const SEED = Number(process.env['ANVIL_CHAOS_SEED'] ?? Date.now() % 2 ** 31);
const SCALE = process.env['ANVIL_CHAOS_SCALE'] === 'short' ? 'short' : 'full';
const ONLY = process.env['ANVIL_CHAOS_ONLY']?.split(',');
const OUT = process.env['ANVIL_CHAOS_OUT'];
// `--plant`: a wrong byte planted on purpose (after every scenario, so their draws are unchanged) — the run must fail.
const PLANT = process.env['ANVIL_CHAOS_PLANT'] === '1';
const LIST = PLANT ? [...SCENARIOS, plantedFault] : SCENARIOS;
const FLAGS = `${SCALE === 'short' ? ' --short' : ''}${ONLY === undefined ? '' : ` --only ${ONLY.join(',')}`}${PLANT ? ' --plant' : ''}`;

describe('chaos (full)', () => {
  it(`every scenario holds the zero-figures (seed ${SEED})`, async () => {
    const figures = await runSuite(LIST, { seed: SEED, scale: SCALE, ...(ONLY === undefined ? {} : { only: ONLY }) });
    if (OUT !== undefined)
      writeFileSync(OUT, JSON.stringify({ clean: figures.clean, line: summaryLine(figures, FLAGS), figures }));
    console.log(summaryLine(figures, FLAGS));
    expect(figures.violations, `seed ${SEED}`).toEqual([]);
    expect(figures.zero, `seed ${SEED}`).toEqual({
      acked_lost: 0,
      wrong_bytes: 0,
      depot_crashes: 0,
      forged_caps_accepted: 0,
      hangs: 0,
    });
  }, 900_000);
});
