import { AllocationType, CapType, countReply } from '../../ibp/index.js';
import type { LoadRequest, StoreRequest, WriteRequest } from '../../ibp/index.js';
import { DepotError, DepotErrorCode } from '../errors.js';
import type { Allocation } from '../core/allocation.js';
import type { DepotCore } from '../core/depot-core.js';
import type { RingView } from '../core/ring-allocation.js';

/** What a command handler outside the connection needs of it. */
export interface CommandWire {
  readonly core: DepotCore;
  /** Writes a reply (head, then optional bytes), bounded by the reply deadline. */
  send(head: string, body?: Buffer, deadline?: number): Promise<void>;
  /**
   * Writes `body` and resolves once the socket holds no reference to it (its bytes are in the
   * kernel), bounded like {@link send}: a sink that says it releases its chunks (`sinkReleases`) uses it.
   */
  sendWhole(body: Buffer, deadline: number): Promise<void>;
  /** Reads a body of `length` bytes within its deadline, handing each chunk to `sink`. */
  readBody(length: number, timeoutSec: number, sink: (chunk: Buffer) => void | Promise<void>): Promise<void>;
  /** The command's timeout token in ms, capped by the depot's limit. */
  tokenMs(timeoutSec: number): number;
  /** When a reply of `length` bytes must have been read by the client (a `Date.now()` value). */
  bodyDeadline(length: number, timeoutSec: number): number;
  /** Runs `task` under the allocation's write lock, waiting for it at most `waitMs` (-42, fatal). */
  withWriteLockWithin(a: Allocation, waitMs: number, task: () => Promise<void>): Promise<void>;
  /** Runs `fn`; a refusal it throws closes the connection after its reply (a body may follow). */
  fatalOnRefusal<T>(fn: () => T | Promise<T>): Promise<T>;
  /** A reply failed after its header went out: cuts the connection and rethrows as a read error. */
  abortReply(e: unknown): Promise<never>;
}

function refused(code: (typeof DepotErrorCode)[keyof typeof DepotErrorCode], message: string): DepotError {
  return new DepotError(code, message);
}

/**
 * STORE to a BUFFER, FIFO or CIRQ (and WRITE to a BUFFER). Bounds are checked, and a FIFO waits
 * for room (within the command's timeout), before the go-ahead; the body is then staged and
 * written as one ring write, so a STORE cut short changes nothing.
 */
export async function ringReceive(wire: CommandWire, req: StoreRequest | WriteRequest): Promise<void> {
  const core = wire.core;
  const a = await wire.fatalOnRefusal(() => core.lookup(req.cap, CapType.WRITE));
  const ring = a.ring!;
  const offset = req.command === 'write' ? req.offset : undefined;
  await wire.fatalOnRefusal(() => ring.checkWrite(req.length, offset));
  const waitMs = wire.tokenMs(req.timeoutSec);
  const deadline = Date.now() + waitMs;
  await wire.withWriteLockWithin(a, waitMs, async () => {
    await wire.fatalOnRefusal(async () => {
      core.assertLive(a);
      core.checkWriteRange(a, offset ?? 0, req.length);
      if (a.type === AllocationType.FIFO) {
        await ring.waitUntil(
          () => ring.room >= req.length,
          deadline,
          `room for ${req.length} bytes in the FIFO`,
          () => a.freed,
        );
      }
    });
    await wire.send('1 \n');
    const chunks: Buffer[] = [];
    await wire.readBody(req.length, req.timeoutSec, (chunk) => {
      chunks.push(Buffer.from(chunk));
    });
    await core.ringWrite(a, chunks, req.length, offset);
    await wire.send(countReply(req.length));
  });
}

/**
 * LOAD from a BUFFER (by offset), a CIRQ (offset 0: the newest LENGTH bytes; offset E > 0: the
 * window of stream bytes `[E - LENGTH, E)`, E being a write position from PROBE) or a FIFO (the
 * oldest LENGTH bytes, consumed once delivered). FIFO/CIRQ loads wait for data within the
 * command's timeout. The bytes are copied and checked before the header goes out, so a window is
 * never torn by a concurrent STORE.
 */
export async function ringLoad(wire: CommandWire, req: LoadRequest): Promise<void> {
  const core = wire.core;
  const a = core.lookup(req.cap, CapType.READ);
  const ring = a.ring!;
  const view = a.data as RingView;
  if (a.state === 'damaged') throw refused(DepotErrorCode.DAMAGED, `allocation ${a.id} is damaged; its bytes are not served`);
  const deadline = Date.now() + wire.tokenMs(req.timeoutSec);
  const gone = () => a.freed;
  const reply = async (bytes: Buffer) => {
    await wire.send(countReply(bytes.length), bytes, wire.bodyDeadline(bytes.length, req.timeoutSec));
  };
  if (a.type === AllocationType.BUFFER) {
    const bytes = await a.withWriteLock(async () => {
      core.checkReadRange(a, req.offset, req.length);
      return view.readStream(req.offset, req.length);
    });
    await reply(bytes);
    return;
  }
  if (req.length > a.maxSize) {
    throw refused(DepotErrorCode.WOULD_EXCEED_LIMIT, `reading ${req.length} bytes exceeds the queue's size (${a.maxSize} bytes)`);
  }
  if (a.type === AllocationType.FIFO) {
    await ring.withReadLock(async () => {
      await ring.waitUntil(() => ring.held >= req.length, deadline, `${req.length} bytes in the FIFO`, gone);
      const bytes = await view.readStream(ring.consumed, req.length);
      await reply(bytes);
      await core.ringConsume(a, req.length);
    });
    return;
  }
  // CIRQ
  let start: number;
  if (req.offset === 0) {
    await ring.waitUntil(() => ring.held >= req.length, deadline, `${req.length} bytes in the queue`, gone);
    start = ring.written - req.length;
  } else {
    const end = req.offset;
    if (end < req.length) {
      throw refused(DepotErrorCode.WOULD_EXCEED_LIMIT, `a window of ${req.length} bytes cannot end at write position ${end}`);
    }
    await ring.waitUntil(() => ring.written >= end, deadline, `write position ${end}`, gone);
    start = end - req.length;
    if (start < ring.oldest) {
      throw refused(
        DepotErrorCode.RING_OVERWRITTEN,
        `the window [${start}, ${end}) was overwritten; the queue holds [${ring.oldest}, ${ring.written})`,
      );
    }
  }
  await reply(await view.readStream(start, req.length));
}
