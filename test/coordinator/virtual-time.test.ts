import { map, type Observable } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { ReliabilityStore, CoordinatorErrorCode } from '../../framework/estimation/index.js';
import { runJob } from '../../framework/coordinator/run-job.js';
import { columnStatsJob } from '../../framework/coordinator/column-stats-job.js';
import { hedgeDelayMs, type BlockContext } from '../../framework/coordinator/hedged-block.js';
import { storeReliability } from '../../framework/coordinator/store-reliability.js';
import { DepotGate } from '../../framework/coordinator/depot-gate.js';
import type { OpAnswer, OpAttempt, OpRunner } from '../../framework/coordinator/op-runner.js';
import type { Dataset } from '../../framework/coordinator/dataset-shape.js';
import { blockData, columnStatsBytes, exact, fakeDataset, maxAbsDiff } from './fixtures.js';

const COLS = 3;

type Cold = ReturnType<TestScheduler['createColdObservable']>;

/**
 * Answers an attempt on depot port P with the marble `behaviour[P]` (`a` = the block's true op output,
 * `#` = an error); keeps every cold observable it handed out, to check subscription windows.
 */
class FakeRunner implements OpRunner {
  readonly handed: { port: number; block: number; cold: Cold }[] = [];
  constructor(
    private readonly helpers: TestScheduler['run'] extends (cb: (h: infer H) => unknown) => unknown ? H : never,
    private readonly data: Float64Array[],
    private readonly behaviour: Record<number, string | ((block: number) => string)>,
  ) {}
  run(attempt: OpAttempt): Observable<OpAnswer> {
    const port = attempt.replica.depot.port;
    const b = attempt.block.index;
    const spec = this.behaviour[port]!;
    const marble = typeof spec === 'function' ? spec(b) : spec;
    const answer: OpAnswer = {
      output: columnStatsBytes(this.data[b]!, COLS),
      wireBytes: 100,
      ranOn: `127.0.0.1:${port}`,
      transferred: false,
    };
    const cold = this.helpers.cold(marble, { a: answer }, new Error(`depot ${port} failed`));
    this.handed.push({ port, block: b, cold });
    return cold;
  }
}

function setup(): { scheduler: TestScheduler; store: ReliabilityStore } {
  const scheduler = new TestScheduler((a, b) => expect(a).toEqual(b));
  const store = new ReliabilityStore({ clock: { now: () => scheduler.now() } });
  return { scheduler, store };
}

const summary = map(
  (e: { blocksUsed: number; blocksMissing: number; final: boolean }) => `${e.blocksUsed}/${e.blocksMissing}${e.final ? 'F' : ''}`,
);

