/**
 * Randomized SVD where the data sits vs scikit-learn and Dask, in the same run.
 *
 * A 400 000 × 256 float64 matrix of rank ~20 plus noise is stored as row blocks on 8 loopback depots (memory
 * resources). Anvil runs `rsvd` (rank 20, oversampling 10, 2 power iterations) in locus; scikit-learn runs
 * `randomized_svd` on the same matrix in one process; Dask runs `svd_compressed` on a `dask.distributed`
 * LocalCluster (2 worker processes, the matrix persisted on the workers before timing). Debian's
 * python3-sklearn, python3-dask and python3-distributed are installed with apt-get when missing.
 *
 * Reported for each: wall time, bytes moved over the network (Anvil: NFU requests and replies as counted by the
 * runner; scikit-learn: 0; Dask: bytes the workers sent each other and the client for the computation), and
 * accuracy against an exact SVD (largest relative error of the top 20 singular values, largest principal angle
 * between the top-20 right singular subspaces).
 *
 * Usage: node dist/bench/rsvd.js [--json] [--rows N (default 400000)] [--cols D (default 256)] [--anvil-only]
 * With --anvil-only scikit-learn, Dask and the accuracy checks are skipped (for profiling Anvil alone).
 * BENCH_DEPOT_ARGS (split on spaces) is appended to every depot's command line, e.g. `--nfu-workers 1`;
 * BENCH_DEPOT_NODE_ARGS (split on spaces) is given to node for every depot, e.g. `--cpu-prof`.
 * With --json the last line is one object with anvil_seconds (the second job; anvil_first_seconds is the first on
 * fresh depots), sklearn_seconds, dask_seconds, bytes_moved,
 * matrix_bytes and the accuracies.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { final, IbpLocus, rsvd, runnerContext } from '../algorithms/index.js';
import { IbpClient, summarizeBlock, type CoordinatorDataset, type CoordinatorDatasetBlock } from '../framework/index.js';
import { formatCapability } from '../ibp/index.js';
import { normals } from '../nfu-kernels/index.js';
import { startDepotProcess } from './lib/depot-process.js';
import { benchArgs } from './lib/args.js';

const { args, json, flag } = benchArgs();
const anvilOnly = args.includes('--anvil-only');
const words = (v: string | undefined): string[] => (v ?? '').split(' ').filter((w) => w !== '');
const DEPOT_ARGS = words(process.env['BENCH_DEPOT_ARGS']);
const DEPOT_NODE_ARGS = words(process.env['BENCH_DEPOT_NODE_ARGS']);
const N = flag('--rows', 400_000);
const D = flag('--cols', 256);
const RANK = 20;
const OVERSAMPLING = 10;
const POWER = 2;
const DEPOTS = 8;
const BLOCK_ROWS = 25_000;
const log = (s: string): void => {
  if (!json) process.stderr.write(`${s}\n`);
};

/** /usr/bin/python3 (Debian's, where apt installs the packages) with sklearn, dask and distributed. */
function python(): string {
  const py = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  const ok = () => spawnSync(py, ['-c', 'import sklearn, dask, distributed, numpy'], { stdio: 'ignore' }).status === 0;
  if (!ok()) {
    log('installing python3-sklearn python3-dask python3-distributed with apt-get …');
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'ignore', timeout: 600_000 });
    execFileSync('apt-get', ['install', '-y', '-qq', 'python3-sklearn', 'python3-dask', 'python3-distributed'], {
      stdio: 'ignore',
      timeout: 1_200_000,
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    if (!ok()) throw new Error(`${py} still cannot import sklearn, dask and distributed`);
  }
  return py;
}

/** Rank-20 signal (σ_i = 1000·0.85^i over the whole matrix) plus Gaussian noise, row-major. */
function matrix(): Float64Array {
  const Z = new Float64Array(N * RANK);
  normals(11, 1, 0, 0, Z);
  const W = new Float64Array(D * RANK);
  normals(11, 2, 0, 0, W);
  const A = new Float64Array(N * D);
  normals(11, 3, 0, 0, A);
  const scale = new Float64Array(RANK);
  for (let t = 0; t < RANK; t++) scale[t] = (1000 * 0.85 ** t) / Math.sqrt(N * D);
  const row = new Float64Array(RANK);
  for (let i = 0; i < N; i++) {
    for (let t = 0; t < RANK; t++) row[t] = Z[i * RANK + t]! * scale[t]!;
    const off = i * D;
    for (let j = 0; j < D; j++) {
      let s = 0.01 * A[off + j]!;
      for (let t = 0; t < RANK; t++) s += row[t]! * W[j * RANK + t]!;
      A[off + j] = s;
    }
  }
  return A;
}

