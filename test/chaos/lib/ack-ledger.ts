import { createHash } from 'node:crypto';
import type { AllocationCaps } from '../../../ibp/index.js';

/** A STORE (append), WRITE or SEND that was sent and not acknowledged: it may or may not have landed. */
export interface PendingOp {
  readonly offset: number;
  readonly body: Buffer;
  readonly append: boolean;
}

/** One allocation as the ledger knows it. */
export interface LedgerEntry {
  readonly id: number;
  readonly caps: AllocationCaps;
  readonly maxSize: number;
  /** Which depot (index) holds it. */
  readonly depot: number;
  /** Every acknowledged byte, in place. */
  data: Buffer;
  /** An op whose outcome is unknown; no other write is issued until it is resolved. */
  pending: PendingOp | undefined;
  /** An op is in flight on it. */
  busy: boolean;
  /** Counted as lost already (the allocation is gone). */
  lost: boolean;
}

/** What the checker found. */
export interface LedgerFigures {
  /** Acknowledged bytes (stores, writes and copies). */
  ackedBytes: number;
  ackedOps: number;
  /** Ops that failed with their effect unknown (later resolved as landed or not). */
  unknownOps: number;
  unknownLanded: number;
  /** Acknowledged bytes that were not found again. */
  ackedLost: number;
  /** Bytes returned that match neither the acknowledged state nor an allowed outcome of a pending op. */
  wrongBytes: number;
  /** Reads checked, and bytes checked by them. */
  readsChecked: number;
  bytesChecked: number;
}

/**
 * A Jepsen-style set checker for byte arrays: it records every acknowledged byte with the allocation it
 * went to, and checks every byte read back against it. An op that failed leaves its allocation in a
 * "state unknown" that the next full read resolves (an append landed whole or not at all; each byte
 * of an interrupted overwrite is old or new).
 */
export class AckLedger {
  readonly entries: LedgerEntry[] = [];
  readonly figures: LedgerFigures = {
    ackedBytes: 0,
    ackedOps: 0,
    unknownOps: 0,
    unknownLanded: 0,
    ackedLost: 0,
    wrongBytes: 0,
    readsChecked: 0,
    bytesChecked: 0,
  };

  track(caps: AllocationCaps, maxSize: number, depot: number, initial: Buffer = Buffer.alloc(0)): LedgerEntry {
    const e: LedgerEntry = {
      id: this.entries.length,
      caps,
      maxSize,
      depot,
      data: initial,
      pending: undefined,
      busy: false,
      lost: false,
    };
    this.entries.push(e);
    return e;
  }

  /** An acknowledged append (STORE, or a SEND into it) or overwrite (WRITE). */
  acked(e: LedgerEntry, op: PendingOp): void {
    e.data = apply(e.data, op);
    this.figures.ackedBytes += op.body.length;
    this.figures.ackedOps++;
  }

  /** The op failed: its effect is unknown until {@link resolve}. */
  unknown(e: LedgerEntry, op: PendingOp): void {
    e.pending = op;
    this.figures.unknownOps++;
  }

  /**
   * Checks bytes read at `offset`; returns the count of wrong ones (also added to the figures). With an
   * unresolved op, a byte is right if it matches the state before or after it.
   */
  checkRead(e: LedgerEntry, offset: number, got: Uint8Array): number {
    const after = e.pending === undefined ? undefined : apply(e.data, e.pending);
    let wrong = 0;
    for (let i = 0; i < got.length; i++) {
      const at = offset + i;
      const b = got[i]!;
      const before = at < e.data.length ? e.data[at] : undefined;
      const then = after !== undefined && at < after.length ? after[at] : undefined;
      if (b !== before && b !== then) wrong++;
    }
    this.figures.readsChecked++;
    this.figures.bytesChecked += got.length;
    this.figures.wrongBytes += wrong;
    return wrong;
  }

  /** Whether `digest` is the SHA-256 of `[offset, offset + length)` in the acknowledged (or pending-applied) state. */
  digestMatches(e: LedgerEntry, offset: number, length: number, digest: Uint8Array): boolean {
    const states = [e.data, ...(e.pending === undefined ? [] : [apply(e.data, e.pending)])];
    const hex = Buffer.from(digest).toString('hex');
    return states.some(
      (s) =>
        createHash('sha256')
          .update(s.subarray(offset, offset + length))
          .digest('hex') === hex,
    );
  }

  /**
   * Resolves an entry from a full read (`size` from PROBE and all its bytes): counts acknowledged bytes
   * missing as lost and bytes matching no allowed state as wrong, then adopts what the depot holds.
   */
  resolve(e: LedgerEntry, held: Buffer): void {
    const p = e.pending;
    const acked = e.data.length;
    const after = p === undefined ? e.data : apply(e.data, p);
    if (held.length < acked) this.figures.ackedLost += acked - held.length;
    const longest = Math.max(acked, after.length);
    if (held.length > longest) this.figures.wrongBytes += held.length - longest;
    const within = held.subarray(0, Math.min(held.length, longest));
    if (p !== undefined && p.append && held.length === after.length) {
      // the append landed: every byte must be the new state's
      this.figures.readsChecked++;
      this.figures.bytesChecked += within.length;
      for (let i = 0; i < within.length; i++) if (within[i] !== after[i]) this.figures.wrongBytes++;
    } else if (p !== undefined && p.append) {
      // it did not land: only the acknowledged bytes may be there
      this.figures.readsChecked++;
      this.figures.bytesChecked += within.length;
      for (let i = 0; i < within.length; i++) if (i >= acked || within[i] !== e.data[i]) this.figures.wrongBytes++;
    } else {
      this.checkRead(e, 0, within);
    }
    if (p !== undefined && !held.equals(e.data)) this.figures.unknownLanded++;
    e.pending = undefined;
    e.data = Buffer.from(held);
  }

  /** The allocation is gone (answered "not found" where it should exist): all its acknowledged bytes are lost. */
  gone(e: LedgerEntry): void {
    if (e.lost) return;
    e.lost = true;
    this.figures.ackedLost += e.data.length;
    e.pending = undefined;
  }
}

function apply(data: Buffer, op: PendingOp): Buffer {
  if (op.append) return Buffer.concat([data, op.body]);
  const end = op.offset + op.body.length;
  const out = Buffer.alloc(Math.max(data.length, end));
  data.copy(out);
  op.body.copy(out, op.offset);
  return out;
}
