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
/** One precision of the workspace: its view, its GEMM, and how to make room. */
export interface GemmPrecision {
  readonly view: Float32Array | Float64Array;
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
  ): void;
}

export class GemmWorkspace extends WasmWorkspace {
  private readonly kernel: Gemm4x4;
  private readonly kernel32: Gemm4x4;

  constructor() {
    super(gemmWasmBase64);
    this.kernel = this.exports['gemm4x4'] as Gemm4x4;
    this.kernel32 = this.exports['gemm4x8f32'] as Gemm4x4;
  }

  /**
   * Room for `elements` values of the input's precision, and the matching GEMM: f64 inputs
   * compute in f64 (f64x2 tiles), f32 inputs in f32 (f32x4 tiles), as BLAS would.
   */
  precision(dtype: 'float32' | 'float64', elements: number): GemmPrecision {
    if (dtype === 'float64') {
      this.reserveBytes(elements * 8);
      return { view: this.f64, gemm: (...a) => this.gemm(...a) };
    }
    this.reserveBytes(elements * 4);
    return { view: this.f32, gemm: (...a) => this.gemm32(...a) };
  }

  /** {@link gemm} in f32: element offsets count f32 values; 4×8 tiles in WASM, edges in JS. */
  gemm32(
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
    const N8 = N & ~7;
    if (M4 > 0 && N8 > 0 && P > 0) this.kernel32(M4, N8, P, x * 4, xsm, xsp, y * 4, ysp, c * 4, ldc);
    gemmEdges(this.f32, M4, N8, M, N, P, x, xsm, xsp, y, ysp, c, ldc);
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
    gemmEdges(this.f64, M4, N4, M, N, P, x, xsm, xsp, y, ysp, c, ldc);
  }
}

/** The part of C outside the WASM tiles (rows ≥ Mt, or columns ≥ Nt), in plain JS. */
function gemmEdges(
  h: Float32Array | Float64Array,
  Mt: number,
  Nt: number,
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
  for (let m = 0; m < M; m++) {
    for (let n = m < Mt ? Nt : 0; n < N; n++) {
      let s = 0;
      for (let p = 0; p < P; p++) s += h[x + m * xsm + p * xsp]! * h[y + p * ysp + n]!;
      h[c + m * ldc + n]! += s;
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
