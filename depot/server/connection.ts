import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { CapType, Status } from '../../ibp/index.js';
import { parseRequest, readNfuParams } from '../../ibp/index.js';
import {
  OK_REPLY,
  allocateReply,
  countReply,
  errorReply,
  inquiryBodyV0,
  inquiryBodyV1,
  probeReply,
  resourcesReply,
  versionReply,
} from '../../ibp/index.js';
import type { IbpRequest, LoadRequest, NfuRequest, StatusRequest, StoreRequest, WriteRequest } from '../../ibp/index.js';
import { ReadError, StreamReader, isDirectTarget } from '../../ibp/index.js';
import { DepotError, DepotErrorCode, storageError } from '../errors.js';
import type { Allocation, RangeWriter } from '../core/allocation.js';
import type { TransferService } from '../transfer/transfer-service.js';
import type { NfuService } from '../nfu/nfu-service.js';
import type { DepotCore } from '../core/depot-core.js';
import type { DepotOptions } from '../options.js';
import { releaseSocket } from './socket-release.js';
import { DirectSocket } from './direct-socket.js';
import { ringLoad, ringReceive } from './ring-commands.js';
import { accreCommand, type AccreWire } from './accre-commands.js';

/** What a connection needs from the server that owns it. */
export interface ConnectionContext {
  readonly core: DepotCore;
  readonly options: DepotOptions;
  readonly log: Logger;
  /** Extra lines for the ST_VERSION reply. */
  versionLines(): string[];
  /** Depot-to-depot transfers (SEND, PUSH, PULL); absent in codec-only tests. */
  readonly transfers?: TransferService;
  /** Transforms (NFU); absent in codec-only tests. */
  readonly nfu?: NfuService;
}

/** An error after which the connection is closed (protocol-level, or a refused body). */
class Fatal extends Error {
  constructor(readonly inner: DepotError) {
    super(inner.message);
  }
}

const PACKAGE_VERSION = '0.1.0';

/** A refusal (depot or codec error) that ends the connection; other failures pass through. */
function asFatal(thrown: unknown): unknown {
  const e = DepotError.fromCodec(thrown);
  return DepotError.isDepotError(e) ? new Fatal(e) : e;
}

/** Runs `fn`; a depot error it throws becomes fatal to the connection. */
function fatalOnRefusal<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw asFatal(e);
  }
}

/**
 * Serves IBP commands on one connection until the peer leaves, a protocol error or timeout
 * occurs, or {@link Connection.shutdown} is called. Commands are handled one at a time in
 * arrival order, so pipelined requests get their replies in order.
 *
 * Every wait is bounded: a command line by `idleTimeoutMs` / `commandLineTimeoutMs`, a body by
 * `dataProgressTimeoutMs` and its whole-body deadline ({@link bodyDeadline}), a STORE/WRITE
 * queued behind another writer of its allocation by its timeout token, a reply by
 * `dataProgressTimeoutMs`. Once the depot is done with the connection it is released with
 * {@link releaseSocket}: bounded draining, then the socket is destroyed.
 */
export class Connection {
  private readonly reader: StreamReader;
  /** The connection's socket (the one accepted, or the one that took over its reads). */
  private readonly stream: Duplex;
  /** True from the moment a command line is complete until its reply is written. */
  private busy = false;
  private closing = false;
  /** Resolves once the connection has stopped serving and its socket is closed. */
  readonly done: Promise<void>;
  commands = 0;

  constructor(
    stream: Duplex,
    private readonly ctx: ConnectionContext,
    private readonly log: Logger,
  ) {
    // A socket just accepted reads into memory the reader picks: bodies land in place.
    const direct = stream instanceof Socket ? DirectSocket.adopt(stream) : undefined;
    if (direct !== undefined) stream = direct.socket;
    this.stream = stream;
    this.reader = new StreamReader(stream, {
      highWaterBytes: ctx.options.limits.readHighWaterBytes,
      ...(direct === undefined ? {} : { source: direct }),
    });
    stream.on('error', (e: Error) => this.log.debug({ err: e.message }, 'connection error'));
    this.done = this.run()
      .catch((e: unknown) => this.log.debug({ err: e instanceof Error ? e.message : String(e) }, 'connection failed'))
      .then(() => this.release());
  }

