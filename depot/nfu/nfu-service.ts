import { timingSafeEqual } from 'node:crypto';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import {
  builtinRegistry,
  KernelError,
  parseAttrs,
  type Attrs,
  type KernelConfig,
  type KernelRegistry,
  type UploadedOp,
} from '../../nfu-kernels/index.js';
import type { Allocation } from '../core/allocation.js';
import type { DepotCore } from '../core/depot-core.js';
import { DepotError, DepotErrorCode, storageError } from '../errors.js';
import type { DepotOptions } from '../options.js';
import { parseCapability } from '../../ibp/index.js';
import { CapType, Status } from '../../ibp/index.js';
import { NfuParamKind, type NfuParam, type NfuRequest } from '../../ibp/index.js';
import { DiskData } from '../resources/disk/disk-data.js';
import { MemoryData, type PinnedRange } from '../resources/memory-data.js';
import { INPUT_CHANGED, type InputSource } from './input-source.js';
import { NfuExecutor, workerMayRun, type PooledOutput } from './nfu-executor.js';

/** A value returned to the client: parameter index and bytes. */
export interface NfuOutput {
  readonly index: number;
  readonly data: Uint8Array;
}

interface ResolvedRef {
  readonly allocation: Allocation;
  readonly offset: number;
  readonly length: number;
}

const READABLE: ReadonlySet<number> = new Set([
  NfuParamKind.REF_RD,
  NfuParamKind.REF_RDWR,
  NfuParamKind.VAL_IN,
  NfuParamKind.VAL_INOUT,
]);
const WRITABLE: ReadonlySet<number> = new Set([
  NfuParamKind.REF_WR,
  NfuParamKind.REF_RDWR,
  NfuParamKind.VAL_OUT,
  NfuParamKind.VAL_INOUT,
]);

function refused(status: number, message: string): DepotError {
  const code =
    status === Status.CAP_NOT_FOUND
      ? DepotErrorCode.CAP_NOT_FOUND
      : status === Status.NFU_DUP_PARA
        ? DepotErrorCode.NFU_DUP_PARAM
        : DepotErrorCode.INVALID_PARAMETER;
  return new DepotError(code, message, { status });
}

/**
 * EBP's transform call, on the LoCI NFU wire (docs/protocol.md, NFU). Parameters follow the
 * LoCI rules: reference caps must be local and of the right type; REF_RD ranges are cut to the
 * data; REF_WR/RDWR ranges are cut to the max size; one allocation may not appear twice with the
 * same kind. The op's inputs are every parameter but the last (for a kernel with attributes, the
 * first is its JSON VAL_IN); the last parameter receives the output. Outputs are written only
 * after the op succeeded, so a failed, stopped or refused op leaves its write parameters
 * unchanged.
 */
/** NFU opcode reserved for registering an uploaded WebAssembly op (admin only). */
export const NFU_REGISTER_OPCODE = 0;

/**
 * Bytes the event loop copies in one piece, at most, for an input not read in place or for an
 * output written back into an allocation, with a turn of the loop between pieces, so a large
 * range does not hold up the data path (a 256 MiB copy is ~50 ms in one piece; 1 MiB is ~0.2 ms).
 */
const COPY_SLICE = 1024 * 1024;

/** An op's input as the service prepared it: a pooled buffer holding it, or where a worker finds it. */
interface PreparedInput {
  /** The input's bytes; for an input read in place, a placeholder (no bytes). */
  readonly buffer: Uint8Array;
  /** Read in place: the worker gathers the input from these pieces of the allocation's memory. */
  readonly source?: InputSource;
  readonly pin?: PinnedRange;
}

const NO_BYTES = new Uint8Array(0);

/** What the event loop did with NFU bytes (tests and diagnostics). */
export interface NfuIoStats {
  /** Input bytes the event loop copied into an op's buffers (values, disk and queue inputs). */
  copiedOnLoopBytes: number;
  /** Input bytes of memory allocations handed to the workers in place (no copy on the event loop). */
  inPlaceBytes: number;
  /** Input bytes of disk allocations the workers read from the files themselves. */
  workerReadBytes: number;
  /** Ops whose disk input changed before a worker read it, run again on inputs the event loop read. */
  rereadOps: number;
}

