import { defer, type Observable } from 'rxjs';
import { builtinRegistry, encodeAttrs } from '../../nfu-kernels/index.js';
import {
  Command,
  ManageOp,
  CapType,
  DEFAULT_STATUS_PASSWORD,
  OK_REPLY,
  allocateReply,
  capTokens,
  countReply,
  formatCapability,
  parseCapability,
  type DepotAddress,
  type IbpClient,
  NfuParamKind,
  type NfuParamSpec,
} from '../../ibp/index.js';
import { depotId, type DatasetReplica } from './dataset-shape.js';
import type { OpAnswer, OpAttempt, OpRunner, OpSpec } from './op-runner.js';
import { nfuReplyBytes, nfuRequestBytes } from './wire-bytes.js';

const registry = builtinRegistry();
/** The client's server-side timeout token (seconds), as it writes it on every line. */
const WIRE_TIMEOUT_SEC = 30;
/** Lease of the temporary allocation a transferred block lands in (seconds). */
export const DEFAULT_TRANSFER_LEASE_SEC = 300;
/** How long a depot's advertised NFU ops are trusted before STATUS is asked again (ms). */
export const DEFAULT_OFFERS_TTL_MS = 60_000;

export interface IbpOpRunnerOptions {
  /** Depots that may run ops on blocks copied to them (transfer, then transform). Default: none besides the replicas' depots. */
  readonly helpers?: readonly DepotAddress[];
  readonly statusPassword?: string;
  readonly transferLeaseSec?: number;
  readonly offersTtlMs?: number;
}

/** An op failed for a reason the engine should not retry elsewhere (a bad job, not a bad depot). */
export class NoDepotOffersOpError extends Error {
  override readonly name = 'NoDepotOffersOpError';
}

/**
 * The {@link OpRunner} over IBP: one NFU op per block on the replica's depot (`runKernel`), or, when that
 * depot does not advertise the op, the block is copied depot-to-depot (SEND) into a temporary allocation on
 * a depot that does, transformed there, and the temporary released. Wire bytes are counted as the client
 * frames them (request lines, parameters, replies) plus the copied block.
 */
export class IbpOpRunner implements OpRunner {
  readonly #client: IbpClient;
  readonly #helpers: readonly DepotAddress[];
  readonly #password: string;
  readonly #leaseSec: number;
  readonly #ttlMs: number;
  readonly #offers = new Map<string, { at: number; ops: Promise<ReadonlySet<number>> }>();
  /** The settled inquiries of {@link #offers}. */
  readonly #known = new Map<string, { at: number; ops: ReadonlySet<number> }>();
  #nextHelper = 0;

  constructor(client: IbpClient, options: IbpOpRunnerOptions = {}) {
    this.#client = client;
    this.#helpers = options.helpers ?? [];
    this.#password = options.statusPassword ?? DEFAULT_STATUS_PASSWORD;
    this.#leaseSec = options.transferLeaseSec ?? DEFAULT_TRANSFER_LEASE_SEC;
    this.#ttlMs = options.offersTtlMs ?? DEFAULT_OFFERS_TTL_MS;
  }

  /** NFU opcodes a depot advertises in STATUS, cached per depot for `offersTtlMs`. */
  advertised(depot: DepotAddress): Promise<ReadonlySet<number>> {
    const key = depotId(depot);
    const now = Date.now();
    const hit = this.#offers.get(key);
    if (hit !== undefined && now - hit.at < this.#ttlMs) return hit.ops;
    const ops = this.#client.status(depot, { password: this.#password }).then((inq) => {
      const set: ReadonlySet<number> = new Set(inq.nfuOps);
      this.#known.set(key, { at: now, ops: set });
      return set;
    });
    // A failed inquiry is not cached: the depot may come back.
    ops.catch(() => this.#offers.delete(key));
    this.#offers.set(key, { at: now, ops });
    return ops;
  }

