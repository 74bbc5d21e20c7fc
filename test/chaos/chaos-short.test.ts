import { describe, expect, it } from 'vitest';
import { runSuite, summaryLine } from './lib/run-suite.js';
import { SCENARIOS } from './scenarios/index.js';

/**
 * The CI version of `npm run test:chaos`: every scenario at the short scale, two side by side (the timing
 * measurements alone); a failure prints its seed and the command that replays it.
 */
const SEED = Number(process.env['ANVIL_CHAOS_SEED'] ?? 20261218);
const ONLY = process.env['ANVIL_CHAOS_ONLY']?.split(',');

describe('chaos (short)', () => {
  it(`every scenario at the short scale holds the zero-figures (seed ${SEED})`, async () => {
    const figures = await runSuite(SCENARIOS, {
      seed: SEED,
      scale: 'short',
      lanes: 2,
      ...(ONLY === undefined ? {} : { only: ONLY }),
    });
    console.log(summaryLine(figures, ` --short${ONLY === undefined ? '' : ` --only ${ONLY.join(',')}`}`));
    console.log(JSON.stringify(figures));
    expect(figures.violations, `seed ${SEED}`).toEqual([]);
    expect(figures.zero, `seed ${SEED}`).toEqual({
      acked_lost: 0,
      wrong_bytes: 0,
      depot_crashes: 0,
      forged_caps_accepted: 0,
      hangs: 0,
    });
  }, 120_000);
});
