import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
/** The built bench (`npm run bench:depot` runs it after a build). */
const BENCH = new URL('../../dist/bench/depot-throughput.js', import.meta.url).pathname;

/** The bench with `env` added; never rejects. */
function bench(env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return run(process.execPath, [BENCH], { env: { ...process.env, ...env }, timeout: 20_000 }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number | null; stdout: string; stderr: string }) => e,
  );
}

describe('bench:depot refuses a bad setting before it starts anything', () => {
  for (const [env, message] of [
    [{ BENCH_KINDS: 'memory,disk' }, 'BENCH_KINDS: unknown kind "disk" (use memory, disk-fast, disk-safe)'],
    [{ BENCH_ROUNDS: 'abc' }, 'BENCH_ROUNDS must be a whole number of at least 1 (got "abc")'],
    [{ BENCH_READ_PASSES: '2.5' }, 'BENCH_READ_PASSES must be a whole number of at least 1 (got "2.5")'],
    [{ BENCH_BLOCK_KB: '1000' }, 'BENCH_BLOCK_KB (1000) must divide the allocation'],
    [{ BENCH_WRITE_ORDER: 'backwards' }, 'BENCH_WRITE_ORDER must be one of append, reverse (got "backwards")'],
  ] as const) {
    it(
      Object.entries(env)
        .map(([k, v]) => `${k}=${v}`)
        .join(' '),
      async () => {
        const r = await bench(env);
        expect(r.code).toBe(2);
        expect(r.stderr).toContain(`bench:depot: ${message}`);
        expect(r.stderr).not.toContain('    at '); // no stack trace
        expect(r.stdout).toBe(''); // nothing measured
      },
    );
  }
});
