import { ClientError, type Capability, type DepotAddress, type IbpClient } from '../../../ibp/index.js';
import type { AckLedger, LedgerEntry, PendingOp } from './ack-ledger.js';
import type { Prng } from './prng.js';

/** The op kinds of the mixed load. */
export type OpKind = 'allocate' | 'store' | 'write' | 'load' | 'copy' | 'nfu' | 'resolve';

export interface MixedLoadOptions {
  /** Concurrent workers (each runs one op at a time). */
  readonly workers: number;
  /** Ops in all. */
  readonly ops: number;
  /** Wall-clock bound of the whole load (ms); workers stop at it. */
  readonly deadlineMs: number;
  /** An op not settled this long after it started counts as a hang (it is then abandoned). */
  readonly hangMs: number;
  /** Allocations to keep in play. */
  readonly maxAllocations: number;
  /** Size of each allocation. */
  readonly allocationBytes: number;
  /** Largest single STORE/WRITE body. */
  readonly maxBodyBytes: number;
  readonly transfers: boolean;
  readonly nfu: boolean;
}

export interface LoadFigures {
  ops: number;
  ok: number;
  failed: number;
  hangs: number;
  byKind: Record<string, number>;
  /** Failures by error code. */
  errors: Record<string, number>;
  /** NFU digests matching no allowed state of the allocation. */
  nfuWrong: number;
  /** Appends (STORE, SEND) the depot refused with a status that were later found visible: must be 0. */
  refusedButChanged: number;
  /** Overwrites (WRITE) the depot refused that changed part of their range (documented: state unknown). */
  refusedWritePartial: number;
}

/** Where the load sends its requests: the depots, and how the client reaches each (a proxy, or direct). */
export interface LoadTarget {
  /** Number of depots. */
  readonly count: number;
  /** The depot's own address (written into its caps). */
  depot(i: number): DepotAddress;
  /** The address the client uses to reach depot `i` (default: the depot's own). */
  via?(i: number): DepotAddress;
}

