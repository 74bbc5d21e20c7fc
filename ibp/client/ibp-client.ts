import { AllocationType, CapType, DEFAULT_STATUS_PASSWORD, Status, type CapTypeNumber } from '../protocol/commands.js';
import { formatCapability, parseCapability, type Capability } from '../protocol/caps.js';
import {
  formatAccre,
  formatAllocate,
  formatLoad,
  formatManage,
  formatNfu,
  formatPull,
  formatPush,
  formatSend,
  formatStatus,
  formatStore,
  formatWrite,
  keyRefOf,
} from '../protocol/format.js';
import { NfuParamKind, type AccreRequest, type IoRange, type ManageRequest } from '../protocol/requests.js';
import { encodeNfuParam, isNfuRefKind } from '../protocol/nfu-framing.js';
import type { ProbeFields } from '../protocol/reply.js';
import { IbpProtocolError } from '../errors.js';
import { ClientError, ClientErrorCode } from './client-error.js';
import { DepotConnection } from './depot-connection.js';
import { parseInquiryV0, parseInquiryV1, type DepotInquiry, type DepotInquiryV0 } from './inquiry.js';

/** Request timeout when none is given (ms). */
export const DEFAULT_CLIENT_TIMEOUT_MS = 30_000;
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
/** Idle connections kept per depot for reuse. */
export const DEFAULT_MAX_IDLE_PER_DEPOT = 4;
/** Idle connections are closed after this long (below the depots' 60 s idle limit). */
export const DEFAULT_IDLE_CLOSE_MS = 30_000;
/** Bodies up to this size are sent right behind the command, without waiting for the go-ahead. */
export const DEFAULT_EAGER_BODY_BYTES = 64 * 1024;
/** Server-side timeout token sent with each command (seconds). */
const WIRE_TIMEOUT_SEC = 30;
/** NFU lines carry no timeout token (the LoCI wire); the depot reads its absence as this default. */
const NFU_WIRE_TIMEOUT_SEC = 2;

export interface IbpClientOptions {
  readonly timeoutMs?: number;
  readonly connectTimeoutMs?: number;
  readonly maxIdlePerDepot?: number;
  readonly idleCloseMs?: number;
  readonly eagerBodyBytes?: number;
}

/** Where a depot listens. */
export interface DepotAddress {
  readonly host: string;
  readonly port: number;
}

export interface AllocateOptions {
  /** Bytes to reserve. */
  readonly size: number;
  /** Lease in seconds; -1 asks for the resource's maximum. */
  readonly durationSec: number;
  /** Resource id; `'0'` (default) lets the depot choose. */
  readonly rid?: string;
  readonly reliability?: 'soft' | 'hard';
  /** Use the v0 form (no RID), as old LoRS/libdlt clients do. */
  readonly v0?: boolean;
  /** Allocation type (LoCI): byte array (default), buffer, FIFO or circular queue. */
  readonly type?: 'bytearray' | 'buffer' | 'fifo' | 'cirq';
}

const TYPE_NUMBER = { bytearray: 1, buffer: 2, fifo: 3, cirq: 4 } as const;

/** An alias's own status (ALIAS_MANAGE PROBE). */
export interface AliasProbe {
  readonly readRefs: number;
  readonly writeRefs: number;
  readonly offset: number;
  /** 0: to the end of the allocation. */
  readonly length: number;
  readonly secondsLeft: number;
}

export interface AllocationCaps {
  readonly read: Capability;
  readonly write: Capability;
  readonly manage: Capability;
}

/** A PROBE reply: reference counts, current and max size, seconds left, reliability, type. */
export type ProbeResult = ProbeFields;

/** One NFU parameter as the client sends it (LoCI wire: `IOTYPE OFFSET LEN DATALEN` + data). */
export interface NfuParamSpec {
  /** 0 REF_RD, 1 REF_WR, 2 REF_RDWR, 3 VAL_IN, 4 VAL_OUT, 5 VAL_INOUT. */
  readonly kind: 0 | 1 | 2 | 3 | 4 | 5;
  readonly offset?: number;
  /** Range length for REF_* (0 = to the end), max bytes back for VAL_OUT. */
  readonly length?: number;
  /** The capability, for REF_* kinds. */
  readonly cap?: Capability | string;
  /** The bytes, for VAL_IN / VAL_INOUT. */
  readonly data?: Uint8Array;
}

/** The sub-command part of a MANAGE request. */
type ManageOperation = ManageRequest extends infer R
  ? R extends unknown
    ? Omit<R, 'command' | 'version' | 'cap' | 'timeoutSec'>
    : never
  : never;

/**
 * Produces a body: calls `write` with consecutive chunks totalling the announced length. `write`
 * resolves once the chunk's bytes are in the kernel: the source may then change or reuse its memory.
 */
export type BodySource = (write: (chunk: Uint8Array) => Promise<void>) => Promise<void>;

export interface TransferOptions {
  /** Bytes to move. */
  readonly length: number;
  /** Offset in the source allocation (SEND) or local allocation (PUSH/PULL). Default 0. */
  readonly offset?: number;
  /** Offset in the remote allocation for PUSH/PULL; -1 (default) appends. */
  readonly remoteOffset?: number;
  /** Request timeout for this transfer (default: the client's). */
  readonly timeoutMs?: number;
}

export interface ChangeOptions {
  readonly maxSize: number;
  /** New lease in seconds from now; negative leaves it unchanged. */
  readonly durationSec: number;
  /** 1 soft, 2 hard, -1 unchanged. */
  readonly reliability?: number;
}

