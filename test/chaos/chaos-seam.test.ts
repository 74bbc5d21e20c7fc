import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { runSuite, summaryLine } from './lib/run-suite.js';
import { SCENARIOS } from './scenarios/index.js';
import { plantedFault } from './scenarios/planted-fault.js';

/**
 * The seam of the chaos suite: a wrong byte planted on purpose (seeded) must fail the run, print the seed
 * in the replay command, and come back at the same place when the run is replayed from that seed.
 */
const LIST = [...SCENARIOS, plantedFault];
const run = (seed: number) => runSuite(LIST, { seed, scale: 'short', only: ['planted-fault'], log: () => undefined });

describe('chaos seam: a planted fault', () => {
  it('fails the run with its seed printed, and replays from it', async () => {
    const first = await run(4242);
    expect(first.clean).toBe(false);
    expect(first.zero.wrong_bytes).toBeGreaterThan(0);
    expect(first.other['planted_byte']).not.toBeNull();
    const line = summaryLine(first, ' --plant');
    expect(line).toMatch(/^chaos FAILED: .*wrong_bytes=\d+ .*replay: npm run test:chaos -- --seed 4242 --plant$/);

    const replay = await run(4242);
    expect(replay.toJSON()).toEqual({
      ...first.toJSON(),
      seconds_planted_fault: replay.other['seconds_planted_fault'],
      seconds_total: replay.other['seconds_total'],
    });

    // Another seed plants elsewhere: the place comes from the seed, not from the harness.
    const other = await run(4243);
    expect(other.clean).toBe(false);
    expect([other.other['planted_load'], other.other['planted_byte']]).not.toEqual([
      first.other['planted_load'],
      first.other['planted_byte'],
    ]);
  }, 60_000);

  it('npm run test:chaos -- --plant exits 1 and prints the replay command and the JSON figures', () => {
    const r = spawnSync(
      process.execPath,
      ['test/chaos/run-chaos.mjs', '--seed', '4242', '--short', '--only', 'planted-fault', '--plant', '--json'],
      { encoding: 'utf8', timeout: 120_000 },
    );
    expect(r.status, r.stderr).toBe(1);
    const lines = r.stdout.trim().split('\n');
    const figures = JSON.parse(lines.at(-1)!) as Record<string, unknown>;
    expect(figures['seed']).toBe(4242);
    expect(figures['wrong_bytes']).toBeGreaterThan(0);
    expect(lines.at(-2)).toMatch(
      /^chaos FAILED: .*replay: npm run test:chaos -- --seed 4242 --short --only planted-fault --plant$/,
    );
  }, 130_000);
});
