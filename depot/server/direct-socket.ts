/**
 * Reads of an accepted connection into memory the depot picks. By default a socket reads into a
 * new 64 KiB buffer each time, which the depot then copies into the allocation: at bulk rates
 * the allocation, the copy and the collection of those buffers cost more CPU than the kernel's
 * own copy. A socket built with `onread` reads wherever its callback says, so a STORE/WRITE body
 * lands straight in the allocation's memory, in reads as large as the socket holds.
 *
 * `net.Server` offers no `onread` for the sockets it accepts, so the accepted socket's handle is
 * taken over by a second `net.Socket` built with `onread` (the way Node hands an accepted handle to
 * its socket). The first socket keeps no handle and closes together with the second, so the
 * server's connection count and its `'close'` listeners work as before. Where the handle does not
 * look as expected (another runtime, a future Node), or with `ANVIL_DIRECT_READS=0`, the socket is
 * left as it is and the depot reads through `'data'` events. A takeover that fails once it has begun
 * cannot give the socket back (the handle may already deliver to the new socket): that connection
 * is closed, and direct reads are off for the rest of the process.
 *
 * Each `useUserBuffer` call on a handle adds a native listener that lives as long as the
 * connection, so the buffer a read goes to is changed by what the `buffer` callback returns after
 * each read (Node applies it to the listener in place), never by a call per read or per body: a
 * target aimed at between reads gets the next read by a copy out of the staging buffer, and only a
 * target given back between reads (a body that fails) swaps the handle back to staging by a call.
 */
import { Socket, connect, createServer } from 'node:net';
import type { DirectReadConsumer, DirectReadSource } from '../../ibp/index.js';

/** Size of the socket's own read buffer (what Node itself reads at a time). */
const STAGING_BYTES = 64 * 1024;
/**
 * Reads at least this large hand over the staging buffer itself; smaller ones are copied out, so
 * bytes waiting in a queue never hold more than a third again of their size in memory.
 */
const HANDOVER_BYTES = 48 * 1024;

/** Counters of direct reads (tests, diagnostics). */
export const directReadStats = {
  /** Sockets taken over. */
  adopted: 0,
  /** Bytes read straight into memory a reader aimed at. */
  landedBytes: 0,
  /** Bytes read into the staging buffer and copied to a target aimed at between reads. */
  copiedBytes: 0,
  /** Why direct reads are off for this process (a takeover failed half-way), if they are. */
  offReason: undefined as string | undefined,
};

/** What this module relies on in a stream handle (Node's TCPWrap). */
interface UserBufferHandle {
  useUserBuffer(buf: Uint8Array): void;
}

function handleOf(socket: Socket): UserBufferHandle | undefined {
  const h = (socket as unknown as { _handle?: Partial<UserBufferHandle> | null })._handle;
  return h !== null && h !== undefined && typeof h.useUserBuffer === 'function' ? (h as UserBufferHandle) : undefined;
}

/**
 * Whether direct reads are enabled for this process: `ANVIL_DIRECT_READS=0` turns them off, and so
 * does a takeover that failed half-way.
 */
export function directReadsEnabled(): boolean {
  const v = process.env['ANVIL_DIRECT_READS'];
  return v !== '0' && v !== 'off' && directReadStats.offReason === undefined;
}

/** Turns direct reads off for the rest of the process. */
function turnDirectReadsOff(reason: string): void {
  directReadStats.offReason ??= reason;
}

/** An accepted connection whose reads go where its consumer aims them. */
export class DirectSocket implements DirectReadSource {
  /** The socket to use from now on (reads, writes, end, destroy). */
  readonly socket: Socket;
  private staging: Buffer = Buffer.allocUnsafeSlow(STAGING_BYTES);
  /** What the consumer aims at. */
  private target: Uint8Array | undefined;
  /** What the handle reads into now: the staging buffer or the target. */
  private held: Uint8Array = this.staging;
  /** True while a read is delivered: the handle then takes its next buffer from `next()`. */
  private delivering = false;
  private consumer: DirectReadConsumer | undefined;
  /** Reads that arrived before the first consumer attached. */
  private early: Buffer[] | undefined = [];

