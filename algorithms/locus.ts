import { Observable } from 'rxjs';
import {
  CoordinatorError,
  CoordinatorErrorCode,
  depotId,
  IbpOpRunner,
  runKernel,
  summarizeBlock,
  attachScatterRadius,
  centredScatter,
  makeScatterReference,
  DEFAULT_SPECTRUM_MAX_COLS,
  REFERENCE_SCATTER_BLOCKS,
  type CoordinatorDataset as Dataset,
  type CoordinatorDatasetBlock as DatasetBlock,
  type DepotAddress,
  type IbpClient,
  type KernelCall,
  type KernelInput,
  type OpAnswer,
  type OpAttempt,
  type OpRunner,
  type OpSpec,
} from '../framework/index.js';
import { formatCapability } from '../ibp/index.js';
import { builtins, encodeAttrs, parseAttrs, WASM_BACKEND, type KernelBackend, type OpName } from '../nfu-kernels/index.js';

/**
 * Ops with more than the block as input, run where the block lies: a per-block call names the kernel, its
 * attributes, its inputs (the block itself, small values sent along, or *state* — an allocation an earlier op
 * of the same algorithm wrote at that depot) and where the output goes (back to the coordinator, or into a
 * state allocation at the depot: the EBP way, tall factors never travel).
 */
export type LocusInput = BlockInput | { readonly kind: 'bytes'; readonly data: Uint8Array } | StateInput | SharedInput;
/** The block's rows (from row `fromRow`, default 0: all of them — streaming reads only rows appended since). */
export interface BlockInput {
  readonly kind: 'block';
  readonly fromRow?: number;
}

/** A state allocation of this block, by name. */
export interface StateInput {
  readonly kind: 'state';
  readonly name: string;
}

/**
 * A small matrix every block of a round uses (e.g. the range finder's X): stored once per depot in an
 * allocation under `name`, and read by reference by every op at that depot. A new `data` array under the same
 * name replaces the stored one (the runner compares by identity), so one round's X is moved once per depot,
 * not once per block.
 */
export interface SharedInput {
  readonly kind: 'shared';
  readonly name: string;
  readonly data: Uint8Array;
}

export interface LocusCall {
  readonly kernel: OpName;
  readonly attrs: {
    readonly dtype: 'float32' | 'float64';
    readonly rows: number;
    readonly cols: number;
    readonly k: number;
    /** Source index of the first row the call reads (`fd-update`: rows its state has seen already are skipped). */
    readonly rowOffset?: number;
  };
  readonly inputs: readonly LocusInput[];
  /** `returnBytes`: the output comes back; `store`: it is written into the block's state allocation `store`. */
  readonly output: { readonly returnBytes: number } | { readonly store: string; readonly bytes: number };
}

/** An {@link OpSpec} whose per-block call a {@link LocusRunner} runs. */
export interface LocusOpSpec extends OpSpec {
  readonly call: (block: DatasetBlock) => LocusCall;
}

/** Where a block's state lives. */
export interface StateLocation {
  readonly depot: string;
  readonly bytes: number;
}

/**
 * An {@link OpRunner} for the algorithms: runs {@link LocusOpSpec} calls, keeps per-block state allocations at
 * the depot the op ran on, and tells the algorithm where each block's state lives (later ops reading it must
 * run there).
 */
export interface LocusRunner extends OpRunner {
  /** Depot (`host:port`) holding block `block`'s state `name`, if an op wrote it. */
  stateOf(block: number, name: string): StateLocation | undefined;
  /** The bytes of block `block`'s state `name` (read back from where it lives), or undefined if unreadable. */
  readState(block: number, name: string, timeoutMs?: number): Promise<Uint8Array | undefined>;
  /**
   * Releases every state allocation (best effort). With `drain` (a job that was interrupted) the ops still
   * running are waited for as well, within the same bound, and the state they made is freed.
   */
  release(options?: { readonly drain?: boolean }): Promise<void>;
}

/** Bytes of one row of a block (from its byte length and rows). */
function rowBytes(block: DatasetBlock): number {
  return block.rows > 0 ? block.bytes / block.rows : 0;
}

