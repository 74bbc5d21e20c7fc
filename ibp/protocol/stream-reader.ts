import type { Duplex } from 'node:stream';
import { ByteQueue, LINE_TOO_LONG } from './byte-queue.js';

/** Why a read on a {@link StreamReader} could not complete. */
export type ReadFailure =
  | 'eof' // the peer closed cleanly between messages
  | 'truncated' // the peer closed in the middle of a line or a byte run
  | 'line-too-long'
  | 'idle-timeout' // nothing arrived while waiting for a new line
  | 'line-timeout' // a line was started but not finished in time (slowloris)
  | 'data-timeout' // a byte run made no progress in time
  | 'body-timeout' // a byte run was not complete by its deadline (too slow on average)
  | 'closed'; // the reader was closed locally

export class ReadError extends Error {
  constructor(
    readonly reason: ReadFailure,
    message: string,
  ) {
    super(message);
    this.name = 'ReadError';
  }
}

export interface StreamReaderOptions {
  /** Pause the stream while more than this many bytes wait unread (backpressure). */
  readonly highWaterBytes: number;
}

/**
 * Pull-style reads of IBP command lines and raw byte runs from a duplex stream (a TCP socket
 * in production, an in-memory pair in tests). One outstanding read at a time.
 */
export class StreamReader {
  private readonly queue = new ByteQueue();
  private ended = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  private paused = false;
  private closed = false;

  constructor(
    private readonly stream: Duplex,
    private readonly options: StreamReaderOptions,
  ) {
    stream.on('data', (chunk: Buffer) => {
      if (this.closed) return; // whoever reads after close() owns the bytes
      this.queue.push(chunk);
      if (!this.paused && this.queue.length > this.options.highWaterBytes) {
        this.paused = true;
        stream.pause();
      }
      this.notify();
    });
    stream.on('end', () => {
      this.ended = true;
      this.notify();
    });
    stream.on('close', () => {
      this.ended = true;
      this.notify();
    });
    stream.on('error', (err: Error) => {
      this.failure = err;
      this.notify();
    });
  }

  /** Bytes received and not yet consumed. */
  get buffered(): number {
    return this.queue.length;
  }

  /**
   * Stops all waiting reads with reason `closed` and drops every byte held; input arriving later
   * is ignored (not buffered). The stream stays paused if it was: resuming it is the caller's.
   */
  close(): void {
    this.closed = true;
    this.failure ??= new ReadError('closed', 'reader closed');
    this.queue.clear();
    this.notify();
  }

  /**
   * Reads one line. While nothing of it has arrived the wait is bounded by `idleTimeoutMs`;
   * once its first byte is held, the whole line must arrive within `lineTimeoutMs`.
   */
  async readLine(maxBytes: number, idleTimeoutMs: number, lineTimeoutMs: number): Promise<string> {
    let lineDeadline = this.queue.length > 0 ? Date.now() + lineTimeoutMs : 0;
    for (;;) {
      const line = this.queue.takeLine(maxBytes);
      if (typeof line === 'string') {
        this.maybeResume();
        return line;
      }
      if (line === LINE_TOO_LONG) {
        throw new ReadError('line-too-long', `command line exceeds ${maxBytes} bytes`);
      }
      this.throwIfDone(this.queue.length === 0 ? 'eof' : 'truncated');
      this.maybeResume();
      if (this.queue.length > 0 && lineDeadline === 0) lineDeadline = Date.now() + lineTimeoutMs;
      if (lineDeadline === 0) {
        await this.waitForData(idleTimeoutMs, 'idle-timeout');
      } else {
        await this.waitForData(lineDeadline - Date.now(), 'line-timeout');
      }
    }
  }

  /**
   * Delivers exactly `length` bytes to `sink`, chunk by chunk, as views of the received
   * buffers (kept alive by the sink's references; never reused). A sink returning a promise is
   * awaited before the next chunk. Fails with `data-timeout` when no byte arrives for
   * `progressTimeoutMs`, and with `body-timeout` when the run is not complete by `deadline`
   * (a `Date.now()` value; none when omitted), however steadily bytes trickle in.
   */
  async readBytes(
    length: number,
    progressTimeoutMs: number,
    sink: (chunk: Buffer) => void | Promise<void>,
    deadline = Number.POSITIVE_INFINITY,
  ): Promise<void> {
    let remaining = length;
    while (remaining > 0) {
      const chunk = this.queue.take(remaining);
      if (chunk.length > 0) {
        remaining -= chunk.length;
        const pending = sink(chunk);
        if (pending !== undefined) await pending;
        continue;
      }
      this.throwIfDone('truncated');
      this.maybeResume();
      const left = deadline - Date.now();
      if (left < progressTimeoutMs) await this.waitForData(left, 'body-timeout');
      else await this.waitForData(progressTimeoutMs, 'data-timeout');
    }
    this.maybeResume();
  }

  /** Discards exactly `length` bytes (used to skip a body the depot refused). */
  async skipBytes(length: number, progressTimeoutMs: number): Promise<void> {
    await this.readBytes(length, progressTimeoutMs, () => undefined);
  }

  private throwIfDone(endReason: 'eof' | 'truncated'): void {
    if (this.failure !== undefined) throw this.failure;
    if (this.ended) {
      throw new ReadError(endReason, endReason === 'eof' ? 'peer closed the connection' : 'peer closed mid-message');
    }
  }

  private maybeResume(): void {
    if (this.paused && this.queue.length <= this.options.highWaterBytes / 2) {
      this.paused = false;
      this.stream.resume();
    }
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private waitForData(timeoutMs: number, reason: ReadFailure): Promise<void> {
    if (timeoutMs <= 0) {
      return Promise.reject(new ReadError(reason, `timed out (${reason})`));
    }
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        reject(new ReadError(reason, `timed out after ${timeoutMs} ms (${reason})`));
      }, timeoutMs);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
