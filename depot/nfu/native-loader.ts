/**
 * Loads the optional native kernels (native/build/Release/anvil_nfu.node, built by
 * `scripts/build-native.mjs` at install time) and installs them for the kernels of this thread.
 * Without the addon, or with ANVIL_NATIVE=0, the kernels run in WebAssembly/JS.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  STREAM_SPARSE_SIGN,
  kernelBackend,
  nativeKernels,
  normalsReference,
  seedKey,
  sparseSignSketch,
  useNativeKernels,
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
  const saved = nativeKernels();
  useNativeKernels(undefined);
  try {
    const want = sparseSignSketch(attrs, A, attrs.s, STREAM_SPARSE_SIGN);
    for (let i = 0; i < want.length; i++)
      if (!Object.is(Z[i], want[i])) return `sparse sign entry ${i} is ${Z[i]}, the reference gives ${want[i]}`;
  } finally {
    useNativeKernels(saved);
  }
  return undefined;
}

/**
 * Installs the native kernels (when available) for this thread with `blasThreads` threads per BLAS
 * call — 1 in depot workers, which already split large ops by rows. Returns the backend's name.
 */
export function installNativeKernels(blasThreads = 1): string {
  const { native } = loadNativeKernels();
  if (native !== undefined) native.setBlasThreads(blasThreads);
  useNativeKernels(native);
  return kernelBackend();
}