function asLocus(op: OpSpec): LocusOpSpec {
  if (typeof (op as Partial<LocusOpSpec>).call !== 'function')
    throw new CoordinatorError(
      CoordinatorErrorCode.INVALID_ARGUMENT,
      `invalid argument: op ${op.name} is not an algorithms op (it has no per-block call)`,
      { details: { argument: 'op', value: op.name } },
    );
  return op as LocusOpSpec;
}

/**
 * Bytes an NFU request and reply carry for this call (parameters and values; request lines approximated),
 * plus `uploaded` bytes of shared inputs this call stored first (a STORE with its request line).
 */
function wireBytesOf(call: LocusCall, capBytes: number, returned: number, uploaded = 0): number {
  let n = 32 + encodeAttrs(call.attrs).length + 24;
  for (const i of call.inputs) n += 24 + (i.kind === 'bytes' ? i.data.length : capBytes);
  return n + 24 + ('returnBytes' in call.output ? 0 : capBytes) + 16 + returned + uploaded;
}

/** Per depot: the shared inputs stored there, by name, with the array they hold. */
class SharedTable<T> {
  readonly #entries = new Map<string, { data: Uint8Array; value: Promise<T> }>();

  /**
   * The entry of (`depot`, `input.name`) holding `input.data`: made by `make` on first use (concurrent calls
   * share it); an entry for an older array under the name is handed to `drop`.
   */
  get(
    depot: string,
    input: SharedInput,
    make: () => Promise<T>,
    drop: (old: Promise<T>) => void,
  ): { value: Promise<T>; made: boolean } {
    const key = `${depot}/${input.name}`;
    const e = this.#entries.get(key);
    if (e !== undefined && e.data === input.data) return { value: e.value, made: false };
    if (e !== undefined) drop(e.value);
    const value = make();
    this.#entries.set(key, { data: input.data, value });
    // A failed upload is retried by the next call.
    value.catch(() => {
      if (this.#entries.get(key)?.value === value) this.#entries.delete(key);
    });
    return { value, made: true };
  }

  /** Every entry with its depot, emptied. */
  drain(): Array<{ depot: string; value: Promise<T> }> {
    const all = [...this.#entries].map(([key, e]) => ({ depot: key.slice(0, key.indexOf('/')), value: e.value }));
    this.#entries.clear();
    return all;
  }
}

/** Options of {@link InProcessLocus}. */
export interface InProcessLocusOptions {
  /** Kernel backend (default WebAssembly/JS). */
  readonly backend?: KernelBackend;
  /** Injected failure: return true to fail this attempt (tests, calibration). */
  readonly fail?: (attempt: OpAttempt) => boolean;
  /**
   * Injected lost reply: return true to run this attempt (its state output written) and then fail it with a
   * busy answer (IBP -66, retry at once), so the engine asks the same depot again: the retry of an op that has
   * already run, as after a lost reply (tests: the retry must not apply the op twice).
   */
  readonly loseReply?: (attempt: OpAttempt) => boolean;
}

/**
 * The in-process runner: blocks are byte arrays keyed by their replicas' read caps, state allocations live in
 * a map per depot. The kernels are the depots' kernels, so (on the same backend) results are identical to a
 * run on depots.
 */
export class InProcessLocus implements LocusRunner {
  readonly #blocks: ReadonlyMap<string, Uint8Array>;
  readonly #state = new Map<string, { depot: string; data: Uint8Array }>();
  readonly #shared = new SharedTable<Uint8Array>();
  readonly #backend: KernelBackend;
  readonly #fail: ((attempt: OpAttempt) => boolean) | undefined;
  readonly #loseReply: ((attempt: OpAttempt) => boolean) | undefined;

  constructor(blocks: ReadonlyMap<string, Uint8Array>, options: InProcessLocusOptions = {}) {
    this.#blocks = blocks;
    this.#backend = options.backend ?? WASM_BACKEND;
    this.#fail = options.fail;
    this.#loseReply = options.loseReply;
  }

  stateOf(block: number, name: string): StateLocation | undefined {
    const s = this.#state.get(`${block}/${name}`);
    return s === undefined ? undefined : { depot: s.depot, bytes: s.data.length };
  }

  readState(block: number, name: string): Promise<Uint8Array | undefined> {
    const s = this.#state.get(`${block}/${name}`);
    return Promise.resolve(s?.data.slice());
  }

  release(): Promise<void> {
    this.#state.clear();
    this.#shared.drain();
    return Promise.resolve();
  }

  run(attempt: OpAttempt): Observable<OpAnswer> {
    return new Observable<OpAnswer>((subscriber) => {
      try {
        if (this.#fail?.(attempt) === true) throw new Error(`injected failure of block ${attempt.block.index}`);
        const call = asLocus(attempt.op).call(attempt.block);
        const depot = depotId(attempt.replica.depot);
        let uploaded = 0;
        const inputs = call.inputs.map((i) => {
          if (i.kind === 'bytes') return i.data;
          if (i.kind === 'shared') {
            const { made } = this.#shared.get(
              depot,
              i,
              () => Promise.resolve(i.data),
              () => {},
            );
            if (made) uploaded += i.data.length + 64;
            return i.data;
          }
          if (i.kind === 'block') {
            const bytes = this.#blocks.get(attempt.replica.read);
            if (bytes === undefined) throw new Error(`no data for replica ${attempt.replica.read}`);
            return bytes.subarray((i.fromRow ?? 0) * rowBytes(attempt.block), attempt.block.bytes);
          }
          const s = this.#state.get(`${attempt.block.index}/${i.name}`);
          if (s === undefined || s.depot !== depot)
            throw new Error(`block ${attempt.block.index} has no state ${i.name} at ${depot}`);
          return s.data;
        });
        const kernel = builtins().byNameOrThrow(call.kernel);
        const output = kernel.run(parseAttrs(encodeAttrs(call.attrs)), inputs, { backend: this.#backend }).slice();
        let returned = output;
        if ('store' in call.output) {
          this.#state.set(`${attempt.block.index}/${call.output.store}`, { depot, data: output });
          returned = new Uint8Array(0);
        }
        if (this.#loseReply?.(attempt) === true)
          throw Object.assign(new Error(`injected lost reply of block ${attempt.block.index}`), {
            status: -66,
            retryAfterSec: 0,
          });
        subscriber.next({
          output: returned,
          wireBytes: wireBytesOf(call, 100, returned.length, uploaded),
          ranOn: depot,
          transferred: false,
        });
        subscriber.complete();
      } catch (e) {
        subscriber.error(e);
      }
    });
  }
}

/** Lease of a state allocation (seconds). */
export const DEFAULT_STATE_LEASE_SEC = 600;
/**
 * Longest wait of {@link IbpLocus.release} for the depots to confirm the frees (ms): a stalled depot never
 * replies, and its frees (and those of shared inputs still being stored) go on in the background.
 */
export const DEFAULT_RELEASE_WAIT_MS = 2_000;

/**
 * The runner over IBP depots: each call is one NFU op at the replica's depot (`runKernel`); state outputs go
 * into allocations made at that depot on first use (and reused, written in place, afterwards). Plain catalogue
 * ops (the coordinator's column-stats, gram, sketch, projection jobs: no per-block call) run as an
 * {@link IbpOpRunner} over the same client would run them, so one coordinator serves both.
 */
export class IbpLocus implements LocusRunner {
  readonly #client: IbpClient;
  readonly #plain: IbpOpRunner;
  readonly #leaseSec: number;
  readonly #state = new Map<string, StateEntry>();
  readonly #shared = new SharedTable<{ read: string; manage: string }>();

  readonly #releaseWaitMs: number;
  /** Per depot: ops the engine dropped (late, or a losing hedge) that have not ended yet. */
  readonly #stuck = new Map<string, number>();
  /** Ops in progress, and frees of the state that dropped ones made, until the depots answer. */
  readonly #inflight = new Set<Promise<void>>();
  readonly #freeing = new Set<Promise<unknown>>();

  constructor(client: IbpClient, options: { readonly leaseSec?: number; readonly releaseWaitMs?: number } = {}) {
    this.#client = client;
    this.#leaseSec = options.leaseSec ?? DEFAULT_STATE_LEASE_SEC;
    this.#releaseWaitMs = options.releaseWaitMs ?? DEFAULT_RELEASE_WAIT_MS;
    this.#plain = new IbpOpRunner(client);
  }

  stateOf(block: number, name: string): StateLocation | undefined {
    const s = this.#state.get(`${block}/${name}`);
    return s === undefined ? undefined : { depot: s.depot, bytes: s.bytes };
  }

  async readState(block: number, name: string, timeoutMs = 30_000): Promise<Uint8Array | undefined> {
    const s = this.#state.get(`${block}/${name}`);
    if (s === undefined) return undefined;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), timeoutMs);
    });
    try {
      const read = this.#client.load(s.read, 0, s.bytes).then((b) => Uint8Array.from(b));
      return await Promise.race([read, timeout]);
    } catch {
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Frees every state allocation and shared input (best effort), waiting at most `releaseWaitMs` (default
   * {@link DEFAULT_RELEASE_WAIT_MS}) for the depots' replies — a shared input still being stored is freed once
   * stored. Frees at a depot where an op the engine gave up on is still unanswered (a stalled depot) are not
   * waited for, nor what any depot has not confirmed by the end of the wait: they go on in the background (until
   * the client's timeout or `close`).
   */
  async release(options: { readonly drain?: boolean } = {}): Promise<void> {
    const all = [...this.#state.values()];
    this.#state.clear();
    const shared = this.#shared.drain();
    // Depots with an op the engine dropped still unanswered (stalled): their frees are not waited for.
    const waitFor = (depot: string) => (this.#stuck.get(depot) ?? 0) === 0;
    const frees = [
      ...all.map((s) => ({ depot: s.depot, free: this.#client.decr(s.manage, 'read').catch(() => undefined) })),
      ...shared.map((e) => ({ depot: e.depot, free: this.#drop(e.value) })),
    ];
    const freed = Promise.all([
      ...frees.filter((f) => waitFor(f.depot)).map((f) => f.free),
      // An interrupted job's ops end after this: what they made is freed as dropped (see `run`), then waited for.
      ...(options.drain === true ? [Promise.all([...this.#inflight]).then(() => Promise.all([...this.#freeing]))] : []),
    ]);
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.#releaseWaitMs);
      timer.unref();
    });
    try {
      await Promise.race([freed, waited]);
    } finally {
      clearTimeout(timer);
    }
  }

  #drop(entry: Promise<{ manage: string }>): Promise<void> {
    return entry.then(
      (e) => this.#client.decr(e.manage, 'read').catch(() => undefined),
      () => undefined,
    );
  }

  /** Allocates and fills a shared input's allocation at `address`. */
  async #upload(address: DepotAddress, data: Uint8Array): Promise<{ read: string; manage: string }> {
    const caps = await this.#client.allocate(address, { size: Math.max(1, data.length), durationSec: this.#leaseSec });
    const entry = { read: formatCapability(caps.read), manage: formatCapability(caps.manage) };
    try {
      await this.#client.store(caps.write, data);
    } catch (e) {
      await this.#client.decr(caps.manage, 'read').catch(() => undefined);
      throw e;
    }
    return entry;
  }

  run(attempt: OpAttempt): Observable<OpAnswer> {
    if (typeof (attempt.op as Partial<LocusOpSpec>).call !== 'function') return this.#plain.run(attempt);
    // Cold: the attempt starts on subscription. An attempt the engine dropped (a hedge that lost to another
    // replica, a timed-out try) may still complete later: its state output is then discarded, never recorded —
    // the block's state stays where the accepted answer put it, and later ops sent there find it.
    return new Observable<OpAnswer>((subscriber) => {
      let live = true;
      const depot = depotId(attempt.replica.depot);
      let ended = false;
      const end = (): void => {
        ended = true;
        if (live) return;
        const n = (this.#stuck.get(depot) ?? 1) - 1;
        if (n > 0) this.#stuck.set(depot, n);
        else this.#stuck.delete(depot);
      };
      const running = this.#execute(attempt).then(
        ({ answer, stored }) => {
          end();
          if (!live) {
            if (stored !== undefined) this.#discard(stored);
            return;
          }
          // Recorded and emitted in one step: the engine accepts this answer (and drops the other attempts)
          // synchronously, so no other attempt of the block can record its state after this one.
          if (stored !== undefined) this.#commit(stored);
          subscriber.next(answer);
          subscriber.complete();
        },
        (e: unknown) => {
          end();
          if (live) subscriber.error(e);
        },
      );
      this.#inflight.add(running);
      void running.finally(() => this.#inflight.delete(running));
      return () => {
        if (live && !ended) this.#stuck.set(depot, (this.#stuck.get(depot) ?? 0) + 1);
        live = false;
      };
    });
  }

  /** Records an accepted attempt's state output (and frees the allocation it replaces). */
  #commit(stored: StoredOutput): void {
    const old = this.#state.get(stored.key);
    if (old !== undefined && old !== stored.entry) this.#free(old.manage);
    this.#state.set(stored.key, stored.entry);
  }

  /** Frees a dropped attempt's state allocation if it made one (one it reused stays with its owner). */
  #discard(stored: StoredOutput): void {
    if (stored.fresh && this.#state.get(stored.key) !== stored.entry) this.#free(stored.entry.manage);
  }

  /** Frees a state allocation, tracked until the depot answers (a draining `release` waits for it). */
  #free(manage: string): void {
    const p = this.#client.decr(manage, 'read').catch(() => undefined);
    this.#freeing.add(p);
    void p.finally(() => this.#freeing.delete(p));
  }

  async #execute(attempt: OpAttempt): Promise<{ answer: OpAnswer; stored: StoredOutput | undefined }> {
    const call = asLocus(attempt.op).call(attempt.block);
    const address = attempt.replica.depot;
    const depot = depotId(address);
    let capBytes = 0;
    let uploaded = 0;
    const shared = new Map<SharedInput, { read: string; manage: string }>();
    for (const i of call.inputs) {
      if (i.kind !== 'shared') continue;
      const got = this.#shared.get(
        depot,
        i,
        () => this.#upload(address, i.data),
        (old) => void this.#drop(old),
      );
      if (got.made) uploaded += i.data.length + 200;
      shared.set(i, await got.value);
    }
    const inputs: KernelInput[] = call.inputs.map((i) => {
      if (i.kind === 'bytes') return i.data;
      if (i.kind === 'shared') {
        const e = shared.get(i)!;
        capBytes = Math.max(capBytes, e.read.length);
        return { cap: e.read, offset: 0, length: i.data.length };
      }
      if (i.kind === 'block') {
        capBytes = Math.max(capBytes, attempt.replica.read.length);
        const skip = (i.fromRow ?? 0) * rowBytes(attempt.block);
        return { cap: attempt.replica.read, offset: attempt.replica.allocOffset + skip, length: attempt.block.bytes - skip };
      }
      const s = this.#state.get(`${attempt.block.index}/${i.name}`);
      if (s === undefined || s.depot !== depot)
        throw new Error(`block ${attempt.block.index} has no state ${i.name} at ${depot}`);
      return { cap: s.read, offset: 0, length: s.bytes };
    });
    let extra = 0;
    let output: { returnBytes: number } | { cap: string; offset: number };
    let stored: StoredOutput | undefined;
    if ('store' in call.output) {
      const key = `${attempt.block.index}/${call.output.store}`;
      let entry = this.#state.get(key);
      let fresh = false;
      if (entry === undefined || entry.depot !== depot || entry.bytes !== call.output.bytes) {
        fresh = true;
        const caps = await this.#client.allocate(address, { size: call.output.bytes, durationSec: this.#leaseSec });
        entry = {
          depot,
          address,
          read: formatCapability(caps.read),
          write: formatCapability(caps.write),
          manage: formatCapability(caps.manage),
          bytes: call.output.bytes,
        };
        extra += 200;
      }
      stored = { key, entry, fresh };
      output = { cap: entry.write, offset: 0 };
    } else output = { returnBytes: call.output.returnBytes };
    let result: Uint8Array | undefined;
    try {
      result = await runKernel(this.#client, address, call.kernel, {
        attrs: call.attrs,
        inputs,
        output,
        timeoutMs: attempt.timeoutMs,
      } as unknown as KernelCall);
    } catch (e) {
      if (stored !== undefined) this.#discard(stored);
      throw e;
    }
    const returned = result ?? new Uint8Array(0);
    const answer = {
      output: returned,
      wireBytes: extra + wireBytesOf(call, capBytes || 100, returned.length, uploaded),
      ranOn: depot,
      transferred: false,
    };
    return { answer, stored };
  }
}

/** A state output an attempt wrote, recorded only if the engine accepts the attempt's answer. */
interface StoredOutput {
  readonly key: string;
  readonly entry: StateEntry;
  /** Allocated by this attempt (else the block's recorded allocation, written in place). */
  readonly fresh: boolean;
}

interface StateEntry {
  readonly depot: string;
  readonly address: DepotAddress;
  readonly read: string;
  readonly write: string;
  readonly manage: string;
  readonly bytes: number;
}

/** A dataset over in-memory row blocks (tests, calibration, examples) and the byte map an {@link InProcessLocus} reads. */
export function inMemoryDataset(
  matrix: Float64Array,
  rows: number,
  cols: number,
  options: {
    readonly blockRows: number;
    /** Depots (fake ports) holding each block's replicas (default: block b on depot b mod 4). */
    readonly depotsOf?: (block: number) => readonly number[];
    readonly sourceOf?: (block: number) => string | undefined;
    readonly name?: string;
  },
): { dataset: Dataset; blocks: Map<string, Uint8Array> } {
  if (matrix.length !== rows * cols)
    throw new CoordinatorError(
      CoordinatorErrorCode.INVALID_ARGUMENT,
      `invalid argument: matrix has ${matrix.length} values; ${rows}×${cols} needs ${rows * cols}`,
      {
        details: { argument: 'matrix', value: matrix.length },
      },
    );
  const bytes = new Map<string, Uint8Array>();
  const blocks: DatasetBlock[] = [];
  for (let start = 0, index = 0; start < rows; start += options.blockRows, index++) {
    const n = Math.min(options.blockRows, rows - start);
    const data = matrix.slice(start * cols, (start + n) * cols);
    const u8 = new Uint8Array(data.buffer);
    const ports = options.depotsOf?.(index) ?? [9000 + (index % 4)];
    const replicas = ports.map((port) => {
      const read = `ibp://127.0.0.1:${port}/mem#block${index}/0/READ`;
      bytes.set(read, u8);
      return { depot: { host: '127.0.0.1', port }, read, allocOffset: 0, length: u8.length };
    });
    const source = options.sourceOf?.(index);
    blocks.push({
      index,
      rowStart: start,
      rows: n,
      bytes: u8.length,
      replicas,
      summary: summarizeBlock(data, n, cols),
      ...(source === undefined ? {} : { source }),
    });
  }
  // As ingest does: the first blocks' pooled centred scatter is the dataset's reference, and every summary
  // records its block's distance from it (bounds on missing blocks then know their orientation).
  if (cols <= DEFAULT_SPECTRUM_MAX_COLS && blocks.length > 0) {
    const scatterOf = (b: DatasetBlock) =>
      centredScatter(matrix.subarray(b.rowStart * cols, (b.rowStart + b.rows) * cols), b.rows, cols);
    const pooled = new Float64Array(cols * cols);
    for (const b of blocks.slice(0, REFERENCE_SCATTER_BLOCKS)) {
      const k = scatterOf(b);
      for (let q = 0; q < pooled.length; q++) pooled[q]! += k[q]!;
    }
    let trace = 0;
    for (let j = 0; j < cols; j++) trace += pooled[j * cols + j]!;
    if (trace > 0) {
      const reference = makeScatterReference(pooled, cols);
      for (const b of blocks) attachScatterRadius(b.summary!, scatterOf(b), reference);
    }
  }
  return { dataset: { name: options.name ?? 'in-memory', dtype: 'float64', rows, cols, blocks }, blocks: bytes };
}