  private constructor(
    accepted: Socket,
    private readonly handle: UserBufferHandle,
  ) {
    let socket: Socket | undefined;
    try {
      socket = new Socket({
        handle,
        allowHalfOpen: accepted.allowHalfOpen,
        onread: { buffer: () => this.next(), callback: (n: number) => this.onRead(n) },
      } as ConstructorParameters<typeof Socket>[0]);
      // A runtime whose sockets ignore `handle` is caught here.
      if (handleOf(socket) !== handle) throw new Error('the socket did not take the handle');
    } catch (e) {
      // The handle may deliver to the new socket already: the accepted one cannot read through
      // 'data' events any more. The connection is closed rather than left swallowing its input.
      if (socket !== undefined && handleOf(socket) === handle) {
        (accepted as unknown as { _handle: unknown })._handle = null;
        socket.destroy();
      }
      accepted.destroy();
      throw e;
    }
    this.socket = socket;
    // The accepted socket gives up the handle; it closes (and counts as closed for its server)
    // when this one does, and closing it closes this one. Its addresses, read now, stay known.
    void accepted.remoteAddress;
    void accepted.localAddress;
    (accepted as unknown as { _handle: unknown })._handle = null;
    this.socket.once('close', () => accepted.destroy());
    accepted.once('close', () => this.socket.destroy());
    // Flowing, so that the end of input is seen ('end', then 'close') with no 'data' listener.
    this.socket.resume();
  }

  /**
   * Takes over a socket just accepted (nothing read from it yet). Returns undefined where that is
   * not done: the socket is then untouched, unless the takeover failed once begun, in which case it
   * is destroyed (and direct reads are off from then on).
   */
  static adopt(accepted: Socket): DirectSocket | undefined {
    if (!directReadsEnabled() || !(accepted instanceof Socket)) return undefined;
    if (accepted.destroyed || accepted.connecting || accepted.readableLength > 0 || accepted.listenerCount('data') > 0)
      return undefined;
    const handle = handleOf(accepted);
    if (handle === undefined) return undefined;
    let direct: DirectSocket;
    try {
      direct = new DirectSocket(accepted, handle);
    } catch (e) {
      turnDirectReadsOff(`a socket takeover failed: ${e instanceof Error ? e.message : String(e)}`);
      return undefined;
    }
    directReadStats.adopted++;
    return direct;
  }

  attach(consumer: DirectReadConsumer | undefined): void {
    this.consumer = consumer;
    const early = this.early;
    this.early = undefined;
    if (consumer !== undefined && early !== undefined) for (const b of early) consumer.received(b);
  }

  aim(target: Uint8Array | undefined): void {
    this.target = target;
    // While a read is delivered, next() gives the handle its buffer right after.
    if (this.delivering || this.socket.destroyed) return;
    // Between reads the handle keeps what it holds. The staging buffer is always safe: a read
    // there is copied to the target when delivered. A target given back must not be read into
    // any more: only then does the handle get the staging buffer by a call.
    if (this.held !== this.staging && this.held !== target) {
      this.handle.useUserBuffer(this.staging);
      this.held = this.staging;
    }
  }

  /** The buffer the next read goes to (the handle asks after each read it delivers). */
  private next(): Uint8Array {
    this.held = this.target ?? this.staging;
    return this.held;
  }

  private onRead(n: number): boolean {
    this.delivering = true;
    try {
      this.deliver(n);
      return true;
    } catch (e) {
      // Never thrown into the stream machinery: the connection ends with the error instead.
      this.socket.destroy(e instanceof Error ? e : new Error(String(e)));
      return false;
    } finally {
      this.delivering = false;
    }
  }

