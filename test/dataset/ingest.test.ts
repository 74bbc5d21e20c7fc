import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  MatrixAccumulator,
  centredScatter,
  gramStatistic,
  makeScatterReference,
  summarizeBlock,
  symmetricEigenvalues,
  type BlockSummary,
} from '../../framework/estimation/index.js';
import { IbpClient, ManualClock, fromUnisJson, fromXnd, toUnisJson, toXnd, type DepotAddress } from '../../framework/index.js';
import {
  DatasetWriter,
  REFERENCE_SCATTER_BLOCKS,
  datasetFromExnode,
  ingest,
  openDataset,
  parseCsvRows,
  sensorFieldBatches,
  simulateSensorField,
  startLoopbackDepots,
  type Dataset,
  type LoopbackDepots,
  type RowBatch,
} from '../../framework/dataset/index.js';
import { tempDir } from '../helpers/temp-dir.js';

const key = (d: DepotAddress) => `${d.host}:${d.port}`;

async function usedBytes(client: IbpClient, depots: readonly DepotAddress[]): Promise<number[]> {
  return Promise.all(depots.map(async (d) => (await client.status(d)).resources.reduce((n, r) => n + r.usedBytes, 0)));
}

/** Reads every replica of every block back and returns the matrix rows of each block (from the first replica). */
async function readBack(client: IbpClient, ds: Dataset): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (const b of ds.blocks) {
    const copies = await Promise.all(b.replicas.map((r) => client.load(r.read, r.allocOffset, r.length)));
    for (const c of copies) expect(c.equals(copies[0]!)).toBe(true);
    out.push(copies[0]!);
  }
  return out;
}

