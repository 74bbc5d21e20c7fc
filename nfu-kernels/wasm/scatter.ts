import { scatterWasmBase64 } from './scatter-wasm.js';
import { WasmWorkspace } from './wasm-memory.js';

type Scatter = (n: number, cols: number, list: number) => void;

/**
 * The WASM SIMD scatter-add kernel with its workspace: Z rows += scale · A rows for a list of
 * (source row, target row, scale) entries of 16 bytes laid out by the caller.
 */
export class ScatterWorkspace extends WasmWorkspace {
  private readonly kernel: Scatter;

  constructor() {
    super(scatterWasmBase64);
    this.kernel = this.exports['scatter'] as Scatter;
  }

  /** Runs `n` entries of 16 bytes at byte offset `list` over rows of `cols` f64. */
  scatter(n: number, cols: number, list: number): void {
    this.kernel(n, cols, list);
  }
}

let shared: ScatterWorkspace | undefined;
/** The scatter workspace of this thread. */
export function scatterWorkspace(): ScatterWorkspace {
  shared ??= new ScatterWorkspace();
  return shared;
}
