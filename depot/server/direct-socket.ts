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
 * left as it is and the depot reads through `'data'` events.
 */
import { Socket } from 'node:net';
import type { DirectReadConsumer, DirectReadSource } from '../../ibp/index.js';

/** Size of the socket's own read buffer (what Node itself reads at a time). */
const STAGING_BYTES = 64 * 1024;
/** Reads at least this large hand over the staging buffer itself; smaller ones are copied out. */
const HANDOVER_BYTES = 16 * 1024;

/** Counters of direct reads (tests, diagnostics). */
export const directReadStats = {
  /** Sockets taken over. */
  adopted: 0,
  /** Bytes read straight into memory a reader aimed at. */
  landedBytes: 0,
};

/** What this module relies on in a stream handle (Node's TCPWrap). */
interface UserBufferHandle {
  useUserBuffer(buf: Uint8Array): void;
}

function handleOf(socket: Socket): UserBufferHandle | undefined {
  const h = (socket as unknown as { _handle?: Partial<UserBufferHandle> | null })._handle;
  return h !== null && h !== undefined && typeof h.useUserBuffer === 'function' ? (h as UserBufferHandle) : undefined;
}

/** Whether direct reads are enabled for this process (`ANVIL_DIRECT_READS=0` turns them off). */
export function directReadsEnabled(): boolean {
  const v = process.env['ANVIL_DIRECT_READS'];
  return v !== '0' && v !== 'off';
}

/** An accepted connection whose reads go where its consumer aims them. */
export class DirectSocket implements DirectReadSource {
  /** The socket to use from now on (reads, writes, end, destroy). */
  readonly socket: Socket;
  private staging: Buffer = Buffer.allocUnsafeSlow(STAGING_BYTES);
  private target: Uint8Array | undefined;
  private consumer: DirectReadConsumer | undefined;
  /** Reads that arrived before the first consumer attached. */
  private early: Buffer[] | undefined = [];

  private constructor(
    accepted: Socket,
    private readonly handle: UserBufferHandle,
  ) {
    this.socket = new Socket({
      handle,
      allowHalfOpen: accepted.allowHalfOpen,
      onread: { buffer: () => this.target ?? this.staging, callback: (n: number) => this.onRead(n) },
    } as ConstructorParameters<typeof Socket>[0]);
    // A runtime whose sockets ignore `handle` leaves the accepted socket as it was.
    if (handleOf(this.socket) !== handle) throw new Error('the socket did not take the handle');
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
   * Takes over a socket just accepted (nothing read from it yet). Returns undefined, leaving the
   * socket untouched, where that cannot be done.
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
    } catch {
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
    if (target === this.target) return;
    this.target = target;
    if (!this.socket.destroyed) this.handle.useUserBuffer(target ?? this.staging);
  }

  private onRead(n: number): boolean {
    try {
      this.deliver(n);
      return true;
    } catch (e) {
      // Never thrown into the stream machinery: the connection ends with the error instead.
      this.socket.destroy(e instanceof Error ? e : new Error(String(e)));
      return false;
    }
  }

  private deliver(n: number): void {
    const target = this.target;
    if (target !== undefined) {
      // Back to the staging buffer unless the consumer aims again now.
      this.target = undefined;
      directReadStats.landedBytes += n;
      if (this.consumer !== undefined) this.consumer.landed(n);
      return;
    }
    let bytes: Buffer;
    if (n >= HANDOVER_BYTES) {
      bytes = this.staging.subarray(0, n);
      this.staging = Buffer.allocUnsafeSlow(STAGING_BYTES);
    } else {
      bytes = Buffer.from(this.staging.subarray(0, n));
    }
    if (this.consumer !== undefined) this.consumer.received(bytes);
    else if (this.early !== undefined) this.early.push(bytes);
    else this.socket.emit('data', bytes);
  }
}
