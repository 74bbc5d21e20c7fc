import type { Attrs } from './attrs.js';
import type { RunOptions } from './backend.js';
import { CATALOGUE, type OpName } from './catalogue.js';

/**
 * One built-in NFU op: its identity from the catalogue (opcode, name, inputs), the size of its
 * single output for given attributes, and the pure function computing it.
 */
export interface KernelConfig {
  readonly opcode: number;
  readonly name: string;
  /** One line, with the formula. */
  readonly summary: string;
  /** Names of the input buffers, in parameter order. */
  readonly inputs: readonly string[];
  /** False for LoCI-style ops that take no attribute parameter (xor). */
  readonly takesAttrs: boolean;
  /**
   * How the op splits over row ranges of its inputs (for running one op on several threads):
   * `concat` — the output rows follow the input rows; `sum` — the outputs of the parts add up.
   * Absent when the op does not split (block-local sketches, byte ops).
   */
  readonly rowSplit?: 'concat' | 'sum';
  /** Row width (elements) of each input when split by rows, from the attributes. */
  readonly inputRowElements?: (a: Attrs) => readonly number[];
  /** Bytes of the output for these attributes and input lengths (checked before reading the inputs). */
  outputBytes(a: Attrs | undefined, inputLengths: readonly number[]): number;
  /**
   * Bytes of scratch the op needs beyond its inputs and output (random matrices, panels, padded
   * copies), for admission against the depot's NFU memory budget. An upper estimate.
   */
  workBytes(a: Attrs | undefined): number;
  /**
   * Computes the output; validates shapes and throws KernelError on bad input. With `out` (exactly
   * `outputBytes` long) a kernel may write its result there and return it instead of allocating.
   * Runs on `backend` (WebAssembly/JS when absent).
   */
  run(a: Attrs | undefined, inputs: readonly Uint8Array[], options?: RunOptions): Uint8Array;
}

/** The catalogue's part of a kernel's config: opcode, name, summary, inputs, attributes, row split. */
export function catalogued(
  name: OpName,
): Pick<KernelConfig, 'opcode' | 'name' | 'summary' | 'inputs' | 'takesAttrs' | 'rowSplit'> {
  const op = CATALOGUE[name];
  return {
    opcode: op.opcode,
    name: op.name,
    summary: op.summary,
    inputs: op.inputs.map((i) => i.name),
    takesAttrs: op.attrs.length > 0,
    ...(op.rowSplit !== undefined ? { rowSplit: op.rowSplit } : {}),
  };
}