function positiveInt(value: number, name: string, min = 0): void {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new ClientError(ClientErrorCode.INVALID_ARGUMENT, `\`${name}\` must be an integer >= ${min} (got ${value})`);
  }
}

/**
 * Runs a command-line encoder; an argument it refuses (a token with spaces, an out-of-range number)
 * becomes `CLIENT_ERR_INVALID_ARGUMENT`, and nothing is sent.
 */
function encode(what: string, build: () => string): string {
  try {
    return build();
  } catch (err) {
    if (IbpProtocolError.isIbpProtocolError(err)) {
      throw new ClientError(ClientErrorCode.INVALID_ARGUMENT, `${what}: ${err.message}`, { cause: err });
    }
    throw err;
  }
}

function asCap(cap: Capability | string, need: CapTypeNumber, what: string): Capability {
  const parsed = typeof cap === 'string' ? parseCapability(cap) : cap;
  if (parsed === undefined) throw new ClientError(ClientErrorCode.INVALID_ARGUMENT, `${what}: not a valid IBP capability`);
  if (parsed.type !== need) {
    const words = { 1: 'read', 2: 'write', 3: 'manage' } as const;
    throw new ClientError(
      ClientErrorCode.INVALID_ARGUMENT,
      `${what} needs a ${words[need]} capability (got a ${words[parsed.type]} one)`,
    );
  }
  return parsed;
}

/**
 * An IBP client: the core calls of the protocol against any IBP depot (Anvil, ACCRE, LoCI),
 * over pooled persistent connections, with a deadline per request and typed errors.
 *
 * Every call rejects with a {@link ClientError}; match on its `code`:
 * - `CLIENT_ERR_INVALID_ARGUMENT`: an argument is invalid (wrong cap type, a token with spaces, a
 *   number out of range); nothing was sent.
 * - `IBP_E_<NAME>` (e.g. `IBP_E_CAP_NOT_FOUND`, `status` -4): the depot refused; `status` holds the
 *   IBP status, and `retryAfterSec` the delay of a `-66 <seconds>` overload answer.
 * - `CLIENT_ERR_TIMEOUT`, `CLIENT_ERR_CONNECTION`: no reply in time, or no connection / a broken one.
 * - `CLIENT_ERR_PROTOCOL`: the reply did not have the expected shape.
 * - `CLIENT_ERR_CLOSED`: {@link IbpClient.close} was called.
 *
 * @example
 * const client = new IbpClient();
 * const caps = await client.allocate({ host: '127.0.0.1', port: 6714 }, { size: 1024, durationSec: 3600 });
 * await client.store(caps.write, Buffer.from('hello'));
 * const bytes = await client.load(caps.read, 0, 5);
 * client.close();
 */
export class IbpClient {
  private readonly idle = new Map<string, DepotConnection[]>();
  private readonly busy = new Set<DepotConnection>();
  private readonly timeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly maxIdlePerDepot: number;
  private readonly idleCloseMs: number;
  private readonly eagerBodyBytes: number;
  private readonly reaper: NodeJS.Timeout;
  private closed = false;

  /** @throws {ClientError} `CLIENT_ERR_INVALID_ARGUMENT` for an option that is not a positive integer. */
  constructor(options: IbpClientOptions = {}) {
    this.timeoutMs = options.timeoutMs ?? DEFAULT_CLIENT_TIMEOUT_MS;
    this.connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.maxIdlePerDepot = options.maxIdlePerDepot ?? DEFAULT_MAX_IDLE_PER_DEPOT;
    this.idleCloseMs = options.idleCloseMs ?? DEFAULT_IDLE_CLOSE_MS;
    this.eagerBodyBytes = options.eagerBodyBytes ?? DEFAULT_EAGER_BODY_BYTES;
    positiveInt(this.timeoutMs, 'timeoutMs', 1);
    positiveInt(this.connectTimeoutMs, 'connectTimeoutMs', 1);
    positiveInt(this.maxIdlePerDepot, 'maxIdlePerDepot');
    positiveInt(this.idleCloseMs, 'idleCloseMs', 1);
    positiveInt(this.eagerBodyBytes, 'eagerBodyBytes');
    this.reaper = setInterval(() => this.reapIdle(), Math.min(this.idleCloseMs, 5_000));
    this.reaper.unref();
  }

  /**
   * ALLOCATE: reserves a byte array on a depot and returns its read, write and manage caps.
   *
   * @throws {ClientError} `IBP_E_ALLOC_FAILED` (-38, no capacity), `IBP_E_WOULD_EXCEED_LIMIT` (-19,
   * over the largest allocation), `IBP_E_LONG_DURATION` (-28), `IBP_E_INVALID_RID` (-50), or a code
   * listed on the class.
   */
  async allocate(depot: DepotAddress, options: AllocateOptions): Promise<AllocationCaps> {
    positiveInt(options.size, 'size', 1);
    if (!Number.isSafeInteger(options.durationSec) || (options.durationSec < 1 && options.durationSec !== -1)) {
      throw new ClientError(
        ClientErrorCode.INVALID_ARGUMENT,
        `\`durationSec\` must be positive or -1 (got ${options.durationSec})`,
      );
    }
    const rid = options.rid ?? '0';
    if (!/^\d{1,8}$/.test(rid))
      throw new ClientError(ClientErrorCode.INVALID_ARGUMENT, `\`rid\` must be a decimal id (got ${rid})`);
    const rel = options.reliability === 'soft' ? 1 : 2;
    const v0 = options.v0 === true;
    const line = encode('ALLOCATE', () =>
      formatAllocate({
        version: v0 ? 0 : 1,
        rid: v0 ? undefined : rid,
        reliability: rel,
        type: TYPE_NUMBER[options.type ?? 'bytearray'] ?? AllocationType.BYTEARRAY,
        durationSec: options.durationSec,
        size: options.size,
        timeoutSec: WIRE_TIMEOUT_SEC,
      }),
    );
    return this.run(depot, 'ALLOCATE', async (c) => {
      await c.send(line);
      return this.capsReply(c, 'ALLOCATE');
    });
  }