export class NfuService {
  /** Every op of this depot, built-in and uploaded, in one registry. */
  private readonly registry: KernelRegistry;
  /** Opcodes of the built-in ops served (`nfu.enable`). */
  private readonly enabled = new Set<number>();
  private uploads = 0;
  private readonly executor: NfuExecutor;
  private selfPort = 0;
  readonly stats: NfuIoStats = { copiedOnLoopBytes: 0, inPlaceBytes: 0, workerReadBytes: 0, rereadOps: 0 };
  /** The input copy running now: such copies run one at a time (see {@link prepareInput}). */
  private copyTail: Promise<void> = Promise.resolve();

  constructor(
    private readonly core: DepotCore,
    private readonly options: DepotOptions,
  ) {
    this.registry = builtinRegistry();
    const enable = options.nfu.enable;
    for (const k of this.registry.list()) {
      if (enable.includes('*') || enable.includes(k.opcode) || enable.includes(k.name)) this.enabled.add(k.opcode);
    }
    for (const e of enable) {
      if (e !== '*' && !this.registry.list().some((k) => k.opcode === e || k.name === e)) {
        throw new DepotError(DepotErrorCode.CONFIG, `invalid config: \`nfu.enable\` names no kernel ${JSON.stringify(e)}`);
      }
    }
    this.executor = new NfuExecutor(options.nfu, options.limits.overloadRetrySec);
  }

  setPort(port: number): void {
    this.selfPort = port;
  }

  /** Opcodes served, for the `NFU:` field of STATUS. */
  opcodes(): number[] {
    return this.registry
      .ops()
      .filter((o) => o.kind === 'uploaded' || this.enabled.has(o.opcode))
      .map((o) => o.opcode);
  }

  /**
   * Opcode 0 (admin): `VAL_IN {"secret", "opcode", "name"}` then `VAL_IN <wasm module>`. The module
   * may import only `env.memory` and must export `run(inLen, outCap) -> outLen`; it then serves
   * as op `opcode` (kept until the depot restarts).
   */
  private register(params: readonly NfuParam[]): void {
    const admin = this.options.nfu.admin;
    if (admin === undefined) throw new DepotError(DepotErrorCode.NFU_UNKNOWN, 'code upload is not enabled on this depot');
    if (params.length !== 2 || params.some((p) => p.kind !== NfuParamKind.VAL_IN)) {
      throw refused(Status.INVALID_PARAMETER, 'registering an op takes two VAL_IN parameters: the JSON header and the module');
    }
    let header: { secret?: unknown; opcode?: unknown; name?: unknown };
    try {
      header = JSON.parse(params[0]!.data.toString('utf8')) as typeof header;
    } catch {
      throw refused(Status.INVALID_PARAMETER, 'the registration header is not JSON');
    }
    const given = Buffer.from(String(header.secret ?? ''));
    const want = Buffer.from(admin.secret);
    if (given.length !== want.length || !timingSafeEqual(given, want)) {
      throw new DepotError(DepotErrorCode.WRONG_PASSWORD, 'wrong admin secret');
    }
    const opcode = header.opcode;
    const name = header.name;
    if (typeof opcode !== 'number' || !Number.isInteger(opcode) || opcode < 1 || opcode > 2 ** 31 - 1) {
      throw refused(Status.INVALID_PARAMETER, '`opcode` must be a positive integer');
    }
    if (typeof name !== 'string' || !/^[a-z][a-z0-9-]{0,63}$/.test(name))
      throw refused(Status.INVALID_PARAMETER, '`name` must be a lowercase name');
    if (this.registry.op(opcode) !== undefined) throw refused(Status.INVALID_PARAMETER, `opcode ${opcode} is taken`);
    const bytes = new Uint8Array(params[1]!.data);
    let mod: WebAssembly.Module;
    try {
      mod = new WebAssembly.Module(bytes);
    } catch (e) {
      throw refused(Status.INVALID_PARAMETER, `the module does not compile: ${(e as Error).message}`);
    }
    const imports = WebAssembly.Module.imports(mod);
    if (imports.length !== 1 || imports[0]!.module !== 'env' || imports[0]!.name !== 'memory' || imports[0]!.kind !== 'memory') {
      throw refused(Status.INVALID_PARAMETER, 'the module may import exactly one thing: the memory env.memory');
    }
    if (!WebAssembly.Module.exports(mod).some((e) => e.name === 'run' && e.kind === 'function')) {
      throw refused(Status.INVALID_PARAMETER, 'the module must export a function run(inLen, outCap)');
    }
    try {
      this.registry.registerUploaded({ opcode, name, key: `${opcode}:${++this.uploads}`, bytes });
    } catch (e) {
      if (KernelError.is(e)) throw refused(Status.INVALID_PARAMETER, e.message); // the name is taken
      throw e;
    }
  }