describe('ingest into loopback depots', () => {
  let loop: LoopbackDepots;
  const tmp = tempDir();
  const dir = tmp.path;
  const client = new IbpClient({ timeoutMs: 5_000 });
  beforeAll(async () => {
    loop = await startLoopbackDepots(4);
  });
  afterAll(async () => {
    client.close();
    await loop.stop();
    tmp.cleanup();
  });

  it('stores every row byte-identical with exact summaries, copies on distinct depots of the site, rolling allocations', async () => {
    const field = simulateSensorField({
      seed: 21,
      sites: 2,
      sensorsPerSite: 2,
      channels: 6,
      rowsPerSensor: 530,
      faultRates: { dropout: 0.25 },
      faultOnsetRow: 100,
      dropoutRows: 200,
    });
    const [d0, d1, d2, d3] = loop.depots as [DepotAddress, DepotAddress, DepotAddress, DepotAddress];
    const sites = { 'site-0': [d0, d1, d2], 'site-1': [d2, d3] };
    const blockRows = 64;
    const blockBytes = blockRows * 6 * 8;
    const path = join(dir, 'field.xnd');
    const { dataset, exnode, stats } = await ingest(client, sensorFieldBatches(field, 100), {
      name: 'field',
      cols: 6,
      sites,
      copies: 2,
      blockRows,
      allocationBytes: 3 * blockBytes,
      path,
    });
    const total = field.rows.reduce((n, r) => n + r.rows, 0);
    expect(dataset.rows).toBe(total);
    expect(stats.rows).toBe(total);
    expect(stats.bytes).toBe(2 * total * 6 * 8);
    expect(stats.rowsPerSec).toBeGreaterThan(0);
    // Each source's blocks, in row order, hold exactly its rows in time order.
    const blocks = await readBack(client, dataset);
    // The reference scatter: the first blocks' centred scatters pooled and normalised, named by every summary.
    const asData = (bytes: Buffer) => new Float64Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
    const pooled = new Float64Array(36);
    for (let i = 0; i < REFERENCE_SCATTER_BLOCKS; i++) {
      centredScatter(asData(blocks[i]!), dataset.blocks[i]!.rows, 6).forEach((v, q) => (pooled[q]! += v));
    }
    const reference = makeScatterReference(pooled, 6);
    for (const b of dataset.blocks) expect(b.summary!.scatterReference).toEqual(reference);
    for (const r of field.rows) {
      const mine = dataset.blocks.map((b, i) => [b, blocks[i]!] as const).filter(([b]) => b.source === r.source);
      expect(
        Buffer.concat(mine.map(([, bytes]) => bytes)).equals(Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength)),
      ).toBe(true);
      for (const [b, bytes] of mine) {
        const data = new Float64Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
        expect(b.summary).toEqual(summarizeBlock(data, b.rows, 6, { reference }));
        expect(b.rows === blockRows || b === mine.at(-1)![0]).toBe(true);
      }
    }
    for (const b of dataset.blocks) {
      expect(b.replicas).toHaveLength(2);
      const site = sites[b.source!.split('/')[0] as keyof typeof sites].map(key);
      expect(new Set(b.replicas.map((r) => key(r.depot))).size).toBe(2);
      for (const r of b.replicas) expect(site).toContain(key(r.depot));
    }
    // Allocations: at most 3 blocks each, appended at consecutive offsets; sources roll to new ones.
    const perAlloc = new Map<string, number[]>();
    for (const m of exnode.mappings) perAlloc.set(m.read, [...(perAlloc.get(m.read) ?? []), m.allocOffset]);
    for (const offsets of perAlloc.values()) {
      expect(offsets.length).toBeLessThanOrEqual(3);
      expect(offsets).toEqual(offsets.map((_, i) => i * blockBytes));
    }
    expect(stats.allocations).toBe(perAlloc.size);
    expect(perAlloc.size).toBeGreaterThan(2 * field.sources.length);
    // The exNode on disk is the same dataset, and so is the exNode through LoRS XML and UNIS JSON.
    expect(await openDataset(path)).toEqual(dataset);
    expect(datasetFromExnode(fromXnd(toXnd(exnode)))).toEqual(dataset);
    expect(datasetFromExnode(fromUnisJson(toUnisJson(exnode)))).toEqual(dataset);
    // The balls make the Gram bound of a job missing half its blocks tighter than eigenvalue bounds alone, and
    // it still holds.
    const d = 6;
    const grams = blocks.map((bytes, i) => {
      const a = asData(bytes);
      const g = new Float64Array(d * d);
      for (let r = 0; r < dataset.blocks[i]!.rows; r++)
        for (let j = 0; j < d; j++) for (let k = 0; k < d; k++) g[j * d + k]! += a[r * d + j]! * a[r * d + k]!;
      return g;
    });
    const exact = new Float64Array(d * d);
    for (const g of grams) g.forEach((v, q) => (exact[q]! += v));
    const estimateWith = (summary: (s: BlockSummary) => BlockSummary) => {
      const acc = new MatrixAccumulator(gramStatistic(d));
      grams.forEach((g, i) => {
        if (i % 2 === 0) acc.add(`b${i}`, g);
      });
      // Without the exact scatter, which would make the missing blocks' Grams known outright.
      const planned = dataset.blocks.map((b, i) => {
        const s = { ...summary(b.summary!) };
        delete s.exactScatter;
        return { id: `b${i}`, group: b.source!, summary: s };
      });
      return acc.estimate(planned, { delta: 0.05 });
    };
    const withBalls = estimateWith((s) => s);
    const eigenOnly = estimateWith(({ scatterRadius, scatterReference, ...rest }) => {
      void scatterRadius;
      void scatterReference;
      return rest;
    });
    expect(withBalls.epsilon).toBeLessThan(eigenOnly.epsilon);
    const eig = symmetricEigenvalues(
      withBalls.value.map((v, q) => v - exact[q]!),
      d,
    );
    expect(Math.max(Math.abs(eig[0]!), Math.abs(eig[d - 1]!))).toBeLessThanOrEqual(withBalls.epsilon);
  });

  it('stores float32 datasets as float32 bytes with summaries of the stored values', async () => {
    const csv = ['1.5,2.25', '-3,4e-3', '0.1,1e30'].join('\n');
    const { dataset } = await ingest(client, parseCsvRows([csv], { dtype: 'float32' }), {
      name: 'f32',
      cols: 2,
      dtype: 'float32',
      depots: loop.depots,
      blockRows: 2,
    });
    expect(dataset.blocks.map((b) => b.rows)).toEqual([2, 1]);
    const bytes = Buffer.concat(await readBack(client, dataset));
    expect(bytes.equals(Buffer.from(Float32Array.from([1.5, 2.25, -3, 4e-3, 0.1, 1e30]).buffer))).toBe(true);
    expect(dataset.blocks[1]!.summary!.colSums[0]).toBe(Math.fround(0.1));
  });

  it('a parse error midway leaves nothing behind: every stored allocation is released, no exNode is written', async () => {
    const before = await usedBytes(client, loop.depots);
    const path = join(dir, 'broken.xnd');
    const good = Array.from({ length: 300 }, (_, i) => `${i},${i * 2},${-i}`).join('\n');
    const input = parseCsvRows([good, '\n1,2,x\n'], { name: 'stdin', batchRows: 50 });
    const during: number[][] = [];
    await expect(
      ingest(client, input, {
        name: 'broken',
        cols: 3,
        depots: loop.depots,
        copies: 2,
        blockRows: 50,
        path,
        checkpointBlocks: 1,
        maxInflightBlocks: 1,
        onBlock: () => void (during.length === 0 && during.push([1])),
      }),
    ).rejects.toThrow('stdin: line 301, column 3: "x" is not a number');
    expect(during.length).toBe(1); // blocks had been stored before the error
    expect(existsSync(path)).toBe(false);
    expect(await usedBytes(client, loop.depots)).toEqual(before);
  });

  it('an input with no rows fails with DATA_E_EMPTY_INPUT: no exNode, no allocation', async () => {
    const before = await usedBytes(client, loop.depots);
    const path = join(dir, 'empty.xnd');
    for (const input of [[], parseCsvRows([''], { name: 'stdin' }), [{ rows: 0, data: new Float64Array(0) }]]) {
      await expect(ingest(client, input, { name: 'empty', cols: 3, depots: loop.depots, path })).rejects.toMatchObject({
        code: 'DATA_E_EMPTY_INPUT',
        message: 'the input has no rows; nothing was stored and no exNode was written',
      });
      expect(existsSync(path)).toBe(false);
    }
    expect(await usedBytes(client, loop.depots)).toEqual(before);
  });

  it('a block that runs out of depots fails the ingest with DATA_E_INGEST_FAILED and releases the rest', async () => {
    const extra = await startLoopbackDepots(2);
    try {
      const before = await usedBytes(client, loop.depots);
      const w = new DatasetWriter(client, {
        name: 'doomed',
        cols: 4,
        sites: { a: loop.depots.slice(0, 2), b: extra.depots },
        copies: 2,
        blockRows: 10,
      });
      const rows = Float64Array.from({ length: 40 }, (_, i) => i);
      await w.append('a/s0', rows, 10);
      await w.append('b/s0', rows, 10);
      expect(await usedBytes(client, loop.depots)).not.toEqual(before);
      await extra.kill(1);
      await expect(
        (async () => {
          await w.append('b/s0', rows, 10);
          await w.append('b/s0', rows, 10);
          await w.finish();
        })(),
      ).rejects.toMatchObject({ code: 'DATA_E_INGEST_FAILED' });
      expect(await usedBytes(client, loop.depots)).toEqual(before);
      expect(await usedBytes(client, extra.depots.slice(0, 1))).toEqual([0]);
    } finally {
      await extra.stop();
    }
  });

  it('rejects a non-finite row without changing anything, and aborts by signal releasing what was stored', async () => {
    const before = await usedBytes(client, loop.depots);
    const ac = new AbortController();
    const w = new DatasetWriter(client, { name: 'abort', cols: 2, depots: loop.depots, blockRows: 2, signal: ac.signal });
    await w.append('s', Float64Array.from([1, 2, 3, 4]), 2);
    await expect(w.append('s', Float64Array.from([5, NaN]), 1)).rejects.toThrow(
      'invalid argument: `rows of "s" (row 1, column 2)` must be storable as float64 (got NaN)',
    );
    expect(w.appendedRows).toBe(2);
    ac.abort();
    await expect(w.append('s', Float64Array.from([5, 6]), 1)).rejects.toMatchObject({ code: 'DATA_E_ABORTED' });
    expect(await usedBytes(client, loop.depots)).toEqual(before);
  });

  it('keeps leases alive with the warmer while it runs', async () => {
    const clock = new ManualClock(Date.now());
    const w = new DatasetWriter(client, {
      name: 'warm',
      cols: 2,
      depots: loop.depots.slice(0, 1),
      blockRows: 1,
      durationSec: 120,
      // No timer pass during the advance below: this test drives the pass itself (warmNow).
      warmIntervalMs: 3_600_000,
      clock,
    });
    await w.append('s', Float64Array.from([1, 2, 3, 4]), 2);
    await sleep(1_100); // the depot's own count drops below the full lease
    clock.advance(70_000); // 50 s left by the record: inside leaseAheadSec (60 s)
    const report = await w.warmNow();
    expect(report.refreshed).toBe(2);
    expect(report.failures).toBe(0);
    const { exnode } = await w.finish();
    for (const m of exnode.mappings) expect(m.leaseEndMs).toBe(clock.now() + 120_000);
    const probe = await client.probe(exnode.mappings[0]!.manage!);
    expect(probe.secondsLeft).toBeGreaterThan(118);
  });

  it('never runs two warm passes at once: warmNow during a timer pass waits for it, then runs its own', async () => {
    // The first lease renewal is held at the client until released; meanwhile every probe or renewal another
    // pass issues is counted. Before passes were serialized, a warmNow during a held timer pass ran alongside
    // it, and the older pass then wrote its older lease end over the newer one.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let holding = false;
    let heldStarted!: () => void;
    const started = new Promise<void>((r) => (heldStarted = r));
    let callsWhileHeld = 0;
    let callsAfter = 0;
    let changes = 0;
    const gated = new Proxy(client, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver) as unknown;
        if ((prop !== 'probe' && prop !== 'change') || typeof v !== 'function') return v;
        return async (...args: unknown[]) => {
          if (holding) callsWhileHeld++;
          else if (changes > 0) callsAfter++;
          if (prop === 'change' && changes++ === 0) {
            holding = true;
            heldStarted();
            await held;
            holding = false;
          }
          return (v as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        };
      },
    });
    const clock = new ManualClock(Date.now());
    const w = new DatasetWriter(gated, {
      name: 'warm-race',
      cols: 2,
      depots: loop.depots.slice(0, 1),
      blockRows: 1,
      durationSec: 120,
      warmIntervalMs: 60_000,
      clock,
    });
    await w.append('s', Float64Array.from([1, 2]), 1);
    await sleep(1_100); // the depot's own count drops below the full lease
    clock.advance(70_000); // the timer pass: 50 s left by the record, inside leaseAheadSec (60 s)
    await started; // …and it is renewing the lease now
    clock.advance(30_000); // 20 s left by the record as a pass starting now sees it
    const second = w.warmNow();
    const third = w.warmNow();
    // Give a concurrent pass every chance to run (it would need no more than the probe and a renewal).
    const early = await Promise.race([second.then(() => 'finished' as const), sleep(500).then(() => 'waiting' as const)]);
    expect(callsWhileHeld).toBe(0);
    expect(early).toBe('waiting');
    expect(third).toBe(second); // a call while the next pass waits shares it
    release();
    const report = await second;
    expect(callsAfter).toBeGreaterThan(0); // the second pass did run, after the first
    expect(report.failures).toBe(0);
    const { exnode } = await w.finish();
    // The first pass renewed at 70 s: 190 s; the second, starting at 100 s, found 90 s left and kept it.
    const t0 = clock.now() - 100_000;
    for (const m of exnode.mappings) expect(m.leaseEndMs).toBe(t0 + 190_000);
    expect(report.refreshed).toBe(0);
  });
});

describe('sensorFieldBatches', () => {
  it('yields every row of every source once, in time batches', () => {
    const field = simulateSensorField({ seed: 1, rowsPerSensor: 90, faultRates: { dropout: 0.25 }, dropoutRows: 40 });
    const got = new Map<string, number>();
    const batches: RowBatch[] = [...sensorFieldBatches(field, 32)];
    for (const b of batches) got.set(b.source!, (got.get(b.source!) ?? 0) + b.rows);
    for (const r of field.rows) expect(got.get(r.source) ?? 0).toBe(r.rows);
  });
});
