import { mkdir, stat } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { pino, type Logger } from 'pino';
import { Status } from '../../ibp/index.js';
import { errorReply } from '../../ibp/index.js';
import { DepotCore } from '../core/depot-core.js';
import { systemClock, type Clock } from '../core/clock.js';
import type { DepotOptions } from '../options.js';
import type { DiskIo } from '../resources/disk/disk-data.js';
import { Connection } from './connection.js';
import { checkDirectReads, directReadStats } from './direct-socket.js';
import { releaseSocket } from './socket-release.js';
import { TransferService } from '../transfer/transfer-service.js';
import { NfuService } from '../nfu/nfu-service.js';
import { describeKernelBackend } from '../nfu/native-loader.js';
import { keepHeapWarm } from './heap-tuning.js';
import { DepotError, DepotErrorCode } from '../errors.js';

export interface DepotServerDeps {
  /** Time source for leases; defaults to the system clock. */
  readonly clock?: Clock;
  /** Logger; defaults to pino on stderr at `options.logLevel`. */
  readonly logger?: Logger;
  /** Source of capability keys (tests only; the default is the CSPRNG). */
  readonly newKey?: () => string;
  /** Filesystem calls of disk resources (tests inject faults). */
  readonly diskIo?: DiskIo;
}

/**
 * Creates a disk resource's directory (and its `data` folder) one level at a time. Node's recursive
 * mkdir never returns where a level cannot be made although its parent exists (under /proc it loops
 * on ENOENT in the thread pool), so a bad `--data` would hang the start-up instead of failing.
 */
async function makeDataDirectory(path: string): Promise<void> {
  const missing: string[] = [];
  for (let d = join(resolve(path), 'data'); ; d = dirname(d)) {
    if ((await stat(d).catch(() => undefined)) !== undefined || dirname(d) === d) break;
    missing.unshift(d);
  }
  for (const d of missing) {
    await mkdir(d).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'EEXIST') return;
      throw new DepotError(DepotErrorCode.RESOURCE_UNAVAILABLE, `cannot create data directory ${path}: ${e.message}`, {
        cause: e,
      });
    });
  }
}

/**
 * An IBP depot listening on TCP: accepts connections up to the configured limit (beyond it a
 * connection is answered `-66 <retry>` and closed), serves each with a {@link Connection},
 * sweeps expired leases, and shuts down gracefully.
 */
export class DepotServer {
  readonly core: DepotCore;
  readonly log: Logger;
  private readonly transfers: TransferService;
  private readonly nfu: NfuService;
  private readonly server: Server;
  private readonly connections = new Set<Connection>();
  /** Every accepted socket until it is closed, refused ones included. */
  private readonly sockets = new Set<Socket>();
  /** Sockets refused with `-66` that are still being released. */
  private shedding = 0;
  private sweepTimer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;
  private readonly startedAt = Date.now();
  private nextConnectionId = 1;
  private rejected = 0;

  private constructor(
    readonly options: DepotOptions,
    core: DepotCore,
    log: Logger,
  ) {
    this.log = log;
    this.core = core;
    this.transfers = new TransferService(core, options, log);
    this.nfu = new NfuService(core, options);
    // Half-open: a client may shut its side down once it has sent its commands (as `nc -N` or a
    // script's `shutdown(SHUT_WR)` do) and still read every reply; the connection ends the socket
    // itself once it has answered what arrived (see socket-release.ts).
    this.server = createServer({ noDelay: true, allowHalfOpen: true }, (socket) => this.accept(socket));
  }

  /** Opens the resources, starts listening, and resolves once the depot serves. */
  static async start(options: DepotOptions, deps: DepotServerDeps = {}): Promise<DepotServer> {
    const log = deps.logger ?? pino({ level: options.logLevel, base: { svc: 'depot' } }, pino.destination(2));
    for (const r of options.resources) if (r.path !== undefined) await makeDataDirectory(r.path);
    const heap = keepHeapWarm();
    // Once per process: STORE/WRITE bodies are read in place only where Node does as they rely on.
    const directReads = (await checkDirectReads()) ? 'on' : (directReadStats.offReason ?? 'off');
    const core = await DepotCore.open(options, deps.clock ?? systemClock, {
      log,
      onFree: (a, reason) => log.debug({ alloc: a.id, rid: a.rid, reason }, 'allocation freed'),
      ...(deps.newKey === undefined ? {} : { newKey: deps.newKey }),
      ...(deps.diskIo === undefined ? {} : { diskIo: deps.diskIo }),
    });
    let depot: DepotServer;
    try {
      depot = new DepotServer(options, core, log);
    } catch (e) {
      await core.close();
      throw e;
    }
    await new Promise<void>((resolve, reject) => {
      const onStartError = (e: Error) => {
        void core.close().finally(() => reject(e));
      };
      depot.server.once('error', onStartError);
      depot.server.listen({ host: options.host, port: options.port, exclusive: true }, () => {
        // Only a failure to listen closes the resources; later server errors are logged.
        depot.server.off('error', onStartError);
        resolve();
      });
    });
    depot.server.on('error', (e) => depot.log.error({ err: e }, 'server error'));
    const { port } = depot.address;
    depot.core.setCapAddress(options.publicHost, port);
    depot.transfers.setPort(port);
    depot.nfu.setPort(port);
    depot.sweepTimer = setInterval(() => depot.core.sweep(), options.limits.sweepIntervalMs);
    depot.sweepTimer.unref();
    depot.log.info(
      {
        host: options.host,
        port,
        resources: options.resources.map((r) => ({ rid: r.rid, kind: r.kind, capacityBytes: r.capacityBytes })),
        ...describeKernelBackend(options.nfu.native),
        ...heap,
        directReads,
      },
      'depot listening',
    );
    return depot;
  }

