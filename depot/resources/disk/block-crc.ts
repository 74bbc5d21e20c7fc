/**
 * Block checksums computed off the event loop. A bulk write spends a fifth of the event loop's
 * time on the CRC-32 of its bytes; with the native addon each batch's CRCs run in the libuv thread
 * pool, next to the batch's own write, and a read run is read and checksummed by one thread-pool
 * job. The addon computes the same CRC-32 as `zlib.crc32`, bit for bit (by carry-less
 * multiplication where the CPU has it, several times zlib's speed; else through Node's zlib).
 * Without the addon (or with ANVIL_NATIVE=0) writers compute them on the event loop as the bytes
 * arrive, and readers once a run is read.
 */
import { loadNativeKernels } from '../../nfu/native-loader.js';

/** The addon's `crc32Runs` (see native/anvil_nfu.cc). */
export type Crc32Runs = (parts: Uint8Array[], runs: Float64Array, inits: Uint32Array) => Promise<Uint32Array>;

let chosen: Crc32Runs | null | undefined;

/** The addon's function `name`, bound to it, or null when the addon (or that function) is not there. */
function addonFunction<F>(name: string): F | null {
  const addon = loadNativeKernels().native as Record<string, unknown> | undefined;
  const f = addon?.[name];
  return typeof f === 'function' ? (f.bind(addon) as F) : null;
}

/** The thread-pool CRC, or undefined: writers then compute CRCs on the event loop. */
export function threadPoolCrc(): Crc32Runs | undefined {
  if (chosen === undefined) chosen = addonFunction<Crc32Runs>('crc32Runs');
  return chosen ?? undefined;
}

/** Turns the thread-pool CRC off (false) or back to what the addon offers (true): for tests. */
export function useThreadPoolCrc(on: boolean): void {
  chosen = on ? undefined : null;
  chosenWrite = undefined;
}

/**
 * Continues the CRCs in `streaming` (block → CRC so far) over `parts`, the bytes at `at`, `at + 1`,
 * … of the allocation, cut in blocks of `blockBytes`; blocks that start before `from` are not
 * tracked. Resolves once `streaming` holds the new CRCs. The parts must not change meanwhile.
 */
export async function streamBlockCrcs(
  crcRuns: Crc32Runs,
  parts: readonly Buffer[],
  at: number,
  blockBytes: number,
  from: number,
  streaming: Map<number, number>,
): Promise<void> {
  const { runs, inits, blocks } = streamRuns(parts, at, blockBytes, from, streaming);
  const crcs = await crcRuns(parts as Buffer[], runs, inits);
  for (let i = 0; i < blocks.length; i++) if (blocks[i]! >= 0) streaming.set(blocks[i]!, crcs[i]!);
}

/** The runs (one per block touched), their starting CRCs and their blocks (-1: not tracked). */
function streamRuns(
  parts: readonly Buffer[],
  at: number,
  blockBytes: number,
  from: number,
  streaming: Map<number, number>,
): { runs: Float64Array; inits: Uint32Array; blocks: number[] } {
  const total = parts.reduce((n, p) => n + p.length, 0);
  const runs: number[] = [];
  const inits: number[] = [];
  const blocks: number[] = [];
  for (let pos = at; pos < at + total;) {
    const block = Math.floor(pos / blockBytes);
    const n = Math.min(at + total, (block + 1) * blockBytes) - pos;
    runs.push(n);
    inits.push(streaming.get(block) ?? 0);
    blocks.push(block * blockBytes >= from ? block : -1);
    pos += n;
  }
  return { runs: Float64Array.from(runs), inits: Uint32Array.from(inits), blocks };
}

/** The addon's `pwriteCrc32s` (see native/anvil_nfu.cc): a batch's write and its CRCs in one job. */
export type PwriteCrc32s = (
  fd: number,
  parts: Uint8Array[],
  position: number,
  runs: Float64Array,
  inits: Uint32Array,
  writeBack: boolean,
) => Promise<Uint32Array>;

let chosenWrite: PwriteCrc32s | null | undefined;

/**
 * The thread-pool write that checksums what it writes, or undefined (no addon, or thread-pool CRCs
 * turned off by {@link useThreadPoolCrc}): writers then write and checksum in two jobs.
 */
