import { from, type Observable } from 'rxjs';
import { builtinRegistry, columnStats, encodeAttrs, gram, parseAttrs } from '../../nfu-kernels/index.js';
import type { OpAnswer, OpAttempt, OpRunner } from '../../framework/coordinator/op-runner.js';
import { summarizeBlock } from '../../framework/estimation/index.js';
import type { Dataset, DatasetBlock } from '../../framework/coordinator/dataset-shape.js';

const kernels = builtinRegistry();

/** Seeded uniform numbers in [0, 1) (mulberry32). */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `blocks` row blocks of `rows × cols` seeded float64 data. */
export function blockData(blocks: number, rows: number, cols: number, seed = 1): Float64Array[] {
  const rand = seeded(seed);
  return Array.from({ length: blocks }, () => Float64Array.from({ length: rows * cols }, () => 1 + 2 * rand()));
}

/**
 * A dataset over in-memory blocks; block b's replicas sit on the depots `depotsOf(b)` (fake ports, or real
 * caps when `caps` is given).
 */
export function fakeDataset(data: (Float64Array | Float32Array)[], cols: number, depotsOf: (b: number) => number[]): Dataset {
  let rowStart = 0;
  const blocks: DatasetBlock[] = data.map((d, index) => {
    const rows = d.length / cols;
    const block: DatasetBlock = {
      index,
      rowStart,
      rows,
      bytes: d.byteLength,
      replicas: depotsOf(index).map((port) => ({
        depot: { host: '127.0.0.1', port },
        read: `ibp://127.0.0.1:${port}/0#r${index}/0/READ`,
        allocOffset: 0,
        length: d.byteLength,
      })),
      summary: summarizeBlock(d, rows, cols),
      source: `sensor-${index % 3}`,
    };
    rowStart += rows;
    return block;
  });
  return { name: 'fake', dtype: data[0] instanceof Float32Array ? 'float32' : 'float64', rows: rowStart, cols, blocks };
}

const attrs = (rows: number, cols: number) => ({
  dtype: 'float64' as const,
  rows,
  cols,
  k: 1,
  seed: 0,
  rowOffset: 0,
  s: 1,
  blockId: 0,
});

/** The column-stats op output of a block, computed in process. */
export function columnStatsBytes(d: Float64Array, cols: number): Uint8Array {
  const out = columnStats(attrs(d.length / cols, cols), d);
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** The gram op output of a block, computed in process. */
export function gramBytes(d: Float64Array, cols: number): Uint8Array {
  const out = gram(attrs(d.length / cols, cols), d);
  return new Uint8Array(out.buffer.slice(out.byteOffset, out.byteOffset + out.byteLength));
}

/** Exact column sums, means and Gram of the whole matrix. */
export function exact(data: Float64Array[], cols: number): { sums: Float64Array; means: Float64Array; gram: Float64Array } {
  const sums = new Float64Array(cols);
  const g = new Float64Array(cols * cols);
  let n = 0;
  for (const d of data) {
    const rows = d.length / cols;
    n += rows;
    for (let i = 0; i < rows; i++) {
      for (let p = 0; p < cols; p++) {
        sums[p]! += d[i * cols + p]!;
        for (let q = 0; q < cols; q++) g[p * cols + q]! += d[i * cols + p]! * d[i * cols + q]!;
      }
    }
  }
  return { sums, means: sums.map((s) => s / n), gram: g };
}

/** Largest |a_i − b_i|. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/**
 * An in-process {@link OpRunner}: runs the job's real kernel on the block's bytes (`data[b]`, in the
 * dataset's dtype) as a depot would, and answers after a microtask. `corrupt(port, block)` (optional)
 * names the depots whose replies get one byte flipped (at a seeded position, like a fault proxy's), and
 * `calls` counts attempts per depot port.
 */
export class LocalKernelRunner implements OpRunner {
  readonly calls = new Map<number, number>();
  readonly corrupted: { port: number; block: number; byte: number }[] = [];
  readonly #rand: () => number;
  constructor(
    private readonly data: (Float64Array | Float32Array)[],
    private readonly corrupt: (port: number, block: number) => boolean = () => false,
    seed = 1,
  ) {
    this.#rand = seeded(seed);
  }
  run(attempt: OpAttempt): Observable<OpAnswer> {
    return from(this.execute(attempt));
  }
  execute(attempt: OpAttempt): Promise<OpAnswer> {
    const port = attempt.replica.depot.port;
    const b = attempt.block.index;
    this.calls.set(port, (this.calls.get(port) ?? 0) + 1);
    const d = this.data[b]!;
    const attrs = parseAttrs(
      encodeAttrs({
        dtype: attempt.dataset.dtype,
        rows: attempt.block.rows,
        cols: attempt.dataset.cols,
        rowOffset: attempt.block.rowStart,
        blockId: b,
        ...attempt.op.attrs,
      }),
    );
    const out = kernels.byNameOrThrow(attempt.op.name).run(attrs, [new Uint8Array(d.buffer, d.byteOffset, d.byteLength)]);
    const output = new Uint8Array(out.byteLength);
    output.set(out);
    if (this.corrupt(port, b)) {
      // A flipped byte in the upper half of a float64 (sign, exponent, high mantissa): a wrong number.
      const value = Math.floor(this.#rand() * (output.length / 8));
      const byte = value * 8 + 4 + Math.floor(this.#rand() * 4);
      output[byte]! ^= 1 + Math.floor(this.#rand() * 255);
      this.corrupted.push({ port, block: b, byte });
    }
    return Promise.resolve({ output, wireBytes: output.length, ranOn: `127.0.0.1:${port}`, transferred: false });
  }
}