const PY = String.raw`
import json, sys, time
import numpy as np
path, anvil_path = sys.argv[1], sys.argv[2]
n, d, k, p, q = (int(x) for x in sys.argv[3:8])
A = np.fromfile(path, dtype='<f8').reshape(n, d)
out = {}
def accuracy(s, V, s_ex, V_ex):
    rel = float(np.max(np.abs(s[:k] - s_ex[:k]) / s_ex[:k]))
    c = np.linalg.svd(V_ex[:, :k].T @ V[:, :k], compute_uv=False)
    return rel, float(np.degrees(np.arccos(np.clip(c.min(), -1.0, 1.0))))
# Exact SVD (reference): eigen of AᵀA would lose digits; a thin SVD of A.
t = time.time(); _, s_ex, Vt_ex = np.linalg.svd(A, full_matrices=False); out['exact_seconds'] = time.time() - t
V_ex = Vt_ex.T
from sklearn.utils.extmath import randomized_svd
t = time.time(); U, s, Vt = randomized_svd(A, k, n_oversamples=p, n_iter=q, power_iteration_normalizer='QR', random_state=0)
out['sklearn_seconds'] = time.time() - t
out['sklearn_rel_sv_error'], out['sklearn_max_angle_deg'] = accuracy(s, Vt.T, s_ex, V_ex)
an = json.load(open(anvil_path))
out['anvil_rel_sv_error'], out['anvil_max_angle_deg'] = accuracy(np.array(an['s']), np.array(an['V']).reshape(d, k), s_ex, V_ex)
import dask, dask.array as da
from dask.distributed import Client, LocalCluster
import logging
logging.getLogger('distributed').setLevel(logging.ERROR)
with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, memory_limit='6GB') as cluster, Client(cluster) as client:
    X = da.from_array(A, chunks=(25000, d))
    X = client.persist(X); from dask.distributed import wait; wait(X)
    def sent(dask_worker):
        return sum(x.get('total', 0) for x in dask_worker.outgoing_transfer_log)
    before = sum(client.run(sent).values())
    t = time.time()
    u, s, v = da.linalg.svd_compressed(X, k, n_power_iter=q, n_oversamples=p, seed=0, compute=False)
    s, v = dask.compute(s, v)
    out['dask_seconds'] = time.time() - t
    out['dask_bytes_moved'] = int(sum(client.run(sent).values()) - before + s.nbytes + v.nbytes)
    out['dask_rel_sv_error'], out['dask_max_angle_deg'] = accuracy(np.asarray(s), np.asarray(v).T, s_ex, V_ex)
print(json.dumps(out))
`;