export function threadPoolWrite(): PwriteCrc32s | undefined {
  if (threadPoolCrc() === undefined) return undefined;
  if (chosenWrite === undefined) chosenWrite = addonFunction<PwriteCrc32s>('pwriteCrc32s');
  return chosenWrite ?? undefined;
}

/**
 * Writes `parts` to the file `fd` at `at` and continues the CRCs in `streaming` over them (as
 * {@link streamBlockCrcs}) in one thread-pool job; with `writeBack` the disk starts writing the
 * range out at once (the caller still syncs). `streaming` changes only once the write succeeded.
 * `fd` must stay open and the parts unchanged until it settles.
 */
export async function writeStreamBlockCrcs(
  write: PwriteCrc32s,
  fd: number,
  parts: readonly Buffer[],
  at: number,
  blockBytes: number,
  from: number,
  streaming: Map<number, number>,
  writeBack: boolean,
): Promise<void> {
  const { runs, inits, blocks } = streamRuns(parts, at, blockBytes, from, streaming);
  // A fresh array: the job holds it (and so the parts) until it is done, and nobody else changes it.
  const crcs = await write(fd, [...parts], at, runs, inits, writeBack);
  for (let i = 0; i < blocks.length; i++) if (blocks[i]! >= 0) streaming.set(blocks[i]!, crcs[i]!);
}

/**
 * The CRC-32 of each block of `buf` (which starts at block `firstBlock`, cut at `size`), into
 * `into`, computed in the thread pool: what `blockCrcs` in disk-data.ts computes on the event loop.
 */
export async function bufferBlockCrcs(
  crcRuns: Crc32Runs,
  buf: Buffer,
  firstBlock: number,
  blockBytes: number,
  size: number,
  into: Map<number, number>,
): Promise<void> {
  const runs: number[] = [];
  for (let at = 0; at < buf.length; at += blockBytes) {
    const end = Math.min(at + blockBytes, size - firstBlock * blockBytes, buf.length);
    if (end <= at) break;
    runs.push(end - at);
  }
  const crcs = await crcRuns([buf], Float64Array.from(runs), new Uint32Array(runs.length));
  for (let i = 0; i < runs.length; i++) into.set(firstBlock + i, crcs[i]!);
}

/** The addon's `preadCrc32s` (see native/anvil_nfu.cc): a read and its block CRCs in one job. */
export type PreadCrc32s = (
  fd: number,
  buf: Uint8Array,
  position: number,
  runs: Float64Array,
  crcs: Uint32Array,
) => Promise<number>;

let chosenRead: PreadCrc32s | null | undefined;

/**
 * The thread-pool read that checksums what it read, or undefined (no addon, or thread-pool CRCs
 * turned off by {@link useThreadPoolCrc}): readers then read, and checksum apart.
 */
export function threadPoolRead(): PreadCrc32s | undefined {
  if (threadPoolCrc() === undefined) return undefined;
  if (chosenRead === undefined) chosenRead = addonFunction<PreadCrc32s>('preadCrc32s');
  return chosenRead ?? undefined;
}

/**
 * Reads `buf.length` bytes of the file `fd` at `position` (block `firstBlock`'s start) into `buf`
 * and computes the CRC-32 of each block of them, cut at `size`, in one thread-pool job: what a
 * read followed by `blockCrcs` in disk-data.ts gives. `crcs[i]` is block `firstBlock + i`'s; the
 * CRCs of blocks past `bytesRead` are not computed (0). `fd` must stay open until it resolves.
 */
export async function readBlockCrcs(
  read: PreadCrc32s,
  fd: number,
  buf: Buffer,
  position: number,
  firstBlock: number,
  blockBytes: number,
  size: number,
): Promise<{ bytesRead: number; crcs: Uint32Array }> {
  const runs: number[] = [];
  for (let at = 0; at < buf.length; at += blockBytes) {
    const end = Math.min(at + blockBytes, size - firstBlock * blockBytes, buf.length);
    if (end <= at) break;
    runs.push(end - at);
  }
  const crcs = new Uint32Array(runs.length);
  const bytesRead = await read(fd, buf, position, Float64Array.from(runs), crcs);
  return { bytesRead, crcs };
}