  private deliver(n: number): void {
    if (this.held !== this.staging) {
      // Read into the target (the handle holds no other buffer than it or the staging one).
      this.target = undefined;
      directReadStats.landedBytes += n;
      if (this.consumer !== undefined) this.consumer.landed(n);
      return;
    }
    let at = 0;
    // A target aimed at between reads: the bytes are its, copied (the consumer may aim again).
    for (let t = this.target; t !== undefined && t.length > 0 && at < n && this.consumer !== undefined; t = this.target) {
      const k = Math.min(n - at, t.length);
      t.set(this.staging.subarray(at, at + k));
      this.target = undefined;
      at += k;
      directReadStats.copiedBytes += k;
      this.consumer.landed(k);
    }
    if (at === n) return;
    let bytes: Buffer;
    if (n - at >= HANDOVER_BYTES) {
      bytes = this.staging.subarray(at, n);
      this.staging = Buffer.allocUnsafeSlow(STAGING_BYTES);
    } else {
      bytes = Buffer.from(this.staging.subarray(at, n));
    }
    if (this.consumer !== undefined) this.consumer.received(bytes);
    else if (this.early !== undefined) this.early.push(bytes);
    else this.socket.emit('data', bytes);
  }
}

const PROBE_LINE = Buffer.from('anvil direct read check: staged\n');
const PROBE_BODY = Buffer.from('anvil direct read check: landed in place\n');
let selfTest: Promise<void> | undefined;

/**
 * Checks once per process, over loopback, what direct reads rely on in Node: a taken-over socket
 * delivers its reads to the callback, from the buffer it reads into, and a read lands in a buffer
 * aimed at while the read before it is delivered. Where not, direct reads are turned off (the
 * depot reads through 'data' events). Resolves to whether they are on; `again` runs it anew.
 */
export function checkDirectReads(timeoutMs = 2_000, again = false): Promise<boolean> {
  if (again) selfTest = undefined;
  if (!directReadsEnabled()) return Promise.resolve(false);
  selfTest ??= probeDirectReads(timeoutMs).then((problem) => {
    if (problem !== undefined) turnDirectReadsOff(`the direct read check failed: ${problem}`);
  });
  return selfTest.then(directReadsEnabled);
}

/** What went wrong in a loopback run of direct reads, or undefined. */
async function probeDirectReads(timeoutMs: number): Promise<string | undefined> {
  const server = createServer({ noDelay: true });
  const sockets: Socket[] = [];
  let timer: NodeJS.Timeout | undefined;
  try {
    return await new Promise<string | undefined>((resolve) => {
      timer = setTimeout(() => resolve(`no answer in ${timeoutMs} ms`), timeoutMs);
      server.on('error', (e) => resolve(e.message));
      server.on('connection', (accepted) => {
        sockets.push(accepted);
        const direct = DirectSocket.adopt(accepted);
        if (direct === undefined) {
          resolve(directReadStats.offReason ?? 'the socket was not taken over');
          return;
        }
        sockets.push(direct.socket);
        direct.socket.on('error', (e) => resolve(e.message));
        const staged: Buffer[] = [];
        let stagedBytes = 0;
        const target = Buffer.alloc(PROBE_BODY.length);
        let landed = 0;
        direct.attach({
          received: (bytes) => {
            staged.push(Buffer.from(bytes));
            stagedBytes += bytes.length;
            if (stagedBytes < PROBE_LINE.length) return;
            if (!Buffer.concat(staged).equals(PROBE_LINE)) {
              resolve('a read was not delivered from the buffer it was read into');
              return;
            }
            direct.aim(target); // while this read is delivered
            direct.socket.write('go\n');
          },
          landed: (n) => {
            landed += n;
            if (landed > target.length || !target.subarray(0, landed).equals(PROBE_BODY.subarray(0, landed))) {
              resolve('a read did not land in the buffer aimed at');
            } else if (landed === target.length) {
              resolve(undefined);
            } else {
              direct.aim(target.subarray(landed));
            }
          },
        });
      });
      server.listen(0, '127.0.0.1', () => {
        const c = connect({ host: '127.0.0.1', port: (server.address() as { port: number }).port, noDelay: true });
        sockets.push(c);
        c.on('error', (e) => resolve(e.message));
        c.once('data', () => c.write(PROBE_BODY));
        c.write(PROBE_LINE);
      });
    });
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  } finally {
    clearTimeout(timer);
    for (const s of sockets) s.destroy();
    server.close();
  }
}
