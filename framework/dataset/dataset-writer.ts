import { rm } from 'node:fs/promises';
import { formatCapability, type DepotAddress, type IbpClient } from '../../ibp/index.js';
import type { TimerHandle } from '../clock.js';
import {
  DEFAULT_SPECTRUM_MAX_COLS,
  attachScatterRadius,
  centredScatter,
  makeScatterReference,
  summarizeBlock,
  summaryToJson,
  type BlockSummary,
  type ScatterReference,
} from '../estimation/index.js';
import type { Exnode, Mapping } from '../exnode/exnode.js';
import { writeExnode } from '../exnode/exnode-file.js';
import { Warmer, type WarmReport } from '../warmer/warmer.js';
import { datasetFromExnode, scatterReferenceMeta, type Dataset } from './dataset.js';
import { DatasetError, DatasetErrorCode, invalidArgument } from './errors.js';
import { laneAllocationBytes, resolveIngestOptions, type IngestOptions, type ResolvedIngestOptions } from './ingest-options.js';
import { arrayOf, unstorable } from './row-batch.js';

/** An allocation blocks are being appended to. */
interface OpenAllocation {
  readonly depot: DepotAddress;
  readonly read: string;
  readonly write: string;
  readonly manage: string;
  readonly leaseStartMs: number;
  used: number;
}

/**
 * One of a source's round-robin lanes: block k of the source goes to lane k mod (its site's depot
 * count), so consecutive blocks land on different depots. A lane appends to its own allocations.
 */
interface Lane {
  readonly index: number;
  /** One open allocation per copy. */
  readonly slots: Array<OpenAllocation | undefined>;
  /** The lane's block stores run one after the other (STORE appends); lanes run side by side. */
  chain: Promise<void>;
}

interface SourceState {
  readonly id: string;
  readonly depots: readonly DepotAddress[];
  /** Shifts where this source's lanes start, so sources do not all begin on the same depot. */
  readonly spread: number;
  /** Bytes of each of its allocations. */
  readonly allocationBytes: number;
  buffer: Float64Array | Float32Array;
  filled: number;
  /** Blocks cut so far (picks the next block's lane). */
  cuts: number;
  readonly lanes: Lane[];
}

interface BlockEntry {
  readonly index: number;
  readonly rowStart: number;
  readonly rows: number;
  readonly source: string;
  readonly summary: BlockSummary;
  mappings: Mapping[] | undefined;
}

/**
 * Blocks whose centred scatters are pooled into the dataset's reference scatter (the first ones cut). Every
 * block's summary then records its distance from the reference (up to DEFAULT_SPECTRUM_MAX_COLS columns).
 */
export const REFERENCE_SCATTER_BLOCKS = 4;

/** What an ingest did, with its throughput. */
export interface IngestStats {
  rows: number;
  blocks: number;
  /** Bytes stored, every replica counted. */
  bytes: number;
  allocations: number;
  /** Distinct depots holding the allocations. */
  depots: number;
  seconds: number;
  rowsPerSec: number;
  /** Stored bytes (all replicas) per second, in MB (10⁶ bytes). */
  mbPerSec: number;
}

/** The outcome of a finished ingest. */
export interface IngestResult {
  exnode: Exnode;
  dataset: Dataset;
  stats: IngestStats;
}

/**
 * Appends rows from sources to depots as a dataset: each source's rows are cut into
 * blocks of `blockRows`, each block is summarized ({@link summarizeBlock}) and appended to `copies`
 * allocations on distinct depots of the source's site, rolling to new allocations when one is full.
 * A source's blocks go round robin over its site's depots (block k to lane k mod n, each lane
 * appending to its own allocations), so a site of n depots holds about 1/n of them on each.
 * While it runs, a {@link Warmer} keeps the leases alive. {@link finish} stores the partial blocks and
 * writes the exNode atomically; a failure releases everything stored and leaves no exNode behind. An
 * {@link abort} does the same, except that with `checkpointBlocks` the last checkpoint exNode written stays
 * and so do the allocations it names (they are the user's now; the error names them): every allocation not
 * in that exNode is released.
 *
 * @example
 * const w = new DatasetWriter(client, { name: 'field', cols: 8, depots, path: 'field.xnd' });
 * await w.append('site-0/sensor-1', rows, 100);
 * const { stats } = await w.finish();
 */
