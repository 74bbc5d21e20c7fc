import { lastValueFrom, of, throwError, type Observable } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { CoordinatorError, CoordinatorErrorCode, ReliabilityStore } from '../../framework/estimation/index.js';
import { runJob, type RunJobOptions } from '../../framework/coordinator/run-job.js';
import { columnStatsJob } from '../../framework/coordinator/column-stats-job.js';
import { covarianceJob, gramJob } from '../../framework/coordinator/gram-job.js';
import { storeReliability } from '../../framework/coordinator/store-reliability.js';
import type { Job } from '../../framework/coordinator/job.js';
import type { OpAnswer, OpAttempt, OpRunner } from '../../framework/coordinator/op-runner.js';
import { blockData, columnStatsBytes, fakeDataset, gramBytes } from './fixtures.js';

const COLS = 3;
const data = blockData(12, 5, COLS, 7);

/** Depots on the ports in `down` refuse connections (ECONNREFUSED); the others answer with the op's output. */
class Runner implements OpRunner {
  constructor(private readonly down: ReadonlySet<number>) {}
  run(attempt: OpAttempt): Observable<OpAnswer> {
    const port = attempt.replica.depot.port;
    if (this.down.has(port)) {
      const e = Object.assign(new Error(`connect ECONNREFUSED 127.0.0.1:${port}`), { code: 'ECONNREFUSED' });
      return throwError(() => e);
    }
    const d = data[attempt.block.index]!;
    const output = attempt.op.name === 'gram' ? gramBytes(d, COLS) : columnStatsBytes(d, COLS);
    return of<OpAnswer>({ output, wireBytes: 10, ranOn: `127.0.0.1:${port}`, transferred: false });
  }
}

function options(runner: OpRunner, extra: Partial<RunJobOptions> = {}): { opts: RunJobOptions; store: ReliabilityStore } {
  const store = new ReliabilityStore({ clock: { now: () => Date.now() } });
  return { opts: { runner, reliability: storeReliability(store), defaultHedgeMs: 1, ...extra }, store };
}

async function errorOf(job: Job<Float64Array>, opts: RunJobOptions): Promise<CoordinatorError> {
  return lastValueFrom(runJob(job, opts)).then(
    () => {
      throw new Error('the job succeeded');
    },
    (e: unknown) => e as CoordinatorError,
  );
}

describe('coordinator: coverage below the minimum', () => {
  // Every block on depot 7001 only (one replica): with 7001 down no block answers.
  const single = fakeDataset(data, COLS, () => [7001]);
  const jobs: [string, (d: typeof single) => Job<Float64Array>][] = [
    ['covariance', covarianceJob],
    ['gram', gramJob],
    ['column means', (d) => columnStatsJob(d, 'means')],
    ['column sums', (d) => columnStatsJob(d, 'sums')],
  ];

  for (const [name, make] of jobs) {
    it(`${name}: zero answered blocks is COORD_E_COVERAGE by default, naming the failed depot and why`, async () => {
      const { opts } = options(new Runner(new Set([7001])));
      const e = await errorOf(make(single), opts);
      expect(e).toBeInstanceOf(CoordinatorError);
      expect(e.code).toBe(CoordinatorErrorCode.COVERAGE);
      expect(e.message).toContain('0 of 12 blocks answered');
      expect(e.message).toContain('127.0.0.1:7001: 12 failure (last: connect ECONNREFUSED 127.0.0.1:7001)');
      expect(e.details).toMatchObject({
        blocksUsed: 0,
        blocksPlanned: 12,
        depots: [{ depot: '127.0.0.1:7001', failures: { failure: 12 }, last: 'connect ECONNREFUSED 127.0.0.1:7001' }],
      });
    });
  }

  it('an explicit minCoverage below the answered share also fails, with the depot summary', async () => {
    // Blocks alternate between 7001 (down) and 7002: half the rows answer.
    const half = fakeDataset(data, COLS, (b) => [b % 2 === 0 ? 7001 : 7002]);
    const { opts } = options(new Runner(new Set([7001])), { minCoverage: 0.9 });
    const e = await errorOf(columnStatsJob(half, 'means'), opts);
    expect(e.code).toBe(CoordinatorErrorCode.COVERAGE);
    expect(e.message).toContain('127.0.0.1:7001: 6 failure (last: connect ECONNREFUSED 127.0.0.1:7001)');
    // Without a minimum, half the blocks is an estimate (coverage shown), not an error.
    const ok = await lastValueFrom(runJob(columnStatsJob(half, 'means'), options(new Runner(new Set([7001]))).opts));
    expect(ok.blocksUsed).toBe(6);
    expect(ok.coverage).toBeGreaterThan(0);
    expect(ok.coverage).toBeLessThan(0.9);
  });

  it('minAnsweredBlocks raises the floor', async () => {
    const half = fakeDataset(data, COLS, (b) => [b % 2 === 0 ? 7001 : 7002]);
    const { opts } = options(new Runner(new Set([7001])), { minAnsweredBlocks: 7 });
    const e = await errorOf(gramJob(half), opts);
    expect(e.code).toBe(CoordinatorErrorCode.COVERAGE);
    expect(e.message).toContain('6 of 12 blocks answered');
    expect(e.message).toContain('at least 7 needed');
  });
});

describe('coordinator: a runner that cannot run the op', () => {
  it('fails the job with the runner’s typed error at once and records nothing against the depots', async () => {
    const invalid = new CoordinatorError(
      CoordinatorErrorCode.INVALID_ARGUMENT,
      'invalid argument: op gram is not an algorithms op',
    );
    let attempts = 0;
    const runner: OpRunner = {
      run: () => {
        attempts++;
        return throwError(() => invalid);
      },
    };
    const ds = fakeDataset(data, COLS, () => [7001, 7002]);
    const { opts, store } = options(runner);
    const e = await errorOf(gramJob(ds), opts);
    expect(e).toBe(invalid);
    expect(attempts).toBeLessThan(ds.blocks.length * 2); // not every replica of every block was tried
    for (const id of ['127.0.0.1:7001', '127.0.0.1:7002']) expect(store.depot(id).failures).toBe(0);
  });
});
