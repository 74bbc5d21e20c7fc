/**
 * Loads the optional native kernels (native/build/Release/anvil_nfu.node, built by
 * `scripts/build-native.mjs` at install time) and makes a kernel backend of them. Nothing happens
 * on import: the addon is looked for, loaded and checked on the first call. Without the addon, or
 * with ANVIL_NATIVE=0, kernels run on {@link WASM_BACKEND}.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  STREAM_SPARSE_SIGN,
  WASM_BACKEND,
  nativeBackend,
  normalsReference,
  seedKey,
  sparseSignSketch,
  type KernelBackend,
  type NativeKernels,
} from '../../nfu-kernels/index.js';

const ADDON = join('native', 'build', 'Release', 'anvil_nfu.node');

let loaded: { native: NativeKernels | undefined; why: string } | undefined;

/** The addon beside the project root (from depot/nfu/ in sources or dist/depot/nfu/ when built). */
function addonPath(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, ADDON);
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  return undefined;
}

/** The native kernels, or undefined with the reason (disabled, not built, failed to load). */
export function loadNativeKernels(): { native: NativeKernels | undefined; why: string } {
  if (loaded !== undefined) return loaded;
  const mode = process.env['ANVIL_NATIVE'];
  if (mode === '0' || mode === 'off') {
    loaded = { native: undefined, why: 'disabled by ANVIL_NATIVE=0' };
    return loaded;
  }
  const path = addonPath();
  if (path === undefined) {
    loaded = { native: undefined, why: 'not built (npm run build:native)' };
    return loaded;
  }
  try {
    const native = createRequire(import.meta.url)(path) as NativeKernels;
    const wrong = checkNativeKernels(native);
    loaded = wrong === undefined ? { native, why: path } : { native: undefined, why: `${path} refused: ${wrong}` };
  } catch (e) {
    loaded = { native: undefined, why: `failed to load ${path}: ${(e as Error).message}` };
  }
  return loaded;
}

/**
 * Checks the addon against the JS reference before it is used: normals across a chunk edge, in
 * both precisions, and a small sparse sign sketch, bit for bit (a compiler that fused multiply-adds
 * or a wrong vector clone shows here). Returns what differs, or undefined. About a millisecond.
 */
export function checkNativeKernels(native: NativeKernels): string | undefined {
  const [k0, k1] = seedKey(20261127);
  for (const out of [new Float64Array(1031), new Float32Array(17)]) {
    const want = out instanceof Float64Array ? new Float64Array(out.length) : new Float32Array(out.length);
    normalsReference(20261127, 5, 4294967295, 3, want);
    native.normals(k0, k1, 5, 4294967295, 3, out);
    for (let i = 0; i < out.length; i++)
      if (!Object.is(out[i], want[i])) return `normal ${i} is ${out[i]}, the reference gives ${want[i]}`;
  }
  const rows = 40;
  const cols = 131; // a full 128-column tile and a tail
  const A = new Float64Array(rows * cols);
  normalsReference(1, 2, 3, 0, A);
  const attrs = { dtype: 'float64', rows, cols, k: 9, seed: 20261127, rowOffset: 7, s: 3, blockId: 0 } as const;
  const Z = new Float64Array(attrs.k * cols);
  native.sparseSign(A, rows, cols, attrs.k, attrs.s, k0, k1, STREAM_SPARSE_SIGN, attrs.rowOffset, Z);
  const want = sparseSignSketch(attrs, A, attrs.s, STREAM_SPARSE_SIGN, { backend: WASM_BACKEND });
  for (let i = 0; i < want.length; i++)
    if (!Object.is(Z[i], want[i])) return `sparse sign entry ${i} is ${Z[i]}, the reference gives ${want[i]}`;
  return undefined;
}

/**
 * The kernel backend for this thread's ops: the native kernels (when built, checked, and `native`
 * allows) with `blasThreads` threads per BLAS call — 1 in depot workers, which already split large
 * ops by rows — else WebAssembly. `why` says why the native kernels are not used.
 */
export function kernelBackendFor(native = true, blasThreads = 1): { backend: KernelBackend; why: string } {
  if (!native) return { backend: WASM_BACKEND, why: 'nfu.native = false' };
  const got = loadNativeKernels();
  if (got.native === undefined) return { backend: WASM_BACKEND, why: got.why };
  got.native.setBlasThreads(blasThreads);
  return { backend: nativeBackend(got.native), why: got.why };
}

/** For the depot's start-up log: the NFU kernel backend, and why the native one is not used. */
export function describeKernelBackend(native: boolean): { nfuKernels: string; nfuNative?: string } {
  const { backend, why } = kernelBackendFor(native);
  return backend.native === undefined ? { nfuKernels: backend.name, nfuNative: why } : { nfuKernels: backend.name };
}