  /** Graceful stop: an idle connection closes now, a busy one after its current command. */
  shutdown(): void {
    this.closing = true;
    if (!this.busy) this.reader.close();
  }

  /** Hard stop. */
  destroy(): void {
    this.closing = true;
    this.reader.close();
    this.stream.destroy();
  }

  /** Ends the socket: drops what the reader holds, drains a bounded amount, destroys it. */
  private release(): Promise<void> {
    const limits = this.ctx.options.limits;
    this.reader.close();
    // Shutting down: no lingering for a client that has nothing more to say.
    return releaseSocket(this.stream, {
      drainBytes: limits.closeDrainBytes,
      lingerMs: limits.closeLingerMs,
      flushOnly: this.closing,
    });
  }

  /**
   * When a body of `length` bytes starting now must be complete: the start allowance (the
   * command's timeout token, capped at `maxRequestTimeoutMs`, and at least
   * `dataProgressTimeoutMs`) plus `length` at `minBodyBytesPerSec`.
   */
  private bodyDeadline(length: number, timeoutSec: number): number {
    const limits = this.ctx.options.limits;
    const allowance = Math.max(this.tokenMs(timeoutSec), limits.dataProgressTimeoutMs);
    return Date.now() + allowance + Math.ceil((length * 1000) / limits.minBodyBytesPerSec);
  }

  /** The command's timeout token in ms, capped by the depot's `maxRequestTimeoutMs`. */
  private tokenMs(timeoutSec: number): number {
    return Math.min(timeoutSec * 1000, this.ctx.options.limits.maxRequestTimeoutMs);
  }

  private async run(): Promise<void> {
    const limits = this.ctx.options.limits;
    try {
      while (!this.closing) {
        let line: string;
        try {
          line = await this.reader.readLine(limits.maxCommandLineBytes, limits.idleTimeoutMs, limits.commandLineTimeoutMs);
        } catch (e) {
          await this.onReadError(e);
          return;
        }
        if (line.trim() === '') continue;
        this.busy = true;
        const started = process.hrtime.bigint();
        let status: number = Status.OK;
        try {
          await this.execute(line);
        } catch (e) {
          const fatal = e instanceof Fatal;
          const error = fatal ? e.inner : e;
          if (error instanceof ReadError) {
            await this.onReadError(error);
            return;
          }
          const depotError = DepotError.isDepotError(error)
            ? error
            : new DepotError(DepotErrorCode.INTERNAL, 'internal error', { cause: error });
          if (depotError.code === DepotErrorCode.INTERNAL) this.log.error({ err: error }, 'internal error');
          status = depotError.status;
          const retry = depotError.details['retryAfterSec'];
          await this.send(typeof retry === 'number' ? errorReply(depotError.status, retry) : errorReply(depotError.status));
          this.log.debug({ status, code: depotError.code, reason: depotError.message }, 'request refused');
          if (fatal || depotError.code === DepotErrorCode.INTERNAL) return;
        } finally {
          this.busy = false;
          this.commands++;
        }
        this.log.trace({ status, us: Number((process.hrtime.bigint() - started) / 1000n) }, 'command');
      }
    } finally {
      this.reader.close();
    }
  }

  private async onReadError(e: unknown): Promise<void> {
    if (!(e instanceof ReadError)) {
      this.log.debug({ err: e instanceof Error ? e.message : String(e) }, 'connection failed');
      this.stream.destroy();
      return;
    }
    switch (e.reason) {
      case 'line-too-long':
        await this.send(errorReply(Status.BAD_FORMAT));
        this.log.debug({ limit: this.ctx.options.limits.maxCommandLineBytes }, 'command line too long');
        break;
      case 'line-timeout':
      case 'data-timeout':
      case 'body-timeout':
        await this.send(errorReply(Status.CLIENT_TIMEOUT));
        this.log.debug({ reason: e.reason }, 'client too slow');
        break;
      default:
        break;
    }
  }

