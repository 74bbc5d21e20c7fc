import { gemmWasmBase64 } from './gemm-wasm.js';

type Gemm4x4 = (
  M: number,
  N: number,
  P: number,
  x: number,
  xsm: number,
  xsp: number,
  y: number,
  ysp: number,
  c: number,
  ldc: number,
) => void;

const PAGE = 65536;
let compiled: WebAssembly.Module | undefined;

export function decode(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/**
 * A WebAssembly instance of the SIMD GEMM micro-kernel with its own linear memory, used as a
 * scratch workspace: callers lay out their operands (f64) at byte offsets and grow it as needed.
 */
export class GemmWorkspace {
  private readonly memory: WebAssembly.Memory;
  private readonly kernel: Gemm4x4;
  private heap: Float64Array;

  constructor() {
    compiled ??= new WebAssembly.Module(decode(gemmWasmBase64));
    const instance = new WebAssembly.Instance(compiled, {});
    this.memory = instance.exports['memory'] as WebAssembly.Memory;
    this.kernel = instance.exports['gemm4x4'] as Gemm4x4;
    this.heap = new Float64Array(this.memory.buffer);
  }

  /** Makes room for `doubles` f64 values; returns the (possibly new) view of the whole memory. */
  reserve(doubles: number): Float64Array {
    const bytes = doubles * 8;
    if (bytes > this.memory.buffer.byteLength) {
      this.memory.grow(Math.ceil((bytes - this.memory.buffer.byteLength) / PAGE));
      this.heap = new Float64Array(this.memory.buffer);
    }
    return this.heap;
  }

  get f64(): Float64Array {
    return this.heap;
  }

  /**
   * C[m, n] += Σ_p X[m, p]·Y[p, n] for m < M, n < N, p < P, with operands in this workspace at
   * element offsets and strides (X(m, p) at x + m·xsm + p·xsp, Y(p, n) at y + p·ysp + n,
   * C(m, n) at c + m·ldc + n). Full 4×4 tiles run in WASM SIMD, the edges in JS.
   */
  gemm(
    M: number,
    N: number,
    P: number,
    x: number,
    xsm: number,
    xsp: number,
    y: number,
    ysp: number,
    c: number,
    ldc: number,
  ): void {
    const M4 = M & ~3;
    const N4 = N & ~3;
    if (M4 > 0 && N4 > 0 && P > 0) this.kernel(M4, N4, P, x * 8, xsm, xsp, y * 8, ysp, c * 8, ldc);
    const h = this.heap;
    for (let m = 0; m < M; m++) {
      const from = m < M4 ? N4 : 0;
      for (let n = from; n < N; n++) {
        let s = 0;
        for (let p = 0; p < P; p++) s += h[x + m * xsm + p * xsp]! * h[y + p * ysp + n]!;
        h[c + m * ldc + n]! += s;
      }
    }
  }
}

let shared: GemmWorkspace | undefined;
/** The workspace of this thread (one per worker; kernels run one at a time in a thread). */
export function workspace(): GemmWorkspace {
  shared ??= new GemmWorkspace();
  return shared;
}

/** Rows per panel: the slice of a block copied into WASM memory at a time. */
export const PANEL_ROWS = 256;
