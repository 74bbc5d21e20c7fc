import type { Observable } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { ReliabilityStore } from '../../framework/estimation/index.js';
import { runJob, type RunJobOptions } from '../../framework/coordinator/run-job.js';
import { columnStatsJob } from '../../framework/coordinator/column-stats-job.js';
import { OpTimeoutError, type LateKind } from '../../framework/coordinator/hedged-block.js';
import { SuspectDepots } from '../../framework/coordinator/suspect-depots.js';
import { storeReliability } from '../../framework/coordinator/store-reliability.js';
import type { OpAnswer, OpAttempt, OpRunner } from '../../framework/coordinator/op-runner.js';
import type { Dataset } from '../../framework/coordinator/dataset-shape.js';
import { blockData, columnStatsBytes, fakeDataset } from './fixtures.js';

const COLS = 3;
type Helpers = Parameters<Parameters<TestScheduler['run']>[0]>[0];

/** Answers an attempt on depot port P with the marble `behaviour[P]` (`a` = the block's op output, `-` = never). */
class MarbleRunner implements OpRunner {
  /** `port/block` of every attempt, in order. */
  readonly asked: string[] = [];
  constructor(
    private readonly h: Helpers,
    private readonly data: Float64Array[],
    private readonly behaviour: Record<number, string>,
  ) {}
  run(attempt: OpAttempt): Observable<OpAnswer> {
    const port = attempt.replica.depot.port;
    this.asked.push(`${port}/${attempt.block.index}`);
    const answer: OpAnswer = {
      output: columnStatsBytes(this.data[attempt.block.index]!, COLS),
      wireBytes: 100,
      ranOn: `127.0.0.1:${port}`,
      transferred: false,
    };
    return this.h.cold(this.behaviour[port]!, { a: answer });
  }
}

interface Ran {
  end: number;
  used: number;
  missing: number;
  late: { block: number; depot: string; kind: LateKind | undefined; waitMs: number | undefined }[];
}

/** Runs the column-sums job on virtual time; what it answered, when, and each late attempt's kind. */
function run(
  h: Helpers,
  scheduler: TestScheduler,
  ds: Dataset,
  runner: OpRunner,
  options: Omit<RunJobOptions, 'runner' | 'reliability'> & { store: ReliabilityStore },
): Ran {
  const ran: Ran = { end: -1, used: 0, missing: 0, late: [] };
  const { store, ...rest } = options;
  runJob(columnStatsJob(ds, 'sums'), {
    ...rest,
    runner,
    reliability: storeReliability(store),
    scheduler,
    onAttemptFailure: (block, depot, outcome, error) => {
      if (outcome !== 'late') return;
      const e = error instanceof OpTimeoutError ? error : undefined;
      ran.late.push({ block: block.index, depot, kind: e?.kind, waitMs: e?.waitMs });
    },
  }).subscribe({
    next: (e) => {
      if (!e.final) return;
      ran.end = scheduler.now();
      ran.used = e.blocksUsed;
      ran.missing = e.blocksMissing;
    },
  });
  h.flush();
  return ran;
}