  async close(): Promise<void> {
    await this.executor.close();
  }

  async call(req: NfuRequest, params: readonly NfuParam[]): Promise<NfuOutput[]> {
    if (req.opcode === NFU_REGISTER_OPCODE) {
      this.register(params);
      return [];
    }
    const op = this.registry.op(req.opcode);
    if (op?.kind === 'uploaded') return this.callUploaded(op, params);
    if (op === undefined || !this.enabled.has(op.opcode))
      throw new DepotError(DepotErrorCode.NFU_UNKNOWN, `NFU opcode ${req.opcode} is not served by this depot`);
    const kernel = op.kernel;
    if (params.length < 1) throw refused(Status.INVALID_PARAMETER, `${kernel.name} needs an output parameter`);
    const refs = this.resolveRefs(params);
    const out = params.length - 1;
    if (!WRITABLE.has(params[out]!.kind)) {
      throw refused(
        Status.INVALID_PARAMETER,
        `${kernel.name}: the last parameter receives the output and must be REF_WR, REF_RDWR, VAL_OUT or VAL_INOUT`,
      );
    }
    const inputs = params.slice(0, out);
    for (const [i, p] of inputs.entries()) {
      if (!READABLE.has(p.kind))
        throw refused(Status.INVALID_PARAMETER, `${kernel.name}: parameter ${i} is an input and must be readable`);
    }
    let attrs: Attrs | undefined;
    let dataParams = inputs;
    if (kernel.takesAttrs) {
      const first = inputs[0];
      if (first === undefined || (first.kind !== NfuParamKind.VAL_IN && first.kind !== NfuParamKind.VAL_INOUT)) {
        throw refused(Status.INVALID_PARAMETER, `${kernel.name}: parameter 0 must be the attributes (VAL_IN JSON)`);
      }
      try {
        attrs = parseAttrs(new Uint8Array(first.data)); // once: the workers get the parsed object
      } catch (e) {
        throw refused(Status.INVALID_PARAMETER, (e as Error).message);
      }
      dataParams = inputs.slice(1);
    }
    if (dataParams.length !== kernel.inputs.length) {
      throw refused(
        Status.INVALID_PARAMETER,
        `${kernel.name} takes ${kernel.inputs.length} input${kernel.inputs.length === 1 ? '' : 's'} (${kernel.inputs.join(', ')}); got ${dataParams.length}`,
      );
    }
    const first = kernel.takesAttrs ? 1 : 0;
    const sources = dataParams.map((p, i) => [p, refs.get(first + i)] as const);
    const lengths = sources.map(([p, ref]) => ref?.length ?? p.data.length);
    // Size the output and the op's memory before reading anything.
    let want: number;
    let bytes: number;
    try {
      want = kernel.outputBytes(attrs, lengths);
      bytes = this.executor.estimateBytes(kernel, attrs, lengths) + pinnedBytes(sources);
    } catch (e) {
      throw refused(Status.INVALID_PARAMETER, (e as Error).message);
    }
    const capacity = refs.get(out)?.length ?? params[out]!.length;
    const cut = kernel.opcode === 1; // LoCI xor writes what fits into p2's range
    if (want > capacity && !cut) {
      throw new DepotError(
        DepotErrorCode.WOULD_EXCEED_LIMIT,
        `${kernel.name} produces ${want} bytes; the output parameter holds ${capacity}`,
      );
    }
    // Refused before any input is buffered when NFU is saturated or its memory budget is spent.
    const release = this.executor.admit(bytes, kernel.name);
    try {
      return await this.withPooledInputs(sources, (inputBytes, inputSources, inputsDone) =>
        this.runBuiltin(kernel, attrs, inputBytes, inputSources, inputsDone, capacity, refs, out),
      );
    } finally {
      release();
    }
  }

