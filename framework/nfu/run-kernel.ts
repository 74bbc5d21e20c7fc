import { CATALOGUE, encodeAttrs, opSpec, type AttrsOf, type OpName } from '../../nfu-kernels/index.js';
import {
  NfuParamKind,
  parseCapability,
  type Capability,
  type DepotAddress,
  type IbpClient,
  type NfuParamSpec,
} from '../../ibp/index.js';
import { FrameworkError, FrameworkErrorCode } from '../errors.js';

/** An input of a kernel call: a read cap (the whole data, or a range) or bytes sent inline. */
export type KernelInput = Capability | string | { cap: Capability | string; offset: number; length: number } | Uint8Array;

/** Where the output goes: into an allocation (write cap, at an offset) or back in the reply. */
export type KernelOutput = { cap: Capability | string; offset?: number } | { returnBytes: number };

/**
 * A call of op `N`: its attributes (checked at compile time against the catalogue's type for the
 * op; absent for the byte ops `xor` and `sha256`), its inputs in the catalogue's order, and where
 * the output goes. docs/nfu-ops.md lists every op's attributes, inputs and output layout.
 */
export type KernelCall<N extends OpName = OpName> = N extends OpName
  ? {
      readonly inputs: readonly KernelInput[];
      readonly output: KernelOutput;
      readonly timeoutMs?: number;
    } & (AttrsOf<N> extends undefined ? { readonly attrs?: undefined } : { readonly attrs: AttrsOf<N> })
  : never;

/**
 * Runs the named built-in op as an NFU op at `depot` (the depot holding its inputs). Resolves with
 * the output bytes when they come back in the reply, or undefined when they were written to an
 * allocation.
 *
 * @throws FrameworkError `FW_ERR_INVALID_ARGUMENT` for an unknown op, missing attributes, the wrong
 *   number of inputs or an invalid output cap (nothing is sent).
 * @throws ClientError `IBP_E_*` when the depot refuses the op (see docs/errors.md and docs/nfu-ops.md).
 * @example
 * const g = await runKernel(client, depot, 'gram', { attrs: { rows, cols }, inputs: [caps.read], output: { returnBytes: cols * cols * 8 } });
 */
export async function runKernel<N extends OpName>(
  client: IbpClient,
  depot: DepotAddress,
  name: N,
  call: KernelCall<N>,
): Promise<Uint8Array | undefined> {
  const op = opSpec(name);
  if (op === undefined) throw new FrameworkError(FrameworkErrorCode.INVALID_ARGUMENT, `no NFU op named ${JSON.stringify(name)}`);
  const params: NfuParamSpec[] = [];
  const attrs = (call as { attrs?: object }).attrs;
  if (op.attrs.length > 0) {
    if (attrs === undefined) throw new FrameworkError(FrameworkErrorCode.INVALID_ARGUMENT, `kernel ${name} needs attributes`);
    params.push({ kind: NfuParamKind.VAL_IN, data: encodeAttrs(attrs as Parameters<typeof encodeAttrs>[0]) });
  }
  if (call.inputs.length !== op.inputs.length) {
    throw new FrameworkError(
      FrameworkErrorCode.INVALID_ARGUMENT,
      `kernel ${name} takes ${op.inputs.length} input${op.inputs.length === 1 ? '' : 's'} (${op.inputs.map((i) => i.name).join(', ')}); got ${call.inputs.length}`,
    );
  }
  for (const input of call.inputs) {
    if (input instanceof Uint8Array) params.push({ kind: NfuParamKind.VAL_IN, data: input });
    else if (typeof input === 'string' || 'key' in input) params.push({ kind: NfuParamKind.REF_RD, cap: input });
    else params.push({ kind: NfuParamKind.REF_RD, cap: input.cap, offset: input.offset, length: input.length });
  }
  const out = call.output;
  if ('returnBytes' in out) params.push({ kind: NfuParamKind.VAL_OUT, length: out.returnBytes });
  else {
    const cap = typeof out.cap === 'string' ? parseCapability(out.cap) : out.cap;
    if (cap === undefined)
      throw new FrameworkError(FrameworkErrorCode.INVALID_ARGUMENT, `kernel ${name}: the output cap is invalid`);
    params.push({ kind: NfuParamKind.REF_WR, cap, offset: out.offset ?? 0, length: 0x7fffffff });
  }
  const values = await client.nfu(depot, CATALOGUE[name].opcode, params, call.timeoutMs);
  return values.get(params.length - 1);
}