describe('depots late earlier in a job (suspects)', () => {
  const data = blockData(4, 5, COLS, 3);

  it('waits the op timeout once; later jobs sharing the suspects wait only the shortened time', () => {
    const scheduler = new TestScheduler((a, b) => expect(a).toEqual(b));
    const store = new ReliabilityStore({ clock: { now: () => scheduler.now() } });
    // One copy: blocks 1 and 3 only on the stalled depot 301.
    const ds = fakeDataset(data, COLS, (b) => [300 + (b % 2)]);
    const suspects = new SuspectDepots();
    scheduler.run((h) => {
      const runner = new MarbleRunner(h, data, { 300: '2ms (a|)', 301: '-' });
      const first = run(h, scheduler, ds, runner, { store, suspects, opTimeoutMs: 1000, suspectWaitMs: 50 });
      expect(first).toMatchObject({ end: 1000, used: 2, missing: 2 });
      expect(first.late.map((l) => [l.block, l.kind, l.waitMs])).toEqual([
        [1, 'op-timeout', 1000],
        [3, 'op-timeout', 1000],
      ]);
      expect(suspects.has('127.0.0.1:301')).toBe(true);
      expect(suspects.has('127.0.0.1:300')).toBe(false);
      const t0 = scheduler.now();
      const second = run(h, scheduler, ds, runner, { store, suspects, opTimeoutMs: 1000, suspectWaitMs: 50 });
      // max(50 ms, 4 × the median answer time, 2 ms) = 50 ms, not the 1000 ms op timeout.
      expect(second.end - t0).toBe(50);
      expect(second.late.map((l) => [l.block, l.kind, l.waitMs])).toEqual([
        [1, 'suspect-wait', 50],
        [3, 'suspect-wait', 50],
      ]);
    });
  });

  it('tries replicas on suspect depots last and hedges them at once; an answer clears the suspicion', () => {
    const scheduler = new TestScheduler((a, b) => expect(a).toEqual(b));
    const store = new ReliabilityStore({ clock: { now: () => scheduler.now() } });
    // Blocks 0 and 1 on 401 first by their replica order, 400 second; blocks 2 and 3 only on 401.
    const ds = fakeDataset(data, COLS, (b) => (b < 2 ? [401, 400] : [401]));
    const suspects = new SuspectDepots();
    suspects.mark('127.0.0.1:401', 0);
    scheduler.run((h) => {
      const runner = new MarbleRunner(h, data, { 400: '3ms (a|)', 401: '1ms (a|)' });
      const ran = run(h, scheduler, ds, runner, { store, suspects, defaultHedgeMs: 500, minHedgeMs: 1 });
      // Blocks 0 and 1 go to 400 (401 is not needed: 400 answers before its hedge delay); 2 and 3 to 401,
      // hedged at once — there is no other replica — and answered: 401 is no longer suspect.
      expect(ran).toMatchObject({ end: 3, used: 4, missing: 0 });
      expect(runner.asked).toEqual(['400/0', '400/1', '401/2', '401/3']);
      expect(suspects.has('127.0.0.1:401')).toBe(false);
    });
  });

  it('attempts still running at the deadline are late with kind "deadline" and make their depot suspect', () => {
    const scheduler = new TestScheduler((a, b) => expect(a).toEqual(b));
    const store = new ReliabilityStore({ clock: { now: () => scheduler.now() } });
    const ds = fakeDataset(data, COLS, (b) => [500 + (b % 2)]);
    const suspects = new SuspectDepots();
    scheduler.run((h) => {
      const runner = new MarbleRunner(h, data, { 500: '2ms (a|)', 501: '-' });
      const ran = run(h, scheduler, ds, runner, { store, suspects, opTimeoutMs: 30_000, deadlineMs: 40 });
      expect(ran).toMatchObject({ end: 40, used: 2, missing: 2 });
      expect(ran.late.map((l) => [l.block, l.depot, l.kind, l.waitMs])).toEqual([
        [1, '127.0.0.1:501', 'deadline', 40],
        [3, '127.0.0.1:501', 'deadline', 40],
      ]);
      expect(suspects.has('127.0.0.1:501')).toBe(true);
    });
  });

  it('a suspect depot that lets its shortened wait pass is not asked again in the job: the queued blocks fail at once', () => {
    const scheduler = new TestScheduler((a, b) => expect(a).toEqual(b));
    const store = new ReliabilityStore({ clock: { now: () => scheduler.now() } });
    const ds = fakeDataset(data, COLS, (b) => [700 + (b % 2)]);
    const suspects = new SuspectDepots();
    suspects.mark('127.0.0.1:701', 0);
    scheduler.run((h) => {
      const runner = new MarbleRunner(h, data, { 700: '2ms (a|)', 701: '-' });
      // One attempt per depot at a time: block 3 waits at the gate behind block 1.
      const ran = run(h, scheduler, ds, runner, { store, suspects, suspectWaitMs: 50, perDepotConcurrency: 1 });
      expect(ran).toMatchObject({ end: 50, used: 2, missing: 2 });
      expect(ran.late.map((l) => [l.block, l.kind, l.waitMs])).toEqual([
        [1, 'suspect-wait', 50],
        [3, 'suspect-wait', 0],
      ]);
      expect(runner.asked.filter((a) => a.startsWith('701/'))).toEqual(['701/1']);
    });
  });
});

