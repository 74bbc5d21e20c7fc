import { sha256Kernel, xorKernel } from './bytes/byte-ops.js';
import { OPS } from './catalogue.js';
import type { KernelConfig } from './kernel.js';
import { atbKernel, columnStatsKernel, gramKernel } from './reduce/reductions.js';
import { affineGramKernel, affineProductKernel, transposeProductKernel } from './linalg/products.js';
import { fdUpdateKernel } from './linalg/frequent-directions.js';
import { KernelRegistry } from './registry.js';
import { gaussianSketchLeftKernel, gaussianSketchRightKernel } from './sketch/gaussian-sketch.js';
import { countSketchKernel, sparseSignSketchKernel } from './sketch/sparse-sign-sketch.js';
import { srhtKernel } from './sketch/srht.js';

const KERNELS: readonly KernelConfig[] = [
  affineGramKernel,
  affineProductKernel,
  atbKernel,
  columnStatsKernel,
  countSketchKernel,
  fdUpdateKernel,
  gaussianSketchLeftKernel,
  gaussianSketchRightKernel,
  gramKernel,
  sha256Kernel,
  sparseSignSketchKernel,
  srhtKernel,
  transposeProductKernel,
  xorKernel,
];

/** Every built-in kernel, in the catalogue's opcode order (each catalogue op has exactly one). */
export const BUILTIN_KERNELS: readonly KernelConfig[] = OPS.map((op) => {
  const k = KERNELS.find((c) => c.name === op.name);
  if (k === undefined) throw new Error(`catalogue op ${op.name} has no kernel`);
  return k;
});

/** A new registry holding every built-in kernel (a depot adds its uploaded ops to its own). */
export function builtinRegistry(): KernelRegistry {
  const r = new KernelRegistry();
  for (const k of BUILTIN_KERNELS) r.register(k);
  return r;
}

let shared: KernelRegistry | undefined;
/** The built-in kernels as one shared registry (created on first use); do not register into it. */
export function builtins(): KernelRegistry {
  shared ??= builtinRegistry();
  return shared;
}