describe('coordinator engine on virtual time', () => {
  const data = blockData(4, 5, COLS, 7);

  it('answers every block, emits partial estimates then one exact final estimate', () => {
    const { scheduler, store } = setup();
    const ds = fakeDataset(data, COLS, (b) => [100 + b]);
    scheduler.run((h) => {
      const runner = new FakeRunner(h, data, { 100: '10ms (a|)', 101: '20ms (a|)', 102: '30ms (a|)', 103: '40ms (a|)' });
      const job$ = runJob(columnStatsJob(ds, 'sums'), {
        runner,
        reliability: storeReliability(store),
        scheduler,
        partialEvery: 1,
        partialIntervalMs: 0,
      });
      h.expectObservable(job$.pipe(summary)).toBe('10ms a 9ms b 9ms c 9ms (d|)', { a: '1/3', b: '2/2', c: '3/1', d: '4/0F' });
    });
    let last: Float64Array | undefined;
    scheduler.run((h) => {
      const runner = new FakeRunner(h, data, { 100: '1ms (a|)', 101: '1ms (a|)', 102: '1ms (a|)', 103: '1ms (a|)' });
      runJob(columnStatsJob(ds, 'sums'), {
        runner,
        reliability: storeReliability(store),
        scheduler,
        partialIntervalMs: 0,
      }).subscribe((e) => {
        if (e.final) {
          last = e.value;
          expect(e.parts.sampling.epsilon).toBe(0); // every block answered: only the rounding allowance is left
          expect(e.epsilon).toBe(e.parts.rounding?.epsilon ?? 0);
          expect(e.coverage).toBe(1);
          expect(e.bytesMoved).toBe(400);
        }
      });
    });
    expect(maxAbsDiff(last!, exact(data, COLS).sums)).toBeLessThan(1e-9);
  });

  it('times an op out at the per-op deadline and retries it on the next replica', () => {
    const { scheduler, store } = setup();
    const ds = fakeDataset(data.slice(0, 1), COLS, () => [200, 201]);
    scheduler.run((h) => {
      const runner = new FakeRunner(h, data, { 200: '-', 201: '5ms (a|)' });
      const job$ = runJob(columnStatsJob(ds, 'sums'), {
        runner,
        reliability: storeReliability(store),
        scheduler,
        opTimeoutMs: 50,
        defaultHedgeMs: 1000,
      });
      h.expectObservable(job$.pipe(summary)).toBe('55ms (a|)', { a: '1/0F' });
      h.flush();
      expect(runner.handed.map((x) => x.port)).toEqual([200, 201]);
      h.expectSubscriptions(runner.handed[0]!.cold.subscriptions).toBe(['^ 49ms !']);
    });
    expect(store.depot('127.0.0.1:200').failures).toBeCloseTo(1, 3);
  });

  it('hedges a slow replica after the hedge delay and cancels the loser', () => {
    const { scheduler, store } = setup();
    const ds = fakeDataset(data.slice(0, 1), COLS, () => [300, 301]);
    scheduler.run((h) => {
      const runner = new FakeRunner(h, data, { 300: '100ms (a|)', 301: '10ms (a|)' });
      const job$ = runJob(columnStatsJob(ds, 'sums'), {
        runner,
        reliability: storeReliability(store),
        scheduler,
        defaultHedgeMs: 40,
      });
      // Prior answer probability 1/2 halves the 40 ms default: the hedge starts at 20 ms, answers at 30 ms.
      h.expectObservable(job$.pipe(summary)).toBe('30ms (a|)', { a: '1/0F' });
      h.flush();
      h.expectSubscriptions(runner.handed[0]!.cold.subscriptions).toBe(['^ 29ms !']);
      h.expectSubscriptions(runner.handed[1]!.cold.subscriptions).toBe(['20ms ^ 9ms !']);
    });
  });

  it('deadline mode answers at the deadline; running blocks are missing and recorded late', () => {
    const { scheduler, store } = setup();
    const ds = fakeDataset(data, COLS, (b) => [400 + (b % 2)]);
    let final: { blocksMissing: number; coverage: number; epsilon: number; value: Float64Array } | undefined;
    scheduler.run((h) => {
      const runner = new FakeRunner(h, data, { 400: '10ms (a|)', 401: '500ms (a|)' });
      const job$ = runJob(columnStatsJob(ds, 'means'), {
        runner,
        reliability: storeReliability(store),
        scheduler,
        deadlineMs: 60,
        partialIntervalMs: 0,
      });
      h.expectObservable(job$.pipe(summary)).toBe('10ms (ab) 46ms (c|)', { a: '1/3', b: '2/2', c: '2/2F' });
      h.flush();
      for (const x of runner.handed.filter((x) => x.port === 401)) h.expectSubscriptions(x.cold.subscriptions).toBe(['^ 59ms !']);
      job$.subscribe((e) => (final = e));
    });
    expect(final!.blocksMissing).toBe(2);
    expect(final!.coverage).toBeLessThan(1);
    expect(final!.epsilon).toBeGreaterThan(0);
    expect(maxAbsDiff(final!.value, exact(data, COLS).means)).toBeLessThanOrEqual(final!.epsilon);
    expect(store.depot('127.0.0.1:401').failures).toBeGreaterThan(1.9);
  });

  it('unsubscribing cancels every attempt and timer', () => {
    const { scheduler, store } = setup();
    const ds = fakeDataset(data, COLS, () => [500, 501]);
    scheduler.run((h) => {
      const runner = new FakeRunner(h, data, { 500: '100ms (a|)', 501: '100ms (a|)' });
      const job$ = runJob(columnStatsJob(ds, 'sums'), {
        runner,
        reliability: storeReliability(store),
        scheduler,
        defaultHedgeMs: 60,
      });
      h.expectObservable(job$.pipe(summary), '^ 25ms !').toBe('');
      h.flush();
      // Hedge timers (due at 30 ms) never fired: four first attempts only, all cut at 25 ms.
      expect(runner.handed).toHaveLength(4);
      for (const x of runner.handed) h.expectSubscriptions(x.cold.subscriptions).toBe(['^ 25ms !']);
    });
  });

  it('an AbortSignal stops the job with its reason', () => {
    const { scheduler, store } = setup();
    const ds = fakeDataset(data, COLS, () => [600]);
    scheduler.run((h) => {
      const runner = new FakeRunner(h, data, { 600: '100ms (a|)' });
      const ac = new AbortController();
      const reason = new Error('stop');
      h.cold('30ms a').subscribe(() => ac.abort(reason));
      const job$ = runJob(columnStatsJob(ds, 'sums'), {
        runner,
        reliability: storeReliability(store),
        scheduler,
        signal: ac.signal,
      });
      h.expectObservable(job$.pipe(summary)).toBe('30ms #', undefined, reason);
      h.flush();
      for (const x of runner.handed) h.expectSubscriptions(x.cold.subscriptions).toBe(['^ 29ms !']);
    });
  });

  it('ends with COORD_E_COVERAGE below the minimum coverage', () => {
    const { scheduler, store } = setup();
    const ds = fakeDataset(data, COLS, (b) => [700 + (b === 0 ? 0 : 1)]);
    let error: unknown;
    scheduler.run((h) => {
      const runner = new FakeRunner(h, data, { 700: '5ms (a|)', 701: '5ms #' });
      runJob(columnStatsJob(ds, 'sums'), {
        runner,
        reliability: storeReliability(store),
        scheduler,
        partialIntervalMs: 0,
        minCoverage: 0.5,
      }).subscribe({
        error: (e: unknown) => (error = e),
      });
    });
    expect((error as { code: string }).code).toBe(CoordinatorErrorCode.COVERAGE);
  });

  it('asks a depot that fails often later and hedges it sooner', () => {
    const { scheduler, store } = setup();
    for (let i = 0; i < 20; i++) {
      store.recordAnswer('127.0.0.1:801', 30);
      if (i % 2 === 0) store.recordAnswer('127.0.0.1:800', 30);
      else store.recordFailure('127.0.0.1:800');
    }
    const ds: Dataset = fakeDataset(data.slice(0, 1), COLS, () => [800, 801]);
    scheduler.run((h) => {
      const runner = new FakeRunner(h, data, { 800: '5ms (a|)', 801: '5ms (a|)' });
      runJob(columnStatsJob(ds, 'sums'), {
        runner,
        reliability: storeReliability(store),
        scheduler,
        partialIntervalMs: 0,
      }).subscribe();
      h.flush();
      expect(runner.handed.map((x) => x.port)).toEqual([801]);
    });
    const ctx = {
      scheduler,
      reliability: storeReliability(store),
      hedgeQuantile: 0.95,
      defaultHedgeMs: 1000,
      minHedgeMs: 1,
      opTimeoutMs: 10_000,
      gate: new DepotGate(1),
    } as unknown as BlockContext;
    const [flaky, steady] = ds.blocks[0]!.replicas;
    expect(hedgeDelayMs(ctx, flaky!)).toBeLessThan(hedgeDelayMs(ctx, steady!));
  });
});
