import { createServer, connect, type Server, type Socket } from 'node:net';
import type { DepotAddress } from '../../../ibp/index.js';
import type { Prng } from './prng.js';

/** Which way a per-chunk fault applies: towards the depot, towards the client, or both. */
export type Direction = 'up' | 'down' | 'both';

/** What the proxy does to traffic. Per-chunk faults are drawn for every chunk, per-connection ones once. */
export interface FaultPlan {
  /** Added to every chunk's delivery time (ms); order is kept. */
  readonly delayMs: number;
  /** Uniform extra delay in [0, jitterMs]. */
  readonly jitterMs: number;
  /** Probability that a chunk is silently discarded (the byte stream loses a piece). */
  readonly dropChunk: number;
  /** Probability that one byte of a chunk is flipped. */
  readonly corruptChunk: number;
  /** Direction of the drop and corrupt faults. */
  readonly chunkFaultDirection: Direction;
  /** Probability that a connection stalls (stops forwarding) for `stallMs` at a random point. */
  readonly stall: number;
  readonly stallMs: number;
  /** Probability that a connection is reset (RST both ways) after a random number of bytes. */
  readonly reset: number;
  /**
   * Probability that a connection goes half-open after a random number of bytes: the depot side is
   * closed, the client side stays open and hears nothing more.
   */
  readonly halfOpen: number;
}

export const NO_FAULTS: FaultPlan = Object.freeze({
  delayMs: 0,
  jitterMs: 0,
  dropChunk: 0,
  corruptChunk: 0,
  chunkFaultDirection: 'both',
  stall: 0,
  stallMs: 0,
  reset: 0,
  halfOpen: 0,
});

/** How many faults of each kind the proxy injected. */
export interface FaultCounts {
  connections: number;
  delayedChunks: number;
  droppedChunks: number;
  corruptedChunks: number;
  stalls: number;
  resets: number;
  halfOpen: number;
  blackholed: number;
}

interface Pair {
  client: Socket;
  server: Socket | undefined;
  frozen: boolean;
}

/**
 * A seeded TCP fault proxy on 127.0.0.1 in front of one depot: delay with jitter, chunk drop and
 * corruption, stalls, resets, half-open connections, and partitions (every connection frozen, new
 * ones accepted and never forwarded). Every decision is drawn from the given {@link Prng}.
 */
export class FaultProxy {
  readonly counts: FaultCounts = {
    connections: 0,
    delayedChunks: 0,
    droppedChunks: 0,
    corruptedChunks: 0,
    stalls: 0,
    resets: 0,
    halfOpen: 0,
    blackholed: 0,
  };
  private readonly pairs = new Set<Pair>();
  private partitioned = false;

  private constructor(
    private readonly server: Server,
    readonly address: DepotAddress,
    private target: DepotAddress,
    private readonly rand: Prng,
    private plan: FaultPlan,
  ) {
    server.on('connection', (s) => this.accept(s));
  }

