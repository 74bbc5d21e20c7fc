import { BehaviorSubject, Observable, Subject, auditTime, filter, map, retry, takeUntil, timer, type Subscription } from 'rxjs';
import { IbpClient } from '../../ibp/index.js';
import {
  Coordinator,
  DatasetWriter,
  DepotHealthTracker,
  IbpOpRunner,
  LiveServer,
  ReliabilityStore,
  RobustPcaState,
  depotId,
  publishJob,
  robustCovarianceJob,
  runKernel,
  spectrumSeries,
  startLoopbackDepots,
  streamSensorField,
  type CoordinatorDataset,
  type DepotAddress,
  type Estimate,
  type LoopbackDepots,
  type SensorFault,
} from '../../framework/index.js';
import { ObservedRunner } from './observed-runner.js';
import { ChaosMonkey } from './chaos-monkey.js';
import { ProgressLine } from './progress-line.js';
import { DepotProbe, DepotStatusBoard } from './depot-status.js';

export interface DemoOptions {
  port: number;
  host: string;
  depots: number;
  /** Seconds to run (0 = until stopped). */
  durationSec: number;
  chaos: boolean;
  seed: number;
  /** Rows per second per sensor. */
  rate: number;
  /** Replicas of every block (1: a disrupted depot's blocks go missing — sampling events). */
  copies: number;
  /** Where progress goes (default stdout). */
  out?: NodeJS.WritableStream;
  /** Stops the demo. */
  signal?: AbortSignal;
  /** Called once the dashboard listens, with its URL. */
  onReady?: (url: string, depots: readonly string[]) => void;
}

/** What the simulated sensor field looks like (kept small so the dashboard is readable). */
const SITES = 3;
const SENSORS_PER_SITE = 4;
const CHANNELS = 8;
const FACTORS = 3;
const BLOCK_ROWS = 512;
const WINDOW_ROWS = 48 * 1024;
/** Each refresh answers this long after it starts with what arrived: late blocks are missing samples. */
const REFRESH_DEADLINE_MS = 400;
/** An attempt (or probe) without an answer after this long shows its depot as slow (ms). */
const SLOW_MS = 750;
/** Liveness probes: one status request per depot this often, given this long to answer (ms). */
const PROBE_EVERY_MS = 1_000;
const PROBE_TIMEOUT_MS = 1_500;
/** A depot counts as up only if it answered within this long (ms). */
const PROBE_FRESH_MS = 4_000;
const FAULT_RATES: Partial<Record<SensorFault, number>> = { garbage: 1 / 12, spiking: 1 / 12 };

/**
 * `anvil demo`: loopback depots with memory resources, a simulated sensor field streaming into them, a
 * streaming principal-component job over the last rows (covariance spectrum with its error band), the
 * live server with the dashboard, and — unless `chaos` is off — depots killed, paused and restarted now
 * and then, so failures show up as sampling events instead of errors. Resolves when the duration is over
 * or the signal aborts, after everything it started has stopped.
 */
/** A streaming job's refreshes count only the bytes of their new blocks: the dashboard shows the running total. */
function cumulativeBytes<V>(): (source: Observable<Estimate<V>>) => Observable<Estimate<V>> {
  return (source) => {
    let total = 0;
    return source.pipe(map((e) => ({ ...e, bytesMoved: (total += e.bytesMoved) })));
  };
}

/** Emits once when the signal aborts (at once if it already has). */
function aborted(signal: AbortSignal): Observable<void> {
  return new Observable<void>((subscriber) => {
    const fire = () => subscriber.next();
    if (signal.aborted) fire();
    else signal.addEventListener('abort', fire, { once: true });
    return () => signal.removeEventListener('abort', fire);
  });
}

/** Concurrent warm-up ops per depot: as many as a refresh sends it at first (its share of the blocks), and some. */
const WARM_OPS_PER_DEPOT = 4;

/**
 * Runs the job's op (`gram`, on one inline row) `WARM_OPS_PER_DEPOT` times at once on every depot, twice, so
 * that each depot's kernel workers are loaded. A depot that fails it is left to the job to find out.
 */
