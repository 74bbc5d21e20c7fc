import { describe, expect, it } from 'vitest';
import {
  DatasetError,
  describeSensorField,
  simulateSensorField,
  streamSensorField,
  type SensorBatch,
} from '../../framework/dataset/index.js';

function concat(parts: Float64Array[]): Float64Array {
  const out = new Float64Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Largest |principal angle sine| between the spans of two d × k orthonormal bases: ‖(I − QQᵀ)V‖. */
function subspaceGap(q: Float64Array, v: Float64Array, d: number, k: number): number {
  let worst = 0;
  for (let j = 0; j < k; j++) {
    const col = Float64Array.from({ length: d }, (_, c) => v[c * k + j]!);
    for (let p = 0; p < k; p++) {
      let dot = 0;
      for (let c = 0; c < d; c++) dot += q[c * k + p]! * col[c]!;
      for (let c = 0; c < d; c++) col[c]! -= dot * q[c * k + p]!;
    }
    worst = Math.max(worst, Math.hypot(...col));
  }
  return worst;
}

/** Top-k eigenvectors of a symmetric d × d matrix by orthogonal (subspace) iteration. */
function topEigenvectors(a: Float64Array, d: number, k: number): Float64Array {
  let v = Float64Array.from({ length: d * k }, (_, i) => Math.sin(i + 1));
  for (let it = 0; it < 500; it++) {
    const w = new Float64Array(d * k);
    for (let r = 0; r < d; r++)
      for (let j = 0; j < k; j++) for (let c = 0; c < d; c++) w[r * k + j]! += a[r * d + c]! * v[c * k + j]!;
    for (let j = 0; j < k; j++) {
      for (let p = 0; p < j; p++) {
        let dot = 0;
        for (let c = 0; c < d; c++) dot += w[c * k + j]! * w[c * k + p]!;
        for (let c = 0; c < d; c++) w[c * k + j]! -= dot * w[c * k + p]!;
      }
      let n = 0;
      for (let c = 0; c < d; c++) n += w[c * k + j]! ** 2;
      for (let c = 0; c < d; c++) w[c * k + j]! /= Math.sqrt(n);
    }
    v = w;
  }
  return v;
}

describe('simulateSensorField', () => {
  it('is deterministic for a seed and differs across seeds', () => {
    const a = simulateSensorField({ seed: 11, rowsPerSensor: 200, faultRates: { spiking: 0.25, garbage: 0.1 } });
    const b = simulateSensorField({ seed: 11, rowsPerSensor: 200, faultRates: { spiking: 0.25, garbage: 0.1 } });
    const c = simulateSensorField({ seed: 12, rowsPerSensor: 200, faultRates: { spiking: 0.25, garbage: 0.1 } });
    expect(a.rows.map((r) => Buffer.from(r.data.buffer).toString('hex'))).toEqual(
      b.rows.map((r) => Buffer.from(r.data.buffer).toString('hex')),
    );
    expect(a.truth.faulty).toEqual(b.truth.faulty);
    expect(Buffer.from(a.rows[0]!.data.buffer).equals(Buffer.from(c.rows[0]!.data.buffer))).toBe(false);
  });

  it('names sites and sources and assigns round(rate · n) faults of each kind', () => {
    const f = simulateSensorField({
      seed: 5,
      sites: 3,
      sensorsPerSite: 4,
      rowsPerSensor: 50,
      faultRates: { stuck: 0.25, garbage: 1 / 6 },
    });
    expect(f.sites).toEqual(['site-0', 'site-1', 'site-2']);
    expect(f.sources).toHaveLength(12);
    expect(f.sources[5]).toMatchObject({ id: 'site-1/sensor-1', site: 'site-1' });
    expect(f.truth.faulty.filter((x) => x.fault === 'stuck')).toHaveLength(3);
    expect(f.truth.faulty.filter((x) => x.fault === 'garbage')).toHaveLength(2);
    expect(f.truth.clean.sources).toHaveLength(7);
    for (const x of f.truth.faulty) expect(f.sources.find((s) => s.id === x.source)!.fault).toBe(x.fault);
  });

  it('faults look like their kind: stuck rows repeat, garbage is large, dropouts skip steps, spikes are rare outliers', () => {
    const f = simulateSensorField({
      seed: 2,
      sites: 2,
      sensorsPerSite: 4,
      rowsPerSensor: 400,
      faultRates: { stuck: 0.125, spiking: 0.125, dropout: 0.125, garbage: 0.125 },
      faultOnsetRow: 100,
      dropoutRows: 150,
      spikeProbability: 0.1,
    });
    const d = f.options.channels;
    const rowsOf = (fault: string) => f.rows[f.sources.findIndex((s) => s.fault === fault)]!;
    const stuck = rowsOf('stuck');
    expect(stuck.data.subarray(200 * d, 201 * d)).toEqual(stuck.data.subarray(399 * d, 400 * d));
    expect(stuck.data.subarray(50 * d, 51 * d)).not.toEqual(stuck.data.subarray(51 * d, 52 * d));
    const drop = rowsOf('dropout');
    expect(drop.rows).toBe(250);
    expect(drop.times[99]).toBe(99);
    expect(drop.times[100]).toBe(250);
    const garbage = rowsOf('garbage');
    const maxAbs = (a: Float64Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    expect(maxAbs(garbage.data.subarray(100 * d))).toBeGreaterThan(50);
    expect(maxAbs(garbage.data.subarray(0, 100 * d))).toBeLessThan(20);
    const spiking = rowsOf('spiking');
    expect(maxAbs(spiking.data.subarray(100 * d))).toBeGreaterThan(30);
    expect(maxAbs(spiking.data.subarray(0, 100 * d))).toBeLessThan(20);
  });

  it('knows its ground truth: orthonormal subspace, exact clean statistics, and the subspace shows in the data', () => {
    const f = simulateSensorField({
      seed: 9,
      rowsPerSensor: 2000,
      factors: 2,
      channels: 8,
      driftStd: 0,
      faultRates: { garbage: 0.25 },
    });
    const { subspace: q, channels: d, factors: k, clean } = f.truth;
    for (let a = 0; a < k; a++) {
      for (let b = 0; b < k; b++) {
        let dot = 0;
        for (let c = 0; c < d; c++) dot += q[c * k + a]! * q[c * k + b]!;
        expect(dot).toBeCloseTo(a === b ? 1 : 0, 12);
      }
    }
    const healthy = f.rows.filter((r) => clean.sources.includes(r.source));
    const all = concat(healthy.map((r) => r.data));
    expect(clean.rows).toBe(all.length / d);
    for (let c = 0; c < d; c++) {
      let s = 0;
      for (let i = c; i < all.length; i += d) s += all[i]!;
      expect(clean.colSums[c]).toBeCloseTo(s, 8);
    }
    // The top-k eigenvectors of the clean covariance span the latent subspace (population truth).
    expect(subspaceGap(q, topEigenvectors(clean.covariance, d, k), d, k)).toBeLessThan(0.1);
    // With the garbage sources mixed in, the empirical subspace is far off: the faults matter.
    const withGarbage = concat(f.rows.map((r) => r.data));
    const n = withGarbage.length / d;
    const mean = new Float64Array(d);
    for (let i = 0; i < withGarbage.length; i++) mean[i % d]! += withGarbage[i]! / n;
    const cov = new Float64Array(d * d);
    for (let r = 0; r < n; r++)
      for (let a = 0; a < d; a++)
        for (let b = 0; b < d; b++)
          cov[a * d + b]! += ((withGarbage[r * d + a]! - mean[a]!) * (withGarbage[r * d + b]! - mean[b]!)) / n;
    expect(subspaceGap(q, topEigenvectors(cov, d, k), d, k)).toBeGreaterThan(0.5);
  });

  it('streams exactly the rows of the batch form, and describes the same field upfront', async () => {
    const opts = { seed: 4, rowsPerSensor: 230, faultRates: { dropout: 0.25 }, faultOnsetRow: 30, dropoutRows: 100 };
    const field = simulateSensorField(opts);
    const parts = new Map<string, Float64Array[]>();
    const batches: SensorBatch[] = [];
    for await (const b of streamSensorField(opts, { batchRows: 64 })) {
      batches.push(b);
      parts.set(b.source, [...(parts.get(b.source) ?? []), b.data]);
    }
    expect(batches.length).toBeGreaterThan(field.sources.length * 3);
    for (const r of field.rows) expect(concat(parts.get(r.source)!)).toEqual(r.data);
    const desc = describeSensorField(opts);
    expect(desc.faulty).toEqual(field.truth.faulty);
    expect(desc.model.subspace).toEqual(field.truth.subspace);
  });

  it('stops a stream when its signal aborts', async () => {
    const ac = new AbortController();
    const seen: number[] = [];
    const run = (async () => {
      for await (const b of streamSensorField(
        { rowsPerSensor: Infinity, sites: 1, sensorsPerSite: 1 },
        { batchRows: 10, rowsPerSecond: 1000, signal: ac.signal },
      )) {
        seen.push(b.timeStart);
        if (seen.length === 3) ac.abort();
      }
    })();
    await expect(run).rejects.toMatchObject({ code: 'DATA_E_ABORTED' });
    expect(seen).toEqual([0, 10, 20]);
  });

  it('rejects bad options naming the option, the rule and the value', () => {
    expect(() => simulateSensorField({ factors: 8, channels: 8 })).toThrow(
      'invalid argument: `factors` must be an integer from 1 to 7 (got 8)',
    );
    expect(() => simulateSensorField({ faultRates: { stuck: 0.7, garbage: 0.5 } })).toThrow(DatasetError);
    expect(() => simulateSensorField({ faultRates: { melted: 0.1 } as never })).toThrow('`faultRates.melted`');
    expect(() => simulateSensorField({ rowsPerSensor: Infinity })).toThrow('`rowsPerSensor`');
    expect(() => simulateSensorField({ colour: 1 } as never)).toThrow('`colour`');
  });
});