  private async capsReply(c: DepotConnection, what: string): Promise<AllocationCaps> {
    const t = await this.expectOk(c, what);
    const caps = t.slice(1, 4).map((s) => parseCapability(s));
    const [read, write, manage] = caps;
    if (read?.type !== CapType.READ || write?.type !== CapType.WRITE || manage?.type !== CapType.MANAGE) {
      throw this.protocolError(c, `${what} reply does not hold read, write and manage caps`);
    }
    return { read, write, manage };
  }

  /** Sends one ACCRE-extension line to the depot of `at` and returns its reply tokens. */
  private accre(at: Capability, what: string, req: AccreRequest): Promise<string[]> {
    const line = encode(what, () => formatAccre(req));
    return this.run(at, what, async (c) => {
      await c.send(line);
      return this.expectOk(c, what);
    });
  }

  /**
   * RENAME (ACCRE): new read, write and manage caps for the same allocation; the old caps stop working.
   *
   * @throws {ClientError} `IBP_E_CAP_NOT_FOUND` (-4), or a code listed on the class.
   */
  async rename(cap: Capability | string): Promise<AllocationCaps> {
    const m = asCap(cap, CapType.MANAGE, 'rename');
    const line = encode('RENAME', () =>
      formatAccre({ command: 'rename', version: 1, cap: keyRefOf(m), timeoutSec: WIRE_TIMEOUT_SEC }),
    );
    return this.run(m, 'RENAME', async (c) => {
      await c.send(line);
      return this.capsReply(c, 'RENAME');
    });
  }

  /**
   * ALIAS_ALLOCATE (ACCRE): caps limited to `[offset, offset + length)` of the allocation (`length` 0:
   * to its end); `durationSec` 0 keeps the allocation's lease.
   *
   * @throws {ClientError} `IBP_E_WOULD_EXCEED_LIMIT` (-19: range past the max size),
   * `IBP_E_LONG_DURATION` (-28: outlives the allocation), or a code listed on the class.
   */
  async aliasAllocate(
    cap: Capability | string,
    range: { offset: number; length: number; durationSec?: number },
  ): Promise<AllocationCaps> {
    const m = asCap(cap, CapType.MANAGE, 'aliasAllocate');
    positiveInt(range.offset, 'offset');
    positiveInt(range.length, 'length');
    const line = encode('ALIAS_ALLOCATE', () =>
      formatAccre({
        command: 'alias_allocate',
        version: 1,
        cap: keyRefOf(m),
        offset: range.offset,
        length: range.length,
        durationSec: range.durationSec ?? 0,
        timeoutSec: WIRE_TIMEOUT_SEC,
      }),
    );
    return this.run(m, 'ALIAS_ALLOCATE', async (c) => {
      await c.send(line);
      return this.capsReply(c, 'ALIAS_ALLOCATE');
    });
  }

  /** ALIAS_MANAGE PROBE: the alias's reference counts, range and time left. */
  async aliasProbe(aliasManage: Capability | string): Promise<AliasProbe> {
    const m = asCap(aliasManage, CapType.MANAGE, 'aliasProbe');
    const t = await this.accre(m, 'ALIAS_PROBE', {
      command: 'alias_manage',
      version: 1,
      cap: keyRefOf(m),
      op: 'probe',
      timeoutSec: WIRE_TIMEOUT_SEC,
    });
    const n = t.slice(1, 6).map(Number);
    if (n.length !== 5 || n.some((x) => !Number.isFinite(x)))
      throw new ClientError(ClientErrorCode.PROTOCOL, 'malformed ALIAS PROBE reply');
    const [readRefs, writeRefs, offset, length, secondsLeft] = n as [number, number, number, number, number];
    return { readRefs, writeRefs, offset, length, secondsLeft };
  }

  /** ALIAS_MANAGE DECR of the read count (the alias goes at read 0, write 0); needs the allocation's manage cap. */
  async aliasRemove(aliasManage: Capability | string, master: Capability | string): Promise<void> {
    const m = asCap(aliasManage, CapType.MANAGE, 'aliasRemove');
    const mm = asCap(master, CapType.MANAGE, 'aliasRemove');
    await this.accre(m, 'ALIAS_DECR', {
      command: 'alias_manage',
      version: 1,
      cap: keyRefOf(m),
      op: 'decr',
      capType: 1,
      master: keyRefOf(mm),
      timeoutSec: WIRE_TIMEOUT_SEC,
    });
  }

