import { Observable, type SchedulerLike } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { TimerQueue } from '../../framework/coordinator/timer-queue.js';
import { DepotGate } from '../../framework/coordinator/depot-gate.js';

describe('TimerQueue', () => {
  it('fires timers at their due times in order (ties in insertion order), skips cancelled ones, on one action', () => {
    const scheduler = new TestScheduler((a, b) => expect(a).toEqual(b));
    const fired: string[] = [];
    let scheduled = 0;
    const counting = {
      now: () => scheduler.now(),
      schedule: (work: () => void, delay?: number) => {
        scheduled++;
        return scheduler.schedule(work, delay);
      },
    };
    scheduler.run(() => {
      const q = new TimerQueue(counting as unknown as SchedulerLike);
      const log = (tag: string) => fired.push(`${tag}@${scheduler.now()}`);
      q.add(30, log, 'c');
      q.add(10, log, 'a');
      q.add(10, log, 'b');
      const cancelled = q.add(20, log, 'x');
      q.add(
        50,
        (tag: string) => {
          log(tag);
          q.add(0, log, 'f');
        },
        'e',
      );
      cancelled.cancel();
      cancelled.cancel();
    });
    expect(fired).toEqual(['a@10', 'b@10', 'c@30', 'e@50', 'f@50']);
    // Re-armed only when an earlier timer arrived or the earliest one fired: far fewer actions than timers.
    expect(scheduled).toBeLessThanOrEqual(5);
  });

  it('close cancels everything and later timers never fire', () => {
    const scheduler = new TestScheduler((a, b) => expect(a).toEqual(b));
    const fired: number[] = [];
    scheduler.run(({ cold }) => {
      const q = new TimerQueue(scheduler);
      q.add(10, (n: number) => fired.push(n), 1);
      q.add(40, (n: number) => fired.push(n), 2);
      cold('20ms a').subscribe(() => {
        q.close();
        q.add(1, (n: number) => fired.push(n), 3);
      });
    });
    expect(fired).toEqual([1]);
  });
});

describe('DepotGate', () => {
  it('acquire runs at most `limit` holders per key, the rest in FIFO order; a waiter that gives up leaves', () => {
    const gate = new DepotGate(2);
    const started: number[] = [];
    const releases = [1, 2, 3, 4, 5].map((n) => gate.acquire('d', (x: number) => started.push(x), n));
    expect(started).toEqual([1, 2]);
    expect(gate.waiting('d')).toBe(3);
    releases[2]!(); // 3 gives up while waiting
    releases[0]!();
    expect(started).toEqual([1, 2, 4]);
    releases[0]!(); // releasing twice does nothing
    expect(gate.active('d')).toBe(2);
    releases[1]!();
    expect(started).toEqual([1, 2, 4, 5]);
    // Another key is independent.
    gate.acquire('e', (x: number) => started.push(x), 9);
    expect(started.at(-1)).toBe(9);
  });

  it('run frees the slot of a source that completes synchronously', () => {
    const gate = new DepotGate(1);
    const sync = new Observable<number>((s) => {
      s.next(1);
      s.complete();
    });
    const got: number[] = [];
    gate.run('d', sync).subscribe((v) => got.push(v));
    gate.run('d', sync).subscribe((v) => got.push(v));
    expect(got).toEqual([1, 1]);
    expect(gate.active('d')).toBe(0);
  });
});