/** Settles `p` or reports a hang after `ms`. */
async function bounded<T>(
  p: Promise<T>,
  ms: number,
): Promise<{ hung: true } | { hung: false; value: T } | { hung: false; error: unknown }> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<{ hung: true }>((resolve) => (timer = setTimeout(() => resolve({ hung: true }), ms)));
  try {
    return await Promise.race([
      p.then(
        (value) => ({ hung: false as const, value }),
        (error: unknown) => ({ hung: false as const, error }),
      ),
      hang,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

const codeOf = (e: unknown): string => (e instanceof ClientError ? e.code : e instanceof Error ? e.name : 'unknown');
/**
 * A status the depot answered that means "nothing was done". Not `-66` (overload, retried) nor `-13`: a
 * transfer whose remote depot broke off leaves the destination's state unknown, as a timeout would
 * (docs/reliability.md) — the destination may have taken the bytes before the link failed.
 */
const isDepotRefusal = (e: unknown): boolean =>
  e instanceof ClientError && e.status !== undefined && e.status < 0 && e.status !== -66 && e.status !== -13;

/**
 * A seeded mixed load of stores, writes, loads, depot-to-depot copies and NFU digests over several
 * depots, every acknowledged byte recorded in an {@link AckLedger} and every byte read checked
 * against it. `between` runs before each op (the scenario's fault schedule).
 */
export class MixedLoad {
  readonly figures: LoadFigures = {
    ops: 0,
    ok: 0,
    failed: 0,
    hangs: 0,
    byKind: {},
    errors: {},
    nfuWrong: 0,
    refusedButChanged: 0,
    refusedWritePartial: 0,
  };
  private issued = 0;
  private readonly refused = new WeakSet<LedgerEntry>();

  constructor(
    private readonly client: IbpClient,
    private readonly ledger: AckLedger,
    private readonly rand: Prng,
    private readonly target: LoadTarget,
    private readonly options: MixedLoadOptions,
  ) {}

  async run(between?: (op: number) => Promise<void> | void): Promise<LoadFigures> {
    const deadline = Date.now() + this.options.deadlineMs;
    const workers = Array.from({ length: this.options.workers }, () => this.rand.fork());
    await Promise.all(
      workers.map(async (r) => {
        while (this.issued < this.options.ops && Date.now() < deadline) {
          const n = this.issued++;
          if (between !== undefined) await between(n);
          await this.one(r);
        }
      }),
    );
    return this.figures;
  }

  /** Reads every live allocation in full and resolves it in the ledger (after the faults stopped). */
  async verifyAll(): Promise<void> {
    for (const e of this.ledger.entries) {
      if (e.lost) continue;
      try {
        // A few attempts: a pooled connection may still carry an old fault.
        let held: Buffer | 'gone' | undefined;
        for (let attempt = 0; held === undefined; attempt++) {
          held = await this.readAll(e).catch((err: unknown) => {
            if (attempt >= 2) throw err;
            return undefined;
          });
        }
        if (held === 'gone') this.ledger.gone(e);
        else this.settle(e, held);
      } catch (err) {
        // unreadable after recovery: counted as lost
        this.figures.errors[`verify:${codeOf(err)}`] = (this.figures.errors[`verify:${codeOf(err)}`] ?? 0) + 1;
        this.ledger.gone(e);
      }
    }
  }

  private via(i: number): DepotAddress {
    return this.target.via?.(i) ?? this.target.depot(i);
  }

  private route(e: LedgerEntry, cap: Capability): Capability {
    const v = this.via(e.depot);
    return { ...cap, host: v.host, port: v.port };
  }

  private settle(e: LedgerEntry, held: Buffer): void {
    const before = e.data;
    const p = e.pending;
    this.ledger.resolve(e, held);
    if (p !== undefined && this.refused.has(e) && !held.equals(before)) {
      if (p.append) this.figures.refusedButChanged++;
      else this.figures.refusedWritePartial++;
    }
    this.refused.delete(e);
  }

  private async readAll(e: LedgerEntry): Promise<Buffer | 'gone'> {
    let size: number;
    try {
      size = (await this.client.probe(this.route(e, e.caps.manage))).size;
    } catch (err) {
      if (err instanceof ClientError && err.status === -4) return 'gone';
      throw err;
    }
    return size === 0 ? Buffer.alloc(0) : await this.client.load(this.route(e, e.caps.read), 0, size);
  }

  private pickEntry(r: Prng, pred: (e: LedgerEntry) => boolean): LedgerEntry | undefined {
    const live = this.ledger.entries.filter((e) => !e.busy && !e.lost && pred(e));
    return live.length === 0 ? undefined : r.pick(live);
  }

  private async one(r: Prng): Promise<void> {
    const o = this.options;
    const live = this.ledger.entries.filter((e) => !e.lost).length;
    let kind: OpKind;
    const pendingOne = this.pickEntry(r, (e) => e.pending !== undefined);
    if (pendingOne !== undefined && r.chance(0.5)) kind = 'resolve';
    else if (live < o.maxAllocations && (live < 2 || r.chance(0.08))) kind = 'allocate';
    else {
      const x = r.next();
      kind = x < 0.3 ? 'store' : x < 0.5 ? 'write' : x < 0.8 ? 'load' : x < 0.9 && o.transfers ? 'copy' : o.nfu ? 'nfu' : 'load';
    }
    const entry =
      kind === 'resolve'
        ? pendingOne
        : kind === 'allocate'
          ? undefined
          : this.pickEntry(r, (e) =>
              kind === 'store'
                ? e.pending === undefined && e.data.length < e.maxSize
                : e.pending === undefined && e.data.length > 0,
            );
    if (kind !== 'allocate' && entry === undefined) kind = 'allocate';
    if (kind === 'allocate' && live >= o.maxAllocations) return;
    const extra: LedgerEntry[] = [];
    if (entry !== undefined) entry.busy = true;
    this.figures.ops++;
    this.figures.byKind[kind] = (this.figures.byKind[kind] ?? 0) + 1;
    const work = this.exec(kind, entry, r, extra);
    const out = await bounded(work, o.hangMs);
    if (out.hung) {
      this.figures.hangs++;
      // the op is abandoned; its entry stays busy so no later op races it
      return;
    }
    if (entry !== undefined) entry.busy = false;
    for (const x of extra) x.busy = false;
    if ('error' in out) {
      this.figures.failed++;
      const c = codeOf(out.error);
      this.figures.errors[c] = (this.figures.errors[c] ?? 0) + 1;
    } else this.figures.ok++;
  }

  private async exec(kind: OpKind, e: LedgerEntry | undefined, r: Prng, extra: LedgerEntry[]): Promise<void> {
    const o = this.options;
    switch (kind) {
      case 'allocate': {
        const d = r.int(0, this.target.count - 1);
        const caps = await this.client.allocate(this.via(d), { size: o.allocationBytes, durationSec: 3600 });
        this.ledger.track(caps, o.allocationBytes, d);
        return;
      }
      case 'resolve': {
        const held = await this.readAll(e!);
        if (held === 'gone') this.ledger.gone(e!);
        else this.settle(e!, held);
        return;
      }
      case 'store': {
        const len = r.int(1, Math.min(o.maxBodyBytes, e!.maxSize - e!.data.length));
        const op: PendingOp = { offset: e!.data.length, body: r.bytes(len), append: true };
        await this.write(e!, op, () => this.client.store(this.route(e!, e!.caps.write), op.body));
        return;
      }
      case 'write': {
        const offset = r.int(0, e!.data.length - 1);
        const len = r.int(1, Math.min(o.maxBodyBytes, e!.maxSize - offset));
        const op: PendingOp = { offset, body: r.bytes(len), append: false };
        await this.write(e!, op, () => this.client.write(this.route(e!, e!.caps.write), offset, op.body));
        return;
      }
      case 'load': {
        const offset = r.int(0, e!.data.length - 1);
        const len = r.int(1, Math.min(e!.data.length - offset, 256 * 1024));
        const got = await this.client.load(this.route(e!, e!.caps.read), offset, len);
        this.ledger.checkRead(e!, offset, got);
        return;
      }
      case 'nfu': {
        const offset = r.int(0, e!.data.length - 1);
        const len = r.int(1, e!.data.length - offset);
        const out = await this.client.nfu(this.via(e!.depot), 16, [
          { kind: 0, cap: e!.caps.read, offset, length: len },
          { kind: 4, length: 32 },
        ]);
        const digest = out.get(1);
        if (digest === undefined || !this.ledger.digestMatches(e!, offset, len, digest)) this.figures.nfuWrong++;
        return;
      }
      case 'copy': {
        const offset = r.int(0, e!.data.length - 1);
        const len = r.int(1, Math.min(e!.data.length - offset, o.allocationBytes));
        const d = r.int(0, this.target.count - 1);
        const caps = await this.client.allocate(this.via(d), { size: o.allocationBytes, durationSec: 3600 });
        const dest = this.ledger.track(caps, o.allocationBytes, d);
        dest.busy = true;
        extra.push(dest);
        const op: PendingOp = { offset: 0, body: Buffer.from(e!.data.subarray(offset, offset + len)), append: true };
        // The depots talk to each other directly: the destination cap names the depot itself.
        await this.write(dest, op, () => this.client.copy(this.route(e!, e!.caps.read), caps.write, { offset, length: len }));
        return;
      }
    }
  }

  private async write(e: LedgerEntry, op: PendingOp, send: () => Promise<number>): Promise<void> {
    try {
      const n = await send();
      if (n !== op.body.length) throw new Error(`acknowledged ${n} of ${op.body.length} bytes`);
      this.ledger.acked(e, op);
    } catch (err) {
      this.ledger.unknown(e, op);
      if (isDepotRefusal(err)) this.refused.add(e);
      throw err;
    }
  }
}
