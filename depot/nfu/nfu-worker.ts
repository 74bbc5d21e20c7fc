/**
 * Worker-thread entry of the NFU pool: runs one op on buffers shared with (or moved in from) the
 * depot and hands the result back. Kernel failures come back as values (their codes survive the
 * thread boundary). Importing this module does nothing: the kernel backend is made on the first op.
 */
import { setPriority } from 'node:os';
import { isMainThread, workerData, type MessagePort } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { KernelError, builtins, type Attrs, type KernelBackend } from '../../nfu-kernels/index.js';
import { INPUT_CHANGED, gatherInto, type InputSource } from './input-source.js';
import { kernelBackendFor } from './native-loader.js';

/** What the executor tells its workers. */
export interface NfuWorkerData {
  /** Use the native kernels when the addon was built (`nfu.native`). */
  readonly native: boolean;
  /** Bytes of gathered-input buffers a worker keeps between ops (more are left to the GC). */
  readonly keepInputBytes?: number;
}

/** Where a gathered input goes: a buffer of at least `bytes`, for input `index` of the op. */
export type InputScratch = (index: number, bytes: number) => Uint8Array;

/** A fresh buffer for every input (ops run inline, on the event loop: tests only). */
const freshScratch: InputScratch = (_, bytes) => new Uint8Array(bytes);

/**
 * A pool worker's gathered-input buffers, one per input index, reused from op to op while they
 * fit in `keepBytes` altogether: touched pages, and no allocation nor free of large buffers per op.
 */
function workerScratch(keepBytes: number): InputScratch {
  const kept: (ArrayBuffer | undefined)[] = [];
  return (index, bytes) => {
    const have = kept[index];
    if (have !== undefined && have.byteLength >= bytes) return new Uint8Array(have, 0, bytes);
    const size = bytes <= 65536 ? 65536 : 2 ** Math.ceil(Math.log2(bytes));
    const buf = new ArrayBuffer(size);
    const others = kept.reduce((s, b, i) => s + (i === index || b === undefined ? 0 : b.byteLength), 0);
    kept[index] = others + size <= keepBytes ? buf : undefined;
    return new Uint8Array(buf, 0, bytes);
  };
}

export interface NfuTask {
  readonly opcode: number;
  /** The attributes, parsed and checked once by the depot (structured-cloned to the worker). */
  readonly attrs: Attrs | undefined;
  readonly inputs: Uint8Array[];
  /**
   * Inputs read in place: where `sources[i]` is set, `inputs[i]` is a placeholder (no bytes) and
   * the worker gathers the input from the source's shared pieces into a buffer of its own.
   */
  readonly sources?: ReadonlyArray<InputSource | undefined> | undefined;
  /** An uploaded op: its module, and the output capacity and memory bound. */
  readonly wasm?: { readonly key: string; readonly bytes: Uint8Array; readonly outCap: number; readonly maxPages: number };
  /** Where a built-in kernel writes its output (exactly its output size; shared memory). */
  readonly out?: Uint8Array;
  /** Told when a pool worker starts the op: the executor's deadline starts then. */
  readonly started?: MessagePort;
}

const modules = new Map<string, WebAssembly.Module>();

/**
 * A pool worker runs at the lowest CPU priority, so the event loop (every client's data path)
 * wins the cores whenever both want one; NFU work then takes what is left. On Linux this affects
 * only this thread. Ops run inline (tests) stay on the main thread's priority.
 */
function lowerPriority(): void {
  if (isMainThread) return;
  try {
    setPriority(0, 19);
  } catch {
    // not permitted here: the op still runs, at normal priority
  }
}
lowerPriority();

/**
 * Runs an uploaded op (ABI 1): the inputs are laid end to end at address 0 of a memory the depot
 * creates (the module's only import, `env.memory`, bounded by `maxPages`), the output area starts
 * at the next multiple of 8, and the export `run(inLen, outCap) -> outLen` returns the output
 * length, or a negative number on failure.
 */