  get address(): { host: string; port: number } {
    const a = this.server.address() as AddressInfo;
    return { host: this.options.host, port: a.port };
  }

  /** `ibp://HOST:PORT` of this depot as written into its caps. */
  get url(): string {
    const host = this.options.publicHost.includes(':') ? `[${this.options.publicHost}]` : this.options.publicHost;
    return `ibp://${host}:${this.address.port}`;
  }

  /** Connections being served (a refused one counts until its socket is closed). */
  get connectionCount(): number {
    return this.connections.size;
  }

  /** Sockets the listener holds open, refused ones included (the operating system's count). */
  openSockets(): Promise<number> {
    return new Promise((resolve, reject) => this.server.getConnections((e, n) => (e ? reject(e) : resolve(n))));
  }

  /**
   * Graceful shutdown: stop accepting, close idle connections at once, let in-flight commands
   * finish for up to `limits.shutdownGraceMs`, then destroy every socket that remains (half-open
   * ones included), so the process can exit.
   */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    clearInterval(this.sweepTimer);
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const c of this.connections) c.shutdown();
    const all = Promise.all([...this.connections].map((c) => c.done));
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.options.limits.shutdownGraceMs);
    });
    const outcome = await Promise.race([all.then(() => 'done' as const), grace]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      this.log.warn({ connections: this.connections.size }, 'shutdown grace period over; cutting connections');
      for (const c of this.connections) c.destroy();
    }
    // Whatever is left (refused sockets still lingering, a connection stuck in a command) goes now.
    for (const s of this.sockets) s.destroy();
    await closed;
    this.transfers.close();
    await this.nfu.close();
    await this.core.close();
    this.log.info({ rejectedConnections: this.rejected }, 'depot closed');
  }

  private accept(socket: Socket): void {
    if (this.closing !== undefined) {
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    const limits = this.options.limits;
    if (this.connections.size >= limits.maxConnections) {
      // Shed load before reading anything: suggest a retry delay, as the ACCRE depot does. The
      // socket is released like any closed connection (its command line drained, then
      // destroyed); past maxConnections of them at once, it is destroyed as soon as the reply is out.
      this.rejected++;
      socket.on('error', () => undefined);
      socket.write(errorReply(Status.OUT_OF_SOCKETS, limits.overloadRetrySec));
      const flushOnly = this.shedding >= limits.maxConnections;
      this.shedding++;
      void releaseSocket(socket, { drainBytes: limits.maxCommandLineBytes, lingerMs: limits.closeLingerMs, flushOnly }).then(
        () => this.shedding--,
      );
      return;
    }
    const id = this.nextConnectionId++;
    const log = this.log.child({ conn: id, peer: `${socket.remoteAddress}:${socket.remotePort}` });
    const connection = new Connection(
      socket,
      {
        core: this.core,
        options: this.options,
        log: this.log,
        versionLines: () => this.versionLines(),
        transfers: this.transfers,
        nfu: this.nfu,
      },
      log,
    );
    this.connections.add(connection);
    log.debug('connection opened');
    void connection.done.finally(() => {
      this.connections.delete(connection);
      log.debug({ commands: connection.commands }, 'connection closed');
    });
  }

  private versionLines(): string[] {
    return [
      `Interface: ${this.options.publicHost}:${this.address.port}`,
      `Uptime: ${Math.floor((Date.now() - this.startedAt) / 1000)} s`,
      `Connections: ${this.connections.size} of ${this.options.limits.maxConnections}`,
      `Allocations: ${this.core.allocationCount}`,
      ...this.core
        .resourceStatus(undefined)
        .map(
          (r) =>
            `Resource ${r.rid}: ${r.resourceType === 1 ? 'disk' : 'memory'}, ${r.usedBytes} of ${r.capacityBytes} bytes reserved, max duration ${r.maxDurationSec} s`,
        ),
    ];
  }
}
