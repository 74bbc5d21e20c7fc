import { builtinRegistry, encodeAttrs, type Attrs } from '../../nfu-kernels/index.js';
import { parseCapability, type Capability, type DepotAddress, type IbpClient, type NfuParamSpec } from '../../ibp/index.js';
import { FrameworkError, FrameworkErrorCode } from '../errors.js';

const registry = builtinRegistry();

/** An input of a kernel call: a read cap (the whole data, or a range) or bytes sent inline. */
export type KernelInput = Capability | string | { cap: Capability | string; offset: number; length: number } | Uint8Array;

/** Where the output goes: into an allocation (write cap, at an offset) or back in the reply. */
export type KernelOutput = { cap: Capability | string; offset?: number } | { returnBytes: number };

export interface KernelCall {
  readonly attrs?: Partial<Attrs> & { rows: number; cols: number };
  readonly inputs: readonly KernelInput[];
  readonly output: KernelOutput;
  readonly timeoutMs?: number;
}

/**
 * Runs the named kernel as an NFU op at `depot` (the depot holding its inputs). Resolves with the
 * output bytes when they come back in the reply, or undefined when they were written to an
 * allocation.
 *
 * @example
 * const g = await runKernel(client, depot, 'gram', { attrs: { rows, cols }, inputs: [caps.read], output: { returnBytes: cols * cols * 8 } });
 */
export async function runKernel(
  client: IbpClient,
  depot: DepotAddress,
  name: string,
  call: KernelCall,
): Promise<Uint8Array | undefined> {
  const kernel = registry.byNameOrThrow(name);
  const params: NfuParamSpec[] = [];
  if (kernel.takesAttrs) {
    if (call.attrs === undefined)
      throw new FrameworkError(FrameworkErrorCode.INVALID_ARGUMENT, `kernel ${name} needs attributes`);
    params.push({ kind: 3, data: encodeAttrs(call.attrs) });
  }
  for (const input of call.inputs) {
    if (input instanceof Uint8Array) params.push({ kind: 3, data: input });
    else if (typeof input === 'string' || 'key' in input) params.push({ kind: 0, cap: input });
    else params.push({ kind: 0, cap: input.cap, offset: input.offset, length: input.length });
  }
  const out = call.output;
  if ('returnBytes' in out) params.push({ kind: 4, length: out.returnBytes });
  else {
    const cap = typeof out.cap === 'string' ? parseCapability(out.cap) : out.cap;
    if (cap === undefined)
      throw new FrameworkError(FrameworkErrorCode.INVALID_ARGUMENT, `kernel ${name}: the output cap is invalid`);
    params.push({ kind: 1, cap, offset: out.offset ?? 0, length: 0x7fffffff });
  }
  const values = await client.nfu(depot, kernel.opcode, params, call.timeoutMs);
  return values.get(params.length - 1);
}