  /**
   * Prepares the inputs in pooled shared buffers (memory ranges pinned for the workers to gather,
   * other inputs copied) and runs `run` on them. `run` lets go of them (`done`) once the workers
   * are through (before the output is written: a REF_RDWR output then finds its memory unpinned
   * and is written in place); otherwise they are let go at the end — unless the op was aborted
   * while a worker may still read them: then the GC has the buffers and the pinned memory never
   * returns to the pool of warm segments.
   */
  private async withPooledInputs<T>(
    sources: ReadonlyArray<readonly [NfuParam, ResolvedRef | undefined]>,
    run: RunOnInputs<T>,
  ): Promise<T> {
    try {
      return await this.withInputs(sources, true, run);
    } catch (e) {
      if (!(DepotError.isDepotError(e) && e.details['kernelCode'] === INPUT_CHANGED)) throw e;
      // A disk input changed between its plan and the worker's read (a WRITE committed meanwhile,
      // or damage): once more, on inputs the event loop reads and verifies, judging damage.
      this.stats.rereadOps++;
      return this.withInputs(sources, false, run);
    }
  }

  private async withInputs<T>(
    sources: ReadonlyArray<readonly [NfuParam, ResolvedRef | undefined]>,
    filesInWorker: boolean,
    run: RunOnInputs<T>,
  ): Promise<T> {
    const prepared: PreparedInput[] = [];
    let released = false;
    const letGo = (reusable: boolean): void => {
      if (released) return;
      released = true;
      for (const i of prepared) {
        i.pin?.release(reusable);
        if (reusable) this.executor.buffers.give(i.buffer);
      }
    };
    let reusable = true;
    try {
      for (const [p, ref] of sources) prepared.push(await this.prepareInput(p, ref, filesInWorker));
      const inPlace = prepared.some((i) => i.source !== undefined);
      return await run(
        prepared.map((i) => i.buffer),
        inPlace ? prepared.map((i) => i.source) : undefined,
        () => letGo(true),
      );
    } catch (e) {
      reusable = !workerMayRun(e);
      throw e;
    } finally {
      letGo(reusable);
    }
  }

  private async runBuiltin(
    kernel: KernelConfig,
    attrs: Attrs | undefined,
    inputBytes: Uint8Array[],
    sources: Array<InputSource | undefined> | undefined,
    inputsDone: () => void,
    capacity: number,
    refs: Map<number, ResolvedRef>,
    out: number,
  ): Promise<NfuOutput[]> {
    let pooled: PooledOutput;
    try {
      pooled = await this.executor.runPooled({ opcode: kernel.opcode, attrs, inputs: inputBytes, sources }, kernel, attrs);
      inputsDone();
    } catch (e) {
      if (KernelError.is(e)) throw refused(Status.INVALID_PARAMETER, e.message);
      throw e;
    }
    try {
      let output = pooled.output;
      if (output.length > capacity) output = output.subarray(0, capacity);
      const ref = refs.get(out);
      if (ref !== undefined) {
        await this.writeOutput(ref, output);
        return [];
      }
      // A VAL_OUT (≤ nfu.maxValueBytes) is copied out of the pooled buffer for the reply.
      return [{ index: out, data: output.slice() }];
    } finally {
      pooled.release();
    }
  }

  private async callUploaded(op: UploadedOp, params: readonly NfuParam[]): Promise<NfuOutput[]> {
    if (params.length < 1) throw refused(Status.INVALID_PARAMETER, `${op.name} needs an output parameter`);
    const refs = this.resolveRefs(params);
    const out = params.length - 1;
    if (!WRITABLE.has(params[out]!.kind))
      throw refused(Status.INVALID_PARAMETER, `${op.name}: the last parameter receives the output`);
    for (let i = 0; i < out; i++) {
      if (!READABLE.has(params[i]!.kind))
        throw refused(Status.INVALID_PARAMETER, `${op.name}: parameter ${i} is an input and must be readable`);
    }
    const sources = params.slice(0, out).map((p, i) => [p, refs.get(i)] as const);
    // Inputs (pooled), the op's WebAssembly memory (inputs + output capacity) and the output copy,
    // and the memory inputs pinned in place.
    const inBytes = sources.reduce((s, [p, ref]) => s + (ref?.length ?? p.data.length), 0);
    const outCap = refs.get(out)?.length ?? params[out]!.length;
    const release = this.executor.admit(2 * inBytes + 2 * outCap + pinnedBytes(sources), op.name);
    try {
      return await this.withPooledInputs(sources, (inputs, inputSources, inputsDone) =>
        this.runUploaded(op, inputs, inputSources, inputsDone, params, refs, out),
      );
    } finally {
      release();
    }
  }