async function warmKernels(client: IbpClient, depots: readonly DepotAddress[]): Promise<void> {
  const row = new Uint8Array(CHANNELS * 8);
  const once = (d: DepotAddress) =>
    runKernel(client, d, 'gram', {
      attrs: { rows: 1, cols: CHANNELS },
      inputs: [row],
      output: { returnBytes: CHANNELS * CHANNELS * 8 },
    }).catch(() => undefined);
  for (let round = 0; round < 2; round++) {
    await Promise.all(depots.flatMap((d) => Array.from({ length: WARM_OPS_PER_DEPOT }, () => once(d))));
  }
}

export async function runDemo(o: DemoOptions): Promise<void> {
  const out = o.out ?? process.stdout;
  const stop = new AbortController();
  const onAbort = () => stop.abort(o.signal?.reason);
  o.signal?.addEventListener('abort', onAbort, { once: true });
  const cleanups: Array<() => Promise<void> | void> = [];
  const cleanup = async () => {
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch {
        // keep stopping the rest
      }
    }
  };
  try {
    const loop: LoopbackDepots = await startLoopbackDepots(o.depots, { capacity: '512MiB' });
    cleanups.push(() => loop.stop());
    const names = loop.depots.map(depotId);
    const server = await new LiveServer({ host: o.host, port: o.port }).listen();
    cleanups.push(() => server.close());
    const hub = server.hub;
    const client = new IbpClient({ timeoutMs: 5_000, connectTimeoutMs: 1_000 });
    cleanups.push(() => client.close());
    // A depot's first NFU ops load its kernels (worker threads, native or WebAssembly code), which takes longer
    // than a refresh's deadline: done here, before the job starts, so the first refresh measures the depots
    // and not their start-up (otherwise it finds every block late and shows healthy depots as slow).
    await warmKernels(client, loop.depots);

    const store = new ReliabilityStore({ clock: { now: () => Date.now() }, halfLifeMs: 60_000, qualityHalfLifeMs: 15_000 });
    const health = new DepotHealthTracker(hub, (d) => store.depot(d).p);
    // The status line's view: a depot is up only while it answers (ops, or the probe below when the job sends
    // it none), at a normal speed, and is not paused or killed by the chaos.
    const board = new DepotStatusBoard(names, { freshMs: PROBE_FRESH_MS, slowMs: SLOW_MS });
    const runner = new ObservedRunner(
      new IbpOpRunner(client),
      {
        answered: (d, ms) => {
          health.observe(d, 'answer');
          board.answered(d, ms);
        },
        failed: (d, reason) => {
          health.observe(d, 'failure', reason.slice(0, 120));
          board.failed(d);
        },
        slow: (d) => {
          health.observe(d, 'late');
          board.late(d);
        },
      },
      SLOW_MS,
    );
    const probe = new DepotProbe(loop.depots, board, PROBE_TIMEOUT_MS);
    probe.start(PROBE_EVERY_MS);
    cleanups.push(() => probe.stop());
    const jobs = await Coordinator.open({ reliabilityPath: null, runner, reliability: store });
    cleanups.push(() => jobs.close());
    for (const d of names) health.set(d, 'up');

    const writer = new DatasetWriter(client, {
      name: 'demo-sensor-field',
      cols: CHANNELS,
      depots: loop.depots,
      copies: Math.min(o.copies, o.depots),
      blockRows: BLOCK_ROWS,
      allocationBytes: 64 * BLOCK_ROWS * CHANNELS * 8,
      durationSec: 3600,
    });
    cleanups.push(() => writer.abort('demo stopped'));

    // Dataset versions: the stored prefix, refreshed as blocks land (at most twice a second).
    const versions = new Subject<CoordinatorDataset>();
    const blocksStored = new BehaviorSubject(0);
    const versionsSub = blocksStored
      .pipe(
        auditTime(500),
        filter((n) => n > 0),
      )
      .subscribe(() => {
        versions.next(writer.snapshot());
      });
    cleanups.push(() => versionsSub.unsubscribe());

    const ingest = (async () => {
      const batches = streamSensorField(
        {
          seed: o.seed,
          sites: SITES,
          sensorsPerSite: SENSORS_PER_SITE,
          channels: CHANNELS,
          factors: FACTORS,
          rowsPerSensor: Number.POSITIVE_INFINITY,
          faultRates: FAULT_RATES,
          faultOnsetRow: 2000,
        },
        { batchRows: 128, rowsPerSecond: o.rate, signal: stop.signal },
      );
      for await (const b of batches) {
        await writer.append(b.source, b.data, b.rows);
        blocksStored.next(writer.stats().blocks);
      }
    })().catch((e: unknown) => {
      if (!stop.signal.aborted) {
        hub.publish({ v: 1, type: 'event', kind: 'failure', at: Date.now(), text: `ingest stopped: ${(e as Error).message}` });
      }
    });
    cleanups.push(async () => {
      stop.abort();
      await ingest;
    });

    const robust = new RobustPcaState(store, FACTORS);
    const progress = new ProgressLine(out);
    let latest: Estimate<Float64Array> | undefined;
    const job$ = publishJob(
      hub,
      {
        jobId: 'demo-pca',
        name: `streaming PCA of ${SITES * SENSORS_PER_SITE} sensors × ${CHANNELS} channels (last ${WINDOW_ROWS / 1024}k rows)`,
      },
      jobs
        .follow(
          versions,
          (ds) => robustCovarianceJob(ds, robust),
          { kind: 'rows', rows: WINDOW_ROWS },
          { deadlineMs: REFRESH_DEADLINE_MS, opTimeoutMs: 2_000, delta: 0.05 },
        )
        .pipe(
          // A refresh that fails outright (not a missing block: those are samples) is reported and the
          // stream resumes with the next dataset version, so the demo keeps running.
          retry({
            delay: (e: unknown) => {
              hub.publish({
                v: 1,
                type: 'event',
                kind: 'failure',
                at: Date.now(),
                text: `refresh failed: ${(e as Error).message}`,
              });
              return timer(1000);
            },
          }),
          cumulativeBytes(),
          // The end of the demo (its --duration, Ctrl-C) completes the job, so its dashboard gets job-done:
          // unsubscribing instead would report the job as failed (CANCELLED).
          takeUntil(aborted(stop.signal)),
        ),
      spectrumSeries(CHANNELS, FACTORS),
    );
    const jobSub: Subscription = job$.subscribe({
      next: (e) => {
        latest = e;
      },
      error: (e: unknown) => {
        hub.publish({ v: 1, type: 'event', kind: 'failure', at: Date.now(), text: `job failed: ${(e as Error).message}` });
      },
    });
    cleanups.push(() => jobSub.unsubscribe());

    let chaos: ChaosMonkey | undefined;
    if (o.chaos && o.depots > 1) {
      chaos = new ChaosMonkey(loop, hub, health, o.seed, board);
      chaos.start();
      cleanups.push(() => chaos!.stop());
    }

    o.onReady?.(server.url, names);
    out.write(`dashboard: ${server.url}\n`);
    out.write(`depots: ${names.join(', ')}${o.chaos ? ' (chaos on: depots are killed and paused now and then)' : ''}\n`);
    out.write('press Ctrl-C to stop\n');

    const ticker = setInterval(() => {
      progress.update({
        rows: writer.stats().rows,
        depots: board.counts(),
        estimate: latest,
        chaos: chaos?.lastAction,
      });
    }, 1000);
    cleanups.push(() => {
      clearInterval(ticker);
      progress.done();
    });

    await new Promise<void>((resolve) => {
      if (stop.signal.aborted) return resolve();
      stop.signal.addEventListener('abort', () => resolve(), { once: true });
      if (o.durationSec > 0) setTimeout(() => stop.abort(), o.durationSec * 1000).unref();
    });
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
    stop.abort();
    await cleanup();
  }
}