  /**
   * SPLIT_ALLOCATE (ACCRE): a new allocation of `size` bytes carved out of this one's max size (its
   * data past the new max size is cut).
   */
  async split(
    cap: Capability | string,
    options: { size: number; durationSec: number; reliability?: 'soft' | 'hard'; type?: AllocateOptions['type'] },
  ): Promise<AllocationCaps> {
    const m = asCap(cap, CapType.MANAGE, 'split');
    positiveInt(options.size, 'size', 1);
    const line = encode('SPLIT', () =>
      formatAccre({
        command: 'split',
        version: 1,
        cap: keyRefOf(m),
        reliability: options.reliability === 'soft' ? 1 : 2,
        type: TYPE_NUMBER[options.type ?? 'bytearray'],
        durationSec: options.durationSec,
        size: options.size,
        timeoutSec: WIRE_TIMEOUT_SEC,
      }),
    );
    return this.run(m, 'SPLIT', async (c) => {
      await c.send(line);
      return this.capsReply(c, 'SPLIT');
    });
  }

  /** MERGE_ALLOCATE (ACCRE): the child's space joins the master's; the child (refs read 1, write 0) is deleted. */
  async merge(master: Capability | string, child: Capability | string): Promise<void> {
    const m = asCap(master, CapType.MANAGE, 'merge');
    const ch = asCap(child, CapType.MANAGE, 'merge');
    await this.accre(m, 'MERGE', {
      command: 'merge',
      version: 1,
      cap: keyRefOf(m),
      child: keyRefOf(ch),
      timeoutSec: WIRE_TIMEOUT_SEC,
    });
  }

  /** VALIDATE_CHKSUM (ACCRE): reads the whole allocation through its block checksums; resolves with the number of bad blocks. */
  async validate(cap: Capability | string): Promise<number> {
    const m = asCap(cap, CapType.MANAGE, 'validate');
    const t = await this.accre(m, 'VALIDATE_CHKSUM', {
      command: 'validate_chksum',
      version: 1,
      cap: keyRefOf(m),
      flag: 0,
      timeoutSec: WIRE_TIMEOUT_SEC,
    });
    return Number(t[1]);
  }

  /** VEC_WRITE (ACCRE): writes `data` scattered over `ranges` (their lengths add up to `data.length`). */
  async vecWrite(cap: Capability | string, ranges: readonly IoRange[], data: Uint8Array): Promise<number> {
    const w = asCap(cap, CapType.WRITE, 'vecWrite');
    const total = ranges.reduce((n, r) => n + r.length, 0);
    if (total !== data.length) {
      throw new ClientError(ClientErrorCode.INVALID_ARGUMENT, `the ranges cover ${total} bytes; data has ${data.length}`);
    }
    const line = encode('VEC_WRITE', () =>
      formatAccre({ command: 'vec_write', version: 1, cap: keyRefOf(w), ranges, timeoutSec: WIRE_TIMEOUT_SEC }),
    );
    return this.sendBody(w, 'VEC_WRITE', line, data);
  }

  /** VEC_READ (ACCRE): the bytes of `ranges`, concatenated. */
  async vecRead(cap: Capability | string, ranges: readonly IoRange[]): Promise<Buffer> {
    const r = asCap(cap, CapType.READ, 'vecRead');
    const total = ranges.reduce((n, x) => n + x.length, 0);
    const line = encode('VEC_READ', () =>
      formatAccre({ command: 'vec_read', version: 1, cap: keyRefOf(r), ranges, timeoutSec: WIRE_TIMEOUT_SEC }),
    );
    return this.run(r, 'VEC_READ', async (c) => {
      await c.send(line);
      const t = await this.expectOk(c, 'VEC_READ');
      if (Number(t[1]) !== total) throw this.protocolError(c, `VEC_READ announced ${t[1]} bytes, ${total} were asked`);
      return c.readBytes(total);
    });
  }

  /**
   * LOAD of a consistent CIRQ window: the `length` stream bytes ending at write position `end`
   * (from {@link IbpClient.probe}'s `written`). Never torn by concurrent STOREs.
   *
   * @throws {ClientError} `IBP_E_WOULD_EXCEED_LIMIT` (-19: the window was overwritten),
   * `IBP_E_SERVER_TIMEOUT` (-46: `end` was not reached within the timeout), or a code listed on the class.
   */
  async loadWindow(cap: Capability | string, end: number, length: number): Promise<Buffer> {
    positiveInt(end, 'end', 1);
    return this.load(cap, end, length);
  }

  /**
   * STORE: appends `data` to the allocation; resolves with the byte count the depot acknowledged.
   *
   * @throws {ClientError} `IBP_E_CAP_NOT_FOUND` (-4: unknown key or expired lease),
   * `IBP_E_WOULD_EXCEED_LIMIT` (-19: past the max size), `IBP_E_RSRC_UNAVAIL` (-23: disk full), or a
   * code listed on the class.
   */
  async store(cap: Capability | string, data: Uint8Array): Promise<number> {
    const w = asCap(cap, CapType.WRITE, 'store');
    positiveInt(data.length, 'data.length', 1);
    const line = encode('STORE', () =>
      formatStore({ version: 1, cap: keyRefOf(w), length: data.length, timeoutSec: WIRE_TIMEOUT_SEC }),
    );
    return this.sendBody(w, 'STORE', line, data);
  }

  /**
   * WRITE: writes `data` at `offset` of the allocation.
   *
   * @throws {ClientError} as {@link IbpClient.store}.
   */
  async write(cap: Capability | string, offset: number, data: Uint8Array): Promise<number> {
    const w = asCap(cap, CapType.WRITE, 'write');
    positiveInt(offset, 'offset');
    positiveInt(data.length, 'data.length', 1);
    const line = encode('WRITE', () =>
      formatWrite({ version: 1, cap: keyRefOf(w), offset, length: data.length, timeoutSec: WIRE_TIMEOUT_SEC }),
    );
    return this.sendBody(w, 'WRITE', line, data);
  }

