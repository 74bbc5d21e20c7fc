/**
 * The kernel backend: which implementation a kernel call runs on. It is a value handed to each
 * call (`{ backend }`), never state of the thread: two calls in one thread may run on different
 * backends, and nothing is installed by importing a module.
 *
 * - `wasm`: WebAssembly SIMD and JS (always available; the reference every other path matches).
 * - `native`: the Node-API addon (native/anvil_nfu.cc): C++ vector loops for random numbers and
 *   the sparse scatter, and OpenBLAS for dense products when it was built with it.
 *
 * Random numbers are bit-identical on every backend; dense products agree to rounding (BLAS sums
 * in another order).
 */
import type { NativeKernels } from './native.js';

export interface KernelBackend {
  /** `wasm`, or `native (ISA; BLAS config)` / `native (ISA, no BLAS; GEMM in wasm)`: for logs and benchmarks. */
  readonly name: string;
  /** The addon's vector loops (normals, sparse scatter), when the backend is native. */
  readonly native: NativeKernels | undefined;
  /** The addon when it has a BLAS (dense products), else undefined: dense products run in WebAssembly. */
  readonly blas: NativeKernels | undefined;
}

/** WebAssembly/JS: the backend of a call that names none. */
export const WASM_BACKEND: KernelBackend = Object.freeze({ name: 'wasm', native: undefined, blas: undefined });

/** The backend of a loaded native addon (see depot/nfu/native-loader.ts, which loads and checks it). */
export function nativeBackend(native: NativeKernels): KernelBackend {
  const { blas, isa } = native.info();
  return Object.freeze({
    name: blas === null ? `native (${isa}, no BLAS; GEMM in wasm)` : `native (${isa}; ${blas.trim()})`,
    native,
    blas: blas === null ? undefined : native,
  });
}

/** What a kernel call is given besides its attributes and inputs. */
export interface RunOptions {
  /** Where the result goes (exactly the op's output size): the kernel may write there and return it. */
  readonly out?: Uint8Array | undefined;
  /** The implementation to run on; WebAssembly/JS when absent. */
  readonly backend?: KernelBackend | undefined;
}