describe('the deadline', () => {
  const data = blockData(4, 5, COLS, 9);

  it('starts nothing while it drops the running attempts: a block queued at the gate is not counted late', () => {
    const scheduler = new TestScheduler((a, b) => expect(a).toEqual(b));
    const store = new ReliabilityStore({ clock: { now: () => scheduler.now() } });
    const ds = fakeDataset(data, COLS, (b) => [800 + (b % 2)]);
    scheduler.run((h) => {
      const runner = new MarbleRunner(h, data, { 800: '2ms (a|)', 801: '-' });
      const ran = run(h, scheduler, ds, runner, { store, deadlineMs: 40, perDepotConcurrency: 1 });
      expect(ran).toMatchObject({ end: 40, used: 2, missing: 2 });
      expect(ran.late.map((l) => [l.block, l.kind])).toEqual([[1, 'deadline']]);
      expect(runner.asked.filter((a) => a.startsWith('801/'))).toEqual(['801/1']);
    });
  });
});

describe('soft deadline', () => {
  const data = blockData(4, 5, COLS, 5);
  const answersAt = { 600: '30ms (a|)', 601: '50ms (a|)', 602: '70ms (a|)', 603: '90ms (a|)' };

  it('answers at the soft deadline when enough blocks have answered', () => {
    const scheduler = new TestScheduler((a, b) => expect(a).toEqual(b));
    const store = new ReliabilityStore({ clock: { now: () => scheduler.now() } });
    const ds = fakeDataset(data, COLS, (b) => [600 + b]);
    scheduler.run((h) => {
      const ran = run(h, scheduler, ds, new MarbleRunner(h, data, answersAt), { store, softDeadlineMs: 60, deadlineMs: 1000 });
      expect(ran).toMatchObject({ end: 60, used: 2, missing: 2 });
      expect(ran.late.map((l) => [l.block, l.kind])).toEqual([
        [2, 'deadline'],
        [3, 'deadline'],
      ]);
    });
  });

  it('past the soft deadline with no answer yet, answers at the first one', () => {
    const scheduler = new TestScheduler((a, b) => expect(a).toEqual(b));
    const store = new ReliabilityStore({ clock: { now: () => scheduler.now() } });
    const ds = fakeDataset(data, COLS, (b) => [600 + b]);
    scheduler.run((h) => {
      const ran = run(h, scheduler, ds, new MarbleRunner(h, data, answersAt), { store, softDeadlineMs: 10, deadlineMs: 1000 });
      expect(ran).toMatchObject({ end: 30, used: 1, missing: 3 });
    });
  });

  it('with no answer by the hard deadline, the job fails with COORD_E_COVERAGE as before', () => {
    const scheduler = new TestScheduler((a, b) => expect(a).toEqual(b));
    const store = new ReliabilityStore({ clock: { now: () => scheduler.now() } });
    const ds = fakeDataset(data, COLS, (b) => [600 + b]);
    scheduler.run((h) => {
      let code: unknown;
      runJob(columnStatsJob(ds, 'sums'), {
        runner: new MarbleRunner(h, data, answersAt),
        reliability: storeReliability(store),
        scheduler,
        softDeadlineMs: 5,
        deadlineMs: 20,
      }).subscribe({ error: (e: { code?: unknown }) => (code = e.code) });
      h.flush();
      expect(code).toBe('COORD_E_COVERAGE');
    });
  });
});
