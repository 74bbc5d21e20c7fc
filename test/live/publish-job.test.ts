import { describe, expect, it } from 'vitest';
import { of, throwError, concat, lastValueFrom, toArray } from 'rxjs';
import {
  DepotHealthTracker,
  LiveHub,
  publishJob,
  spectrumSeries,
  topEigenvalues,
  vectorSeries,
  type LiveMessage,
} from '../../framework/index.js';
import type { Estimate } from '../../framework/estimation/index.js';

function est(value: Float64Array, final: boolean, sources: Estimate<Float64Array>['sources'] = []): Estimate<Float64Array> {
  return {
    value,
    epsilon: 0.5,
    delta: 0.05,
    coverage: 0.8,
    blocksUsed: 4,
    blocksMissing: 1,
    bytesMoved: 1234,
    method: 'test',
    norm: 'spectral',
    parts: { sampling: { epsilon: 0.5, delta: 0.05 }, sketch: { epsilon: 0, delta: 0 } },
    sources,
    final,
  };
}

function collect(hub: LiveHub): LiveMessage[] {
  const got: LiveMessage[] = [];
  hub.messages.subscribe((m) => got.push(m));
  return got;
}

describe('publishJob', () => {
  it('publishes start, estimates with their spectrum and bands, source weight changes, and done', async () => {
    const hub = new LiveHub();
    const got = collect(hub);
    // diag(9, 4, 1) rotated: eigenvalues 9, 4, 1.
    const c = Math.SQRT1_2;
    const q = [c, -c, 0, c, c, 0, 0, 0, 1];
    const l = [9, 4, 1];
    const s = new Float64Array(9);
    for (let i = 0; i < 3; i++)
      for (let j = 0; j < 3; j++) for (let k = 0; k < 3; k++) s[i * 3 + j]! += q[i * 3 + k]! * l[k]! * q[j * 3 + k]!;
    const src = (w: number) => [{ id: 'sensor-1', weight: w, reliability: 0.9 }];
    const out = await lastValueFrom(
      publishJob(
        hub,
        { jobId: 'j', name: 'pca', now: () => 7 },
        of(est(s, false, src(1)), est(s, false, src(1)), est(s, true, src(0.2))),
        spectrumSeries(3, 2),
      ).pipe(toArray()),
    );
    expect(out).toHaveLength(3);
    expect(got.map((m) => m.type)).toEqual([
      'job-started',
      'estimate',
      'source-weight',
      'estimate',
      'estimate',
      'source-weight',
      'job-done',
    ]);
    const first = got[1] as Extract<LiveMessage, { type: 'estimate' }>;
    expect(first.estimate.series.map((p) => p.name)).toEqual(['λ1', 'λ2']);
    expect(first.estimate.series[0]!.value).toBeCloseTo(9, 10);
    expect(first.estimate.series[1]!.value).toBeCloseTo(4, 10);
    expect(first.estimate.series[0]!.lo).toBeCloseTo(8.5, 10);
    expect((got[5] as { weight: number }).weight).toBe(0.2);
    expect(hub.snapshot().filter((m) => m.type === 'estimate')).toHaveLength(3);
  });

  it('publishes job-failed with the error code', async () => {
    const hub = new LiveHub();
    const got = collect(hub);
    const failure = Object.assign(new Error('coverage 0.2 below 0.5'), { code: 'COORD_E_COVERAGE' });
    await expect(
      lastValueFrom(
        publishJob(
          hub,
          { jobId: 'j', name: 'x' },
          concat(
            of(est(new Float64Array([1, 2]), false)),
            throwError(() => failure),
          ),
          vectorSeries('mean'),
        ),
      ),
    ).rejects.toBe(failure);
    expect(got.at(-1)).toMatchObject({ type: 'job-failed', code: 'COORD_E_COVERAGE' });
    const e = got[1] as Extract<LiveMessage, { type: 'estimate' }>;
    expect(e.estimate.series).toEqual([
      { name: 'mean[0]', value: 1, lo: 0.5, hi: 1.5 },
      { name: 'mean[1]', value: 2, lo: 1.5, hi: 2.5 },
    ]);
  });

  it('topEigenvalues sorts descending', () => {
    expect(topEigenvalues([2, 0, 0, 5], 2, 2)).toEqual([5, 2]);
  });
});

describe('DepotHealthTracker', () => {
  it('sends a depot-health message only when the state changes', () => {
    const hub = new LiveHub();
    const got = collect(hub);
    const t = new DepotHealthTracker(
      hub,
      () => 0.75,
      () => 1,
    );
    t.observe('d1', 'answer');
    t.observe('d1', 'answer');
    t.observe('d1', 'failure', 'connection refused');
    t.observe('d1', 'failure');
    t.observe('d1', 'late');
    t.observe('d1', 'answer');
    expect(got.map((m) => (m as { state: string }).state)).toEqual(['up', 'failed', 'slow', 'up']);
    expect(got[1]).toMatchObject({ depot: 'd1', reliability: 0.75, reason: 'connection refused' });
  });
});
