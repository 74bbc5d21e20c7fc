import { lastValueFrom, of } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { ReliabilityStore, gamma } from '../../framework/estimation/index.js';
import { runJob } from '../../framework/coordinator/run-job.js';
import { columnStatsJob } from '../../framework/coordinator/column-stats-job.js';
import { covarianceJob, gramJob } from '../../framework/coordinator/gram-job.js';
import { storeReliability } from '../../framework/coordinator/store-reliability.js';
import type { Job } from '../../framework/coordinator/job.js';
import type { OpAnswer, OpRunner } from '../../framework/coordinator/op-runner.js';
import { columnStatsBytes, fakeDataset, gramBytes, seeded } from '../coordinator/fixtures.js';

// Values are integers times 2⁻²⁰ (so the real-number answers are exact BigInt rationals) spread over many
// magnitudes (so floating-point sums do round). Every block answers: the sampling part is 0, and ε must still
// bound the distance to the real answer.
const SCALE = 20;
const COLS = 3;
const BLOCKS = 16;
const ROWS = 257;

function makeData(seed: number): { blocks: Float64Array[]; ints: bigint[][] } {
  const rand = seeded(seed);
  const blocks: Float64Array[] = [];
  const ints: bigint[][] = [];
  for (let b = 0; b < BLOCKS; b++) {
    const d = new Float64Array(ROWS * COLS);
    const k: bigint[] = [];
    for (let i = 0; i < d.length; i++) {
      const mag = 2 ** Math.floor(rand() * 62); // 1 … 2⁶¹ units of 2⁻²⁰
      const n = Math.floor((rand() - 0.3) * mag);
      d[i] = n / 2 ** SCALE;
      k.push(BigInt(n));
    }
    blocks.push(d);
    ints.push(k);
  }
  return { blocks, ints };
}

/** x − num/den as a float, computed exactly (x is a float, num/den a rational) and rounded once. */
function diff(x: number, num: bigint, den: bigint): number {
  // x = m·2^e exactly.
  if (x === 0) return -Number(num) / Number(den);
  const buf = new DataView(new ArrayBuffer(8));
  buf.setFloat64(0, x);
  const hi = buf.getUint32(0);
  const lo = buf.getUint32(4);
  const sign = hi >>> 31 ? -1n : 1n;
  const expBits = (hi >>> 20) & 0x7ff;
  let mant = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  let e: number;
  if (expBits === 0) e = -1074;
  else {
    mant |= 1n << 52n;
    e = expBits - 1075;
  }
  const m = sign * mant;
  // x − num/den = (m·2^e·den − num)/den; bring to a common power of two.
  const shift = 1100;
  const xs = e + shift >= 0 ? m * den * (1n << BigInt(e + shift)) : 0n;
  const top = xs - num * (1n << BigInt(shift));
  // top / (den · 2^shift) as a float: an integer quotient of about 60 bits, then scaled by a power of two.
  if (top === 0n) return 0;
  const bitlen = (v: bigint) => (v < 0n ? -v : v).toString(2).length;
  const d = den << BigInt(shift);
  const k = 60 - (bitlen(top) - bitlen(d));
  const q = k >= 0 ? (top << BigInt(k)) / d : top / (d << BigInt(-k));
  return Number(q) * 2 ** -k;
}

function runAll(job: Job<Float64Array>, blocks: Float64Array[]) {
  const runner: OpRunner = {
    run: (a) => {
      const d = blocks[a.block.index]!;
      const output = a.op.name === 'gram' ? gramBytes(d, COLS) : columnStatsBytes(d, COLS);
      return of<OpAnswer>({ output, wireBytes: 0, ranOn: '127.0.0.1:1', transferred: false });
    },
  };
  const store = new ReliabilityStore({ clock: { now: () => Date.now() } });
  return lastValueFrom(runJob(job, { runner, reliability: storeReliability(store) }));
}

