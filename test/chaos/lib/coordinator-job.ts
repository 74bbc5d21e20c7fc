import { setTimeout as sleep } from 'node:timers/promises';
import { lastValueFrom } from 'rxjs';
import type { IbpClient } from '../../../ibp/index.js';
import { Coordinator, columnStatsJob, gramJob, type Dataset } from '../../../framework/index.js';
import { ReliabilityStore } from '../../../framework/estimation/index.js';
import { maxAbsDiff } from '../../coordinator/fixtures.js';
import type { Prng } from './prng.js';

/** How a coordinator job under faults ended. */
export interface JobOutcome {
  kind: 'bound-held' | 'bound-violated' | 'explicit-error' | 'hang';
  detail: string;
}

export interface BoundedJob {
  readonly client: IbpClient;
  readonly dataset: Dataset;
  /** A Gram job (else column means). */
  readonly gram: boolean;
  /** The exact answer, to check the estimate's bound against. */
  readonly want: ArrayLike<number>;
  readonly opTimeoutMs: number;
  /** Deadline mode: the job answers with what arrived this long after its start. */
  readonly deadlineMs?: number;
  /** Not ended (with an answer or an error) this long after its start: a hang. */
  readonly hangMs: number;
  /** Draws when a mid-job fault lands (5–60 ms in). */
  readonly rand: Prng;
  readonly fault: () => Promise<void> | void;
  readonly heal: () => Promise<void> | void;
  /** `mid`: the fault lands 5–60 ms into the job; `start`: it is in place before the job starts. */
  readonly at?: 'mid' | 'start';
}

/**
 * Runs one coordinator job with a fault, and judges it: an estimate whose error against the exact answer
 * is within its ε (bound held or violated), an explicit error, or no end within `hangMs` (a hang).
 */
export async function runBoundedJob(j: BoundedJob): Promise<JobOutcome> {
  const at = j.at ?? 'mid';
  if (at === 'start') await j.fault();
  const coordinator = await Coordinator.open({
    client: j.client,
    reliabilityPath: null,
    reliability: new ReliabilityStore({ clock: { now: () => Date.now() } }),
  });
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const opts = {
    opTimeoutMs: j.opTimeoutMs,
    concurrency: 4,
    partialEvery: 1,
    ...(j.deadlineMs === undefined ? {} : { deadlineMs: j.deadlineMs }),
  };
  const run = j.gram
    ? lastValueFrom(coordinator.run(gramJob(j.dataset), opts))
    : lastValueFrom(coordinator.run(columnStatsJob(j.dataset, 'means'), opts));
  const faultP = (async () => {
    if (at === 'start') return;
    await sleep(j.rand.int(5, 60));
    await j.fault();
  })();
  const bound = new Promise<'hang'>((resolve) => (timer = setTimeout(() => resolve('hang'), j.hangMs)));
  let out: JobOutcome;
  try {
    const r = await Promise.race([run, bound]);
    if (r === 'hang') out = { kind: 'hang', detail: `no end within ${j.hangMs} ms` };
    else {
      const err = maxAbsDiff(r.value, j.want);
      // ε plus the rounding of a different summation order
      const slack = 1e-9 * Math.max(...Array.from(j.want, Math.abs));
      out = {
        kind: r.final && err <= r.epsilon + slack ? 'bound-held' : 'bound-violated',
        detail: `error ${err.toExponential(2)} vs ε ${r.epsilon.toExponential(2)}, coverage ${r.coverage.toFixed(2)}, ${Date.now() - started} ms`,
      };
    }
  } catch (e) {
    out = {
      kind: 'explicit-error',
      detail: `${(e as { code?: string }).code ?? (e as Error).name}: ${(e as Error).message.slice(0, 120)}, ${Date.now() - started} ms`,
    };
  } finally {
    clearTimeout(timer);
    await faultP.catch(() => undefined);
    await j.heal();
    await coordinator.close();
  }
  return out;
}
