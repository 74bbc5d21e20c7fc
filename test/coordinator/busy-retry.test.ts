import { map, type Observable } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { ClientError } from '../../ibp/index.js';
import { ReliabilityStore } from '../../framework/estimation/index.js';
import { runJob } from '../../framework/coordinator/run-job.js';
import { columnStatsJob } from '../../framework/coordinator/column-stats-job.js';
import { busyRetryAfterMs } from '../../framework/coordinator/hedged-block.js';
import { storeReliability } from '../../framework/coordinator/store-reliability.js';
import type { OpOutcome } from '../../framework/coordinator/reliability-view.js';
import type { OpAnswer, OpAttempt, OpRunner } from '../../framework/coordinator/op-runner.js';
import { blockData, columnStatsBytes, fakeDataset } from './fixtures.js';

// A depot whose NFU admission is full answers `-66 <retry-seconds>`: the coordinator waits the advertised
// delay and asks the same replica again (within the op's deadline and a bounded number of busy retries),
// without counting it as a failure; only then does it fall over to the next replica.
const COLS = 3;
type Helpers = Parameters<Parameters<TestScheduler['run']>[0]>[0];
type Cold = ReturnType<TestScheduler['createColdObservable']>;

/** Attempt i on depot port P follows `script[P][i]` (the last entry repeats): `a` answers, `#` is `-66 <retry>`. */
class BusyRunner implements OpRunner {
  readonly handed: { port: number; cold: Cold }[] = [];
  constructor(
    private readonly h: Helpers,
    private readonly data: Float64Array[],
    private readonly script: Record<number, string[]>,
    private readonly retrySec: number,
  ) {}
  run(attempt: OpAttempt): Observable<OpAnswer> {
    const port = attempt.replica.depot.port;
    const seen = this.handed.filter((x) => x.port === port).length;
    const steps = this.script[port]!;
    const marble = steps[Math.min(seen, steps.length - 1)]!;
    const answer: OpAnswer = {
      output: columnStatsBytes(this.data[attempt.block.index]!, COLS),
      wireBytes: 100,
      ranOn: `127.0.0.1:${port}`,
      transferred: false,
    };
    const busy = ClientError.fromStatus(-66, `127.0.0.1:${port}`, 'NFU', this.retrySec);
    const cold = this.h.cold(marble, { a: answer }, busy);
    this.handed.push({ port, cold });
    return cold;
  }
}

function setup(): { scheduler: TestScheduler; store: ReliabilityStore } {
  const scheduler = new TestScheduler((a, b) => expect(a).toEqual(b));
  return { scheduler, store: new ReliabilityStore({ clock: { now: () => scheduler.now() } }) };
}

const summary = map(
  (e: { blocksUsed: number; blocksMissing: number; final: boolean }) => `${e.blocksUsed}/${e.blocksMissing}${e.final ? 'F' : ''}`,
);