  private async execute(line: string): Promise<void> {
    let req: IbpRequest;
    try {
      req = parseRequest(line);
    } catch (e) {
      throw asFatal(e);
    }
    const core = this.ctx.core;
    switch (req.command) {
      case 'allocate': {
        const caps = core.allocate(req);
        await this.send(allocateReply(caps.read, caps.write, caps.manage));
        return;
      }
      case 'store':
      case 'write':
        return this.receive(req);
      case 'load':
        return this.load(req);
      case 'manage': {
        const probe = await core.manage(req);
        await this.send(probe === undefined ? OK_REPLY : probeReply(probe));
        return;
      }
      case 'status':
        return this.status(req);
      case 'nfu':
        return this.nfu(req);
      case 'send':
      case 'push':
      case 'pull': {
        if (this.ctx.transfers === undefined) throw new DepotError(DepotErrorCode.UNKNOWN_COMMAND, 'transfers are not enabled');
        const moved = await this.ctx.transfers.run(req);
        await this.send(countReply(moved));
        return;
      }
      default:
        return accreCommand(this.wire, req);
    }
  }

  /** The connection's I/O as handlers kept in their own files (ring, ACCRE commands) use it. */
  private get wire(): AccreWire {
    const limits = this.ctx.options.limits;
    const transfers = this.ctx.transfers;
    return {
      core: this.ctx.core,
      ...(transfers === undefined ? {} : { transfer: (req) => transfers.run(req) }),
      abortReply: async (e) => {
        if (e instanceof ReadError) throw e;
        this.log.warn({ err: (e as Error).message }, 'reply failed after its header; closing');
        this.stream.destroy();
        throw new ReadError('closed', 'reply failed mid-way');
      },
      send: (head, body, deadline) => this.send(head, body, deadline),
      sendWhole: (body, deadline) => this.sendWhole(body, deadline),
      readBody: (length, timeoutSec, sink) =>
        this.reader.readBytes(length, limits.dataProgressTimeoutMs, sink, this.bodyDeadline(length, timeoutSec)),
      tokenMs: (timeoutSec) => this.tokenMs(timeoutSec),
      bodyDeadline: (length, timeoutSec) => this.bodyDeadline(length, timeoutSec),
      withWriteLockWithin: (a, waitMs, task) => this.withWriteLockWithin(a, waitMs, task),
      fatalOnRefusal: async (fn) => {
        try {
          return await fn();
        } catch (e) {
          throw asFatal(e);
        }
      },
    };
  }

  /** STORE / WRITE: validate, go-ahead, stream the body into the allocation, acknowledge. */
  private async receive(req: StoreRequest | WriteRequest): Promise<void> {
    const core = this.ctx.core;
    const allocation = fatalOnRefusal(() => core.lookup(req.cap, CapType.WRITE));
    if (allocation.ring !== undefined) return ringReceive(this.wire, req);
    await this.withWriteLockWithin(allocation, this.tokenMs(req.timeoutSec), async () => {
      // The client may already be sending the body behind the command: a refusal closes the connection.
      const offset = req.command === 'write' ? req.offset : allocation.size;
      fatalOnRefusal(() => {
        core.assertLive(allocation); // the lease may have ended while this waited for the lock
        core.checkWriteRange(allocation, offset, req.length);
      });
      await this.send(OK_REPLY);
      // From here the body is read in full whatever happens, so the connection stays in step.
      let failure: unknown;
      let writer: RangeWriter | undefined;
      try {
        writer = await allocation.data.openWriter(offset, req.length);
      } catch (e) {
        failure = e;
      }
      try {
        const deadline = this.bodyDeadline(req.length, req.timeoutSec);
        await this.reader.readBytes(
          req.length,
          this.ctx.options.limits.dataProgressTimeoutMs,
          async (chunk) => {
            if (failure !== undefined || writer === undefined) return;
            try {
              await writer.write(chunk);
            } catch (e) {
              failure = e;
            }
          },
          deadline,
          // Bytes not received yet land straight in the allocation's memory where it offers it.
          failure === undefined && isDirectTarget(writer) ? writer : undefined,
        );
      } catch (e) {
        await writer?.abort().catch(() => undefined);
        throw e;
      }
      if (failure !== undefined) {
        await writer?.abort().catch(() => undefined);
        throw storageError(failure, `allocation ${allocation.id}: write failed`);
      }
      await core.commitWrite(allocation, writer!, offset, req.length);
      await this.send(countReply(req.length));
    });
  }