async function main(): Promise<void> {
  const py = anvilOnly ? '' : python();
  const dir = mkdtempSync(join(tmpdir(), 'anvil-bench-rsvd-'));
  const depots: Array<Awaited<ReturnType<typeof startDepotProcess>>> = [];
  const client = new IbpClient({ timeoutMs: 120_000 });
  try {
    // Depots first, one at a time (a busy small machine misses the start timeout with many at once).
    const capacity = `${Math.ceil((N * D * 8) / DEPOTS / 2 ** 20) + 256}MiB`;
    for (let i = 0; i < DEPOTS; i++) {
      try {
        depots.push(await startDepotProcess(['--capacity', capacity, ...DEPOT_ARGS], DEPOT_NODE_ARGS));
      } catch {
        depots.push(await startDepotProcess(['--capacity', capacity, ...DEPOT_ARGS], DEPOT_NODE_ARGS));
      }
    }
    log(`matrix ${N} × ${D} float64 (${((N * D * 8) / 2 ** 20).toFixed(0)} MiB) …`);
    const A = matrix();
    const path = join(dir, 'A.f64');
    writeFileSync(path, new Uint8Array(A.buffer));
    // Store the blocks (block b on depot b mod 8) with their ingest summaries.
    const blocks: CoordinatorDatasetBlock[] = [];
    for (let start = 0, index = 0; start < N; start += BLOCK_ROWS, index++) {
      const rows = Math.min(BLOCK_ROWS, N - start);
      const data = A.subarray(start * D, (start + rows) * D);
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      const depot = depots[index % DEPOTS]!.addr;
      const caps = await client.allocate(depot, { size: bytes.length, durationSec: 3600 });
      await client.store(caps.write, bytes);
      blocks.push({
        index,
        rowStart: start,
        rows,
        bytes: bytes.length,
        replicas: [{ depot, read: formatCapability(caps.read), allocOffset: 0, length: bytes.length }],
        summary: summarizeBlock(data, rows, D),
      });
    }
    const dataset: CoordinatorDataset = { name: 'bench', dtype: 'float64', rows: N, cols: D, blocks };
    const options = { rank: RANK, oversampling: OVERSAMPLING, powerIterations: POWER };
    const job = (runner: IbpLocus) => runnerContext(runner, { jobOptions: { opTimeoutMs: 120_000 } });
    // The first job on fresh depots also starts their NFU workers and loads the kernels (a one-time cost of the
    // depot process, ~2 s here); it is timed on its own, with another seed. The compared run is the second, as
    // the Dask cluster is started and the matrix persisted before Dask is timed.
    log('anvil rsvd in locus (first job on fresh depots) …');
    const tFirst = performance.now();
    const first = new IbpLocus(client);
    await final(rsvd(dataset, job(first), { ...options, seed: 1 }));
    const firstSeconds = (performance.now() - tFirst) / 1000;
    await first.release();
    log('anvil rsvd in locus …');
    const t0 = performance.now();
    const e = await final(rsvd(dataset, job(new IbpLocus(client)), { ...options, seed: 0 }));
    const anvilSeconds = (performance.now() - t0) / 1000;
    const anvilPath = join(dir, 'anvil.json');
    writeFileSync(anvilPath, JSON.stringify({ s: Array.from(e.value.singularValues), V: Array.from(e.value.components) }));
    if (anvilOnly) {
      const line = {
        rows: N,
        cols: D,
        anvil_seconds: anvilSeconds,
        anvil_first_seconds: firstSeconds,
        bytes_moved: e.bytesMoved,
      };
      process.stdout.write(
        json
          ? `${JSON.stringify(line)}\n`
          : `anvil (locus) ${anvilSeconds.toFixed(2)} s (first job ${firstSeconds.toFixed(2)} s)\n`,
      );
      return;
    }
    log('scikit-learn, Dask and the exact SVD …');
    const py$ = spawnSync(
      py,
      ['-c', PY, path, anvilPath, String(N), String(D), String(RANK), String(OVERSAMPLING), String(POWER)],
      {
        encoding: 'utf8',
        timeout: 1_800_000,
        maxBuffer: 1 << 24,
      },
    );
    if (py$.status !== 0) throw new Error(`python failed: ${py$.stderr}`);
    const p = JSON.parse(py$.stdout.trim().split('\n').at(-1)!) as Record<string, number>;
    const result = {
      rows: N,
      cols: D,
      rank: RANK,
      oversampling: OVERSAMPLING,
      power_iterations: POWER,
      depots: DEPOTS,
      blocks: blocks.length,
      anvil_seconds: anvilSeconds,
      anvil_first_seconds: firstSeconds,
      sklearn_seconds: p['sklearn_seconds'],
      dask_seconds: p['dask_seconds'],
      exact_seconds: p['exact_seconds'],
      bytes_moved: e.bytesMoved,
      matrix_bytes: N * D * 8,
      bytes_moved_fraction: e.bytesMoved / (N * D * 8),
      dask_bytes_moved: p['dask_bytes_moved'],
      anvil_rel_sv_error: p['anvil_rel_sv_error'],
      sklearn_rel_sv_error: p['sklearn_rel_sv_error'],
      dask_rel_sv_error: p['dask_rel_sv_error'],
      anvil_max_angle_deg: p['anvil_max_angle_deg'],
      sklearn_max_angle_deg: p['sklearn_max_angle_deg'],
      dask_max_angle_deg: p['dask_max_angle_deg'],
      anvil_epsilon: e.epsilon,
    };
    if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
    else {
      const f = (x: number | undefined) => (x === undefined ? 'n/a' : x.toPrecision(3));
      process.stdout.write(
        `                seconds   bytes moved      rel σ error  max angle (deg)\n` +
          `anvil (locus)   ${f(result.anvil_seconds).padStart(7)}   ${String(result.bytes_moved).padStart(11)}      ${f(result.anvil_rel_sv_error).padStart(9)}  ${f(result.anvil_max_angle_deg).padStart(9)}\n` +
          `scikit-learn    ${f(result.sklearn_seconds).padStart(7)}   ${'0'.padStart(11)}      ${f(result.sklearn_rel_sv_error).padStart(9)}  ${f(result.sklearn_max_angle_deg).padStart(9)}\n` +
          `dask            ${f(result.dask_seconds).padStart(7)}   ${String(result.dask_bytes_moved).padStart(11)}      ${f(result.dask_rel_sv_error).padStart(9)}  ${f(result.dask_max_angle_deg).padStart(9)}\n` +
          `anvil's first job on fresh depots (NFU workers starting): ${f(firstSeconds)} s\n` +
          `matrix ${result.matrix_bytes} bytes; anvil moved ${(100 * result.bytes_moved_fraction).toFixed(3)} %\n`,
      );
    }
  } finally {
    client.close();
    await Promise.all(depots.map((d) => d.stop()));
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