  private async runUploaded(
    op: UploadedOp,
    inputs: Uint8Array[],
    sources: Array<InputSource | undefined> | undefined,
    inputsDone: () => void,
    params: readonly NfuParam[],
    refs: Map<number, ResolvedRef>,
    out: number,
  ): Promise<NfuOutput[]> {
    const outCap = refs.get(out)?.length ?? params[out]!.length;
    // Not pooled: the output is the buffer the worker moved back, used as it is (no copy).
    const { output } = await this.executor.runPooled({
      opcode: op.opcode,
      attrs: undefined,
      inputs,
      sources,
      wasm: { key: op.key, bytes: op.bytes, outCap, maxPages: this.options.nfu.admin!.maxMemoryPages },
    });
    inputsDone();
    const ref = refs.get(out);
    if (ref !== undefined) {
      await this.writeOutput(ref, output);
      return [];
    }
    return [{ index: out, data: output }];
  }

  /** Checks every reference parameter against the LoCI rules and resolves its range. */
  private resolveRefs(params: readonly NfuParam[]): Map<number, ResolvedRef> {
    const out = new Map<number, ResolvedRef>();
    const seen = new Set<string>();
    params.forEach((p, i) => {
      if (p.kind > NfuParamKind.REF_RDWR) return;
      const cap = parseCapability(p.data.toString('latin1'));
      if (cap === undefined) throw refused(Status.WRONG_CAP_FORMAT, `NFU parameter ${i}: not a valid capability`);
      const local = cap.port === this.selfPort && [this.options.publicHost, this.options.host].includes(cap.host);
      if (!local) throw refused(Status.CAP_NOT_FOUND, `NFU parameter ${i}: the capability is not on this depot`);
      const wantsRead = p.kind === NfuParamKind.REF_RD;
      if (wantsRead && cap.type !== CapType.READ)
        throw refused(Status.CAP_NOT_READ, `NFU parameter ${i}: REF_RD needs a READ capability`);
      if (!wantsRead && cap.type !== CapType.WRITE)
        throw refused(Status.CAP_NOT_WRITE, `NFU parameter ${i}: REF_WR/REF_RDWR need a WRITE capability`);
      const a = this.core.lookup({ rid: cap.rid, key: cap.key, wrmKey: cap.wrmKey }, cap.type);
      const dupKey = `${a.id}:${p.kind}`;
      if (seen.has(dupKey)) throw refused(Status.NFU_DUP_PARA, `NFU parameter ${i}: allocation repeated with the same kind`);
      seen.add(dupKey);
      if (a.state === 'damaged')
        throw new DepotError(DepotErrorCode.DAMAGED, `NFU parameter ${i}: allocation ${a.id} is damaged`);
      if (wantsRead) {
        if (p.offset > a.size)
          throw refused(Status.CAP_ACCESS_DENIED, `NFU parameter ${i}: offset ${p.offset} is past the data (${a.size} bytes)`);
        const length = p.length === 0 || p.offset + p.length > a.size ? a.size - p.offset : p.length;
        out.set(i, { allocation: a, offset: p.offset, length });
      } else {
        if (p.length === 0 || p.offset >= a.maxSize) {
          throw refused(
            Status.CAP_ACCESS_DENIED,
            `NFU parameter ${i}: the range ${p.offset}+${p.length} is empty or past the max size ${a.maxSize}`,
          );
        }
        out.set(i, { allocation: a, offset: p.offset, length: Math.min(p.length, a.maxSize - p.offset) });
      }
    });
    return out;
  }

