import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  CoordinatorErrorCode,
  LatencyHistogram,
  ReliabilityStore,
  robustQualityWeights,
} from '../../framework/estimation/index.js';

class FakeClock {
  t = 1_000_000;
  now(): number {
    return this.t;
  }
}

const HOUR = 3_600_000;

describe('ReliabilityStore: depots', () => {
  let clock: FakeClock;
  beforeEach(() => {
    clock = new FakeClock();
  });

  it('gives the Beta posterior of decayed counts, with a lower quantile below the mean', () => {
    const store = new ReliabilityStore({ clock, halfLifeMs: HOUR });
    for (let i = 0; i < 90; i++) store.recordAnswer('a', 10);
    for (let i = 0; i < 10; i++) store.recordFailure('a');
    const r = store.depot('a');
    expect(r.p).toBeCloseTo(91 / 102, 12);
    expect(r.pLower).toBeLessThan(r.p);
    expect(r.pLower).toBeGreaterThan(0.8);
    expect(store.depot('unknown')).toMatchObject({ p: 0.5, answers: 0, failures: 0 });
    // One half-life later the counts are halved: same mean, wider posterior.
    clock.t += HOUR;
    const later = store.depot('a');
    expect(later.answers).toBeCloseTo(45, 9);
    expect(later.failures).toBeCloseTo(5, 9);
    expect(later.pLower).toBeLessThan(r.pLower);
  });

  it('follows a depot whose failure rate jumps: the conservative π drops and the block inclusion with it', () => {
    const store = new ReliabilityStore({ clock, halfLifeMs: HOUR });
    for (let i = 0; i < 200; i++) {
      store.recordAnswer('a', 5);
      store.recordAnswer('b', 5);
      clock.t += 60_000;
    }
    const before = store.inclusion(['a']);
    for (let i = 0; i < 30; i++) {
      store.recordFailure('a', { latencyMs: 2000 });
      clock.t += 60_000;
    }
    const after = store.inclusion(['a']);
    expect(after.p).toBeLessThan(before.p - 0.2);
    expect(after.pLower).toBeLessThan(after.p);
    // Hedging over a healthy replica keeps the block likely to answer.
    expect(store.inclusion(['a', 'b']).p).toBeGreaterThan(0.95);
    expect(store.depot('a').latencyP95Ms).toBeGreaterThanOrEqual(2000);
  });

  it('counts late answers and gives latency quantiles for hedging', () => {
    const store = new ReliabilityStore({ clock });
    for (let i = 0; i < 95; i++) store.recordAnswer('a', 10);
    for (let i = 0; i < 5; i++) store.recordAnswer('a', 500, { late: true });
    const p50 = store.latencyQuantile('a', 0.5)!;
    expect(p50).toBeGreaterThanOrEqual(10);
    expect(p50).toBeLessThan(12.5);
    expect(store.latencyQuantile('a', 0.99)).toBeGreaterThanOrEqual(500);
    expect(store.depot('a').late).toBe(5);
    expect(store.latencyQuantile('nobody', 0.5)).toBeUndefined();
  });

  it('validates its options and inputs with typed errors', () => {
    expect(() => new ReliabilityStore({ clock, halfLifeMs: 0 })).toThrow(
      'invalid argument: `halfLifeMs` must be a positive finite number (got 0)',
    );
    const store = new ReliabilityStore({ clock });
    expect(() => store.recordAnswer('a', -1)).toThrow(expect.objectContaining({ code: CoordinatorErrorCode.INVALID_ARGUMENT }));
    expect(store.snapshot().depots).toEqual([]);
  });
});

describe('ReliabilityStore: source quality', () => {
  it('a source sending garbage fades, and regains weight once it recovers', () => {
    const clock = new FakeClock();
    const store = new ReliabilityStore({ clock, qualityHalfLifeMs: 60_000 });
    const honest = ['s1', 's2', 's3', 's4', 's5'];
    const weights: number[] = [];
    // 20 iterations of garbage from s0, then 20 of clean data; one iteration per 30 s.
    for (let it = 0; it < 40; it++) {
      for (const [k, s] of honest.entries()) store.recordResidual(s, 0.1 + 0.01 * k);
      store.recordResidual('s0', it < 20 ? 0.95 : 0.11);
      weights.push(store.sourceWeight('s0'));
      clock.t += 30_000;
    }
    expect(weights[0]).toBeLessThan(0.05);
    expect(weights[19]).toBeLessThan(0.05);
    expect(weights[39]).toBe(1);
    expect(weights.findIndex((w, i) => i >= 20 && w === 1)).toBeGreaterThan(20);
    for (const s of honest) expect(store.sourceWeight(s)).toBe(1);
    const snap = store.snapshot();
    expect(snap.sources.map((s) => s.id)).toEqual(['s0', ...honest]);
    expect(snap.sources[0]!.observations).toBe(40);
  });

  it('robust z-scores: median/MAD, one-sided, full weight without peers', () => {
    const w = robustQualityWeights(
      new Map([
        ['a', 1],
        ['b', 1.1],
        ['c', 0.9],
        ['d', 10],
        ['e', 0.1],
      ]),
    );
    expect(w.find((s) => s.id === 'd')!.weight).toBeLessThan(0.05);
    expect(w.find((s) => s.id === 'e')!.weight).toBe(1); // better than its peers is not suspicious
    expect(robustQualityWeights(new Map([['a', 5]]))).toEqual([{ id: 'a', residual: 5, z: 0, weight: 1 }]);
  });
});

describe('ReliabilityStore: persistence', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'anvil-reliability-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('saves atomically and loads the same state', async () => {
    const clock = new FakeClock();
    const store = new ReliabilityStore({ clock });
    store.recordAnswer('a', 12);
    store.recordFailure('b');
    store.recordResidual('s', 0.2);
    const path = join(dir, 'reliability.json');
    await store.save(path);
    expect(await readdir(dir)).toEqual(['reliability.json']);
    const loaded = await ReliabilityStore.load(path, { clock });
    expect(loaded.snapshot()).toEqual(store.snapshot());
    expect(JSON.parse(await readFile(path, 'utf8')).version).toBe(1);
  });

  it('a missing file is an empty store; a malformed one is COORD_E_RELIABILITY_STATE and loads nothing', async () => {
    const clock = new FakeClock();
    expect((await ReliabilityStore.load(join(dir, 'none.json'), { clock })).snapshot().depots).toEqual([]);
    const bad = join(dir, 'bad.json');
    await writeFile(bad, '{"version":1,');
    await expect(ReliabilityStore.load(bad, { clock })).rejects.toMatchObject({ code: CoordinatorErrorCode.RELIABILITY_STATE });
    await writeFile(bad, JSON.stringify({ version: 1, depots: { a: { answers: -1 } }, sources: {} }));
    await expect(ReliabilityStore.load(bad, { clock })).rejects.toThrow(
      'reliability state: `depots.a.latency` is malformed (got undefined)',
    );
  });
});

describe('LatencyHistogram', () => {
  it('returns the upper edge of the quantile bucket and decays', () => {
    const h = new LatencyHistogram();
    expect(h.quantile(0.5)).toBeUndefined();
    h.add(1);
    h.add(100);
    h.decay(0.5);
    expect(h.total).toBeCloseTo(1, 12);
    expect(h.quantile(0.25)).toBeGreaterThanOrEqual(1);
    expect(h.quantile(0.25)).toBeLessThan(1.2);
    expect(h.quantile(0.75)).toBeGreaterThanOrEqual(100);
  });
});
