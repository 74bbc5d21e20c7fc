import { connect, type Socket } from 'node:net';
import { ReadError, StreamReader } from '../protocol/stream-reader.js';
import { tokenize } from '../protocol/parse.js';
import { ClientError, ClientErrorCode } from './client-error.js';

/** Longest reply line the client accepts (a v1 ST_INQ header or an allocate reply is far shorter). */
const MAX_REPLY_LINE_BYTES = 64 * 1024;
const NO_TIMEOUT = 2 ** 31 - 1;

/**
 * One TCP connection to a depot, used by one request at a time. A request runs under a deadline:
 * past it the socket is destroyed and the request fails with `CLIENT_ERR_TIMEOUT`.
 */
export class DepotConnection {
  private readonly reader: StreamReader;
  private closed = false;
  private deadlineTimer: NodeJS.Timeout | undefined;
  private timedOut = false;
  /** Ends a send waiting for 'drain' (set while one waits). */
  private abortSend: (() => void) | undefined;
  lastUsed = Date.now();

  private constructor(
    private readonly socket: Socket,
    readonly depot: string,
  ) {
    this.reader = new StreamReader(socket, { highWaterBytes: 4 * 1024 * 1024 });
    socket.on('close', () => (this.closed = true));
    socket.on('end', () => (this.closed = true));
    socket.on('error', () => (this.closed = true));
  }

  static open(host: string, port: number, connectTimeoutMs: number): Promise<DepotConnection> {
    const depot = `${host}:${port}`;
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port, noDelay: true });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(
          new ClientError(ClientErrorCode.CONNECTION, `connect to ${depot} timed out after ${connectTimeoutMs} ms`, { depot }),
        );
      }, connectTimeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new DepotConnection(socket, depot));
      });
      socket.once('error', (e) => {
        clearTimeout(timer);
        reject(new ClientError(ClientErrorCode.CONNECTION, `cannot connect to ${depot}: ${e.message}`, { depot, cause: e }));
      });
    });
  }

  /** False once the depot closed its side or the socket failed. */
  get usable(): boolean {
    return !this.closed && !this.socket.destroyed && this.reader.buffered === 0;
  }

  /** Runs `fn` under a deadline; any failure leaves the connection unusable. */
  async request<T>(timeoutMs: number, fn: () => Promise<T>): Promise<T> {
    this.timedOut = false;
    this.deadlineTimer = setTimeout(() => {
      this.timedOut = true;
      this.destroy();
    }, timeoutMs);
    try {
      return await fn();
    } catch (e) {
      this.destroy();
      throw this.translate(e, timeoutMs);
    } finally {
      clearTimeout(this.deadlineTimer);
      this.lastUsed = Date.now();
    }
  }

  /** Sends bytes; resolves when they are handed to the kernel or buffered under the high-water mark. */
  async send(...parts: ReadonlyArray<string | Uint8Array>): Promise<void> {
    if (this.closed || this.socket.destroyed) throw new ReadError('truncated', 'connection closed before sending');
    let ok = true;
    for (const p of parts) ok = typeof p === 'string' ? this.socket.write(p, 'latin1') : this.socket.write(p);
    if (ok) return;
    // A socket that closed meanwhile never drains: check again before waiting, and let destroy()
    // (the request deadline) end the wait too.
    if (this.closed || this.socket.destroyed) throw new ReadError('truncated', 'connection closed while sending');
    await new Promise<void>((resolve, reject) => {
      const done = (e?: Error) => {
        this.socket.off('drain', onDrain);
        this.socket.off('close', onClose);
        this.abortSend = undefined;
        if (e === undefined) resolve();
        else reject(e);
      };
      const onDrain = () => done();
      const onClose = () => done(new ReadError('truncated', 'connection closed while sending'));
      this.abortSend = onClose;
      this.socket.once('drain', onDrain);
      this.socket.once('close', onClose);
    });
  }

  /**
   * Sends `chunk` and resolves once the socket holds no reference to it (its bytes are in the
   * kernel): the caller may then change or reuse its memory. Rejects if the connection closes first.
   */
  sendWhole(chunk: Uint8Array): Promise<void> {
    if (this.closed || this.socket.destroyed)
      return Promise.reject(new ReadError('truncated', 'connection closed before sending'));
    return new Promise<void>((resolve, reject) => {
      // A socket destroyed meanwhile calls every pending write back: the one under way with success
      // (its bytes are no longer referenced, though not necessarily delivered), the others with an error.
      this.socket.write(chunk, (e) => {
        if (e === null || e === undefined) resolve();
        else reject(new ReadError('truncated', 'connection closed while sending'));
      });
    });
  }

  /** Reads one reply line and splits it into tokens. */
  async readTokens(): Promise<string[]> {
    const line = await this.reader.readLine(MAX_REPLY_LINE_BYTES, NO_TIMEOUT, NO_TIMEOUT);
    return tokenize(line);
  }

  async readLine(): Promise<string> {
    return this.reader.readLine(MAX_REPLY_LINE_BYTES, NO_TIMEOUT, NO_TIMEOUT);
  }

  /** Delivers exactly `length` bytes to `sink` chunk by chunk (awaiting it), without gathering them. */
  async readInto(length: number, sink: (chunk: Buffer) => void | Promise<void>): Promise<void> {
    await this.reader.readBytes(length, NO_TIMEOUT, sink);
  }

  /** Reads exactly `length` bytes into one buffer. */
  async readBytes(length: number): Promise<Buffer> {
    const out = Buffer.allocUnsafe(length);
    let at = 0;
    await this.reader.readBytes(length, NO_TIMEOUT, (chunk) => {
      chunk.copy(out, at);
      at += chunk.length;
    });
    return out;
  }

  destroy(): void {
    this.closed = true;
    this.reader.close();
    this.socket.destroy();
    this.abortSend?.();
  }

  private translate(e: unknown, timeoutMs: number): unknown {
    if (this.timedOut) {
      return new ClientError(ClientErrorCode.TIMEOUT, `no complete reply from ${this.depot} within ${timeoutMs} ms`, {
        depot: this.depot,
        cause: e,
      });
    }
    if (e instanceof ReadError) {
      return new ClientError(ClientErrorCode.CONNECTION, `connection to ${this.depot} failed: ${e.message}`, {
        depot: this.depot,
        cause: e,
      });
    }
    if (e instanceof Error && !(e instanceof ClientError) && 'syscall' in e) {
      return new ClientError(ClientErrorCode.CONNECTION, `connection to ${this.depot} failed: ${e.message}`, {
        depot: this.depot,
        cause: e,
      });
    }
    return e;
  }
}
