// `npm run test:chaos [-- --seed N] [--json] [--short] [--only a,b] [--plant]`: runs the full chaos suite in
// vitest and prints its figures; with --json the last line is one JSON object. A failing run prints its seed.
// --plant adds a scenario that returns a wrong byte on purpose (the run must fail, and replay from its seed).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const args = process.argv.slice(2);
const value = (flag) => {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
};
const seedArg = value('--seed');
if (seedArg !== undefined && !/^\d+$/.test(seedArg)) {
  console.error(`--seed takes a non-negative integer (got ${seedArg})`);
  process.exit(2);
}
const seed = seedArg ?? String(Date.now() % 2 ** 31);
const dir = mkdtempSync(join(tmpdir(), 'anvil-chaos-run-'));
const out = join(dir, 'figures.json');
const env = { ...process.env, ANVIL_CHAOS_SEED: seed, ANVIL_CHAOS_OUT: out };
if (args.includes('--short')) env.ANVIL_CHAOS_SCALE = 'short';
if (value('--only') !== undefined) env.ANVIL_CHAOS_ONLY = value('--only');
if (args.includes('--plant')) env.ANVIL_CHAOS_PLANT = '1';
const r = spawnSync('npx', ['vitest', 'run', '--config', 'test/chaos/vitest.chaos.config.ts'], {
  env,
  stdio: args.includes('--json') ? ['ignore', 'inherit', 'inherit'] : 'inherit',
});
let result;
try {
  result = JSON.parse(readFileSync(out, 'utf8'));
} catch {
  result = undefined;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
if (result === undefined) {
  const flags = `${args.includes('--short') ? ' --short' : ''}${value('--only') === undefined ? '' : ` --only ${value('--only')}`}${args.includes('--plant') ? ' --plant' : ''}`;
  console.error(`chaos run did not finish (seed ${seed}); replay: npm run test:chaos -- --seed ${seed}${flags}`);
  process.exit(1);
}
console.log(result.line);
if (args.includes('--json')) console.log(JSON.stringify(result.figures));
process.exit(result.clean && r.status === 0 ? 0 : 1);