  static async start(target: DepotAddress, rand: Prng, plan: Partial<FaultPlan> = {}): Promise<FaultProxy> {
    const server = createServer({ noDelay: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const port = (server.address() as { port: number }).port;
    return new FaultProxy(server, { host: '127.0.0.1', port }, target, rand, { ...NO_FAULTS, ...plan });
  }

  setPlan(plan: Partial<FaultPlan>): void {
    this.plan = { ...NO_FAULTS, ...plan };
  }

  /** Points new connections at another address (a depot restarted elsewhere). */
  retarget(target: DepotAddress): void {
    this.target = target;
  }

  /** A partition: existing connections stop forwarding, new ones are accepted and never forwarded. */
  partition(on: boolean): void {
    this.partitioned = on;
    if (on) for (const p of this.pairs) p.frozen = true;
  }

  /** Open client connections. */
  get open(): number {
    return this.pairs.size;
  }

  /** Resets every connection (the proxy stays up). */
  resetAll(): void {
    for (const p of this.pairs) this.kill(p, true);
  }

  async close(): Promise<void> {
    this.resetAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    this.counts.connections++;
    client.setNoDelay(true);
    client.on('error', () => undefined);
    const pair: Pair = { client, server: undefined, frozen: false };
    this.pairs.add(pair);
    client.once('close', () => {
      this.pairs.delete(pair);
      pair.server?.destroy();
    });
    if (this.partitioned) {
      // Black hole: the client connected, and nothing it sends is ever answered.
      this.counts.blackholed++;
      pair.frozen = true;
      client.resume();
      return;
    }
    const plan = this.plan;
    const server = connect({ host: this.target.host, port: this.target.port, noDelay: true });
    pair.server = server;
    server.on('error', () => undefined);
    server.once('close', () => {
      if (!pair.frozen) client.end();
    });
    client.once('end', () => {
      if (!pair.frozen) server.end();
    });
    // Connection-level faults fire after a random number of forwarded bytes (either direction).
    let budget = Infinity;
    let fault: 'reset' | 'half-open' | 'stall' | undefined;
    const roll = this.rand.next();
    if (roll < plan.reset) fault = 'reset';
    else if (roll < plan.reset + plan.halfOpen) fault = 'half-open';
    else if (roll < plan.reset + plan.halfOpen + plan.stall) fault = 'stall';
    if (fault !== undefined) budget = this.rand.int(0, 256 * 1024);
    let stalledUntil = 0;
    const onBytes = (n: number) => {
      if (fault === undefined) return;
      budget -= n;
      if (budget > 0) return;
      const f = fault;
      fault = undefined;
      if (f === 'reset') {
        this.counts.resets++;
        this.kill(pair, true);
      } else if (f === 'half-open') {
        this.counts.halfOpen++;
        pair.frozen = true;
        server.destroy();
        client.resume(); // swallow whatever the client still sends
      } else {
        this.counts.stalls++;
        stalledUntil = Date.now() + plan.stallMs;
      }
    };
    const pipe = (from: Socket, to: Socket, dir: 'up' | 'down') => {
      const queue: Array<{ at: number; data: Buffer }> = [];
      from.on('data', (chunk: Buffer) => {
        // Per-chunk faults follow the current plan, so a plan change reaches open connections too.
        const plan = this.plan;
        const chunkFaults = plan.chunkFaultDirection === 'both' || plan.chunkFaultDirection === dir;
        if (pair.frozen) return;
        onBytes(chunk.length);
        if (pair.frozen || to.destroyed) return;
        let data = chunk;
        if (chunkFaults && plan.dropChunk > 0 && this.rand.chance(plan.dropChunk)) {
          this.counts.droppedChunks++;
          return;
        }
        if (chunkFaults && plan.corruptChunk > 0 && this.rand.chance(plan.corruptChunk)) {
          this.counts.corruptedChunks++;
          data = Buffer.from(chunk);
          const at = this.rand.int(0, data.length - 1);
          data[at] = data[at]! ^ (1 << this.rand.int(0, 7));
        }
        const delay = plan.delayMs > 0 || plan.jitterMs > 0 ? this.rand.jitter(plan.delayMs, plan.jitterMs) : 0;
        const now = Date.now();
        const at = Math.max(now + delay, stalledUntil);
        if (queue.length === 0 && at <= now) {
          to.write(data);
          return;
        }
        // One FIFO per direction and one timer: chunks leave in the order they came, never reordered.
        this.counts.delayedChunks++;
        queue.push({ at: Math.max(at, queue.length === 0 ? 0 : queue[queue.length - 1]!.at), data });
        if (queue.length === 1) pump();
      });
      const pump = (): void => {
        const now = Date.now();
        while (queue.length > 0 && queue[0]!.at <= now) {
          const { data } = queue.shift()!;
          if (!pair.frozen && !to.destroyed) to.write(data);
        }
        if (queue.length > 0) setTimeout(pump, queue[0]!.at - now);
      };
    };
    pipe(client, server, 'up');
    pipe(server, client, 'down');
  }

  private kill(p: Pair, rst: boolean): void {
    p.frozen = true;
    for (const s of [p.client, p.server]) {
      if (s === undefined || s.destroyed) continue;
      if (rst) s.resetAndDestroy();
      else s.destroy();
    }
  }
}
