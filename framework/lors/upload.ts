import { createHash } from 'node:crypto';
import { lstat, open } from 'node:fs/promises';
import { basename } from 'node:path';
import { formatCapability, type DepotAddress, type IbpClient } from '../../ibp/index.js';
import { FrameworkError, FrameworkErrorCode } from '../errors.js';
import type { Exnode, Mapping } from '../exnode/exnode.js';
import { writeExnode } from '../exnode/exnode-file.js';
import { formatDouble } from '../exnode/metadata.js';
import { systemClock, type Clock } from '../clock.js';
import { forEachBounded } from '../work-queue.js';
import { isTimeout } from './maintenance.js';
import { checkOutputPath } from './output-path.js';

export const DEFAULT_BLOCK_SIZE = 4 * 1024 * 1024;
export const DEFAULT_THREADS = 4;
export const DEFAULT_DURATION_SEC = 86_400;

export interface UploadOptions {
  readonly depots: readonly DepotAddress[];
  readonly blockSize?: number;
  /** Replicas per block, each on a distinct depot. */
  readonly copies?: number;
  /** Blocks in flight at once. */
  readonly threads?: number;
  readonly durationSec?: number;
  /** Name recorded in the exNode (default: the file's base name). */
  readonly name?: string;
  /** Called with the bytes of each replica stored (a file of N bytes with 2 copies counts 2N). */
  readonly onProgress?: (bytes: number) => void;
  /** Called with a block's length once every copy of it is stored (the file's bytes, counted once). */
  readonly onBlockStored?: (bytes: number) => void;
  /**
   * Where to write the exNode (`.xnd` LoRS XML, `.json` UNIS JSON). Checked before anything is
   * stored; if writing it fails, every allocation made is released, as on any other failure.
   */
  readonly output?: string;
  /**
   * With `output`: replace a file already there (default false). An existing file is refused before any
   * depot is contacted, as the exNode there may name live allocations that nothing would reference once it is
   * overwritten.
   */
  readonly overwrite?: boolean;
  /** Stops the upload (blocks in flight finish); what was stored is released. */
  readonly signal?: AbortSignal;
  /** Called when a depot fails for a block (the block is retried on another depot). */
  readonly onRetry?: (depot: DepotAddress, error: Error) => void;
  /** Time of the leases and of the exNode (default: the system clock). */
  readonly clock?: Clock;
}

function argError(message: string): FrameworkError {
  return new FrameworkError(FrameworkErrorCode.INVALID_ARGUMENT, message);
}

/**
 * Uploads a file as blocks striped over depots with `copies` replicas of each block on distinct
 * depots (LoRS `lors_upload`). A failed allocation or store is retried on the next depot that does
 * not hold the block yet; the upload fails only when a block runs out of depots. A depot whose request
 * has had no reply within the client's timeout is not asked again for later blocks (a stalled depot
 * costs one timeout, not one per block). Each mapping
 * records the SHA-256 of its bytes. A failed upload (including writing `output`, or an abort)
 * releases every allocation it made: nothing is left on the depots without an exNode.
 */
