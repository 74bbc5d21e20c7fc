import { lastValueFrom } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NfuExecutor } from '../../depot/index.js';
import { formatCapability } from '../../ibp/index.js';
import { ReliabilityStore, summarizeBlock } from '../../framework/estimation/index.js';
import { IbpOpRunner } from '../../framework/coordinator/ibp-op-runner.js';
import { gramJob } from '../../framework/coordinator/gram-job.js';
import { runJob } from '../../framework/coordinator/run-job.js';
import { storeReliability } from '../../framework/coordinator/store-reliability.js';
import type { OpOutcome } from '../../framework/coordinator/reliability-view.js';
import type { Dataset } from '../../framework/coordinator/dataset-shape.js';
import { startDepot, type TestDepot } from '../helpers/depot-fixture.js';
import { blockData, exact, maxAbsDiff } from './fixtures.js';

const MiB = 1024 * 1024;
const ROWS = 16_384;
const COLS = 8;

/** The depot's NFU executor (in-process test depot), to hold part of its memory budget. */
const executorOf = (t: TestDepot) => (t.depot as unknown as { nfu: { executor: NfuExecutor } }).nfu.executor;

describe('coordinator against a depot whose NFU memory budget is full', () => {
  let t: TestDepot;
  beforeAll(async () => {
    t = await startDepot({ nfu: { workers: 1, memoryBudgetMb: 4 }, limits: { overloadRetrySec: 1 } });
  });
  afterAll(async () => {
    await t.close();
  });

  it('gets "-66 1", waits, asks the same depot again and records no failure', async () => {
    const data = blockData(1, ROWS, COLS, 5);
    const bytes = new Uint8Array(data[0]!.buffer);
    const caps = await t.client.allocate(t, { size: bytes.length, durationSec: 60 });
    await t.client.store(caps.write, bytes);
    const depot = { host: t.host, port: t.port };
    const ds: Dataset = {
      name: 'busy',
      dtype: 'float64',
      rows: ROWS,
      cols: COLS,
      blocks: [
        {
          index: 0,
          rowStart: 0,
          rows: ROWS,
          bytes: bytes.length,
          replicas: [{ depot, read: formatCapability(caps.read), allocOffset: 0, length: bytes.length }],
          summary: summarizeBlock(data[0]!, ROWS, COLS),
        },
      ],
    };
    // As if another op held 3 of the 4 MiB: the Gram of a 1 MiB block (about 2 MiB) does not fit beside it.
    const release = executorOf(t).admit(3 * MiB, 'a held op');
    const outcomes: OpOutcome[] = [];
    const store = new ReliabilityStore({ clock: { now: () => Date.now() } });
    let final;
    try {
      final = await lastValueFrom(
        runJob(gramJob(ds), {
          runner: new IbpOpRunner(t.client),
          reliability: storeReliability(store),
          opTimeoutMs: 20_000,
          onAttempt: (_depot, outcome) => {
            outcomes.push(outcome);
            if (outcome === 'busy') release(); // the other op finishes while the coordinator waits
          },
        }),
      );
    } finally {
      release();
    }
    expect(outcomes).toEqual(['busy', 'answer']);
    expect(final.blocksUsed).toBe(1);
    expect(final.parts.sampling.epsilon).toBe(0); // every block answered: only the rounding allowance is left
    expect(final.epsilon).toBe(final.parts.rounding?.epsilon ?? 0);
    expect(maxAbsDiff(final.value, exact(data, COLS).gram)).toBeLessThan(1e-6);
    const d = store.depot(`${t.host}:${t.port}`);
    expect(d.failures).toBe(0);
    expect(d.answers).toBeGreaterThan(0.99);
    expect(executorOf(t).budget.inUse).toBe(0);
  });
});
