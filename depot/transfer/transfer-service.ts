import type { Logger } from 'pino';
import { IbpClient } from '../../ibp/index.js';
import { ClientError } from '../../ibp/index.js';
import { CapType } from '../../ibp/index.js';
import type { Capability } from '../../ibp/index.js';
import type { TransferRequest } from '../../ibp/index.js';
import type { Allocation } from '../core/allocation.js';
import type { DepotCore } from '../core/depot-core.js';
import { DepotError, DepotErrorCode, storageError } from '../errors.js';
import type { DepotOptions } from '../options.js';
import { DestinationPolicy } from './destination-policy.js';

/** The one message for every way a remote depot can be out of reach (no scanning oracle). */
const UNREACHABLE = 'the remote depot cannot be reached or is not allowed';

/**
 * EBP's transfer call: SEND (append at a remote depot), PUSH (write at a remote offset) and PULL
 * (fetch from a remote depot). The depot acts as an ordinary IBP client of the remote one and
 * answers its own client only after the remote depot acknowledged. A transfer whose remote cap
 * names this very depot is done locally, without a connection.
 */
export class TransferService {
  private readonly client: IbpClient;
  private readonly policy: DestinationPolicy;
  private selfPort = 0;

  constructor(
    private readonly core: DepotCore,
    private readonly options: DepotOptions,
    private readonly log: Logger,
  ) {
    this.client = new IbpClient({
      timeoutMs: options.transfer.timeoutMs,
      connectTimeoutMs: options.transfer.connectTimeoutMs,
      maxIdlePerDepot: 2,
    });
    this.policy = new DestinationPolicy(options.transfer.allow);
  }

  setPort(port: number): void {
    this.selfPort = port;
  }

  close(): void {
    this.client.close();
  }

  /** Runs a transfer; resolves with the byte count moved, or throws a DepotError. */
  async run(req: TransferRequest): Promise<number> {
    return req.command === 'pull' ? this.pull(req) : this.sendOrPush(req);
  }

  private async sendOrPush(req: TransferRequest): Promise<number> {
    const src = this.core.lookup(req.cap, CapType.READ);
    this.core.checkReadRange(src, req.localOffset, req.length);
    if (this.isSelf(req.remote)) {
      const dest = this.core.lookup(keyOf(req.remote), CapType.WRITE);
      return this.localCopy(src, req.localOffset, dest, req.remoteOffset, req.length);
    }
    const target = await this.target(req.remote);
    try {
      await this.client.storeFrom(
        target,
        req.length,
        // `write` resolves once the socket holds no reference to the chunk: the store may lend its
        // own memory (pinned meanwhile, so a WRITE to the source cannot reach into the bytes sent).
        (write) => src.data.read(req.localOffset, req.length, (chunk) => write(chunk), { sinkReleases: true }),
        req.remoteOffset,
      );
    } catch (e) {
      throw this.remoteFailure(e, req);
    }
    return req.length;
  }

  private async pull(req: TransferRequest): Promise<number> {
    const local = this.core.lookup(req.cap, CapType.WRITE);
    if (this.isSelf(req.remote)) {
      const src = this.core.lookup(keyOf(req.remote), CapType.READ);
      this.core.checkReadRange(src, req.remoteOffset, req.length);
      return this.localCopy(src, req.remoteOffset, local, req.localOffset, req.length);
    }
    const target = await this.target(req.remote);
    let localFailure: unknown;
    try {
      await this.core.writeInto(local, req.localOffset, req.length, (write) =>
        this.client.loadTo(target, req.remoteOffset, req.length, async (chunk) => {
          try {
            await write(chunk);
          } catch (e) {
            localFailure = e;
            throw e;
          }
        }),
      );
    } catch (e) {
      if (DepotError.isDepotError(e)) throw e; // refused locally (lease, range)
      if (localFailure !== undefined) throw storageError(localFailure, `allocation ${local.id}: write failed`);
      throw this.remoteFailure(e, req);
    }
    return req.length;
  }

  /** Copies between two allocations of this depot (a transfer whose remote cap is ours). */
  private async localCopy(
    src: Allocation,
    srcOffset: number,
    dest: Allocation,
    destOffset: number,
    length: number,
  ): Promise<number> {
    try {
      // The destination's writer may hold a chunk until its batch is written (and take its checksum
      // before): it gets a copy, so a WRITE to the source meanwhile cannot reach into the batch. The
      // source stays pinned until the writer has taken the chunk (a disk source's run buffer goes
      // back to its pool only then).
      await this.core.writeInto(dest, destOffset, length, (write) =>
        src.data.read(srcOffset, length, (chunk) => write(Buffer.from(chunk)), { sinkReleases: true }),
      );
    } catch (e) {
      throw storageError(e, `allocation ${dest.id}: local copy failed`);
    }
    return length;
  }

  private isSelf(cap: Capability): boolean {
    if (cap.port !== this.selfPort) return false;
    const h = cap.host.toLowerCase();
    return h === this.options.publicHost.toLowerCase() || h === this.options.host.toLowerCase();
  }

  /** The remote cap with its host replaced by the checked address, or CANT_CONNECT. */
  private async target(cap: Capability): Promise<Capability> {
    const address = await this.policy.resolve(cap.host, cap.port);
    if (address === undefined) {
      this.log.debug({ host: cap.host, port: cap.port }, 'transfer destination refused or unresolvable');
      throw new DepotError(DepotErrorCode.REMOTE_UNREACHABLE, UNREACHABLE);
    }
    return { ...cap, host: address };
  }

  private remoteFailure(e: unknown, req: TransferRequest): DepotError {
    if (DepotError.isDepotError(e)) return e;
    if (e instanceof ClientError && e.status !== undefined) {
      return new DepotError(
        DepotErrorCode.REMOTE_REFUSED,
        `the remote depot refused the ${req.command.toUpperCase()}: ${e.message}`,
        {
          status: e.status,
          cause: e,
        },
      );
    }
    this.log.debug({ err: (e as Error).message, command: req.command }, 'transfer failed');
    return new DepotError(DepotErrorCode.REMOTE_UNREACHABLE, UNREACHABLE, { cause: e });
  }
}

function keyOf(cap: Capability) {
  return { rid: cap.rid, key: cap.key, wrmKey: cap.wrmKey };
}
