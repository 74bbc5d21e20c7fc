/**
 * `npm run bench:kernels`: every NFU kernel's speed on one row block (GB/s of input read, GFLOP/s
 * where it applies), next to a plain sequential read of the same array in JS and to numpy on the
 * same shapes in the same run (Debian python3-numpy is installed when missing and we are root).
 * JSON on stdout. Bounded: each measurement repeats for at most ~1.5 s.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { WASM_BACKEND, builtins, encodeAttrs, parseAttrs } from '../nfu-kernels/index.js';
import { NfuExecutor, kernelBackendFor, loadNativeKernels } from '../depot/index.js';

const ROWS = Number(process.env['BENCH_ROWS'] ?? 100_000);
const COLS = Number(process.env['BENCH_COLS'] ?? 256);
const K = Number(process.env['BENCH_K'] ?? 32);
const BUDGET_MS = 1500;

function time(fn: () => unknown): number {
  fn(); // warm-up
  let best = Infinity;
  const start = Date.now();
  for (let i = 0; i < 20 && Date.now() - start < BUDGET_MS; i++) {
    const t = process.hrtime.bigint();
    const out = fn();
    const s = Number(process.hrtime.bigint() - t) / 1e9;
    if (
      out instanceof Uint8Array &&
      out.length > 0 &&
      Number.isNaN(new Float64Array(out.buffer, out.byteOffset, Math.floor(out.length / 8))[0])
    ) {
      throw new Error('NaN in output');
    }
    best = Math.min(best, s);
  }
  return best;
}

function fill(n: number, f32: boolean): Float32Array | Float64Array {
  const a = f32 ? new Float32Array(n) : new Float64Array(n);
  let x = 12345;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    a[i] = x / 4294967296 - 0.5;
  }
  return a;
}

function sequentialRead(a: Float32Array | Float64Array): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  const n = a.length - (a.length % 4);
  for (let i = 0; i < n; i += 4) {
    s0 += a[i]!;
    s1 += a[i + 1]!;
    s2 += a[i + 2]!;
    s3 += a[i + 3]!;
  }
  return s0 + s1 + s2 + s3;
}

function numpyRows(): unknown {
  const probe = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' });
  if (probe.status !== 0 && process.getuid?.() === 0) {
    spawnSync('apt-get', ['install', '-y', '-q', 'python3-numpy'], { stdio: 'ignore' });
  }
  const script = `
import json, time, numpy as np
rows, cols, k = ${ROWS}, ${COLS}, ${K}
out = {"numpy": np.__version__, "rows": []}
def best(f):
    f(); b = 1e9; t0 = time.perf_counter()
    for _ in range(20):
        t = time.perf_counter(); f(); b = min(b, time.perf_counter() - t)
        if time.perf_counter() - t0 > ${BUDGET_MS / 1000}: break
    return b
for dt in ("float64", "float32"):
    A = (np.random.default_rng(1).random((rows, cols)) - 0.5).astype(dt)
    W = np.random.default_rng(2).standard_normal((cols, k)).astype(dt)
    L = np.random.default_rng(3).standard_normal((k, rows)).astype(dt)
    gb = A.nbytes / 1e9
    s = best(lambda: A @ W); out["rows"].append({"name": f"numpy:A@Omega:{dt}", "GBps": gb / s, "GFLOPs": 2 * rows * cols * k / s / 1e9})
    s = best(lambda: L @ A); out["rows"].append({"name": f"numpy:OmegaT@A:{dt}", "GBps": gb / s, "GFLOPs": 2 * rows * cols * k / s / 1e9})
    s = best(lambda: A.T @ A); out["rows"].append({"name": f"numpy:AtA:{dt}", "GBps": gb / s, "GFLOPs": rows * cols * cols / s / 1e9})
    s = best(lambda: (A.sum(0), (A * A).sum(0), A.min(0), A.max(0))); out["rows"].append({"name": f"numpy:column-stats:{dt}", "GBps": gb / s})
    s = best(lambda: A.sum()); out["rows"].append({"name": f"numpy:sequential-sum:{dt}", "GBps": gb / s})
print(json.dumps(out))
`;
  try {
    return JSON.parse(execFileSync('python3', ['-c', script], { encoding: 'utf8', maxBuffer: 1 << 20 }));
  } catch (e) {
    return { error: `numpy unavailable: ${(e as Error).message.split('\n')[0]}` };
  }
}

const registry = builtins();
const rows: Array<Record<string, unknown>> = [];

/** The kernels timed, with their attributes and the flops of one run (0: GB/s only). */
const CASES: ReadonlyArray<readonly [string, Record<string, number>, number]> = [
  ['gaussian-sketch-right', { k: K }, 2 * ROWS * COLS * K],
  ['gaussian-sketch-left', { k: K }, 2 * ROWS * COLS * K],
  ['sparse-sign-sketch', { k: 4 * K, s: 8 }, 0],
  ['count-sketch', { k: 4 * K }, 0],
  ['srht', { k: K }, 0],
  ['gram', {}, ROWS * COLS * COLS],
  ['column-stats', {}, 0],
  ['atb', { k: K }, 2 * ROWS * COLS * K],
];

