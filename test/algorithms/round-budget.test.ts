import { describe, expect, it } from 'vitest';
import { DEFAULT_ROUND_SHARE, RoundClock, roundBudgetMs, failureNote } from '../../algorithms/engine.js';
import { OpTimeoutError } from '../../framework/coordinator/index.js';

describe('a round’s share of the time left to the deadline', () => {
  it('is 1/roundsLeft of the time left when the algorithm says, else half of it; at least the floor and 1 ms', () => {
    expect(roundBudgetMs(10_000, 4_000, 3)).toBe(2_000);
    expect(roundBudgetMs(10_000, 4_000, 1)).toBe(6_000);
    expect(roundBudgetMs(10_000, 4_000)).toBe(6_000 * DEFAULT_ROUND_SHARE);
    expect(roundBudgetMs(10_000, 9_990, undefined, 40)).toBe(40);
    expect(roundBudgetMs(10_000, 12_000)).toBe(1);
  });

  it('rounds that each use their share all end by the deadline (give or take the 1 ms least), however many there are', () => {
    let now = 0;
    for (let r = 0; r < 8; r++) now += roundBudgetMs(1_000, now);
    expect(now).toBeLessThanOrEqual(1_000);
    for (let r = 8; r < 40; r++) now += roundBudgetMs(1_000, now);
    expect(now).toBeLessThanOrEqual(1_000 + 40);
  });

  it('the floor is twice the median round duration, the extension twice the longest', () => {
    const clock = new RoundClock();
    expect(clock.floorMs()).toBe(0);
    clock.add(0, 300); // a cold first round
    clock.add(1_000, 1_020);
    clock.add(2_000, 2_030);
    expect(clock.floorMs()).toBe(60);
    expect(clock.longestMs()).toBe(600);
  });
});

describe('missing-block reasons', () => {
  it('say which limit ended a late attempt', () => {
    expect(failureNote('late', new OpTimeoutError('x', 'op-timeout', 30_000))).toBe('no answer within the op timeout (30000 ms)');
    expect(failureNote('late', new OpTimeoutError('x', 'deadline', 120), 250)).toBe(
      "no answer before the deadline (the round's 250 ms share of it)",
    );
    expect(failureNote('late', new OpTimeoutError('x', 'suspect-wait', 1_000))).toMatch(/shortened wait \(1000 ms\)/);
    expect(failureNote('late', new OpTimeoutError('x', 'suspect-wait', 0))).toMatch(/^not asked/);
    expect(failureNote('failure', Object.assign(new Error('refused'), { code: 'IBP_E_CAP_NOT_FOUND', status: -4 }))).toBe(
      'IBP_E_CAP_NOT_FOUND (-4)',
    );
  });
});
