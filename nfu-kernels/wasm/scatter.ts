import { decode } from './gemm.js';
import { scatterWasmBase64 } from './scatter-wasm.js';

type Scatter = (n: number, cols: number, list: number) => void;

const PAGE = 65536;
let compiled: WebAssembly.Module | undefined;

/**
 * The WASM SIMD scatter-add kernel with its own linear memory: Z rows += scale · A rows for a list
 * of (source row, target row, scale) entries laid out by the caller.
 */
export class ScatterWorkspace {
  private readonly memory: WebAssembly.Memory;
  private readonly kernel: Scatter;
  f64: Float64Array;
  i32: Int32Array;

  constructor() {
    compiled ??= new WebAssembly.Module(decode(scatterWasmBase64));
    const instance = new WebAssembly.Instance(compiled, {});
    this.memory = instance.exports['memory'] as WebAssembly.Memory;
    this.kernel = instance.exports['scatter'] as Scatter;
    this.f64 = new Float64Array(this.memory.buffer);
    this.i32 = new Int32Array(this.memory.buffer);
  }

  /** Makes room for `bytes` bytes (views are renewed after growth). */
  reserve(bytes: number): void {
    if (bytes > this.memory.buffer.byteLength) {
      this.memory.grow(Math.ceil((bytes - this.memory.buffer.byteLength) / PAGE));
      this.f64 = new Float64Array(this.memory.buffer);
      this.i32 = new Int32Array(this.memory.buffer);
    }
  }

  /** Runs `n` entries of 16 bytes at byte offset `list` over rows of `cols` f64. */
  scatter(n: number, cols: number, list: number): void {
    this.kernel(n, cols, list);
  }
}

let shared: ScatterWorkspace | undefined;
export function scatterWorkspace(): ScatterWorkspace {
  shared ??= new ScatterWorkspace();
  return shared;
}
