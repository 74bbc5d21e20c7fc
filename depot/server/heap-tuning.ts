/**
 * The C heap of a depot process keeps the memory it frees. Every chunk a socket delivers is a new
 * buffer of the C heap, freed once the collector finds it dead: at bulk rates the heap's top is
 * freed and grown again all the time, and glibc gives memory past its trim threshold (128 KiB by
 * default) back to the system, so the next buffers land on fresh pages that fault in one 4 KiB
 * page at a time (about 11 µs each on a VM: most of a bulk write's system time). Kept, the same
 * pages are reused warm. Set through the native addon (`keepHeap`); without it, or on a C library
 * that has no such setting, the heap keeps its defaults and the depot says so at start-up.
 */
import { loadNativeKernels } from '../nfu/native-loader.js';

/** Freed memory the heap keeps at its top before it gives any back. */
export const HEAP_TRIM_BYTES = 256 * 1024 * 1024;
/** Extra memory the heap takes each time it grows, so it grows in few steps. */
export const HEAP_TOP_PAD_BYTES = 32 * 1024 * 1024;

interface HeapAddon {
  keepHeap?: (trimBytes: number, topPadBytes: number) => boolean;
}

let outcome: { heapKept: boolean; heapWhy?: string } | undefined;

/** Applies the heap settings once per process; says whether they hold (and why not). */
export function keepHeapWarm(): { heapKept: boolean; heapWhy?: string } {
  if (outcome !== undefined) return outcome;
  const { native, why } = loadNativeKernels();
  const addon = native as HeapAddon | undefined;
  if (addon === undefined) outcome = { heapKept: false, heapWhy: `native addon: ${why}` };
  else if (typeof addon.keepHeap !== 'function') outcome = { heapKept: false, heapWhy: 'native addon predates keepHeap' };
  else if (!addon.keepHeap(HEAP_TRIM_BYTES, HEAP_TOP_PAD_BYTES)) outcome = { heapKept: false, heapWhy: 'not a glibc heap' };
  else outcome = { heapKept: true };
  return outcome;
}
