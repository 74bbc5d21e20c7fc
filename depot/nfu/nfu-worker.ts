/**
 * Worker-thread entry of the NFU pool: runs one kernel on buffers moved in from the depot and moves
 * the result back. Kernel failures come back as values (their codes survive the thread boundary).
 */
import { Piscina } from 'piscina';
import { KernelError, builtinRegistry, parseAttrs } from '../../nfu-kernels/index.js';

export interface NfuTask {
  readonly opcode: number;
  readonly attrs: Uint8Array | undefined;
  readonly inputs: Uint8Array[];
}

export type NfuTaskResult = { ok: true; output: Uint8Array } | { ok: false; code: string; message: string };

const registry = builtinRegistry();

export function runNfuTask(task: NfuTask): NfuTaskResult {
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
  const r = runNfuTask(task);
  if (!r.ok) return r;
  const out = r.output;
  const owned = out.byteOffset === 0 && out.byteLength === out.buffer.byteLength ? out : out.slice();
  return Piscina.move(owned);
}