/** One result row: `prefix:kernel:dtype:shape[,attrs]` with GB/s of A read and GFLOP/s. */
function pushRow(
  prefix: string,
  name: string,
  dtype: string,
  extra: Record<string, number>,
  gb: number,
  flops: number,
  s: number,
): void {
  const label = Object.entries(extra)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  rows.push({
    name: `${prefix}:${name}:${dtype}:m=${ROWS},n=${COLS}${label ? `,${label}` : ''}`,
    GBps: gb / s,
    ...(flops > 0 ? { GFLOPs: flops / s / 1e9 } : {}),
    seconds: s,
  });
}
// Every kernel on both backends when the native addon is built: native (OpenBLAS + C++ vector
// loops) and WebAssembly (the fallback), side by side in this run.
const native = loadNativeKernels().native;
const backends = native === undefined ? (['wasm'] as const) : (['native', 'wasm'] as const);
const nativeBackend = kernelBackendFor(true, 1).backend;
const backendInfo = { native: native === undefined ? loadNativeKernels().why : nativeBackend.name };
for (const backend of backends)
  for (const dtype of ['float64', 'float32'] as const) {
    const kernelBackend = backend === 'native' ? nativeBackend : WASM_BACKEND;
    const A = fill(ROWS * COLS, dtype === 'float32');
    const bytes = new Uint8Array(A.buffer);
    const gb = bytes.byteLength / 1e9;
    const B = new Uint8Array(fill(ROWS * K, dtype === 'float32').buffer);
    if (backend === backends[0]) {
      const s = time(() => sequentialRead(A));
      rows.push({ name: `js:sequential-read:${dtype}:m=${ROWS},n=${COLS}`, GBps: gb / s });
    }
    for (const [name, extra, flops] of CASES) {
      if (name === 'srht' && ROWS * COLS > 4e7) continue;
      const attrs = parseAttrs(encodeAttrs({ dtype, rows: ROWS, cols: COLS, seed: 7, ...extra }));
      const kernel = registry.byNameOrThrow(name);
      const inputs = name === 'atb' ? [bytes, B] : [bytes];
      // As in the depot, the output goes into a reused buffer (a fresh one costs a page fault per
      // 4 KiB, ~35 ms per 12.8 MB on this VM kind, which would swamp the kernel).
      const out = new Uint8Array(
        kernel.outputBytes(
          attrs,
          inputs.map((b) => b.length),
        ),
      );
      pushRow(
        `nfu-${backend}:1-thread`,
        name,
        dtype,
        extra,
        gb,
        flops,
        time(() => kernel.run(attrs, inputs, { out, backend: kernelBackend })),
      );
    }
  }