  /**
   * LOAD: reads `length` bytes at `offset`.
   *
   * @throws {ClientError} `IBP_E_CAP_NOT_FOUND` (-4), `IBP_E_WOULD_EXCEED_LIMIT` (-19: past the data),
   * `IBP_E_FILE_READ` (-15: the stored bytes failed verification), or a code listed on the class.
   */
  async load(cap: Capability | string, offset: number, length: number): Promise<Buffer> {
    const r = asCap(cap, CapType.READ, 'load');
    positiveInt(offset, 'offset');
    positiveInt(length, 'length', 1);
    const line = encode('LOAD', () => formatLoad({ version: 1, cap: keyRefOf(r), offset, length, timeoutSec: WIRE_TIMEOUT_SEC }));
    return this.run(r, 'LOAD', async (c) => {
      await c.send(line);
      const t = await this.expectOk(c, 'LOAD');
      if (Number(t[1]) !== length) throw this.protocolError(c, `LOAD announced ${t[1]} bytes, ${length} were asked`);
      return c.readBytes(length);
    });
  }

  /**
   * STORE (or WRITE at `offset`) of a body produced in chunks, for data that is not in one buffer
   * (a depot relaying a transfer). Waits for the go-ahead before the first byte.
   *
   * @throws {ClientError} as {@link IbpClient.store}; `CLIENT_ERR_INVALID_ARGUMENT` also when `source`
   * produces more or fewer than `length` bytes.
   */
  async storeFrom(
    cap: Capability | string,
    length: number,
    source: BodySource,
    offset = -1,
    timeoutMs = this.timeoutMs,
  ): Promise<number> {
    const w = asCap(cap, CapType.WRITE, 'storeFrom');
    positiveInt(length, 'length', 1);
    const what = offset < 0 ? 'STORE' : 'WRITE';
    const fields = { version: 1, cap: keyRefOf(w), length, timeoutSec: WIRE_TIMEOUT_SEC } as const;
    const line = encode(what, () => (offset < 0 ? formatStore(fields) : formatWrite({ ...fields, offset })));
    return this.run(
      w,
      what,
      async (c) => {
        await c.send(line);
        await this.expectOk(c, what);
        let sent = 0;
        await source(async (chunk) => {
          if (sent + chunk.length > length)
            throw new ClientError(ClientErrorCode.INVALID_ARGUMENT, `${what} body exceeds ${length} bytes`);
          sent += chunk.length;
          await c.sendWhole(chunk);
        });
        if (sent !== length)
          throw new ClientError(ClientErrorCode.INVALID_ARGUMENT, `${what} body has ${sent} of ${length} bytes`);
        const t = await this.expectOk(c, what);
        if (Number(t[1]) !== length) throw this.protocolError(c, `${what} acknowledged ${t[1]} of ${length} bytes`);
        return length;
      },
      timeoutMs,
    );
  }

  /**
   * LOAD delivered chunk by chunk to `sink` (awaited), for relaying without gathering.
   *
   * @throws {ClientError} as {@link IbpClient.load}, or what `sink` throws.
   */
  async loadTo(
    cap: Capability | string,
    offset: number,
    length: number,
    sink: (chunk: Buffer) => void | Promise<void>,
    timeoutMs = this.timeoutMs,
  ): Promise<void> {
    const r = asCap(cap, CapType.READ, 'loadTo');
    positiveInt(offset, 'offset');
    positiveInt(length, 'length', 1);
    const line = encode('LOAD', () => formatLoad({ version: 1, cap: keyRefOf(r), offset, length, timeoutSec: WIRE_TIMEOUT_SEC }));
    await this.run(
      r,
      'LOAD',
      async (c) => {
        await c.send(line);
        const t = await this.expectOk(c, 'LOAD');
        if (Number(t[1]) !== length) throw this.protocolError(c, `LOAD announced ${t[1]} bytes, ${length} were asked`);
        await c.readInto(length, sink);
      },
      timeoutMs,
    );
  }

  /**
   * SEND (depot-to-depot copy): the depot holding `source` appends `length` bytes from `offset`
   * to the allocation `destination` (a write cap, on any depot). Resolves with the byte count once
   * the destination acknowledged.
   *
   * @throws {ClientError} `IBP_E_CAP_NOT_FOUND` (-4), `IBP_E_WOULD_EXCEED_LIMIT` (-19),
   * `IBP_E_CONNECTION` (-13: the destination is unreachable, silent or not allowed), the destination's
   * own refusal relayed, or a code listed on the class.
   */
  async copy(source: Capability | string, destination: Capability | string, options: TransferOptions): Promise<number> {
    const src = asCap(source, CapType.READ, 'copy');
    const dest = asCap(destination, CapType.WRITE, 'copy');
    const offset = options.offset ?? 0;
    positiveInt(offset, 'offset');
    positiveInt(options.length, 'length', 1);
    const line = encode('SEND', () =>
      formatSend({
        version: 1,
        cap: keyRefOf(src),
        remote: dest,
        localOffset: offset,
        remoteOffset: -1,
        length: options.length,
        timeoutSec: WIRE_TIMEOUT_SEC,
      }),
    );
    return this.transfer(src, 'SEND', line, options);
  }

