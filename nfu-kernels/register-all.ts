import { sha256Kernel, xorKernel } from './bytes/byte-ops.js';
import { atbKernel, columnStatsKernel, gramKernel } from './reduce/reductions.js';
import { KernelRegistry } from './registry.js';
import { gaussianSketchLeftKernel, gaussianSketchRightKernel } from './sketch/gaussian-sketch.js';
import { countSketchKernel, sparseSignSketchKernel } from './sketch/sparse-sign-sketch.js';
import { srhtKernel } from './sketch/srht.js';
import type { KernelConfig } from './kernel.js';

/** Every built-in kernel, alphabetized by name. */
export const BUILTIN_KERNELS: readonly KernelConfig[] = [
  atbKernel,
  columnStatsKernel,
  countSketchKernel,
  gaussianSketchLeftKernel,
  gaussianSketchRightKernel,
  gramKernel,
  sha256Kernel,
  sparseSignSketchKernel,
  srhtKernel,
  xorKernel,
];

/** A registry holding every built-in kernel. */
export function builtinRegistry(): KernelRegistry {
  const r = new KernelRegistry();
  for (const k of BUILTIN_KERNELS) r.register(k);
  return r;
}