  /**
   * An input parameter for the worker threads of the op (one, or several for a split op). A range
   * of a memory allocation is not copied here: it is pinned (see `MemoryData.pin`: the op sees the
   * bytes as they are now, and later writes do not change them), and each worker gathers what it
   * reads into a buffer of its own. A range of a disk allocation (`filesInWorker`) is planned (see
   * `DiskData.readPlan`: the file and its blocks' checksums now), and each worker reads its part
   * from the file and verifies it. Other inputs — values, queues, aliases, and disk ranges read
   * again after a worker found them changed — go into a pooled shared buffer that the workers read
   * without further copies, copied by the event loop in slices of {@link COPY_SLICE} with a turn of
   * the loop between them, so other clients are served meanwhile, and one op at a time: a disk read
   * goes through libuv's small thread pool, which the data path's own file operations share.
   */
  private async prepareInput(p: NfuParam, ref: ResolvedRef | undefined, filesInWorker: boolean): Promise<PreparedInput> {
    if (ref === undefined) {
      const v = this.executor.buffers.take(p.data.length);
      v.set(p.data);
      this.stats.copiedOnLoopBytes += p.data.length;
      return { buffer: v };
    }
    // A REF_RDWR input covers the data present; bytes past it read as zeros.
    const available = Math.max(0, Math.min(ref.length, ref.allocation.size - ref.offset));
    const data = ref.allocation.data;
    if (data instanceof DiskData && filesInWorker) {
      const plan = available > 0 ? await data.readPlan(ref.offset, available) : undefined;
      this.stats.workerReadBytes += available;
      const file = plan === undefined ? undefined : { ...plan, offset: ref.offset, available };
      return { buffer: NO_BYTES, source: { length: ref.length, pieces: [], file } };
    }
    if (data instanceof MemoryData) {
      const pin = data.pin(ref.offset, available);
      this.stats.inPlaceBytes += available;
      return { buffer: NO_BYTES, source: { length: ref.length, pieces: pin.pieces }, pin };
    }
    const buf = this.executor.buffers.take(ref.length);
    let at = 0;
    let sinceYield = 0;
    const previous = this.copyTail;
    let done!: () => void;
    this.copyTail = new Promise<void>((resolve) => (done = resolve));
    try {
      await previous;
      if (available > 0) {
        await data.read(
          ref.offset,
          available,
          async (chunk) => {
            for (let from = 0; from < chunk.length; from += COPY_SLICE) {
              if (sinceYield >= COPY_SLICE) {
                await yieldToLoop();
                sinceYield = 0;
              }
              const part = chunk.subarray(from, Math.min(chunk.length, from + COPY_SLICE));
              buf.set(part, at);
              at += part.length;
              sinceYield += part.length;
              this.stats.copiedOnLoopBytes += part.length;
            }
          },
          // The sink copies each chunk before it resolves: a disk read may reuse the chunk's memory.
          { sinkReleases: true },
        );
      }
    } catch (e) {
      this.executor.buffers.give(buf);
      throw e;
    } finally {
      done();
    }
    buf.fill(0, at); // a pooled buffer holds an earlier op's bytes
    return { buffer: buf };
  }

  /**
   * Writes an op's output into its REF_WR/RDWR range through the core (its write lock, checks
   * and commit), in slices of {@link COPY_SLICE} with a turn of the event loop between them.
   */
  private async writeOutput(ref: ResolvedRef, output: Uint8Array): Promise<void> {
    if (output.length === 0) return;
    try {
      await this.core.writeInto(ref.allocation, ref.offset, output.length, async (write) => {
        for (let from = 0; from < output.length; from += COPY_SLICE) {
          if (from > 0) await yieldToLoop();
          const n = Math.min(COPY_SLICE, output.length - from);
          await write(Buffer.from(output.buffer, output.byteOffset + from, n));
        }
      });
    } catch (e) {
      throw storageError(e, `allocation ${ref.allocation.id}: writing the NFU output failed`);
    }
  }
}

/** Bytes of the memory ranges an op pins (see {@link NfuService.prepareInput}), for its admission. */
function pinnedBytes(sources: ReadonlyArray<readonly [NfuParam, ResolvedRef | undefined]>): number {
  // While pinned, a racing writer gives the allocation copies of the buffers it changes (whole 2 MiB
  // segments, or the small allocation's one buffer), held until the op lets go.
  return sources.reduce((s, [, ref]) => {
    const data = ref?.allocation.data;
    return data instanceof MemoryData ? s + data.pinCharge(ref!.offset, ref!.length) : s;
  }, 0);
}

/** What runs an op on its prepared inputs; `done` lets go of them once the workers are through. */
type RunOnInputs<T> = (
  inputs: Uint8Array[],
  inputSources: Array<InputSource | undefined> | undefined,
  done: () => void,
) => Promise<T>;