export class DatasetWriter {
  readonly options: ResolvedIngestOptions;
  private readonly sources = new Map<string, SourceState>();
  private readonly blocks: BlockEntry[] = [];
  private readonly allocations: OpenAllocation[] = [];
  private readonly inflight = new Set<Promise<void>>();
  private readonly warmer: Warmer;
  private readonly started: number;
  private readonly createdMs: number;
  private rows = 0;
  private storedBytes = 0;
  private committed = 0;
  private published = 0;
  private publishing: Promise<void> = Promise.resolve();
  private wroteFile = false;
  /** The last checkpoint written to `path`: its block count and the allocations its mappings name. */
  private checkpoint: { blocks: number; rows: number; manage: Set<string> } | undefined;
  private failure: Error | undefined;
  private released: Promise<void> | undefined;
  private state: 'open' | 'finishing' | 'done' | 'failed' = 'open';
  private warmTimer: TimerHandle | undefined;
  /** The warm pass running now, and the one queued behind it (see {@link warmNow}). */
  private warmRunning: Promise<WarmReport> | undefined;
  private warmQueued: Promise<WarmReport> | undefined;
  /** The dataset's reference scatter once fixed; until then the first blocks' scatters wait for it. */
  private reference: ScatterReference | undefined;
  private referenceFixed: boolean;
  private readonly awaitingReference: { entry: BlockEntry; scatter: Float64Array }[] = [];
  private readonly onAbort = () => {
    void this.abort(this.options.signal?.reason);
  };

