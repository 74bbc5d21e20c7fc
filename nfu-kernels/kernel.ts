import type { Attrs } from './attrs.js';

/**
 * One NFU op: a stable opcode, a name, the inputs it reads (REF_RD allocations, in order), the size
 * of its single output for given attributes, and the pure function computing it.
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
  /** Bytes of the output for these attributes and inputs (checked before running). */
  outputBytes(a: Attrs | undefined, inputs: readonly Uint8Array[]): number;
  /**
   * Computes the output; validates shapes and throws KernelError on bad input. With `out` (exactly
   * `outputBytes` long) a kernel may write its result there and return it instead of allocating.
   */
  run(a: Attrs | undefined, inputs: readonly Uint8Array[], out?: Uint8Array): Uint8Array;
}
