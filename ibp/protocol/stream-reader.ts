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
  /**
   * Where the stream's reads come from when it can read into memory the reader picks (a socket
   * read with `onread`): the reader then takes its bytes from here instead of `'data'` events,
   * and a byte run with a {@link DirectTarget} lands in place.
   */
  readonly source?: DirectReadSource;
}

/** What a {@link DirectReadSource} delivers its reads to. */
export interface DirectReadConsumer {
  /** Bytes read into the source's own memory: `bytes` now belong to the consumer. */
  received(bytes: Buffer): void;
  /** `n` bytes were read into the memory last {@link DirectReadSource.aim aimed} at. */
  landed(n: number): void;
}

/**
 * A stream whose reads land where its reader says. Reads happen between turns of the event loop,
 * so what is aimed at is only ever written by a read whose delivery follows.
 */
export interface DirectReadSource {
  /** Delivers every later read to `consumer` (undefined: as `'data'` events of the stream). */
  attach(consumer: DirectReadConsumer | undefined): void;
  /**
   * Points the next read at `target` (at most its length is read), or back at the source's own
   * memory (undefined). After a read into a target the source points back at its own memory
   * unless the consumer aims again while the read is delivered.
   */
  aim(target: Uint8Array | undefined): void;
}

/**
 * Memory a byte run can be read straight into (no queue, no copy): a writer that owns its
 * destination. The reader offers each span only while nothing of the run waits in its queue, so
 * bytes land in order; exactly one of `landed` or `cancel` follows each span given.
 */
export interface DirectTarget {
  /** Memory for the run's next bytes (length 1…`max`), or undefined: they go to the sink. */
  span(max: number): Uint8Array | undefined;
  /** The first `n` bytes of the last span hold the run's next bytes. */
  landed(n: number): void;
  /** The last span gets no bytes after all. */
  cancel(): void;
}

/** Type guard: a writer that also offers its memory for reads in place. */
export function isDirectTarget(x: unknown): x is DirectTarget {
  const t = x as Partial<DirectTarget> | undefined;
  return typeof t?.span === 'function' && typeof t.landed === 'function' && typeof t.cancel === 'function';
}

/** The byte run being read in place. */
interface DirectRun {
  readonly target: DirectTarget;
  /** Bytes of the run not yet delivered (to the sink or in place). */
  left: number;
  /** The span the source is aimed at, if any. */
  aimed: Uint8Array | undefined;
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
  private readonly source: DirectReadSource | undefined;
  private run: DirectRun | undefined;

  constructor(
    private readonly stream: Duplex,
    private readonly options: StreamReaderOptions,
  ) {
    this.source = options.source;
    if (this.source === undefined) {
      stream.on('data', (chunk: Buffer) => this.received(chunk));
    } else {
      this.source.attach({ received: (bytes) => this.received(bytes), landed: (n) => this.landed(n) });
    }
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
    this.disarm();
    this.source?.attach(undefined);
    this.notify();
  }

  private received(chunk: Buffer): void {
    if (this.closed) return; // whoever reads after close() owns the bytes
    this.queue.push(chunk);
    if (!this.paused && this.queue.length > this.options.highWaterBytes) {
      this.paused = true;
      this.stream.pause();
    }
    this.notify();
  }

  /** A read landed in the aimed span: it is the run's, and the next span is aimed at once. */
  private landed(n: number): void {
    const run = this.run;
    if (run === undefined || run.aimed === undefined) return; // never aimed: nothing to account
    run.aimed = undefined;
    run.target.landed(n);
    run.left -= n;
    this.aimNext(run);
    this.notify();
  }

  /** Aims the source at the run's next span, when nothing of the run waits in the queue. */
  private aimNext(run: DirectRun): void {
    if (run.aimed !== undefined || run.left <= 0 || this.queue.length > 0 || this.closed) return;
    const span = run.target.span(run.left);
    if (span === undefined) return;
    // Every span offered is followed by `landed` or `cancel`: an empty one is returned at once.
    if (span.length === 0) return run.target.cancel();
    if (span.length > run.left) {
      run.target.cancel();
      throw new RangeError(`span of ${span.length} bytes for a run of ${run.left}`);
    }
    run.aimed = span;
    this.source!.aim(span);
  }

  /** Ends reading in place: the source goes back to its own memory, an unused span is returned. */
  private disarm(): void {
    const run = this.run;
    this.run = undefined;
    if (run?.aimed === undefined) return;
    run.aimed = undefined;
    this.source!.aim(undefined);
    run.target.cancel();
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
   *
   * With a `target`, on a reader with a {@link StreamReaderOptions.source source}, bytes not yet
   * received are read straight into the target's spans; only those already queued go to `sink`.
   */
  async readBytes(
    length: number,
    progressTimeoutMs: number,
    sink: (chunk: Buffer) => void | Promise<void>,
    deadline = Number.POSITIVE_INFINITY,
    target?: DirectTarget,
  ): Promise<void> {
    if (this.run !== undefined) throw new Error('StreamReader: one read at a time');
    const run: DirectRun = { target: target ?? NO_TARGET, left: length, aimed: undefined };
    if (target !== undefined && this.source !== undefined && !this.closed) this.run = run;
    try {
      while (run.left > 0) {
        const chunk = this.queue.take(run.left);
        if (chunk.length > 0) {
          run.left -= chunk.length;
          const pending = sink(chunk);
          if (pending !== undefined) await pending;
          continue;
        }
        this.throwIfDone('truncated');
        this.maybeResume();
        if (this.run === run) this.aimNext(run);
        const left = deadline - Date.now();
        if (left < progressTimeoutMs) await this.waitForData(left, 'body-timeout');
        else await this.waitForData(progressTimeoutMs, 'data-timeout');
      }
    } finally {
      if (this.run === run) this.disarm();
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

const NO_TARGET: DirectTarget = {
  span: () => undefined,
  landed: () => undefined,
  cancel: () => undefined,
};
