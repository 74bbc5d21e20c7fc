import { encodeAttrs, fdUpdate, normals, parseAttrs, type Attrs, type OpName } from '../../nfu-kernels/index.js';

/** One compliance case: a kernel, its attributes and inputs (a matrix block and maybe B). */
export interface KernelCase {
  readonly name: string;
  readonly kernel: OpName;
  readonly attrs: (Partial<Attrs> & { rows: number; cols: number }) | undefined;
  readonly inputs: readonly Uint8Array[];
}

function block(rows: number, cols: number, seed: number, dtype: 'float32' | 'float64'): Uint8Array {
  const v = new Float64Array(rows * cols);
  normals(seed, 77, 0, 0, v);
  const typed = dtype === 'float64' ? v : Float32Array.from(v);
  return new Uint8Array(typed.buffer);
}

/** The cases every backend (in process, memory depot, disk depot) must agree on, byte for byte. */
export function kernelCases(): KernelCase[] {
  const cases: KernelCase[] = [];
  for (const dtype of ['float64', 'float32'] as const) {
    const rows = 257;
    const cols = 19;
    const A = block(rows, cols, 1, dtype);
    const base = { dtype, rows, cols, seed: 20261125, rowOffset: 1000 };
    cases.push({ name: `gaussian right ${dtype}`, kernel: 'gaussian-sketch-right', attrs: { ...base, k: 6 }, inputs: [A] });
    cases.push({ name: `gaussian left ${dtype}`, kernel: 'gaussian-sketch-left', attrs: { ...base, k: 6 }, inputs: [A] });
    cases.push({ name: `sparse sign ${dtype}`, kernel: 'sparse-sign-sketch', attrs: { ...base, k: 16, s: 4 }, inputs: [A] });
    cases.push({ name: `count sketch ${dtype}`, kernel: 'count-sketch', attrs: { ...base, k: 16 }, inputs: [A] });
    cases.push({ name: `srht ${dtype}`, kernel: 'srht', attrs: { ...base, k: 8, blockId: 3 }, inputs: [A] });
    cases.push({ name: `gram ${dtype}`, kernel: 'gram', attrs: base, inputs: [A] });
    cases.push({ name: `column stats ${dtype}`, kernel: 'column-stats', attrs: base, inputs: [A] });
    cases.push({ name: `atb ${dtype}`, kernel: 'atb', attrs: { ...base, k: 4 }, inputs: [A, block(rows, 4, 2, dtype)] });
    const X = block(cols + 1, 5, 4, 'float64');
    cases.push({ name: `affine product ${dtype}`, kernel: 'affine-product', attrs: { ...base, k: 5 }, inputs: [A, X] });
    cases.push({ name: `affine gram ${dtype}`, kernel: 'affine-gram', attrs: { ...base, k: 5 }, inputs: [A, X] });
    cases.push({
      name: `transpose product ${dtype}`,
      kernel: 'transpose-product',
      attrs: { ...base, k: 3 },
      inputs: [A, block(rows, 3, 5, 'float64')],
    });
    const first = block(40, cols, 6, dtype);
    const state = fdUpdate(
      parseAttrs(encodeAttrs({ dtype, rows: 40, cols, k: 6 })),
      new Float64Array(0),
      dtype === 'float64' ? new Float64Array(first.buffer) : new Float32Array(first.buffer),
    );
    cases.push({
      name: `fd update ${dtype}`,
      kernel: 'fd-update',
      attrs: { ...base, k: 6, rowOffset: 40 },
      inputs: [new Uint8Array(state.buffer), A],
    });
    // Applied again over rows the state has seen (a retried update): the state back, unchanged.
    cases.push({
      name: `fd update repeated ${dtype}`,
      kernel: 'fd-update',
      attrs: { ...base, rows: 40, k: 6, rowOffset: 0 },
      inputs: [new Uint8Array(state.buffer), first],
    });
  }
  cases.push({ name: 'sha256', kernel: 'sha256', attrs: undefined, inputs: [block(100, 10, 3, 'float64')] });
  cases.push({
    name: 'xor',
    kernel: 'xor',
    attrs: undefined,
    inputs: [new TextEncoder().encode('hello world'), new Uint8Array([1, 2])],
  });
  return cases;
}