  /**
   * PUSH: the depot holding `source` writes `length` bytes from `offset` into `destination` at
   * `remoteOffset` (-1 appends).
   *
   * @throws {ClientError} as {@link IbpClient.copy}.
   */
  async push(source: Capability | string, destination: Capability | string, options: TransferOptions): Promise<number> {
    const src = asCap(source, CapType.READ, 'push');
    const dest = asCap(destination, CapType.WRITE, 'push');
    return this.pushPull('push', src, dest, options);
  }

  /**
   * PULL: the depot holding `local` (a write cap) fetches `length` bytes at `remoteOffset` of
   * `remote` (a read cap on another depot) into `local` at `offset` (-1 appends). Lets a depot
   * behind a firewall fetch from a public one.
   *
   * @throws {ClientError} as {@link IbpClient.copy}.
   */
  async pull(local: Capability | string, remote: Capability | string, options: TransferOptions): Promise<number> {
    const loc = asCap(local, CapType.WRITE, 'pull');
    const rem = asCap(remote, CapType.READ, 'pull');
    return this.pushPull('pull', loc, rem, {
      ...options,
      offset: options.offset ?? -1,
      remoteOffset: options.remoteOffset ?? 0,
    });
  }

  private pushPull(command: 'push' | 'pull', local: Capability, remote: Capability, options: TransferOptions): Promise<number> {
    const localOffset = options.offset ?? 0;
    const remoteOffset = options.remoteOffset ?? -1;
    for (const [v, name] of [
      [localOffset, 'offset'],
      [remoteOffset, 'remoteOffset'],
    ] as const) {
      if (!Number.isSafeInteger(v) || v < -1) {
        throw new ClientError(ClientErrorCode.INVALID_ARGUMENT, `\`${name}\` must be an integer >= -1 (got ${v})`);
      }
    }
    positiveInt(options.length, 'length', 1);
    const what = command === 'push' ? 'PUSH' : 'PULL';
    const fields = {
      version: 1,
      cap: keyRefOf(local),
      remote,
      localOffset,
      // Depots read a PULL's remote offset of -1 as 0 (it never appends remotely): say so on the wire.
      remoteOffset: command === 'pull' && remoteOffset === -1 ? 0 : remoteOffset,
      length: options.length,
      timeoutSec: WIRE_TIMEOUT_SEC,
    } as const;
    const line = encode(what, () => (command === 'push' ? formatPush(fields) : formatPull(fields)));
    return this.transfer(local, what, line, options);
  }

  private transfer(at: Capability, what: string, line: string, options: TransferOptions): Promise<number> {
    return this.run(
      at,
      what,
      async (c) => {
        await c.send(line);
        const t = await this.expectOk(c, what);
        const n = Number(t[1]);
        if (n !== options.length) throw this.protocolError(c, `${what} moved ${t[1]} of ${options.length} bytes`);
        return n;
      },
      options.timeoutMs ?? this.timeoutMs,
    );
  }

  /**
   * NFU (LoCI): runs op `opcode` at `depot` on the given parameters; resolves with the VAL_OUT /
   * VAL_INOUT values the depot returned, by parameter index.
   *
   * @throws {ClientError} `IBP_E_NFU_UNKNOWN` (-51: opcode not served), `IBP_E_NFU_DUP_PARA` (-52),
   * `IBP_E_INVALID_PARAMETER` (-30: bad attributes or shapes), `IBP_E_WOULD_EXCEED_LIMIT` (-19: output
   * too small), `IBP_E_SERVER_TIMEOUT` (-46: the op ran past the depot's limit),
   * `IBP_E_OUT_OF_SOCKETS` (-66, with `retryAfterSec`: the depot's NFU queue is full), or a code
   * listed on the class.
   */
  async nfu(
    depot: DepotAddress,
    opcode: number,
    params: readonly NfuParamSpec[],
    timeoutMs = this.timeoutMs,
  ): Promise<Map<number, Buffer>> {
    positiveInt(opcode, 'opcode');
    const head = encode('NFU', () =>
      formatNfu({ version: 1, opcode, paramCount: params.length, timeoutSec: NFU_WIRE_TIMEOUT_SEC }),
    );
    const parts: Array<string | Uint8Array> = [head];
    params.forEach((p, i) => {
      let data: Uint8Array;
      if (isNfuRefKind(p.kind)) {
        if (p.cap === undefined)
          throw new ClientError(ClientErrorCode.INVALID_ARGUMENT, `NFU parameter ${i}: a reference needs a cap`);
        data = Buffer.from(typeof p.cap === 'string' ? p.cap : formatCapability(p.cap), 'latin1');
      } else {
        data = p.kind === NfuParamKind.VAL_OUT ? new Uint8Array(0) : (p.data ?? new Uint8Array(0));
      }
      parts.push(...encodeNfuParam({ kind: p.kind, offset: p.offset ?? 0, length: p.length ?? 0 }, data));
    });
    parts.push('\n');
    return this.run(
      depot,
      'NFU',
      async (c) => {
        await c.send(...parts);
        await this.expectOk(c, 'NFU');
        const n = Number((await c.readTokens())[0]);
        if (!Number.isSafeInteger(n) || n < 0 || n > params.length) throw this.protocolError(c, `NFU announced ${n} outputs`);
        const out = new Map<number, Buffer>();
        for (let i = 0; i < n; i++) {
          const [index, len] = (await c.readTokens()).map(Number) as [number, number];
          if (!Number.isSafeInteger(len) || len < 0 || len > 1 << 30) throw this.protocolError(c, `NFU output of ${len} bytes`);
          out.set(index, await c.readBytes(len));
        }
        return out;
      },
      timeoutMs,
    );
  }