describe('coordinator: a busy depot (-66 <retry>)', () => {
  const data = blockData(1, 5, COLS, 3);

  it('recognises busy answers and their delay', () => {
    expect(busyRetryAfterMs(ClientError.fromStatus(-66, 'x:1', 'NFU', 2))).toBe(2000);
    expect(busyRetryAfterMs(ClientError.fromStatus(-66, 'x:1', 'NFU', 0))).toBe(0);
    expect(busyRetryAfterMs(ClientError.fromStatus(-66, 'x:1', 'NFU'))).toBeGreaterThan(0);
    expect(busyRetryAfterMs(ClientError.fromStatus(-4, 'x:1', 'NFU', 2))).toBeUndefined();
    expect(busyRetryAfterMs(new Error('-66'))).toBeUndefined();
    expect(busyRetryAfterMs(undefined)).toBeUndefined();
  });

  it('retries the same replica after the advertised delay and does not count it as a failure', () => {
    const { scheduler, store } = setup();
    const ds = fakeDataset(data, COLS, () => [400, 401]);
    const outcomes: [string, OpOutcome][] = [];
    scheduler.run((h) => {
      const runner = new BusyRunner(h, data, { 400: ['1ms #', '1ms #', '5ms (a|)'], 401: ['5ms (a|)'] }, 0.02);
      const job$ = runJob(columnStatsJob(ds, 'sums'), {
        runner,
        reliability: storeReliability(store),
        scheduler,
        opTimeoutMs: 500,
        defaultHedgeMs: 1000,
        onAttempt: (depot, outcome) => outcomes.push([depot, outcome]),
      });
      // busy at 1 ms, again at 1 + 20 + 1 ms, answered at 22 + 20 + 5 ms.
      h.expectObservable(job$.pipe(summary)).toBe('47ms (a|)', { a: '1/0F' });
      h.flush();
      expect(runner.handed.map((x) => x.port)).toEqual([400, 400, 400]);
      h.expectSubscriptions(runner.handed[0]!.cold.subscriptions).toBe(['^ !']);
      h.expectSubscriptions(runner.handed[1]!.cold.subscriptions).toBe(['21ms ^ !']);
      h.expectSubscriptions(runner.handed[2]!.cold.subscriptions).toBe(['42ms ^ 4ms !']);
    });
    expect(outcomes).toEqual([
      ['127.0.0.1:400', 'busy'],
      ['127.0.0.1:400', 'busy'],
      ['127.0.0.1:400', 'answer'],
    ]);
    const d = store.depot('127.0.0.1:400');
    expect(d.failures).toBe(0);
    expect(d.answers).toBeCloseTo(1, 6);
    expect(store.depot('127.0.0.1:401').answers).toBe(0);
  });

  it('falls over to the next replica after the last busy retry', () => {
    const { scheduler, store } = setup();
    const ds = fakeDataset(data, COLS, () => [410, 411]);
    scheduler.run((h) => {
      const runner = new BusyRunner(h, data, { 410: ['1ms #'], 411: ['5ms (a|)'] }, 0.01);
      const job$ = runJob(columnStatsJob(ds, 'sums'), {
        runner,
        reliability: storeReliability(store),
        scheduler,
        opTimeoutMs: 500,
        defaultHedgeMs: 1000,
        maxBusyRetries: 2,
      });
      // three busy answers (1, 12, 23 ms), then the other replica: 23 + 5 ms.
      h.expectObservable(job$.pipe(summary)).toBe('28ms (a|)', { a: '1/0F' });
      h.flush();
      expect(runner.handed.map((x) => x.port)).toEqual([410, 410, 410, 411]);
    });
    expect(store.depot('127.0.0.1:410').failures).toBe(0);
    expect(store.depot('127.0.0.1:411').answers).toBeCloseTo(1, 6);
  });

  it('does not wait past the op deadline: a delay beyond it falls over at once', () => {
    const { scheduler, store } = setup();
    const ds = fakeDataset(data, COLS, () => [420, 421]);
    scheduler.run((h) => {
      const runner = new BusyRunner(h, data, { 420: ['1ms #', '1ms (a|)'], 421: ['5ms (a|)'] }, 0.2);
      const job$ = runJob(columnStatsJob(ds, 'sums'), {
        runner,
        reliability: storeReliability(store),
        scheduler,
        opTimeoutMs: 100,
        defaultHedgeMs: 1000,
      });
      h.expectObservable(job$.pipe(summary)).toBe('6ms (a|)', { a: '1/0F' });
      h.flush();
      expect(runner.handed.map((x) => x.port)).toEqual([420, 421]);
    });
    expect(store.depot('127.0.0.1:420').failures).toBe(0);
  });

  it('a block whose only replica stays busy is missing, and the deadline of the op still holds', () => {
    const { scheduler, store } = setup();
    const two = blockData(2, 5, COLS, 4);
    const ds = fakeDataset(two, COLS, (b) => [430 + b]);
    scheduler.run((h) => {
      // Depot 430 is busy with a 30 ms delay: retries at 31 and 62 ms, the op deadline (80 ms) forbids a third.
      const runner = new BusyRunner(h, two, { 430: ['1ms #'], 431: ['2ms (a|)'] }, 0.03);
      const job$ = runJob(columnStatsJob(ds, 'sums'), {
        runner,
        reliability: storeReliability(store),
        scheduler,
        opTimeoutMs: 80,
        partialIntervalMs: 0,
        partialEvery: 1,
      });
      h.expectObservable(job$.pipe(summary)).toBe('2ms a 60ms (b|)', { a: '1/1', b: '1/1F' });
      h.flush();
      expect(runner.handed.filter((x) => x.port === 430)).toHaveLength(3);
    });
    expect(store.depot('127.0.0.1:430').failures).toBe(0);
  });

  it('unsubscribing while a busy retry waits leaves no timer or subscription behind', () => {
    const { scheduler, store } = setup();
    const ds = fakeDataset(data, COLS, () => [440]);
    scheduler.run((h) => {
      const runner = new BusyRunner(h, data, { 440: ['1ms #', '1ms (a|)'] }, 0.05);
      const job$ = runJob(columnStatsJob(ds, 'sums'), { runner, reliability: storeReliability(store), scheduler });
      h.expectObservable(job$.pipe(summary), '^ 10ms !').toBe('');
      h.flush();
      // The retry at 51 ms never ran.
      expect(runner.handed).toHaveLength(1);
    });
  });
});
