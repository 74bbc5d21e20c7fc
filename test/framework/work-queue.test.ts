import { describe, expect, it } from 'vitest';
import { FrameworkError, WorkQueue, forEachBounded } from '../../framework/index.js';

/** A promise and its settle functions. */
function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const tick = () => new Promise<void>((r) => setImmediate(r));

describe('WorkQueue', () => {
  it('runs at most `concurrency` tasks at once, first in first out', async () => {
    const q = new WorkQueue({ concurrency: 2 });
    const gates = Array.from({ length: 5 }, () => deferred());
    const started: number[] = [];
    let peak = 0;
    const results = gates.map((g, i) =>
      q.run(async () => {
        started.push(i);
        peak = Math.max(peak, q.running);
        await g.promise;
        return i * 10;
      }),
    );
    await tick();
    expect(started).toEqual([0, 1]);
    expect(q.queued).toBe(3);
    gates[1]!.resolve();
    await tick();
    expect(started).toEqual([0, 1, 2]);
    for (const g of gates) g.resolve();
    expect(await Promise.all(results)).toEqual([0, 10, 20, 30, 40]);
    expect(peak).toBe(2);
    await q.onIdle();
    expect(q.running + q.queued).toBe(0);
  });

  it('a failing task rejects its own run only', async () => {
    const q = new WorkQueue({ concurrency: 1 });
    const bad = q.run(() => {
      throw new Error('boom');
    });
    const good = q.run(() => 7);
    await expect(bad).rejects.toThrow('boom');
    expect(await good).toBe(7);
  });

  it('refuses past maxQueued with FW_ERR_QUEUE_FULL and queues nothing', async () => {
    const q = new WorkQueue({ concurrency: 1, maxQueued: 1 });
    const gate = deferred();
    const a = q.run(() => gate.promise);
    const b = q.run(() => 'b');
    const c = q.run(() => 'c');
    await expect(c).rejects.toBeInstanceOf(FrameworkError);
    await expect(c).rejects.toMatchObject({ code: 'FW_ERR_QUEUE_FULL' });
    expect(q.queued).toBe(1);
    gate.resolve();
    await a;
    expect(await b).toBe('b');
  });

  it('validates its options', () => {
    expect(() => new WorkQueue({ concurrency: 0 })).toThrow(/concurrency/);
    expect(() => new WorkQueue({ concurrency: 1, maxQueued: -1 })).toThrow(/maxQueued/);
  });

  it("a task's own signal drops it while waiting and reaches it while running", async () => {
    const q = new WorkQueue({ concurrency: 1 });
    const gate = deferred();
    const runningCtl = new AbortController();
    let sawAbort: unknown;
    const first = q.run(
      async (signal) => {
        signal.addEventListener('abort', () => (sawAbort = signal.reason));
        await gate.promise;
        return 'first';
      },
      { signal: runningCtl.signal },
    );
    const waitingCtl = new AbortController();
    let ranSecond = false;
    const second = q.run(() => (ranSecond = true), { signal: waitingCtl.signal });
    await tick();
    waitingCtl.abort(new Error('no longer needed'));
    await expect(second).rejects.toThrow('no longer needed');
    expect(q.queued).toBe(0);
    runningCtl.abort('stop');
    expect(sawAbort).toBe('stop');
    gate.resolve();
    expect(await first).toBe('first'); // the task decides how to stop
    expect(ranSecond).toBe(false);
  });

  it('aborting the queue rejects waiting tasks, signals running ones and refuses new ones', async () => {
    const outer = new AbortController();
    const q = new WorkQueue({ concurrency: 1, signal: outer.signal });
    const running = q.run(
      (signal) =>
        new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true })),
    );
    const waiting = q.run(() => 'never');
    const reason = new Error('shutting down');
    outer.abort(reason);
    await expect(waiting).rejects.toBe(reason);
    await expect(running).rejects.toBe(reason);
    await expect(q.run(() => 'late')).rejects.toBe(reason);
    expect(q.signal.aborted).toBe(true);
    await q.onIdle();
  });
});

describe('forEachBounded', () => {
  it('runs every index once with bounded concurrency', async () => {
    let inFlight = 0;
    let peak = 0;
    const seen: number[] = [];
    await forEachBounded(20, 3, async (i) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await tick();
      seen.push(i);
      inFlight--;
    });
    expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(peak).toBe(3);
  });

  it('the first failure stops new tasks, aborts the running ones, and is rethrown after they settle', async () => {
    const started: number[] = [];
    let settledAfterAbort = false;
    const err = new Error('first');
    await expect(
      forEachBounded(100, 2, async (i, signal) => {
        started.push(i);
        if (i === 0) {
          await tick();
          throw err;
        }
        await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
        await tick();
        settledAfterAbort = true;
      }),
    ).rejects.toBe(err);
    expect(started).toEqual([0, 1]);
    expect(settledAfterAbort).toBe(true);
  });

  it('an aborted signal starts nothing and throws its reason', async () => {
    const ctl = new AbortController();
    ctl.abort(new Error('cancelled'));
    let ran = 0;
    await expect(forEachBounded(5, 2, async () => void ran++, ctl.signal)).rejects.toThrow('cancelled');
    expect(ran).toBe(0);
  });
});