  /**
   * MANAGE PROBE: reference counts, sizes, time left, reliability and type.
   *
   * @throws {ClientError} `IBP_E_CAP_NOT_FOUND` (-4), or a code listed on the class.
   */
  async probe(cap: Capability | string): Promise<ProbeResult> {
    const m = asCap(cap, CapType.MANAGE, 'probe');
    const t = await this.manage(m, 'PROBE', { op: 'probe' });
    const n = t.slice(1, 8).map(Number);
    if (n.length !== 7 || n.some((x) => !Number.isFinite(x)))
      throw new ClientError(ClientErrorCode.PROTOCOL, `malformed PROBE reply`);
    const ring = t.slice(8, 10).map(Number);
    const [readRefs, writeRefs, size, maxSize, secondsLeft, reliability, type] = n as [
      number,
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    if (ring.length === 2 && ring.every((x) => Number.isSafeInteger(x))) {
      return { readRefs, writeRefs, size, maxSize, secondsLeft, reliability, type, written: ring[0]!, consumed: ring[1]! };
    }
    return { readRefs, writeRefs, size, maxSize, secondsLeft, reliability, type };
  }

  /**
   * MANAGE INCR: adds one to the read or write reference count.
   *
   * @throws {ClientError} `IBP_E_CAP_NOT_FOUND` (-4), or a code listed on the class.
   */
  async incr(cap: Capability | string, which: 'read' | 'write'): Promise<void> {
    const m = asCap(cap, CapType.MANAGE, 'incr');
    await this.manage(m, 'INCR', { op: 'incr', capType: which === 'read' ? CapType.READ : CapType.WRITE });
  }

  /**
   * MANAGE DECR: removes one from a reference count; the allocation is deleted when both reach 0.
   *
   * @throws {ClientError} `IBP_E_CAP_NOT_FOUND` (-4), or a code listed on the class.
   */
  async decr(cap: Capability | string, which: 'read' | 'write'): Promise<void> {
    const m = asCap(cap, CapType.MANAGE, 'decr');
    await this.manage(m, 'DECR', { op: 'decr', capType: which === 'read' ? CapType.READ : CapType.WRITE });
  }

  /**
   * MANAGE CHNG: new max size, lease and reliability (CHNG cannot cut data; see truncate).
   *
   * @throws {ClientError} `IBP_E_WOULD_DAMAGE_DATA` (-20: below the data held),
   * `IBP_E_WOULD_EXCEED_POLICY` (-45: lease too long), `IBP_E_WOULD_EXCEED_LIMIT` (-19),
   * `IBP_E_CAP_NOT_FOUND` (-4), or a code listed on the class.
   */
  async change(cap: Capability | string, options: ChangeOptions): Promise<void> {
    const m = asCap(cap, CapType.MANAGE, 'change');
    positiveInt(options.maxSize, 'maxSize', 1);
    const rel = options.reliability ?? -1;
    await this.manage(m, 'CHNG', {
      op: 'chng',
      capType: CapType.MANAGE,
      maxSize: options.maxSize,
      durationSec: options.durationSec,
      reliability: rel,
    });
  }

  /**
   * MANAGE TRUNCATE (ACCRE dialect): sets the max size, cutting data beyond it.
   *
   * @throws {ClientError} `IBP_E_CAP_NOT_FOUND` (-4), `IBP_E_WOULD_EXCEED_LIMIT` (-19), or a code
   * listed on the class.
   */
  async truncate(cap: Capability | string, size: number): Promise<void> {
    const m = asCap(cap, CapType.MANAGE, 'truncate');
    positiveInt(size, 'size');
    await this.manage(m, 'TRUNCATE', { op: 'truncate', size });
  }

  /**
   * STATUS ST_INQ (v1): the depot's resources and NFU ops. `rid` `'0'` (default) asks for all.
   *
   * @throws {ClientError} `IBP_E_WRONG_PASSWD` (-29), `IBP_E_INVALID_RID` (-50), or a code listed on
   * the class.
   */
  async status(depot: DepotAddress, options: { rid?: string; password?: string } = {}): Promise<DepotInquiry> {
    const rid = options.rid ?? '0';
    const password = options.password ?? DEFAULT_STATUS_PASSWORD;
    const line = encode('STATUS', () => formatStatus({ version: 1, op: 'inq', rid, password, timeoutSec: WIRE_TIMEOUT_SEC }));
    return this.run(depot, 'STATUS', async (c) => {
      await c.send(line);
      const t = await this.expectOk(c, 'STATUS');
      const n = Number(t[1]);
      if (!Number.isSafeInteger(n) || n < 1 || n > 1024 * 1024) throw this.protocolError(c, `STATUS announced ${t[1]} bytes`);
      const body = (await c.readBytes(n)).toString('latin1');
      return parseInquiryV1(body);
    });
  }

  /**
   * STATUS ST_INQ in the v0 form (five numbers), as old LoRS tools ask.
   *
   * @throws {ClientError} `IBP_E_WRONG_PASSWD` (-29), or a code listed on the class.
   */
  async statusV0(depot: DepotAddress, password = DEFAULT_STATUS_PASSWORD): Promise<DepotInquiryV0> {
    const line = encode('STATUS', () =>
      formatStatus({ version: 0, op: 'inq', rid: undefined, password, timeoutSec: WIRE_TIMEOUT_SEC }),
    );
    return this.run(depot, 'STATUS', async (c) => {
      await c.send(line);
      const t = await c.readTokens();
      const first = Number(t[0]);
      if (first < 0 && t.length === 1) throw ClientError.fromStatus(first, c.depot, 'STATUS');
      return parseInquiryV0(t);
    });
  }

  /**
   * STATUS ST_RES: the depot's resource ids.
   *
   * @throws {ClientError} a code listed on the class.
   */
  async resources(depot: DepotAddress): Promise<string[]> {
    const line = formatStatus({ version: 1, op: 'res', timeoutSec: WIRE_TIMEOUT_SEC });
    return this.run(depot, 'STATUS', async (c) => {
      await c.send(line);
      const t = await this.expectOk(c, 'STATUS');
      return t.slice(1);
    });
  }

  /**
   * STATUS ST_VERSION (ACCRE dialect): free-text lines describing the depot.
   *
   * @throws {ClientError} `CLIENT_ERR_PROTOCOL` when no `END` line comes, or a code listed on the class.
   */
  async version(depot: DepotAddress): Promise<string[]> {
    const line = formatStatus({ version: 1, op: 'version', timeoutSec: WIRE_TIMEOUT_SEC });
    return this.run(depot, 'STATUS', async (c) => {
      await c.send(line);
      await this.expectOk(c, 'STATUS');
      const lines: string[] = [];
      for (let i = 0; i < 10_000; i++) {
        const line = await c.readLine();
        if (line === 'END') return lines;
        lines.push(line);
      }
      throw this.protocolError(c, 'ST_VERSION reply has no END line');
    });
  }

  /** Closes every pooled connection; later calls fail with `CLIENT_ERR_CLOSED`. */
  close(): void {
    this.closed = true;
    clearInterval(this.reaper);
    for (const list of this.idle.values()) for (const c of list) c.destroy();
    for (const c of this.busy) c.destroy();
    this.idle.clear();
    this.busy.clear();
  }

  private async manage(m: Capability, what: string, op: ManageOperation): Promise<string[]> {
    const line = encode(what, () => formatManage({ version: 1, cap: keyRefOf(m), timeoutSec: WIRE_TIMEOUT_SEC, ...op }));
    return this.run(m, what, async (c) => {
      await c.send(line);
      return this.expectOk(c, what);
    });
  }

  private sendBody(w: Capability, what: string, line: string, data: Uint8Array): Promise<number> {
    return this.run(w, what, async (c) => {
      if (data.length <= this.eagerBodyBytes) {
        await c.send(line, data);
        await this.expectOk(c, what);
      } else {
        await c.send(line);
        await this.expectOk(c, what);
        await c.send(data);
      }
      const t = await this.expectOk(c, what);
      const n = Number(t[1]);
      if (n !== data.length) throw this.protocolError(c, `${what} acknowledged ${t[1]} of ${data.length} bytes`);
      return n;
    });
  }

  /** Reads a reply line; a negative status becomes a {@link ClientError}. */
  private async expectOk(c: DepotConnection, what: string): Promise<string[]> {
    const t = await c.readTokens();
    const status = Number(t[0]);
    if (status === Status.OK) return t;
    if (Number.isInteger(status) && status < 0) {
      const retry = t[1] === undefined ? undefined : Number(t[1]);
      throw ClientError.fromStatus(status, c.depot, what, Number.isFinite(retry) ? retry : undefined);
    }
    throw this.protocolError(c, `${what} reply starts with ${JSON.stringify(t[0] ?? '')}, not a status`);
  }

  private protocolError(c: DepotConnection, message: string): ClientError {
    return new ClientError(ClientErrorCode.PROTOCOL, `${message} (depot ${c.depot})`, { depot: c.depot });
  }

  /** Runs one request on a pooled connection; a connection that failed is never reused. */
  private async run<T>(
    depot: DepotAddress,
    what: string,
    fn: (c: DepotConnection) => Promise<T>,
    timeoutMs = this.timeoutMs,
  ): Promise<T> {
    if (this.closed) throw new ClientError(ClientErrorCode.CLOSED, `${what}: the client is closed`);
    const c = await this.acquire(depot);
    this.busy.add(c);
    let ok = false;
    try {
      const result = await c.request(timeoutMs, () => fn(c));
      ok = true;
      return result;
    } finally {
      this.busy.delete(c);
      // A refused request may be followed by the depot closing the connection: do not reuse it.
      if (ok) this.release(c);
      else c.destroy();
    }
  }

  private async acquire(depot: DepotAddress): Promise<DepotConnection> {
    const key = `${depot.host}:${depot.port}`;
    const list = this.idle.get(key);
    while (list !== undefined && list.length > 0) {
      const c = list.pop()!;
      if (c.usable) return c;
      c.destroy();
    }
    return DepotConnection.open(depot.host, depot.port, this.connectTimeoutMs);
  }

  private release(c: DepotConnection): void {
    if (this.closed || !c.usable) {
      c.destroy();
      return;
    }
    const list = this.idle.get(c.depot) ?? [];
    if (list.length >= this.maxIdlePerDepot) {
      c.destroy();
      return;
    }
    list.push(c);
    this.idle.set(c.depot, list);
  }

  private reapIdle(): void {
    const cutoff = Date.now() - this.idleCloseMs;
    for (const [key, list] of this.idle) {
      const keep = list.filter((c) => {
        if (c.lastUsed >= cutoff && c.usable) return true;
        c.destroy();
        return false;
      });
      if (keep.length === 0) this.idle.delete(key);
      else this.idle.set(key, keep);
    }
  }
}
