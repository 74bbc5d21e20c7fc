/**
 * Worker-thread entry of the NFU pool: runs one kernel on buffers moved in from the depot and moves
 * the result back. Kernel failures come back as values (their codes survive the thread boundary).
 */
import type { MessagePort } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { KernelError, builtinRegistry, parseAttrs } from '../../nfu-kernels/index.js';
import { installNativeKernels } from './native-loader.js';

// Native kernels (OpenBLAS + vector loops) when the addon was built; WebAssembly otherwise.
installNativeKernels(1);

export interface NfuTask {
  readonly opcode: number;
  readonly attrs: Uint8Array | undefined;
  readonly inputs: Uint8Array[];
  /** An uploaded op: its module, and the output capacity and memory bound. */
  readonly wasm?: { readonly key: string; readonly bytes: Uint8Array; readonly outCap: number; readonly maxPages: number };
  /** Told when a pool worker starts the op: the executor's deadline starts then. */
  readonly started?: MessagePort;
}

const modules = new Map<string, WebAssembly.Module>();

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

const registry = builtinRegistry();

export function runNfuTask(task: NfuTask): NfuTaskResult {
  if (task.wasm !== undefined) return runUploaded(task);
  try {
    const kernel = registry.byOpcodeOrThrow(task.opcode);
    const attrs = task.attrs === undefined ? undefined : parseAttrs(task.attrs);
    const output = kernel.run(attrs, task.inputs);
    return { ok: true, output };
  } catch (e) {
    if (KernelError.is(e)) return { ok: false, code: e.code, message: e.message };
    throw e;
  }
}

/** Success: the output bytes, moved (not copied) back; failure: `{ ok: false, code, message }`. */
export default function (task: NfuTask): unknown {
  task.started?.postMessage(0);
  task.started?.close();
  const r = runNfuTask(task);
  if (!r.ok) return r;
  const out = r.output;
  const owned = out.byteOffset === 0 && out.byteLength === out.buffer.byteLength ? out : out.slice();
  return Piscina.move(owned);
}