describe('rounding allowance: ε bounds the distance to the real-number answer', () => {
  it('gamma(n) = n·u/(1 − n·u)', () => {
    expect(gamma(1)).toBe(2 ** -53 / (1 - 2 ** -53));
    expect(gamma(2 ** 53)).toBe(Infinity);
  });

  for (const seed of [1, 2, 3]) {
    it(`column sums and means, every block answered (seed ${seed})`, async () => {
      const { blocks, ints } = makeData(seed);
      const ds = fakeDataset(blocks, COLS, () => [1]);
      const n = BigInt(BLOCKS * ROWS);
      const den = 1n << BigInt(SCALE);
      const exactSums = Array.from({ length: COLS }, (_, j) =>
        ints.reduce((s, k) => s + k.filter((_, i) => i % COLS === j).reduce((a, v) => a + v, 0n), 0n),
      );
      const sums = await runAll(columnStatsJob(ds, 'sums'), blocks);
      const means = await runAll(columnStatsJob(ds, 'means'), blocks);
      expect(sums.parts.sampling.epsilon).toBe(0);
      expect(means.parts.sampling.epsilon).toBe(0);
      let errSums = 0;
      let errMeans = 0;
      for (let j = 0; j < COLS; j++) {
        const es = Math.abs(diff(sums.value[j]!, exactSums[j]!, den));
        const em = Math.abs(diff(means.value[j]!, exactSums[j]!, den * n));
        expect(es).toBeLessThanOrEqual(sums.epsilonPerCoordinate![j]!);
        expect(em).toBeLessThanOrEqual(means.epsilonPerCoordinate![j]!);
        errSums = Math.max(errSums, es);
        errMeans = Math.max(errMeans, em);
      }
      expect(errSums).toBeGreaterThan(0); // the data does round
      expect(errMeans).toBeGreaterThan(0);
      expect(errSums).toBeLessThanOrEqual(sums.epsilon);
      expect(errMeans).toBeLessThanOrEqual(means.epsilon);
      expect(means.parts.rounding!.epsilon).toBe(means.epsilon);
    });

    it(`Gram and covariance, every block answered (seed ${seed})`, async () => {
      const { blocks, ints } = makeData(seed);
      const ds = fakeDataset(blocks, COLS, () => [1]);
      const g = await runAll(gramJob(ds), blocks);
      const c = await runAll(covarianceJob(ds), blocks);
      const den = 1n << BigInt(2 * SCALE);
      const N = BigInt(BLOCKS * ROWS);
      const G: bigint[] = new Array<bigint>(COLS * COLS).fill(0n);
      const S: bigint[] = new Array<bigint>(COLS).fill(0n);
      for (const k of ints)
        for (let i = 0; i < ROWS; i++)
          for (let p = 0; p < COLS; p++) {
            S[p]! += k[i * COLS + p]!;
            for (let q = 0; q < COLS; q++) G[p * COLS + q]! += k[i * COLS + p]! * k[i * COLS + q]!;
          }
      let fg = 0;
      let fc = 0;
      for (let p = 0; p < COLS; p++)
        for (let q = 0; q < COLS; q++) {
          fg += diff(g.value[p * COLS + q]!, G[p * COLS + q]!, den) ** 2;
          // C = (G − S Sᵀ/N)/(N − 1) = (N·G − S·Sᵀ)/(N·(N − 1)) in units of 2⁻⁴⁰.
          const num = N * G[p * COLS + q]! - S[p]! * S[q]!;
          fc += diff(c.value[p * COLS + q]!, num, den * N * (N - 1n)) ** 2;
        }
      expect(g.parts.sampling.epsilon).toBe(0);
      // ‖E‖₂ ≤ ‖E‖_F: the Frobenius error within ε is enough (and holds here).
      expect(Math.sqrt(fg)).toBeGreaterThan(0);
      expect(Math.sqrt(fg)).toBeLessThanOrEqual(g.epsilon);
      expect(Math.sqrt(fc)).toBeLessThanOrEqual(c.epsilon);
      expect(g.parts.rounding!.epsilon).toBe(g.epsilon);
    });
  }
});
