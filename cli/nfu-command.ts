import { readFile, writeFile } from 'node:fs/promises';
import { Command as CliCommand } from 'commander';
import { ClientError, IbpClient, parseCapability, type DepotAddress } from '../ibp/index.js';
import { OPS, opSpec, type OpSpec } from '../nfu-kernels/index.js';
import { FrameworkError, FrameworkErrorCode, parseDepotList, runKernel, type KernelInput } from '../framework/index.js';
import { durationFlag } from './flags.js';

function argError(message: string): FrameworkError {
  return new FrameworkError(FrameworkErrorCode.INVALID_ARGUMENT, message);
}

/**
 * `--timeout`: a duration like every other command's (`30s`, `500ms`, `2m`, a number of seconds). A bare
 * integer of 1000 or more is the command's former milliseconds form (`120000`): read as milliseconds, with a
 * note on stderr saying how to write it now.
 */
export function nfuTimeoutMs(value: string, note: (line: string) => void): number {
  const v = value.trim();
  if (/^\d+$/.test(v) && Number(v) >= 1000) {
    const ms = Number(v);
    if (Number.isSafeInteger(ms) && ms <= 2 ** 31 - 1) {
      note(`anvil: note: --timeout ${v} is read as milliseconds (the old form); write ${v}ms or ${ms / 1000}s\n`);
      return ms;
    }
  }
  return durationFlag(value, '--timeout', argError);
}

/** The catalogue entry for `name`; an unknown name lists the valid ones. */
export function opNamed(name: string): OpSpec {
  const op = opSpec(name);
  if (op === undefined) throw argError(`unknown NFU op "${name}"; the ops are ${OPS.map((o) => o.name).join(', ')}`);
  return op;
}

/** `--attr k=v` flags → the op's attributes: known keys only, numbers except `dtype`. */
export function attrsFrom(op: OpSpec, pairs: readonly string[]): Record<string, number | string> {
  const attrs: Record<string, number | string> = {};
  for (const pair of pairs) {
    const m = /^([A-Za-z]+)=(.+)$/.exec(pair);
    if (m === null) throw argError(`--attr expects key=value, e.g. rows=1000 (got "${pair}")`);
    const [, key, value] = m as unknown as [string, string, string];
    if (!(op.attrs as readonly string[]).includes(key)) {
      throw argError(
        op.attrs.length === 0
          ? `${op.name} takes no attributes (got ${key})`
          : `${op.name} has no attribute "${key}"; its attributes are ${op.attrs.join(', ')}`,
      );
    }
    if (key in attrs) throw argError(`--attr ${key} is given twice`);
    if (key === 'dtype') {
      if (value !== 'float64' && value !== 'float32') throw argError(`--attr dtype must be float64 or float32 (got ${value})`);
      attrs[key] = value;
    } else {
      const n = Number(value);
      if (!/^\d+$/.test(value) || !Number.isSafeInteger(n))
        throw argError(`--attr ${key} must be a non-negative integer (got ${value})`);
      attrs[key] = n;
    }
  }
  for (const key of ['rows', 'cols'] as const) {
    if ((op.attrs as readonly string[]).includes(key) && !(key in attrs))
      throw argError(`${op.name} needs --attr ${key}=N (its attributes are ${op.attrs.join(', ')})`);
  }
  return attrs;
}

/**
 * Rows × columns of an op's float64 output, from the catalogue's layouts (docs/nfu-ops.md), or
 * undefined when it depends on the inputs (`xor`) or is not a matrix (`sha256`).
 */
export function outputShape(name: string, a: Record<string, number | string>): [number, number] | undefined {
  const rows = Number(a['rows'] ?? 0);
  const cols = Number(a['cols'] ?? 0);
  const k = Number(a['k'] ?? 1);
  switch (name) {
    case 'gaussian-sketch-right':
    case 'affine-product':
      return [rows, k];
    case 'gaussian-sketch-left':
    case 'sparse-sign-sketch':
    case 'count-sketch':
    case 'srht':
      return [k, cols];
    case 'gram':
      return [cols, cols];
    case 'column-stats':
      return [6, cols];
    case 'atb':
      return [cols, k];
    case 'affine-gram':
      return [k, k];
    case 'transpose-product':
      return [cols + 1, k];
    case 'fd-update':
      return [1, 4 + k * cols];
    default:
      return undefined;
  }
}

/**
 * Bytes input `slot` of `op` must hold under the attributes (the layouts of docs/nfu-ops.md), with the
 * attributes that say so (`rows=4 × cols=2 float64`); undefined when the op takes any size there.
 */
