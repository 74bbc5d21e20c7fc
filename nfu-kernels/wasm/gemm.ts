import { gemmWasmBase64 } from './gemm-wasm.js';
import { WasmWorkspace } from './wasm-memory.js';

/**
 * Arguments of C[m, n] += Σ_p X[m, p]·Y[p, n] for m < M, n < N, p < P, with operands in a
 * workspace at element offsets and strides: X(m, p) at x + m·xsm + p·xsp, Y(p, n) at y + p·ysp + n,
 * C(m, n) at c + m·ldc + n.
 */
export type GemmArgs = [
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
];
type Kernel = (...args: GemmArgs) => void;

/** One precision of the workspace: its view and its GEMM. */
export interface GemmPrecision {
  readonly view: Float32Array | Float64Array;
  gemm(...args: GemmArgs): void;
}

export class GemmWorkspace extends WasmWorkspace {
  private readonly kernel64: Kernel;
  private readonly kernel32: Kernel;

  constructor() {
    super(gemmWasmBase64);
    this.kernel64 = this.exports['gemm4x4'] as Kernel;
    this.kernel32 = this.exports['gemm4x8f32'] as Kernel;
  }

  /**
   * Room for `elements` values of the input's precision, and the matching GEMM: f64 inputs
   * compute in f64 (4×4 f64x2 tiles), f32 inputs in f32 (4×8 f32x4 tiles), as BLAS would.
   */
  precision(dtype: 'float32' | 'float64', elements: number): GemmPrecision {
    if (dtype === 'float64') {
      this.reserveBytes(elements * 8);
      return { view: this.f64, gemm: (...a) => this.tiled(this.kernel64, this.f64, 8, 4, a) };
    }
    this.reserveBytes(elements * 4);
    return { view: this.f32, gemm: (...a) => this.tiled(this.kernel32, this.f32, 4, 8, a) };
  }

  /** Full tiles (rows in fours, columns in `tileN`s) in WASM SIMD, the edges in JS. */
  private tiled(kernel: Kernel, h: Float32Array | Float64Array, bytes: number, tileN: number, a: GemmArgs): void {
    const [M, N, P, x, xsm, xsp, y, ysp, c, ldc] = a;
    const Mt = M & ~3;
    const Nt = N - (N % tileN);
    if (Mt > 0 && Nt > 0 && P > 0) kernel(Mt, Nt, P, x * bytes, xsm, xsp, y * bytes, ysp, c * bytes, ldc);
    for (let m = 0; m < M; m++) {
      for (let n = m < Mt ? Nt : 0; n < N; n++) {
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
