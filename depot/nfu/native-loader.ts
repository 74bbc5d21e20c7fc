/**
 * Loads the optional native kernels (native/build/Release/anvil_nfu.node, built by
 * `scripts/build-native.mjs` at install time) and installs them for the kernels of this thread.
 * Without the addon, or with ANVIL_NATIVE=0, the kernels run in WebAssembly/JS.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { kernelBackend, useNativeKernels, type NativeKernels } from '../../nfu-kernels/index.js';

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
    loaded = { native, why: path };
  } catch (e) {
    loaded = { native: undefined, why: `failed to load ${path}: ${(e as Error).message}` };
  }
  return loaded;
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
