import { gemmWasmBase64 } from './gemm-wasm.js';
import { WasmWorkspace } from './wasm-memory.js';

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

/**
 * A WebAssembly instance of the SIMD GEMM micro-kernel with its own linear memory, used as a
 * scratch workspace: callers lay out their operands (f64) at byte offsets and grow it as needed.
 */
export class GemmWorkspace extends WasmWorkspace {
  private readonly kernel: Gemm4x4;

  constructor() {
    super(gemmWasmBase64);
    this.kernel = this.exports['gemm4x4'] as Gemm4x4;
  }

  /** Makes room for `doubles` f64 values; returns the (possibly new) view of the whole memory. */
  reserve(doubles: number): Float64Array {
    this.reserveBytes(doubles * 8);
    return this.f64;
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
    const h = this.f64;
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
