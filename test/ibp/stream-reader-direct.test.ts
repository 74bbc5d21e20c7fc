import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  ReadError,
  StreamReader,
  isDirectTarget,
  type DirectReadConsumer,
  type DirectReadSource,
  type DirectTarget,
} from '../../ibp/index.js';

/**
 * A source that behaves like a socket read with `onread`: each fed piece is one or more reads, a
 * read into an aimed target takes at most the target's length, the rest is read next.
 */
class FakeSource implements DirectReadSource {
  consumer: DirectReadConsumer | undefined;
  target: Uint8Array | undefined;
  readonly aims: (Uint8Array | undefined)[] = [];
  /** Bytes delivered while no consumer was attached (a socket's 'data' events). */
  readonly unclaimed: Buffer[] = [];

  attach(consumer: DirectReadConsumer | undefined): void {
    this.consumer = consumer;
  }

  aim(target: Uint8Array | undefined): void {
    this.target = target;
    this.aims.push(target);
  }

  feed(bytes: Buffer): void {
    let at = 0;
    while (at < bytes.length) {
      const target = this.target;
      if (target !== undefined) {
        const n = Math.min(target.length, bytes.length - at);
        target.set(bytes.subarray(at, at + n));
        at += n;
        this.target = undefined;
        this.consumer?.landed(n);
      } else {
        const part = Buffer.from(bytes.subarray(at));
        at = bytes.length;
        if (this.consumer !== undefined) this.consumer.received(part);
        else this.unclaimed.push(part);
      }
    }
  }
}

/** A destination of `length` bytes offering spans of at most `spanMax` bytes. */
class Destination implements DirectTarget {
  readonly bytes: Buffer;
  cursor = 0;
  landedBytes = 0;
  sunkBytes = 0;
  cancels = 0;
  private out: Uint8Array | undefined;

  constructor(
    length: number,
    private readonly spanMax: number,
  ) {
    this.bytes = Buffer.alloc(length);
  }

  span(max: number): Uint8Array | undefined {
    expect(this.out).toBeUndefined();
    const n = Math.min(max, this.spanMax, this.bytes.length - this.cursor);
    if (n <= 0) return undefined;
    this.out = this.bytes.subarray(this.cursor, this.cursor + n);
    return this.out;
  }

  landed(n: number): void {
    expect(this.out).toBeDefined();
    expect(n).toBeLessThanOrEqual(this.out!.length);
    this.out = undefined;
    this.cursor += n;
    this.landedBytes += n;
  }

  cancel(): void {
    this.out = undefined;
    this.cancels++;
  }

  /** The sink for bytes that were queued before the run started. */
  sink = (chunk: Buffer): void => {
    expect(this.out).toBeUndefined();
    chunk.copy(this.bytes, this.cursor);
    this.cursor += chunk.length;
    this.sunkBytes += chunk.length;
  };

  get spanOut(): boolean {
    return this.out !== undefined;
  }
}