function runUploaded(task: NfuTask): NfuTaskResult {
  const w = task.wasm!;
  let mod = modules.get(w.key);
  if (mod === undefined) {
    mod = new WebAssembly.Module(w.bytes);
    modules.set(w.key, mod);
  }
  const inLen = task.inputs.reduce((s, b) => s + b.length, 0);
  const outAt = Math.ceil(inLen / 8) * 8;
  const pages = Math.max(1, Math.ceil((outAt + w.outCap) / 65536));
  if (pages > w.maxPages) {
    return {
      ok: false,
      code: 'NFU_ERR_BAD_PARAMETERS',
      message: `the op needs ${pages} memory pages; at most ${w.maxPages} are allowed`,
    };
  }
  const memory = new WebAssembly.Memory({ initial: pages, maximum: w.maxPages });
  const heap = new Uint8Array(memory.buffer);
  let at = 0;
  for (const b of task.inputs) {
    heap.set(b, at);
    at += b.length;
  }
  const instance = new WebAssembly.Instance(mod, { env: { memory } });
  const run = instance.exports['run'] as (inLen: number, outCap: number) => number;
  const n = run(inLen, w.outCap);
  if (!Number.isInteger(n) || n < 0 || n > w.outCap) {
    return { ok: false, code: 'NFU_ERR_BAD_PARAMETERS', message: `the uploaded op failed (run returned ${n})` };
  }
  return { ok: true, output: new Uint8Array(memory.buffer.slice(outAt, outAt + n)) };
}

export type NfuTaskResult = { ok: true; output: Uint8Array } | { ok: false; code: string; message: string };
/** A pool worker's answer when it wrote the output into the task's shared `out`. */
export interface NfuWrote {
  readonly wrote: number;
}

/**
 * Runs one op on `backend` (the executor's for inline ops, the worker's own in the pool), after
 * gathering the inputs read in place into `scratch`.
 */
export function runNfuTask(given: NfuTask, backend: KernelBackend, scratch: InputScratch = freshScratch): NfuTaskResult {
  let task = given;
  const sources = given.sources;
  if (sources !== undefined) {
    let changed = false;
    const inputs = given.inputs.map((b, i) => {
      const source = sources[i];
      if (source === undefined || changed) return b;
      const dest = scratch(i, source.length);
      changed = !gatherInto(dest, source);
      return dest;
    });
    if (changed) return { ok: false, code: INPUT_CHANGED, message: 'an input changed since the op was admitted' };
    task = { ...given, inputs, sources: undefined };
  }
  if (task.wasm !== undefined) return runUploaded(task);
  try {
    const kernel = builtins().byOpcodeOrThrow(task.opcode);
    const output = kernel.run(task.attrs, task.inputs, { out: task.out, backend });
    const out = task.out;
    if (out !== undefined && !(output.buffer === out.buffer && output.byteOffset === out.byteOffset)) {
      if (output.length > out.length) throw new Error(`${kernel.name} produced more than its declared output size`);
      out.set(output);
    }
    return { ok: true, output: out === undefined ? output : out.subarray(0, output.length) };
  } catch (e) {
    if (KernelError.is(e)) return { ok: false, code: e.code, message: e.message };
    throw e;
  }
}

let workerBackend: KernelBackend | undefined;
let scratch: InputScratch | undefined;

/** Success: the output bytes, moved (not copied) back; failure: `{ ok: false, code, message }`. */
export default function (task: NfuTask): unknown {
  // Native kernels (OpenBLAS with one thread per worker: the executor splits large ops by rows;
  // vector loops) when the addon was built and `nfu.native` allows; WebAssembly otherwise. Made
  // before the op counts as started, so loading the addon is not charged to its deadline.
  const data = workerData as NfuWorkerData | undefined;
  workerBackend ??= kernelBackendFor(data?.native !== false, 1).backend;
  scratch ??= workerScratch(data?.keepInputBytes ?? 256 * 1024 * 1024);
  task.started?.postMessage(0);
  task.started?.close();
  const r = runNfuTask(task, workerBackend, scratch);
  if (!r.ok) return r;
  if (task.out !== undefined) return { wrote: r.output.length } satisfies NfuWrote;
  const out = r.output;
  const owned = out.byteOffset === 0 && out.byteLength === out.buffer.byteLength ? out : out.slice();
  return Piscina.move(owned);
}