export function inputNeed(
  op: OpSpec,
  slot: number,
  a: Record<string, number | string>,
): { bytes: number; shape: string } | undefined {
  const rows = Number(a['rows'] ?? 0);
  const cols = Number(a['cols'] ?? 0);
  const k = Number(a['k'] ?? 1);
  const dtype = a['dtype'] === 'float32' ? 'float32' : 'float64';
  const elt = dtype === 'float32' ? 4 : 8;
  const name = op.inputs[slot]?.name;
  if (name === 'A') return { bytes: rows * cols * elt, shape: `rows=${rows} × cols=${cols} ${dtype}` };
  if (op.name === 'atb' && name === 'B') return { bytes: rows * k * elt, shape: `rows=${rows} × k=${k} ${dtype}` };
  if (name === 'X') return { bytes: (cols + 1) * k * 8, shape: `(cols=${cols} + 1) × k=${k} float64` };
  if (op.name === 'transpose-product' && name === 'Y') return { bytes: rows * k * 8, shape: `rows=${rows} × k=${k} float64` };
  return undefined;
}

/**
 * Bytes a read cap's allocation holds, found with one-byte LOADs (a few dozen, on loopback a few ms);
 * undefined when the depot does not answer them.
 */
async function heldBytes(client: IbpClient, cap: string): Promise<number | undefined> {
  const holds = (n: number): Promise<boolean> =>
    n === 0
      ? Promise.resolve(true)
      : client.load(cap, n - 1, 1).then(
          () => true,
          (e: unknown) => {
            if (e instanceof ClientError && e.status !== undefined) return false; // the depot answered: not that far
            throw e;
          },
        );
  try {
    let lo = 0;
    let hi = 1;
    for (let i = 0; i < 48 && (await holds(hi)); i++) [lo, hi] = [hi, hi * 2];
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if (await holds(mid)) lo = mid;
      else hi = mid;
    }
    return lo;
  } catch {
    return undefined;
  }
}

/** `input A holds H bytes; SHAPE needs N: …` for the first input whose size is not the one needed, or undefined. */
async function sizeMismatch(
  client: IbpClient | undefined,
  op: OpSpec,
  attrs: Record<string, number | string>,
  inputs: readonly KernelInput[],
): Promise<string | undefined> {
  for (const [slot, input] of inputs.entries()) {
    const need = inputNeed(op, slot, attrs);
    if (need === undefined) continue;
    const held =
      typeof input !== 'string'
        ? (input as Uint8Array).length
        : client === undefined
          ? undefined
          : await heldBytes(client, input);
    if (held === undefined || held === need.bytes) continue;
    return (
      `input ${op.inputs[slot]!.name} holds ${held} bytes; ${need.shape} needs ${need.bytes}: an input is its whole ` +
      'allocation, so give the attributes of all of it (docs/nfu-ops.md)'
    );
  }
  return undefined;
}