function reader(source: FakeSource, highWaterBytes = 1 << 20): { r: StreamReader; stream: PassThrough } {
  const stream = new PassThrough();
  return { r: new StreamReader(stream, { highWaterBytes, source }), stream };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

describe('StreamReader reading a byte run in place', () => {
  it('a body fed in pieces lands in the target; the command after it is read as a line', async () => {
    const body = pattern(10_000, 1);
    const wire = Buffer.concat([Buffer.from('STORE 10000\n'), body, Buffer.from('NEXT 1\n')]);
    // Every split of the wire into three pieces around the body's edges and middle.
    for (const cuts of [
      [5, 12, 5000],
      [12, 13, 10_012],
      [12, 10_012, 10_013],
      [3, 4000, 10_015],
      [12, 6000, 9000],
    ]) {
      const source = new FakeSource();
      const { r } = reader(source);
      const dest = new Destination(body.length, 4096);
      const pieces = [
        wire.subarray(0, cuts[0]),
        wire.subarray(cuts[0], cuts[1]),
        wire.subarray(cuts[1], cuts[2]),
        wire.subarray(cuts[2]),
      ];
      const feeding = (async () => {
        for (const p of pieces) {
          await tick();
          source.feed(p);
        }
      })();
      expect(await r.readLine(100, 1000, 1000)).toBe('STORE 10000');
      await r.readBytes(body.length, 1000, dest.sink, Number.POSITIVE_INFINITY, dest);
      expect(await r.readLine(100, 1000, 1000)).toBe('NEXT 1');
      await feeding;
      expect(dest.bytes.equals(body)).toBe(true);
      expect(dest.landedBytes + dest.sunkBytes).toBe(body.length);
      expect(dest.spanOut).toBe(false);
      // Whatever was not queued when the run started landed in place.
      expect(dest.landedBytes).toBeGreaterThan(0);
      // After the run the source reads into its own memory again.
      expect(source.target).toBeUndefined();
    }
  });

  it('bytes queued before the run go to the sink; a span never reaches past the run', async () => {
    const source = new FakeSource();
    const { r } = reader(source);
    const body = pattern(3000, 2);
    source.feed(Buffer.concat([Buffer.from('W\n'), body.subarray(0, 1000)]));
    expect(await r.readLine(100, 1000, 1000)).toBe('W');
    const dest = new Destination(body.length, 1 << 20);
    const run = r.readBytes(body.length, 1000, dest.sink, Number.POSITIVE_INFINITY, dest);
    await tick();
    // The queue was drained into the sink, then the source was aimed at exactly the rest.
    expect(dest.sunkBytes).toBe(1000);
    expect(source.target?.length).toBe(2000);
    // The rest and a pipelined command in one read: the command stays out of the target.
    source.feed(Buffer.concat([body.subarray(1000), Buffer.from('PIPELINED\n')]));
    await run;
    expect(dest.bytes.equals(body)).toBe(true);
    expect(dest.landedBytes).toBe(2000);
    expect(await r.readLine(100, 1000, 1000)).toBe('PIPELINED');
  });

  it('without a target, or without a source, a run goes through the sink as before', async () => {
    const source = new FakeSource();
    const { r } = reader(source);
    source.feed(Buffer.from('x'));
    const got: Buffer[] = [];
    const run = r.readBytes(5, 1000, (c) => void got.push(Buffer.from(c)));
    await tick();
    expect(source.target).toBeUndefined();
    source.feed(Buffer.from('yzab'));
    await run;
    expect(Buffer.concat(got).toString()).toBe('xyzab');

    const stream = new PassThrough();
    const plain = new StreamReader(stream, { highWaterBytes: 1 << 20 });
    const dest = new Destination(4, 4);
    const run2 = plain.readBytes(4, 1000, dest.sink, Number.POSITIVE_INFINITY, dest);
    stream.write('abcd');
    await run2;
    expect(dest.bytes.toString()).toBe('abcd');
    expect(dest.landedBytes).toBe(0);
  });

  it('a run that times out while aimed gives the span back and points the source at its own memory', async () => {
    const source = new FakeSource();
    const { r } = reader(source);
    const dest = new Destination(100, 100);
    const run = r.readBytes(100, 30, dest.sink, Number.POSITIVE_INFINITY, dest);
    await tick();
    expect(source.target).toBeDefined();
    source.feed(pattern(40, 3));
    const e = await run.catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ReadError);
    expect((e as ReadError).reason).toBe('data-timeout');
    expect(dest.landedBytes).toBe(40);
    expect(dest.cancels).toBe(1);
    expect(source.target).toBeUndefined();
    expect(source.aims.at(-1)).toBeUndefined();
    // Later input is queued, never written into the abandoned destination.
    source.feed(Buffer.from('LATER\n'));
    expect(await r.readLine(100, 1000, 1000)).toBe('LATER');
    expect(dest.bytes.subarray(40).every((x) => x === 0)).toBe(true);
  });

  it('a run past its whole-body deadline fails with body-timeout and gives its span back', async () => {
    const source = new FakeSource();
    const { r } = reader(source);
    const dest = new Destination(100, 10);
    const run = r.readBytes(100, 10_000, dest.sink, Date.now() + 40, dest);
    const e = await run.catch((x: unknown) => x);
    expect((e as ReadError).reason).toBe('body-timeout');
    expect(dest.cancels).toBe(1);
    expect(source.target).toBeUndefined();
  });

  it('close() during a run stops it, gives the span back and detaches from the source', async () => {
    const source = new FakeSource();
    const { r } = reader(source);
    const dest = new Destination(100, 100);
    const run = r.readBytes(100, 10_000, dest.sink, Number.POSITIVE_INFINITY, dest);
    await tick();
    r.close();
    const e = await run.catch((x: unknown) => x);
    expect((e as ReadError).reason).toBe('closed');
    expect(dest.cancels).toBe(1);
    expect(source.target).toBeUndefined();
    expect(source.consumer).toBeUndefined();
    // Input after close goes to whoever reads the stream next, not to the reader.
    source.feed(Buffer.from('after'));
    expect(source.unclaimed.map((b) => b.toString())).toEqual(['after']);
  });

  it('the end of input in the middle of a run fails it with truncated', async () => {
    const source = new FakeSource();
    const { r, stream } = reader(source);
    const dest = new Destination(100, 100);
    const run = r.readBytes(100, 10_000, dest.sink, Number.POSITIVE_INFINITY, dest);
    await tick();
    source.feed(pattern(10, 4));
    stream.emit('end');
    const e = await run.catch((x: unknown) => x);
    expect((e as ReadError).reason).toBe('truncated');
    expect(dest.landedBytes).toBe(10);
    expect(dest.cancels).toBe(1);
  });

  it('a target that offers no span (bytes below the committed size) takes every byte through the sink', async () => {
    const source = new FakeSource();
    const { r } = reader(source);
    const dest = new Destination(50, 0);
    const run = r.readBytes(50, 1000, dest.sink, Number.POSITIVE_INFINITY, dest);
    await tick();
    expect(source.target).toBeUndefined();
    source.feed(pattern(50, 5));
    await run;
    expect(dest.sunkBytes).toBe(50);
    expect(dest.bytes.equals(pattern(50, 5))).toBe(true);
  });

  it('the queue limit still pauses the stream while lines pile up', async () => {
    const source = new FakeSource();
    const { r, stream } = reader(source, 16);
    source.feed(Buffer.from('0123456789abcdefghij'));
    expect(stream.isPaused()).toBe(true);
    await r.readBytes(20, 1000, () => undefined);
    expect(stream.isPaused()).toBe(false);
  });

  it('isDirectTarget tells writers that offer spans from those that do not', () => {
    expect(isDirectTarget(new Destination(1, 1))).toBe(true);
    expect(isDirectTarget({ write: () => undefined })).toBe(false);
    expect(isDirectTarget(undefined)).toBe(false);
  });
  it('an empty span offered by the target is given back at once and the body arrives through the queue', async () => {
    const source = new FakeSource();
    const { r } = reader(source);
    let cancels = 0;
    const got: Buffer[] = [];
    const target = {
      span: (): Uint8Array => new Uint8Array(0),
      landed: (): void => {
        throw new Error('nothing was offered to land in');
      },
      cancel: (): void => {
        cancels++;
      },
    };
    const run = r.readBytes(10, 1000, (c) => void got.push(Buffer.from(c)), Number.POSITIVE_INFINITY, target);
    await tick();
    expect(source.target).toBeUndefined();
    source.feed(pattern(10, 7));
    await run;
    expect(Buffer.concat(got).equals(pattern(10, 7))).toBe(true);
    expect(cancels).toBeGreaterThanOrEqual(1);
  });
});
