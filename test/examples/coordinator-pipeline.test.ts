import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const example = fileURLToPath(new URL('../../dist/examples/coordinator-pipeline.js', import.meta.url));

// The shipped example (built into dist/ like the depots the tests start): every bound it prints must hold,
// and stopping a depot must actually lose blocks.
describe('examples/coordinator-pipeline', () => {
  it('prints only true comparisons, an ε > 0 with every block answered, and missing blocks once a depot stops', async () => {
    const { stdout } = await run(process.execPath, [example], { timeout: 60_000 });
    const lines = stdout.trim().split('\n');
    const checks = lines.filter((l) => / ≤ ε /.test(l));
    expect(checks.length).toBe(3);
    for (const l of checks) expect(l).toMatch(/: true/);
    expect(stdout).not.toMatch(/: false/);
    const allDepots = checks[0]!;
    expect(allDepots).toMatch(/^means, all depots: max error \S+ ≤ ε (\S+): true$/);
    expect(Number(/ε (\S+):/.exec(allDepots)![1])).toBeGreaterThan(0);
    for (const l of checks.slice(1)) {
      const m = /(\d+) of 32 blocks missing, coverage ([\d.]+)/.exec(l);
      expect(m).not.toBeNull();
      expect(Number(m![1])).toBeGreaterThan(0);
      expect(Number(m![2])).toBeLessThan(1);
    }
  }, 90_000);
});