  constructor(
    private readonly client: IbpClient,
    options: IngestOptions,
  ) {
    this.options = resolveIngestOptions(options);
    const o = this.options;
    this.referenceFixed = o.cols > DEFAULT_SPECTRUM_MAX_COLS;
    this.warmer = new Warmer(
      client,
      {
        sites: new Map(),
        copiesPerSite: 1,
        leaseAheadSec: Math.max(1, Math.floor(o.durationSec / 2)),
        leaseDurationSec: o.durationSec,
        trimDead: false,
        trimUnreachable: false,
        intervalSec: Math.max(1, Math.round(o.warmIntervalMs / 1000)),
      },
      undefined,
      o.clock,
    );
    this.started = performance.now();
    this.createdMs = o.clock.now();
    this.scheduleWarm();
    if (o.signal?.aborted === true) this.onAbort();
    o.signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  /**
   * Appends `rows` rows (row-major, `rows · cols` values) of a source. Resolves once the rows are buffered
   * and the stores they completed are under way (it waits while `maxInflightBlocks` stores are in flight).
   * @throws DatasetError `DATA_E_INVALID_ARGUMENT` for a shape mismatch, a non-finite value or a source without depots;
   *   the ingest's failure (`DATA_E_INGEST_FAILED`, `DATA_E_ABORTED`) once it has failed
   */
  async append(source: string | undefined, data: Float64Array | Float32Array, rows: number): Promise<void> {
    await this.check();
    const cols = this.options.cols;
    if (!Number.isSafeInteger(rows) || rows < 0 || data.length !== rows * cols) {
      throw invalidArgument('data.length', `rows · cols = ${rows} · ${cols}`, data.length);
    }
    const id = source ?? this.options.defaultSource;
    // Checked before anything is buffered, so a rejected append changes nothing.
    for (let i = 0; i < data.length; i++) {
      const why = unstorable(data[i]!, this.options.dtype);
      if (why !== undefined) {
        throw invalidArgument(
          `rows of ${JSON.stringify(id)} (row ${Math.floor(i / cols) + 1}, column ${(i % cols) + 1})`,
          `storable as ${this.options.dtype}`,
          data[i],
        );
      }
    }
    const s = this.sourceState(id);
    try {
      for (let at = 0; at < rows;) {
        const n = Math.min(rows - at, this.options.blockRows - s.filled);
        s.buffer.set(data.subarray(at * cols, (at + n) * cols), s.filled * cols);
        s.filled += n;
        at += n;
        if (s.filled === this.options.blockRows) await this.cut(s);
      }
    } catch (e) {
      await this.release(e as Error);
      throw this.failure ?? e;
    }
  }

  /**
   * Stores the partial blocks, waits for every store, writes the exNode; releases everything on failure.
   * @throws DatasetError `DATA_E_EMPTY_INPUT` when no row was appended (nothing is stored, no exNode written)
   */
  async finish(): Promise<IngestResult> {
    await this.check();
    this.state = 'finishing';
    try {
      for (const s of this.sources.values()) if (s.filled > 0) await this.cut(s);
      while (this.inflight.size > 0) await Promise.all([...this.inflight]);
      if (this.failure !== undefined) throw this.failure;
      if (this.rows === 0) {
        throw new DatasetError(
          DatasetErrorCode.EMPTY_INPUT,
          'the input has no rows; nothing was stored and no exNode was written',
        );
      }
      if (!this.referenceFixed) this.fixReference();
      // A warm pass still running writes lease ends into the mappings: let it land before the exNode is written.
      await (this.warmQueued ?? this.warmRunning)?.catch(() => undefined);
      const exnode = this.exnodeOf(this.blocks.length);
      const dataset = datasetFromExnode(exnode);
      await this.publishing;
      if (this.options.path !== undefined) await writeExnode(this.options.path, exnode);
      if (this.failure !== undefined) throw this.failure;
      this.state = 'done';
      this.stopTimers();
      return { exnode, dataset, stats: this.stats() };
    } catch (e) {
      await this.release(e as Error);
      throw this.failure ?? e;
    }
  }

  /**
   * Aborts, and resolves once the allocations are released (an abort already under way is waited for, so a
   * caller may close the client afterwards). The last checkpoint exNode written (with `checkpointBlocks`) is
   * kept with the allocations it names, unless `keepCheckpoint` is false; every other allocation is released.
   * The ingest's error ({@link error}) then names the kept exNode and its allocations.
   */
  async abort(reason?: unknown, options: { keepCheckpoint?: boolean } = {}): Promise<void> {
    if (this.state === 'done') return;
    if (this.released !== undefined) return this.released;
    await this.release(
      new DatasetError(DatasetErrorCode.ABORTED, 'the ingest was aborted', { cause: reason }),
      options.keepCheckpoint ?? true,
    );
  }

  /** The error the ingest ended with (after a failure or {@link abort}), or undefined. */
  get error(): Error | undefined {
    return this.failure;
  }

  /**
   * One warmer pass over the stored blocks now (it also runs every `warmIntervalMs`). Passes never overlap:
   * they write the lease ends into the writer's own mappings, and a pass that started earlier must not finish
   * after a later one and put its older lease back. A call while a pass runs waits for it and then runs one
   * more pass (blocks stored meanwhile get warmed too); calls while that next pass is still waiting share it.
   */
  warmNow(): Promise<WarmReport> {
    if (this.warmQueued !== undefined) return this.warmQueued;
    const running = this.warmRunning;
    if (running === undefined) return this.startWarm();
    const next = running.then(
      () => this.startWarm(),
      () => this.startWarm(),
    );
    this.warmQueued = next;
    return next;
  }

  private startWarm(): Promise<WarmReport> {
    this.warmQueued = undefined; // the queued pass starts now: later calls queue behind it
    const pass = this.warmPass().finally(() => {
      if (this.warmRunning === pass) this.warmRunning = undefined;
    });
    this.warmRunning = pass;
    return pass;
  }

  private async warmPass(): Promise<WarmReport> {
    const report: WarmReport = {
      exnodes: 1,
      mappings: 0,
      refreshed: 0,
      replicated: 0,
      trimmed: 0,
      failures: 0,
      underReplicated: 0,
    };
    const x = this.exnodeOf(this.committedPrefix());
    report.mappings = x.mappings.length;
    if (x.mappings.length > 0) await this.warmer.warm(x, report);
    return report;
  }

  /**
   * The dataset stored so far: the longest prefix of blocks stored on all their replicas, as a job would
   * see it from the exNode. Streaming jobs follow a growing ingest through this.
   */
  snapshot(): Dataset {
    return datasetFromExnode(this.exnodeOf(this.committedPrefix()));
  }

  /** Rows appended so far (stored or buffered). */
  get appendedRows(): number {
    let buffered = 0;
    for (const s of this.sources.values()) buffered += s.filled;
    return this.rows + buffered;
  }

  /** Progress so far. */
  stats(): IngestStats {
    const seconds = (performance.now() - this.started) / 1000;
    const rows = this.blocks.slice(0, this.committedPrefix()).reduce((n, b) => n + b.rows, 0);
    return {
      rows,
      blocks: this.committed,
      bytes: this.storedBytes,
      allocations: this.allocations.length,
      depots: new Set(this.allocations.map((a) => key(a.depot))).size,
      seconds,
      rowsPerSec: seconds > 0 ? rows / seconds : 0,
      mbPerSec: seconds > 0 ? this.storedBytes / 1e6 / seconds : 0,
    };
  }

  private async check(): Promise<void> {
    if (this.failure !== undefined) {
      await this.release(this.failure);
      throw this.failure;
    }
    if (this.state !== 'open') throw invalidArgument('ingest', 'open (finish() or abort() was called)', this.state);
  }

  private sourceState(id: string): SourceState {
    let s = this.sources.get(id);
    if (s !== undefined) return s;
    if (typeof id !== 'string' || id === '') throw invalidArgument('source', 'a non-empty string', id);
    const site = this.options.siteOf(id);
    const depots = (site === undefined ? undefined : this.options.sites.get(site)) ?? this.options.depots;
    if (depots.length === 0) {
      throw invalidArgument(
        `depots of site ${JSON.stringify(site)} (source ${JSON.stringify(id)})`,
        'configured in `sites` or `depots`',
        0,
      );
    }
    s = {
      id,
      depots,
      spread: this.sources.size,
      allocationBytes: laneAllocationBytes(this.options, depots.length),
      buffer: arrayOf(this.options.dtype, this.options.blockRows * this.options.cols),
      filled: 0,
      cuts: 0,
      lanes: depots.map((_, index) => ({
        index,
        slots: new Array<OpenAllocation | undefined>(this.options.copies).fill(undefined),
        chain: Promise.resolve(),
      })),
    };
    this.sources.set(id, s);
    return s;
  }

  /** Cuts the source's buffered rows into a block, summarizes it and queues its store. */
  private async cut(s: SourceState): Promise<void> {
    const cols = this.options.cols;
    const rows = s.filled;
    const data = s.buffer.slice(0, rows * cols);
    s.filled = 0;
    // append checked every value
    const summary = summarizeBlock(data, rows, cols, this.reference === undefined ? {} : { reference: this.reference });
    const entry: BlockEntry = {
      index: this.blocks.length,
      rowStart: this.rows,
      rows,
      source: s.id,
      summary,
      mappings: undefined,
    };
    this.blocks.push(entry);
    this.rows += rows;
    if (!this.referenceFixed) {
      this.awaitingReference.push({ entry, scatter: centredScatter(data, rows, cols) });
      if (this.awaitingReference.length >= REFERENCE_SCATTER_BLOCKS) this.fixReference();
    }
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const lane = s.lanes[s.cuts++ % s.lanes.length]!;
    const task = lane.chain.then(async () => {
      if (this.failure !== undefined) return;
      try {
        entry.mappings = await this.storeBlock(s, lane, entry, bytes);
        this.committed++;
        this.options.onBlock?.({ index: entry.index, rowStart: entry.rowStart, rows, bytes: bytes.length, source: s.id });
        this.maybePublish();
      } catch (e) {
        this.fail(e as Error);
      }
    });
    lane.chain = task;
    this.inflight.add(task);
    void task.finally(() => this.inflight.delete(task));
    while (this.inflight.size >= this.options.maxInflightBlocks) await Promise.race(this.inflight);
    if (this.failure !== undefined) throw this.failure;
  }

  /** Appends a block to the lane's `copies` allocations on distinct depots, rolling or moving to another depot as needed. */
  private async storeBlock(s: SourceState, lane: Lane, b: BlockEntry, bytes: Uint8Array): Promise<Mapping[]> {
    const o = this.options;
    const mappings: Mapping[] = [];
    const holding = new Set<string>();
    const errors: string[] = [];
    for (let r = 0; r < o.copies; r++) {
      let placed = false;
      const tried = new Set<string>();
      for (let attempt = 0; attempt <= s.depots.length && !placed; attempt++) {
        let a = lane.slots[r];
        if (a !== undefined && (a.used + bytes.length > s.allocationBytes || holding.has(key(a.depot)))) a = undefined; // full: roll
        try {
          if (a === undefined) {
            const busy = new Set([
              ...holding,
              ...tried,
              ...lane.slots.filter((x, i) => x !== undefined && i !== r).map((x) => key(x!.depot)),
            ]);
            a = await this.allocate(s, s.spread + lane.index + r, busy, tried);
            lane.slots[r] = a;
          }
          const at = a.used;
          await this.client.store(a.write, bytes);
          a.used += bytes.length;
          this.storedBytes += bytes.length;
          holding.add(key(a.depot));
          mappings.push({
            exnodeOffset: b.rowStart * o.rowBytes,
            logicalLength: bytes.length,
            allocOffset: at,
            allocLength: s.allocationBytes,
            read: a.read,
            write: a.write,
            manage: a.manage,
            leaseStartMs: a.leaseStartMs,
            leaseEndMs: a.leaseStartMs + o.durationSec * 1000,
            sha256: b.summary.hash,
            rows: { start: b.rowStart, count: b.rows },
            summary: exnodeSummary(b.summary),
            source: b.source,
          });
          placed = true;
        } catch (e) {
          if (e instanceof DatasetError) throw e;
          // This allocation (or depot) failed: never append to it again; its earlier blocks stay mapped.
          if (a !== undefined) tried.add(key(a.depot));
          lane.slots[r] = undefined;
          errors.push(`${a === undefined ? 'allocate' : key(a.depot)}: ${(e as Error).message}`);
        }
      }
      if (!placed) {
        throw new DatasetError(
          DatasetErrorCode.INGEST_FAILED,
          `block ${b.index} of ${s.id} (rows ${b.rowStart}+${b.rows}): no depot left for copy ${r + 1} of ${o.copies} among ${s.depots.length} (${errors.join('; ')})`,
          { details: { block: b.index, source: s.id } },
        );
      }
    }
    return mappings;
  }

  /** A new allocation on the first depot from `start` (mod n) that is not busy and answers. */
  private async allocate(s: SourceState, start: number, busy: Set<string>, tried: Set<string>): Promise<OpenAllocation> {
    const n = s.depots.length;
    const causes: string[] = [];
    for (let i = 0; i < n; i++) {
      const depot = s.depots[(start + i) % n]!;
      if (busy.has(key(depot))) continue;
      try {
        const caps = await this.client.allocate(depot, {
          size: s.allocationBytes,
          durationSec: this.options.durationSec,
        });
        const a: OpenAllocation = {
          depot,
          read: formatCapability(caps.read),
          write: formatCapability(caps.write),
          manage: formatCapability(caps.manage),
          leaseStartMs: this.options.clock.now(),
          used: 0,
        };
        this.allocations.push(a);
        return a;
      } catch (e) {
        causes.push(`${key(depot)}: ${(e as Error).message}`);
        tried.add(key(depot));
        busy.add(key(depot));
      }
    }
    const why = causes.length > 0 ? `: ${causes.join('; ')}` : ' (every one is in use or failed before)';
    throw new Error(`no depot of ${s.depots.length} could allocate ${s.allocationBytes} bytes${why}`);
  }

  /** Blocks 0 … k−1 that are all stored. */
  private committedPrefix(): number {
    let k = 0;
    while (k < this.blocks.length && this.blocks[k]!.mappings !== undefined) k++;
    return k;
  }

  /**
   * Fixes the dataset's reference scatter — the pooled centred scatter of the blocks cut so far, normalised — and
   * records every waiting block's distance from it (a dataset whose rows are all constant gets none).
   */
  private fixReference(): void {
    this.referenceFixed = true;
    const cols = this.options.cols;
    const pooled = new Float64Array(cols * cols);
    for (const { scatter } of this.awaitingReference) for (let q = 0; q < pooled.length; q++) pooled[q]! += scatter[q]!;
    let trace = 0;
    for (let j = 0; j < cols; j++) trace += pooled[j * cols + j]!;
    if (trace > 0) {
      const reference = makeScatterReference(pooled, cols);
      this.reference = reference;
      for (const { entry, scatter } of this.awaitingReference) attachScatterRadius(entry.summary, scatter, reference);
    }
    this.awaitingReference.length = 0;
  }

  private exnodeOf(blockCount: number): Exnode {
    const o = this.options;
    const blocks = this.blocks.slice(0, blockCount);
    const rows = blocks.reduce((n, b) => n + b.rows, 0);
    // Blocks stored before the reference was fixed get their radius into the mappings now.
    for (const b of blocks) {
      const radius = b.summary.scatterRadius;
      if (radius === undefined || b.summary.scatterReference === undefined) continue;
      for (const m of b.mappings!) {
        if (m.summary === undefined || m.summary.scatterRadius !== undefined) continue;
        m.summary.scatterRadius = radius;
        m.summary.scatterReference = b.summary.scatterReference.id;
        if (b.summary.scatterRho !== undefined && b.summary.scatterRhoTau !== undefined) {
          m.summary.scatterRho = b.summary.scatterRho;
          m.summary.scatterRhoTau = b.summary.scatterRhoTau;
        }
      }
    }
    return {
      name: o.name,
      size: rows * o.rowBytes,
      createdMs: this.createdMs,
      modifiedMs: o.clock.now(),
      dtype: o.dtype,
      shape: [rows, o.cols],
      mappings: blocks.flatMap((b) => b.mappings!),
      ...(this.reference === undefined ? {} : { extra: [scatterReferenceMeta(this.reference)] }),
    };
  }

  /** With `checkpointBlocks`, publishes the stored prefix (atomically, one write at a time). */
  private maybePublish(): void {
    const o = this.options;
    if (o.path === undefined || o.checkpointBlocks === 0 || this.state !== 'open') return;
    const k = this.committedPrefix();
    if (k - this.published < o.checkpointBlocks) return;
    this.published = k;
    const x = this.exnodeOf(k);
    this.publishing = this.publishing.then(async () => {
      if (this.failure !== undefined) return;
      try {
        await writeExnode(o.path!, x);
        this.wroteFile = true;
        this.checkpoint = {
          blocks: k,
          rows: x.shape![0]!,
          manage: new Set(x.mappings.flatMap((m) => (m.manage === undefined ? [] : [m.manage]))),
        };
      } catch (e) {
        this.fail(e as Error);
      }
    });
  }

  private scheduleWarm(): void {
    this.warmTimer = this.options.clock.setTimeout(() => {
      this.warmTimer = undefined;
      void this.warmNow()
        .catch(() => undefined) // a failed pass is retried at the next interval; leases have slack
        .finally(() => {
          if (this.state === 'open' || this.state === 'finishing') this.scheduleWarm();
        });
    }, this.options.warmIntervalMs);
  }

  private stopTimers(): void {
    if (this.warmTimer !== undefined) this.options.clock.clearTimeout(this.warmTimer);
    this.warmTimer = undefined;
    this.options.signal?.removeEventListener('abort', this.onAbort);
  }

  private fail(e: Error): void {
    if (this.failure === undefined) this.failure = e;
  }

  /**
   * Releases every allocation this ingest made and removes an exNode it published — or, with `keepCheckpoint`,
   * keeps the last checkpoint exNode and the allocations it names. The first call decides; later calls share it.
   */
  private release(e: Error, keepCheckpoint = false): Promise<void> {
    this.fail(e);
    this.released ??= this.releaseAll(keepCheckpoint);
    return this.released;
  }

  private async releaseAll(keepCheckpoint: boolean): Promise<void> {
    this.state = 'failed';
    this.stopTimers();
    // Stores under way may still allocate: wait for them (and for a checkpoint being written) first.
    await Promise.allSettled([...this.inflight]);
    await this.publishing;
    const kept = keepCheckpoint && this.wroteFile ? this.checkpoint : undefined;
    const keep = kept?.manage ?? new Set<string>();
    const release = this.allocations.filter((a) => !keep.has(a.manage));
    await Promise.all(release.map((a) => this.client.decr(a.manage, 'read').catch(() => undefined)));
    if (kept === undefined && this.wroteFile && this.options.path !== undefined) await rm(this.options.path, { force: true });
    if (kept !== undefined) this.failure = this.keptError(this.failure!, kept, release.length);
  }

  /** The ingest's error, told that the checkpoint exNode and its allocations were kept. */
  private keptError(e: Error, kept: { blocks: number; rows: number; manage: Set<string> }, released: number): Error {
    const perDepot = new Map<string, number>();
    for (const a of this.allocations) {
      if (kept.manage.has(a.manage)) perDepot.set(key(a.depot), (perDepot.get(key(a.depot)) ?? 0) + 1);
    }
    const where = [...perDepot].map(([d, n]) => `${n} on ${d}`).join(', ');
    const note =
      `; kept the checkpoint exNode ${this.options.path} (${kept.blocks} blocks, ${kept.rows} rows) and its ` +
      `${kept.manage.size} allocations (${where}), which are yours to keep warm or release; released the other ${released}`;
    const details = {
      checkpoint: this.options.path,
      blocks: kept.blocks,
      rows: kept.rows,
      keptAllocations: kept.manage.size,
      releasedAllocations: released,
    };
    if (e instanceof DatasetError) return new DatasetError(e.code, `${e.message}${note}`, { cause: e.cause, details });
    return new DatasetError(DatasetErrorCode.ABORTED, `${e.message}${note}`, { cause: e, details });
  }
}

function key(d: DepotAddress): string {
  return `${d.host}:${d.port}`;
}

/** The exNode form of a summary: its JSON form without `cols` (the dataset's shape records it). */
function exnodeSummary(s: BlockSummary): NonNullable<Mapping['summary']> {
  const { cols, ...json } = summaryToJson(s);
  void cols;
  return json;
}