  /** The cached advertised ops of a depot when known and fresh (no await on the per-op path). */
  #advertisedNow(depot: DepotAddress): ReadonlySet<number> | undefined {
    const hit = this.#known.get(depotId(depot));
    return hit !== undefined && Date.now() - hit.at < this.#ttlMs ? hit.ops : undefined;
  }

  async offers(depots: readonly DepotAddress[], op: OpSpec['name']): Promise<ReadonlyMap<string, boolean>> {
    const opcode = opcodeOf(op);
    const out = new Map<string, boolean>();
    await Promise.all(
      depots.map(async (d) => {
        const ops = await this.advertised(d).catch(() => undefined);
        if (ops !== undefined) out.set(depotId(d), ops.has(opcode));
      }),
    );
    return out;
  }

  /** Runs one attempt (the engine's promise form); see {@link run}. */
  execute(attempt: OpAttempt): Promise<OpAnswer> {
    return this.#execute(attempt);
  }

  run(attempt: OpAttempt): Observable<OpAnswer> {
    // Cold: the attempt starts on subscription; after an unsubscribe its result is dropped (the client has
    // no per-call abort, so an abandoned call ends by its own timeout, which destroys its connection).
    return defer(() => this.#execute(attempt));
  }

  async #execute(attempt: OpAttempt): Promise<OpAnswer> {
    const { replica, op } = attempt;
    const opcode = opcodeOf(op.name);
    const ops = this.#advertisedNow(replica.depot) ?? (await this.advertised(replica.depot));
    if (ops.has(opcode)) {
      const { output, wireBytes } = await this.#nfu(attempt, replica.depot, {
        cap: replica.read,
        offset: replica.allocOffset,
        length: replica.length,
      });
      return { output, wireBytes, ranOn: depotId(replica.depot), transferred: false };
    }
    return this.#transferThenTransform(attempt, opcode);
  }

  async #transferThenTransform(attempt: OpAttempt, opcode: number): Promise<OpAnswer> {
    const { replica } = attempt;
    const target = await this.#pickHelper(attempt, opcode);
    const started = Date.now();
    const left = (): number => Math.max(1, attempt.timeoutMs - (Date.now() - started));
    const caps = await this.#client.allocate(target, { size: replica.length, durationSec: this.#leaseSec });
    const readCap = formatCapability(caps.read);
    const writeCap = formatCapability(caps.write);
    const manageCap = formatCapability(caps.manage);
    let wire =
      `1 ${Command.ALLOCATE} 0 2 1 ${this.#leaseSec} ${replica.length} ${WIRE_TIMEOUT_SEC}\n`.length +
      allocateReply(readCap, writeCap, manageCap).length;
    let released = false;
    try {
      const [key, wrm] = capTokens(parseCapability(replica.read)!);
      await this.#client.copy(replica.read, caps.write, {
        offset: replica.allocOffset,
        length: replica.length,
        timeoutMs: left(),
      });
      wire +=
        `1 ${Command.SEND} ${key} ${writeCap} ${wrm} ${replica.allocOffset} ${replica.length} ${WIRE_TIMEOUT_SEC} ${WIRE_TIMEOUT_SEC} ${WIRE_TIMEOUT_SEC}\n`
          .length +
        countReply(replica.length).length +
        replica.length;
      const { output, wireBytes } = await this.#nfu({ ...attempt, timeoutMs: left() }, target, {
        cap: readCap,
        offset: 0,
        length: replica.length,
      });
      await this.#client.decr(caps.manage, 'read');
      released = true;
      const [mkey, mwrm] = capTokens(caps.manage);
      wire +=
        `1 ${Command.MANAGE} ${mkey} ${mwrm} ${ManageOp.DECR} ${CapType.READ} ${WIRE_TIMEOUT_SEC}\n`.length + OK_REPLY.length;
      return { output, wireBytes: wire + wireBytes, ranOn: depotId(target), transferred: true };
    } finally {
      if (!released) await this.#client.decr(caps.manage, 'read').catch(() => undefined);
    }
  }

  /** A depot advertising the op: the block's other replicas' depots first, then the helpers, round robin. */
  async #pickHelper(attempt: OpAttempt, opcode: number): Promise<DepotAddress> {
    const candidates: DepotAddress[] = [
      ...attempt.block.replicas.map((r: DatasetReplica) => r.depot).filter((d) => depotId(d) !== depotId(attempt.replica.depot)),
      ...this.#helpers,
    ];
    const n = candidates.length;
    for (let i = 0; i < n; i++) {
      const d = candidates[(this.#nextHelper + i) % n]!;
      const ops = await this.advertised(d).catch(() => undefined);
      if (ops?.has(opcode) === true) {
        this.#nextHelper = (this.#nextHelper + i + 1) % n;
        return d;
      }
    }
    throw new NoDepotOffersOpError(
      `no depot offers NFU op ${attempt.op.name} for block ${attempt.block.index} (replica on ${depotId(attempt.replica.depot)})`,
    );
  }

  async #nfu(
    attempt: OpAttempt,
    depot: DepotAddress,
    input: { cap: string; offset: number; length: number },
  ): Promise<{ output: Uint8Array; wireBytes: number }> {
    const { dataset, block, op } = attempt;
    const attrs = {
      dtype: dataset.dtype,
      rows: block.rows,
      cols: dataset.cols,
      rowOffset: block.rowStart,
      blockId: block.index,
      ...op.attrs,
    };
    const returnBytes = op.outputBytes(dataset, block);
    // runKernel's parameters for a one-input op returning its output, built once: sent and counted.
    const params: NfuParamSpec[] = [
      { kind: NfuParamKind.VAL_IN, data: encodeAttrs(attrs) },
      { kind: NfuParamKind.REF_RD, cap: input.cap, offset: input.offset, length: input.length },
      { kind: NfuParamKind.VAL_OUT, length: returnBytes },
    ];
    const opcode = opcodeOf(op.name);
    const values = await this.#client.nfu(depot, opcode, params, attempt.timeoutMs);
    const output = values.get(2);
    if (output === undefined) throw new Error(`NFU op ${op.name} on ${depotId(depot)} returned no output`);
    const wireBytes = nfuRequestBytes(opcode, params) + nfuReplyBytes([[2, output]]);
    return { output, wireBytes };
  }
}

/** Opcodes by kernel name, looked up once each. */
const opcodes = new Map<string, number>();
function opcodeOf(name: string): number {
  let code = opcodes.get(name);
  if (code === undefined) opcodes.set(name, (code = registry.byNameOrThrow(name).opcode));
  return code;
}