export async function upload(client: IbpClient, path: string, options: UploadOptions): Promise<Exnode> {
  const depots = options.depots;
  const blockSize = options.blockSize ?? DEFAULT_BLOCK_SIZE;
  const copies = options.copies ?? 1;
  const threads = options.threads ?? DEFAULT_THREADS;
  const durationSec = options.durationSec ?? DEFAULT_DURATION_SEC;
  const clock = options.clock ?? systemClock;
  if (!Number.isSafeInteger(blockSize) || blockSize < 1)
    throw argError(`\`blockSize\` must be a positive integer (got ${blockSize})`);
  if (!Number.isSafeInteger(copies) || copies < 1) throw argError(`\`copies\` must be a positive integer (got ${copies})`);
  if (copies > depots.length) throw argError(`\`copies\` (${copies}) exceeds the number of depots (${depots.length})`);
  if (!Number.isSafeInteger(threads) || threads < 1) throw argError(`\`threads\` must be a positive integer (got ${threads})`);
  if (options.output !== undefined) {
    await checkOutputPath(options.output);
    if (options.overwrite !== true && (await lstat(options.output).catch(() => undefined)) !== undefined)
      throw argError(
        `output ${options.output} already exists; the exNode there may reference live allocations, which nothing would ` +
          `reference once it is overwritten: give another output, or overwrite: true (anvil upload --force) to replace it; ` +
          `nothing was uploaded`,
      );
  }

  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    const started = clock.now();
    const blocks = Math.ceil(size / blockSize);
    const perBlock: Mapping[][] = Array.from({ length: blocks }, () => []);
    const stalled = new Map<number, string>(); // depot index → the timeout it gave
    const release = async () => {
      // A failed upload writes no exNode: release every replica already stored.
      for (const m of perBlock.flat()) if (m.manage !== undefined) await client.decr(m.manage, 'read').catch(() => undefined);
    };
    // Blocks being stored: a failure waits for them before releasing, so none is stored after the release.
    const inFlight = new Set<Promise<void>>();
    const storeBlock = async (b: number): Promise<void> => {
      const offset = b * blockSize;
      const length = Math.min(blockSize, size - offset);
      const data = Buffer.allocUnsafe(length);
      let got = 0;
      while (got < length) {
        const { bytesRead } = await fh.read(data, got, length - got, offset + got);
        if (bytesRead === 0) throw new FrameworkError(FrameworkErrorCode.UPLOAD_FAILED, `${path} shrank while being uploaded`);
        got += bytesRead;
      }
      const sha256 = createHash('sha256').update(data).digest('hex');
      const used = new Set<number>();
      const failures: string[] = [];
      for (let c = 0; c < copies; c++) {
        let placed = false;
        for (let tried = 0; tried < depots.length && !placed; tried++) {
          const d = (b + c + tried) % depots.length;
          if (used.has(d)) continue;
          used.add(d);
          const depot = depots[d]!;
          const earlier = stalled.get(d);
          if (earlier !== undefined) {
            failures.push(`${depot.host}:${depot.port}: not asked: an earlier request ${earlier}`);
            continue;
          }
          let caps: Awaited<ReturnType<IbpClient['allocate']>> | undefined;
          try {
            caps = await client.allocate(depot, { size: length, durationSec });
            const leaseStartMs = clock.now();
            await client.store(caps.write, data);
            perBlock[b]!.push({
              exnodeOffset: offset,
              logicalLength: length,
              allocOffset: 0,
              allocLength: length,
              read: formatCapability(caps.read),
              write: formatCapability(caps.write),
              manage: formatCapability(caps.manage),
              leaseStartMs,
              leaseEndMs: leaseStartMs + durationSec * 1000,
              sha256,
            });
            options.onProgress?.(length);
            placed = true;
            if (c === copies - 1) options.onBlockStored?.(length);
          } catch (e) {
            if (isTimeout(e)) stalled.set(d, `got ${(e as Error).message}`);
            if (caps !== undefined) await client.decr(caps.manage, 'read').catch(() => undefined); // do not leak it
            failures.push(`${depot.host}:${depot.port}: ${(e as Error).message}`);
            options.onRetry?.(depot, e as Error);
          }
        }
        if (!placed) {
          throw new FrameworkError(
            FrameworkErrorCode.UPLOAD_FAILED,
            `block at offset ${offset}: no depot left for copy ${c + 1} of ${copies} (tried ${used.size} of ${depots.length}: ${failures.join('; ')})`,
          );
        }
      }
    };
    await forEachBounded(
      blocks,
      threads,
      async (b) => {
        const p = storeBlock(b);
        inFlight.add(p);
        try {
          await p;
        } finally {
          inFlight.delete(p);
        }
      },
      options.signal,
    ).catch(async (e: unknown) => {
      await Promise.allSettled([...inFlight]);
      await release();
      throw e;
    });
    const x: Exnode = {
      name: options.name ?? basename(path),
      size,
      createdMs: started,
      modifiedMs: clock.now(),
      dtype: undefined,
      shape: undefined,
      mappings: perBlock.flat(),
      // As LoRS records it: the lease asked for, in seconds (a double).
      extra: [{ name: 'duration', type: 'double', value: formatDouble(durationSec) }],
    };
    if (options.output !== undefined) {
      try {
        await writeExnode(options.output, x);
      } catch (e) {
        await release();
        throw new FrameworkError(
          FrameworkErrorCode.UPLOAD_FAILED,
          `cannot write the exNode ${options.output} (every stored block was released): ${(e as Error).message}`,
          { cause: e },
        );
      }
    }
    return x;
  } finally {
    await fh.close();
  }
}