  /**
   * Runs `task` under the allocation's write lock, waiting for it at most `waitMs` (the command's
   * own time): past it the command is refused with -42, fatal to the connection since its body may
   * already be on the way, and the lock, once granted, is passed on untouched.
   */
  private withWriteLockWithin(allocation: Allocation, waitMs: number, task: () => Promise<void>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let state: 'waiting' | 'running' | 'abandoned' = 'waiting';
      const timer = setTimeout(() => {
        if (state !== 'waiting') return;
        state = 'abandoned';
        reject(
          new Fatal(
            new DepotError(
              DepotErrorCode.CLIENT_TIMEOUT,
              `the command's timeout (${waitMs} ms) ran out while another write to allocation ${allocation.id} was in progress`,
            ),
          ),
        );
      }, waitMs);
      allocation
        .withWriteLock(async () => {
          clearTimeout(timer);
          if (state === 'abandoned') return;
          state = 'running';
          await task();
        })
        .then(resolve, reject);
    });
  }

  private async load(req: LoadRequest): Promise<void> {
    const core = this.ctx.core;
    const allocation = core.lookup(req.cap, CapType.READ);
    if (allocation.ring !== undefined) return ringLoad(this.wire, req);
    core.checkReadRange(allocation, req.offset, req.length);
    // The header waits (corked) for the first chunk of the body: one write to the socket, not two.
    const stream = this.stream;
    stream.cork();
    let corked = true;
    const uncork = () => {
      if (corked) stream.uncork();
      corked = false;
    };
    // Not waited for on its own: the first chunk's write completes after it (a drain wait here,
    // corked, would never end).
    if (!stream.destroyed && !stream.writableEnded) stream.write(countReply(req.length), 'latin1');
    // The reply must be read at the same rate a body must be sent.
    const deadline = this.bodyDeadline(req.length, req.timeoutSec);
    try {
      // Each chunk is handed over whole before the next is read, so the store may reuse its memory.
      await allocation.data.read(
        req.offset,
        req.length,
        (chunk) => {
          const sent = this.sendWhole(chunk, deadline);
          uncork();
          return sent;
        },
        { sinkReleases: true },
      );
      uncork();
    } catch (e) {
      uncork();
      if (e instanceof ReadError) throw e; // the client was too slow, or left
      // The header is out: the only way left to signal the failure is to cut the connection.
      this.log.warn({ alloc: allocation.id, err: (e as Error).message }, 'load failed after its header; closing');
      this.stream.destroy();
      throw new ReadError('closed', 'load failed mid-reply');
    }
  }

  /** NFU: read the parameter lines and bytes, run the op, reply `1 \n NOUT \n` + values. */
  private async nfu(req: NfuRequest): Promise<void> {
    const limits = this.ctx.options.limits;
    let params;
    try {
      params = await readNfuParams(this.reader, req.paramCount, {
        maxLineBytes: limits.maxCommandLineBytes,
        lineTimeoutMs: limits.commandLineTimeoutMs,
        progressTimeoutMs: limits.dataProgressTimeoutMs,
        maxValueBytes: this.ctx.options.nfu.maxValueBytes,
        dataDeadline: (length) => this.bodyDeadline(length, req.timeoutSec),
      });
    } catch (e) {
      throw asFatal(e);
    }
    if (this.ctx.nfu === undefined) throw new DepotError(DepotErrorCode.NFU_UNKNOWN, 'NFU is not enabled on this depot');
    const outputs = await this.ctx.nfu.call(req, params);
    await this.send(`${OK_REPLY}${outputs.length} \n`);
    for (const o of outputs)
      await this.send(`${o.index} ${o.data.length} \n`, Buffer.from(o.data.buffer, o.data.byteOffset, o.data.length));
  }

  private async status(req: StatusRequest): Promise<void> {
    const core = this.ctx.core;
    switch (req.op) {
      case 'inq': {
        if (req.password !== this.ctx.options.statusPassword) {
          throw new Fatal(new DepotError(DepotErrorCode.WRONG_PASSWORD, 'wrong status password'));
        }
        const resources = core.resourceStatus(req.rid);
        if (req.version === 0) {
          await this.send(inquiryBodyV0(resources));
        } else {
          const body = inquiryBodyV1(resources, this.ctx.nfu?.opcodes() ?? []);
          await this.send(countReply(Buffer.byteLength(body)) + body);
        }
        return;
      }
      case 'res':
        await this.send(resourcesReply(core.resourceIds()));
        return;
      case 'version':
        await this.send(versionReply([`Anvil IBP depot ${PACKAGE_VERSION}`, ...this.ctx.versionLines()]));
        return;
      case 'change':
        throw new Fatal(new DepotError(DepotErrorCode.UNKNOWN_COMMAND, 'ST_CHANGE is disabled', { status: Status.INVALID_CMD }));
    }
  }

  /**
   * Writes a reply; waits for the socket to drain when its buffer is full, at most
   * `dataProgressTimeoutMs` and not past `deadline` (a `Date.now()` value), else the connection is cut.
   */
  private async send(head: string, body?: Buffer, deadline = Number.POSITIVE_INFINITY): Promise<void> {
    if (this.stream.destroyed || this.stream.writableEnded) return;
    let ok = head.length === 0 ? true : this.stream.write(head, 'latin1');
    if (body !== undefined && body.length > 0) ok = this.stream.write(body);
    if (!ok) await this.drain(deadline);
  }

  /**
   * Writes `body` and resolves once the socket holds no reference to it (its bytes are in the
   * kernel), bounded like {@link send}'s wait for the socket to drain. On a socket already closed
   * (the peer left, or the depot cut it) it writes nothing and rejects, so that a reply stops reading
   * the allocation for nobody.
   */
  private sendWhole(body: Buffer, deadline: number): Promise<void> {
    if (this.stream.destroyed || this.stream.writableEnded)
      return Promise.reject(new ReadError('closed', 'the connection closed during the reply'));
    if (body.length === 0) return Promise.resolve();
    const progressMs = this.ctx.options.limits.dataProgressTimeoutMs;
    const timeoutMs = Math.max(0, Math.min(progressMs, deadline - Date.now()));
    const reason = timeoutMs < progressMs ? 'body-timeout' : 'data-timeout';
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        this.stream.destroy();
        reject(new ReadError(reason, `peer did not read the reply within ${timeoutMs} ms (${reason})`));
      }, timeoutMs);
      this.stream.write(body, (e) => {
        clearTimeout(timer);
        if (settled) return;
        settled = true;
        if (e === null || e === undefined) resolve();
        else reject(new ReadError('closed', `reply failed: ${e.message}`));
      });
    });
  }

  private drain(deadline: number): Promise<void> {
    const progressMs = this.ctx.options.limits.dataProgressTimeoutMs;
    const timeoutMs = Math.max(0, Math.min(progressMs, deadline - Date.now()));
    const reason = timeoutMs < progressMs ? 'body-timeout' : 'data-timeout';
    return new Promise<void>((resolve, reject) => {
      const cleanup = () => {
        clearTimeout(timer);
        this.stream.off('drain', onDrain);
        this.stream.off('close', onDrain);
      };
      const onDrain = () => {
        cleanup();
        resolve();
      };
      const timer = setTimeout(() => {
        cleanup();
        this.stream.destroy();
        reject(new ReadError(reason, `peer did not read the reply within ${timeoutMs} ms (${reason})`));
      }, timeoutMs);
      this.stream.on('drain', onDrain);
      this.stream.on('close', onDrain);
    });
  }
}
