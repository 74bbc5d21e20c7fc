import { createHash } from 'node:crypto';
import { open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import type { IbpClient } from '../../depot/index.js';
import { FrameworkError, FrameworkErrorCode } from '../errors.js';
import { blocksOf, depotKey, type Exnode, type Mapping } from '../exnode/exnode.js';
import { runPool } from './pool.js';

export interface DownloadOptions {
  readonly threads?: number;
  /** Resume from a previous partial download of the same exNode (default true). */
  readonly resume?: boolean;
  readonly signal?: AbortSignal;
  readonly onProgress?: (bytes: number) => void;
  /** Called before each replica fetch (tests count fetches). */
  readonly onFetch?: (m: Mapping) => void;
}

export interface DownloadResult {
  readonly bytes: number;
  readonly blocksFetched: number;
  readonly blocksResumed: number;
  /** Replica fetches that failed and fell over to another replica. */
  readonly failovers: number;
}

interface PartialState {
  readonly exnode: string;
  readonly done: number[];
}

/** Identity of an exNode's content layout, so a partial file is only resumed for the same one. */
function fingerprint(x: Exnode): string {
  const h = createHash('sha256').update(`${x.size}`);
  for (const b of blocksOf(x)) h.update(`|${b.offset}:${b.length}:${b.replicas.map((r) => r.sha256 ?? '').join(',')}`);
  return h.digest('hex');
}

/**
 * Downloads an exNode to `out` (LoRS `lors_download`): blocks in parallel, each from the first
 * replica that answers with intact bytes (SHA-256 checked when recorded), falling over to the next
 * replica on any failure. Progress is kept in `out.partial` and `out.partial.json`; an interrupted
 * download resumes there and fetches only the blocks it lacks. `out` appears only when complete.
 */
export async function download(
  client: IbpClient,
  x: Exnode,
  out: string,
  options: DownloadOptions = {},
): Promise<DownloadResult> {
  const threads = options.threads ?? 4;
  const blocks = blocksOf(x);
  let covered = 0;
  for (const b of blocks) {
    if (b.offset !== covered) {
      throw new FrameworkError(FrameworkErrorCode.DOWNLOAD_FAILED, `the exNode has no mapping for bytes ${covered}..${b.offset}`);
    }
    covered += b.length;
  }
  if (covered !== x.size)
    throw new FrameworkError(FrameworkErrorCode.DOWNLOAD_FAILED, `the exNode maps ${covered} of ${x.size} bytes`);

  const partial = `${out}.partial`;
  const stateFile = `${partial}.json`;
  const print = fingerprint(x);
  let done = new Set<number>();
  if (options.resume !== false) {
    const state = await readFile(stateFile, 'utf8')
      .then((t) => JSON.parse(t) as PartialState)
      .catch(() => undefined);
    if (state?.exnode === print) done = new Set(state.done);
  }
  const resumed = done.size;
  const fh = await open(partial, done.size > 0 ? 'r+' : 'w+').catch(() => open(partial, 'w+'));
  let fetched = 0;
  let failovers = 0;
  let saving = Promise.resolve();
  const save = () => {
    // Serialized, and only after the block's bytes are on disk: a crash never marks a block done too early.
    saving = saving.then(async () => {
      await fh.datasync();
      const tmp = `${stateFile}.tmp`;
      await writeFile(tmp, JSON.stringify({ exnode: print, done: [...done] } satisfies PartialState));
      await rename(tmp, stateFile);
    });
    return saving;
  };
  try {
    await fh.truncate(x.size);
    const todo = blocks.filter((b) => !done.has(b.offset));
    const preferred = new Map<string, number>(); // depots that answered, tried first
    await runPool(
      todo.length,
      threads,
      async (i) => {
        const b = todo[i]!;
        const replicas = [...b.replicas].sort((p, q) => (preferred.get(depotKey(q)) ?? 0) - (preferred.get(depotKey(p)) ?? 0));
        const errors: string[] = [];
        for (const m of replicas) {
          try {
            options.onFetch?.(m);
            const data = await client.load(m.read, m.allocOffset, m.logicalLength);
            if (m.sha256 !== undefined && createHash('sha256').update(data).digest('hex') !== m.sha256) {
              throw new Error('checksum mismatch');
            }
            await fh.write(data, 0, data.length, b.offset);
            preferred.set(depotKey(m), (preferred.get(depotKey(m)) ?? 0) + 1);
            fetched++;
            done.add(b.offset);
            options.onProgress?.(data.length);
            await save();
            return;
          } catch (e) {
            failovers++;
            errors.push(`${depotKey(m)}: ${(e as Error).message}`);
          }
        }
        throw new FrameworkError(
          FrameworkErrorCode.DOWNLOAD_FAILED,
          `no replica of bytes ${b.offset}..${b.offset + b.length} could be read (${errors.join('; ')})`,
        );
      },
      options.signal,
    );
    await saving;
    await fh.sync();
  } finally {
    await saving.catch(() => undefined);
    await fh.close();
  }
  await rename(partial, out);
  await rm(stateFile, { force: true });
  return { bytes: x.size, blocksFetched: fetched, blocksResumed: resumed, failovers };
}
