import { describe, expect, it } from 'vitest';
import { ManualClock, schedulerClock, sleep, systemClock, type SchedulerLikeClock } from '../../framework/index.js';

describe('ManualClock', () => {
  it('stands still until advanced, then fires due timers in due order with now() at their time', () => {
    const clock = new ManualClock(1_000);
    const seen: Array<[string, number]> = [];
    clock.setTimeout(() => seen.push(['b', clock.now()]), 50);
    clock.setTimeout(() => seen.push(['a', clock.now()]), 10);
    clock.setTimeout(() => seen.push(['a2', clock.now()]), 10);
    const late = clock.setTimeout(() => seen.push(['late', clock.now()]), 500);
    expect(clock.now()).toBe(1_000);
    clock.advance(49);
    expect(seen).toEqual([
      ['a', 1_010],
      ['a2', 1_010],
    ]);
    expect(clock.now()).toBe(1_049);
    clock.clearTimeout(late);
    clock.advance(1_000);
    expect(seen.map((s) => s[0])).toEqual(['a', 'a2', 'b']);
    expect(clock.pendingTimers).toBe(0);
  });

  it('fires timers set by timers when they fall due within the same advance', () => {
    const clock = new ManualClock();
    const at: number[] = [];
    const tick = () => {
      at.push(clock.now());
      if (at.length < 5) clock.setTimeout(tick, 100);
    };
    clock.setTimeout(tick, 100);
    clock.advance(350);
    expect(at).toEqual([100, 200, 300]);
    clock.advanceTo(1_000);
    expect(at).toEqual([100, 200, 300, 400, 500]);
  });

  it('refuses to go back in time and stops a runaway zero-delay loop', () => {
    const clock = new ManualClock(10);
    expect(() => clock.advanceTo(5)).toThrow(RangeError);
    expect(() => clock.advance(-1)).toThrow(RangeError);
    const forever = () => clock.setTimeout(forever, 0);
    forever();
    expect(() => clock.advance(1)).toThrow(/keep setting due timers/);
  });
});

describe('sleep', () => {
  it('resolves on the clock, not on wall time', async () => {
    const clock = new ManualClock();
    let done = false;
    const p = sleep(clock, 60_000).then(() => (done = true));
    await Promise.resolve();
    expect(done).toBe(false);
    clock.advance(60_000);
    await p;
    expect(done).toBe(true);
  });

  it('rejects with the abort reason and clears its timer', async () => {
    const clock = new ManualClock();
    const ctl = new AbortController();
    const p = sleep(clock, 1_000, ctl.signal);
    expect(clock.pendingTimers).toBe(1);
    ctl.abort(new Error('stop'));
    await expect(p).rejects.toThrow('stop');
    expect(clock.pendingTimers).toBe(0);
    await expect(sleep(clock, 1, ctl.signal)).rejects.toThrow('stop');
  });

  it('works on the system clock', async () => {
    await sleep(systemClock, 1);
    expect(systemClock.now()).toBeGreaterThan(0);
  });
});

describe('schedulerClock', () => {
  /** A minimal virtual-time scheduler with the shape of rxjs's (now, schedule → unsubscribe, flush). */
  class FakeScheduler implements SchedulerLikeClock {
    frame = 0;
    actions: Array<{ at: number; work: () => void; live: boolean }> = [];
    now(): number {
      return this.frame;
    }
    schedule(work: () => void, delay = 0): { unsubscribe(): void } {
      const action = { at: this.frame + delay, work, live: true };
      this.actions.push(action);
      return { unsubscribe: () => (action.live = false) };
    }
    flush(): void {
      for (let i = 0; i < 1000; i++) {
        const due = this.actions.filter((a) => a.live).sort((a, b) => a.at - b.at)[0];
        if (due === undefined) return;
        due.live = false;
        this.frame = due.at;
        due.work();
      }
    }
  }

  it('reads and waits on the scheduler', () => {
    const s = new FakeScheduler();
    const clock = schedulerClock(s);
    const fired: number[] = [];
    clock.setTimeout(() => fired.push(clock.now()), 30);
    const cancelled = clock.setTimeout(() => fired.push(-1), 20);
    clock.clearTimeout(cancelled);
    clock.clearTimeout(undefined); // ignored
    s.flush();
    expect(fired).toEqual([30]);
  });
});
