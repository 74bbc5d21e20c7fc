import { createHash } from 'node:crypto';
import { lstat, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { ClientErrorCode, type IbpClient } from '../../ibp/index.js';
import { FrameworkError, FrameworkErrorCode } from '../errors.js';
import { depotKey, type Exnode, type Mapping } from '../exnode/exnode.js';
import { forEachBounded } from '../work-queue.js';
import { checkOutputPath } from './output-path.js';

export interface DownloadOptions {
  readonly threads?: number;
  /** Resume from a previous partial download of the same exNode (default true). */
  readonly resume?: boolean;
  /** Replace a file already at `out` (default false: an existing `out` is refused before anything is fetched). */
  readonly overwrite?: boolean;
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

/**
 * Identity of an exNode's content, so a partial file is only resumed for the same one: sizes,
 * offsets, allocations (read caps and ranges) and checksums of every mapping.
 */
function fingerprint(x: Exnode): string {
  const h = createHash('sha256').update(`${x.size}`);
  const ms = [...x.mappings].sort((a, b) => a.exnodeOffset - b.exnodeOffset || a.read.localeCompare(b.read));
  for (const m of ms) h.update(`|${m.exnodeOffset}:${m.logicalLength}:${m.read}:${m.allocOffset}:${m.sha256 ?? ''}`);
  return h.digest('hex');
}

/** A byte range of the file and the mappings that hold all of it. */
interface Range {
  readonly start: number;
  readonly end: number;
  readonly replicas: readonly Mapping[];
}

/**
 * The file cut at every mapping boundary: each range is held whole by every one of its replicas,
 * whatever mix of block sizes the exNode has. Throws when a range has no replica.
 */
function rangesOf(x: Exnode): Range[] {
  const cuts = new Set<number>([0, x.size]);
  for (const m of x.mappings) {
    cuts.add(m.exnodeOffset);
    cuts.add(Math.min(x.size, m.exnodeOffset + m.logicalLength));
  }
  const points = [...cuts].filter((c) => c <= x.size).sort((a, b) => a - b);
  const ranges: Range[] = [];
  for (let i = 0; i + 1 < points.length; i++) {
    const start = points[i]!;
    const end = points[i + 1]!;
    const replicas = x.mappings.filter((m) => m.exnodeOffset <= start && m.exnodeOffset + m.logicalLength >= end);
    if (replicas.length === 0) {
      throw new FrameworkError(FrameworkErrorCode.DOWNLOAD_FAILED, `the exNode has no mapping for bytes ${start} to ${end - 1}`);
    }
    ranges.push({ start, end, replicas });
  }
  return ranges;
}

/**
 * Downloads an exNode to `out` (LoRS `lors_download`): ranges in parallel, each from the first
 * replica that answers with intact bytes (SHA-256 checked when a replica is read whole), falling
 * over to the next replica on any failure. Progress is kept in `out.partial` and
 * `out.partial.json`; an interrupted download of the same exNode resumes there and fetches only the
 * ranges it lacks. `out` appears only when complete (renamed from the partial file, so it is never
 * seen half written); an `out` that is a directory, whose directory is missing, or that already exists
 * (unless `overwrite`) is refused first (`FW_ERR_INVALID_ARGUMENT`). A depot that failed a fetch is
 * tried last for the other ranges, so a stalled depot costs one request timeout (the client's), not one
 * per range.
 */
export async function download(
  client: IbpClient,
  x: Exnode,
  out: string,
  options: DownloadOptions = {},
): Promise<DownloadResult> {
  const threads = options.threads ?? 4;
  const ranges = rangesOf(x);
  await checkOutputPath(out); // a directory or a missing parent fails here, before any partial file
  if (options.overwrite !== true && (await lstat(out).catch(() => undefined)) !== undefined)
    throw new FrameworkError(
      FrameworkErrorCode.INVALID_ARGUMENT,
      `output ${out} already exists: give another output, or overwrite: true (anvil download --force) to replace it; nothing was downloaded`,
    );
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
  let fh;
  try {
    fh = await open(partial, done.size > 0 ? 'r+' : 'w+');
  } catch {
    done = new Set(); // the partial file is gone: whatever the state says, nothing is on disk
    fh = await open(partial, 'w+');
  }
  const resumed = done.size;
  let fetched = 0;
  let failovers = 0;
  let saving = Promise.resolve();
  const save = () => {
    // Serialized; the set is taken before the sync, so only ranges written before it are marked done.
    saving = saving.then(async () => {
      const snapshot = [...done];
      await fh.datasync();
      const tmp = `${stateFile}.tmp`;
      await writeFile(tmp, JSON.stringify({ exnode: print, done: snapshot } satisfies PartialState));
      await rename(tmp, stateFile);
    });
    return saving;
  };
  try {
    await fh.truncate(x.size);
    const todo = ranges.filter((r) => !done.has(r.start));
    const preferred = new Map<string, number>(); // depots that answered, tried first
    const failing = new Set<string>(); // depots that failed a fetch, tried last
    const rank = (m: Mapping) => (failing.has(depotKey(m)) ? -Infinity : (preferred.get(depotKey(m)) ?? 0));
    await forEachBounded(
      todo.length,
      threads,
      async (i) => {
        const r = todo[i]!;
        const replicas = [...r.replicas].sort((p, q) => (rank(q) === rank(p) ? 0 : rank(q) > rank(p) ? 1 : -1));
        const errors: string[] = [];
        // Replicas whose reply was cut mid-way get one more try once every replica has failed: a depot
        // that finds a bad block after its reply began can only cut it, and answers the next LOAD with
        // its status (-15: damaged); a passing network fault may be over.
        const cut: Mapping[] = [];
        function* attempts(): Generator<[Mapping, boolean]> {
          for (const m of replicas) yield [m, false];
          for (const m of cut) yield [m, true];
        }
        for (const [m, again] of attempts()) {
          let data: Buffer;
          try {
            options.onFetch?.(m);
            data = await client.load(m.read, m.allocOffset + (r.start - m.exnodeOffset), r.end - r.start);
            const whole = r.start === m.exnodeOffset && r.end === m.exnodeOffset + m.logicalLength;
            if (whole && m.sha256 !== undefined && createHash('sha256').update(data).digest('hex') !== m.sha256) {
              throw new Error('checksum mismatch');
            }
          } catch (e) {
            failovers++;
            failing.add(depotKey(m));
            if (!again && (e as { code?: unknown }).code === ClientErrorCode.CONNECTION) cut.push(m);
            else errors.push(`${depotKey(m)}: ${(e as Error).message}`);
            continue;
          }
          // A local write failure is not a replica's fault: it ends the download.
          await fh.write(data, 0, data.length, r.start);
          preferred.set(depotKey(m), (preferred.get(depotKey(m)) ?? 0) + 1);
          failing.delete(depotKey(m));
          fetched++;
          done.add(r.start);
          options.onProgress?.(data.length);
          await save();
          return;
        }
        throw new FrameworkError(
          FrameworkErrorCode.DOWNLOAD_FAILED,
          `no replica of bytes ${r.start} to ${r.end - 1} could be read (${errors.join('; ')})`,
        );
      },
      options.signal,
    );
    await saving;
    await fh.sync();
  } catch (e) {
    // Say what stays on disk, and what it is for.
    if (e instanceof Error)
      e.message +=
        `; the ${done.size} of ${ranges.length} blocks fetched so far are kept in ${partial} (with its progress in ` +
        `${stateFile}): the same download again resumes there once the replicas that failed can be read (or the ` +
        `exNode names others), --no-resume starts over; delete both to discard them`;
    throw e;
  } finally {
    await saving.catch(() => undefined);
    await fh.close();
  }
  // The state goes first: a crash in between leaves a complete partial file and no claim about it.
  await rm(stateFile, { force: true });
  await rename(partial, out);
  return { bytes: x.size, blocksFetched: fetched, blocksResumed: resumed, failovers };
}