/** An `--input`: a read cap, or `@FILE` for bytes sent inline. */
async function inputFrom(value: string): Promise<KernelInput> {
  if (value.startsWith('@')) {
    const path = value.slice(1);
    return new Uint8Array(
      await readFile(path).catch((e: Error) => {
        throw argError(`--input @${path}: cannot read it: ${e.message}`);
      }),
    );
  }
  if (parseCapability(value) === undefined)
    throw argError(`--input expects a read cap (ibp://host:port/rid#key/id/READ) or @FILE (got "${value.slice(0, 80)}")`);
  return value;
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

interface NfuFlags {
  depot: string;
  input?: string[];
  attr?: string[];
  outCap?: string;
  outOffset?: string;
  returnBytes?: string;
  output?: string;
  timeout?: string;
  json?: boolean;
}

/** `anvil nfu OP`: runs one built-in NFU op at a depot from the shell. */
export function nfuCommand(): CliCommand {
  return new CliCommand('nfu')
    .description(
      'run one NFU op at the depot holding its inputs; prints the result (float64 matrices as rows of numbers, other outputs as hex)',
    )
    .argument('<op>', `op name: ${OPS.map((o) => o.name).join(', ')} (docs/nfu-ops.md)`)
    .requiredOption('--depot <host:port>', 'the depot that runs the op (it must hold the input caps)')
    .option('--input <cap|@file>', 'an input in the op’s order: a read cap at that depot, or @FILE sent inline (repeat)', collect)
    .option('--attr <key=value>', 'an attribute, e.g. rows=1000 cols=8 k=4 seed=42 dtype=float32 (repeat)', collect)
    .option('--out-cap <cap>', 'write the output into this allocation (a write cap at the depot) instead of returning it')
    .option('--out-offset <bytes>', 'with --out-cap: the offset to write at', '0')
    .option('--return-bytes <n>', 'bytes to return (default: the op’s output size; required for xor)')
    .option('-o, --output <file>', 'write the returned bytes raw to FILE instead of printing them')
    .option(
      '--timeout <duration>',
      'how long to wait for the op: 500ms, 30s, 2m or seconds (a bare number ≥ 1000 is the old milliseconds form)',
      '2m',
    )
    .option('--json', 'print {op, depot, bytes, shape, values | hex} as JSON')
    .action(async (name: string, f: NfuFlags) => {
      const op = opNamed(name);
      const [depot] = parseDepotList(f.depot, '--depot') as [DepotAddress];
      const attrs = attrsFrom(op, f.attr ?? []);
      const inputs = await Promise.all((f.input ?? []).map(inputFrom));
      if (inputs.length !== op.inputs.length) {
        throw argError(
          `${op.name} takes ${op.inputs.length} --input (${op.inputs.map((i) => `${i.name}: ${i.layout}`).join('; ')}); got ${inputs.length}`,
        );
      }
      // Inline inputs are checked here; a cap's size is only known to its depot (asked below if it refuses).
      const inlineMismatch = await sizeMismatch(undefined, op, attrs, inputs);
      if (inlineMismatch !== undefined) throw argError(inlineMismatch);
      const shape = outputShape(op.name, attrs);
      const timeoutMs = nfuTimeoutMs(f.timeout ?? '2m', (line) => process.stderr.write(line));
      let output: { cap: string; offset: number } | { returnBytes: number };
      if (f.outCap !== undefined) {
        if (f.returnBytes !== undefined || f.output !== undefined) throw argError('--out-cap goes without --return-bytes and -o');
        const offset = Number(f.outOffset);
        if (!Number.isSafeInteger(offset) || offset < 0)
          throw argError(`--out-offset must be a non-negative integer (got ${f.outOffset})`);
        output = { cap: f.outCap, offset };
      } else {
        const returnBytes =
          f.returnBytes !== undefined
            ? Number(f.returnBytes)
            : op.name === 'sha256'
              ? 32
              : shape === undefined
                ? undefined
                : shape[0] * shape[1] * 8;
        if (returnBytes === undefined)
          throw argError(`${op.name}: give --return-bytes N (its output size depends on the inputs)`);
        if (!Number.isSafeInteger(returnBytes) || returnBytes < 1 || returnBytes > 1 << 30)
          throw argError(`--return-bytes must be from 1 to ${1 << 30} (got ${f.returnBytes})`);
        output = { returnBytes };
      }
      const client = new IbpClient({ timeoutMs });
      let bytes: Uint8Array | undefined;
      try {
        bytes = await runKernel(client, depot, op.name, {
          attrs: attrs as never,
          inputs,
          output,
          timeoutMs,
        } as never);
      } catch (e) {
        if (e instanceof ClientError && e.status === -30) {
          const mismatch = await sizeMismatch(client, op, attrs, inputs);
          throw new ClientError(
            e.code,
            `${e.message} — the depot refused ${op.name}'s attributes or inputs: ` +
              (mismatch ??
                `each input must hold its layout (${op.inputs.map((i) => `${i.name}: ${i.layout}`).join('; ')}); see docs/nfu-ops.md`),
            { depot: `${depot.host}:${depot.port}`, status: e.status },
          );
        }
        throw e;
      } finally {
        client.close();
      }
      const base = { op: op.name, depot: `${depot.host}:${depot.port}` };
      if (bytes === undefined) {
        process.stdout.write(
          f.json === true ? `${JSON.stringify({ ...base, written: f.outCap })}\n` : `written to ${f.outCap}\n`,
        );
        return;
      }
      if (f.output !== undefined) {
        await writeFile(f.output, bytes);
        process.stdout.write(
          f.json === true
            ? `${JSON.stringify({ ...base, bytes: bytes.length, output: f.output })}\n`
            : `${bytes.length} bytes → ${f.output}\n`,
        );
        return;
      }
      const matrix = shape !== undefined && bytes.length === shape[0] * shape[1] * 8 ? shape : undefined;
      if (matrix === undefined) {
        const hex = Buffer.from(bytes).toString('hex');
        process.stdout.write(f.json === true ? `${JSON.stringify({ ...base, bytes: bytes.length, hex })}\n` : `${hex}\n`);
        return;
      }
      const view = new Float64Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
      const rows = Array.from({ length: matrix[0] }, (_, r) => Array.from(view.subarray(r * matrix[1], (r + 1) * matrix[1])));
      process.stdout.write(
        f.json === true
          ? `${JSON.stringify({ ...base, bytes: bytes.length, shape: matrix, values: rows })}\n`
          : `${rows.map((r) => r.join(' ')).join('\n')}\n`,
      );
    });
}