// The same kernels through the depot's NFU executor: 2 worker threads, large ops split by rows.
for (const backend of backends)
  for (const dtype of ['float64', 'float32'] as const) {
    const executor = new NfuExecutor(
      { workers: 2, maxQueue: 16, timeoutMs: 600_000, memoryMb: 4096, native: backend === 'native' },
      2,
    );
    const A = fill(ROWS * COLS, dtype === 'float32');
    const gb = A.byteLength / 1e9;
    const B = fill(ROWS * K, dtype === 'float32');
    // The read again, right beside these rows (the targets take the faster of the two readings).
    rows.push({ name: `js:sequential-read:${dtype}:m=${ROWS},n=${COLS}:again`, GBps: gb / time(() => sequentialRead(A)) });
    // The kernels that split by rows over the workers.
    for (const [name, extra, flops] of CASES.filter(([n]) => registry.byNameOrThrow(n).rowSplit !== undefined)) {
      const kernel = registry.byNameOrThrow(name);
      const attrs = parseAttrs(encodeAttrs({ dtype, rows: ROWS, cols: COLS, seed: 7, ...extra }));
      let best = Infinity;
      const start = Date.now();
      // As in the depot: inputs in the executor's pooled shared memory (the one copy there is not
      // timed), the output in a pooled buffer released after use.
      const shared = (x: Float32Array | Float64Array) => {
        const v = executor.buffers.take(x.byteLength);
        v.set(new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
        return v;
      };
      const inputs = name === 'atb' ? [shared(A), shared(B)] : [shared(A)];
      for (let i = 0; i < 8 && (i < 2 || Date.now() - start < BUDGET_MS * 2); i++) {
        const t = process.hrtime.bigint();
        const r = await executor.runPooled({ opcode: kernel.opcode, attrs, inputs }, kernel, attrs);
        if (i > 0) best = Math.min(best, Number(process.hrtime.bigint() - t) / 1e9);
        r.release();
      }
      for (const b of inputs) executor.buffers.give(b);
      pushRow(`depot-${backend}:2-workers`, name, dtype, extra, gb, flops, best);
    }
    await executor.close();
  }

const numpy = numpyRows();
const round = (v: unknown) => (typeof v === 'number' ? Math.round(v * 1000) / 1000 : v);

/**
 * The issue-5 targets from this run's own rows: the depot's 2-worker Gaussian sketches against
 * numpy's GFLOP/s (≥ 0.5×), the sparse sketches against the JS sequential read (≥ 0.5×).
 */
function targets(): Array<Record<string, unknown>> {
  const row = (prefix: string) => rows.find((r) => String(r['name']).startsWith(prefix));
  const np = (name: string) =>
    typeof numpy === 'object' && numpy !== null && 'rows' in numpy
      ? (numpy as { rows: Record<string, unknown>[] }).rows.find((r) => r['name'] === name)
      : undefined;
  const out: Array<Record<string, unknown>> = [];
  const backend = backends[0];
  for (const dtype of ['float64', 'float32'] as const) {
    for (const [kernel, ref] of [
      ['gaussian-sketch-right', `numpy:A@Omega:${dtype}`],
      ['gaussian-sketch-left', `numpy:OmegaT@A:${dtype}`],
    ] as const) {
      const ours = row(`depot-${backend}:2-workers:${kernel}:${dtype}`)?.['GFLOPs'];
      const theirs = np(ref)?.['GFLOPs'];
      if (typeof ours === 'number' && typeof theirs === 'number')
        out.push({
          target: `${kernel} ${dtype} ≥ 0.5× numpy GFLOP/s`,
          ours,
          reference: theirs,
          ratio: ours / theirs,
          met: ours >= theirs / 2,
        });
    }
    const reads = rows.filter((r) => String(r['name']).startsWith(`js:sequential-read:${dtype}`)).map((r) => r['GBps'] as number);
    const read = reads.length > 0 ? Math.max(...reads) : undefined;
    for (const kernel of ['sparse-sign-sketch', 'count-sketch']) {
      const ours = row(`depot-${backend}:2-workers:${kernel}:${dtype}`)?.['GBps'];
      if (typeof ours === 'number' && typeof read === 'number')
        out.push({
          target: `${kernel} ${dtype} ≥ 0.5× JS sequential read`,
          ours,
          reference: read,
          ratio: ours / read,
          met: ours >= read / 2,
        });
    }
  }
  return out;
}
const tidy = (r: Record<string, unknown>) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, round(v)]));
process.stdout.write(
  `${JSON.stringify(
    {
      bench: 'kernels',
      node: process.version,
      when: new Date().toISOString(),
      backends: backendInfo,
      env: { OPENBLAS_CORETYPE: process.env['OPENBLAS_CORETYPE'] ?? null },
      rows: rows.map(tidy),
      targets: targets().map(tidy),
      numpy:
        typeof numpy === 'object' && numpy !== null && 'rows' in numpy
          ? { ...numpy, rows: (numpy as { rows: Record<string, unknown>[] }).rows.map(tidy) }
          : numpy,
    },
    null,
    2,
  )}\n`,
);
