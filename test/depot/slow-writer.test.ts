import { afterEach, describe, expect, it } from 'vitest';
import { capTokens } from '../../ibp/index.js';
import { RawSession, keyOf, rawAllocate, startDepot, type TestDepot } from '../helpers/depot-fixture.js';
import { tempDir } from '../helpers/temp-dir.js';
import {
  DEFAULT_CLOSE_DRAIN_BYTES,
  DEFAULT_CLOSE_LINGER_MS,
  DEFAULT_MAX_REQUEST_TIMEOUT_MS,
  DEFAULT_MIN_BODY_BYTES_PER_SEC,
  parseDepotOptions,
} from '../../depot/options.js';

/** Upper bound on any single wait of these tests (a bound, not a timing assertion). */
const WAIT_MS = 12_000;

describe('no wait behind a slow writer is unbounded', () => {
  let t: TestDepot | undefined;
  const sessions: RawSession[] = [];
  const timers: NodeJS.Timeout[] = [];
  const open = async () => {
    const s = await RawSession.open(t!.port);
    sessions.push(s);
    return s;
  };
  afterEach(async () => {
    for (const timer of timers.splice(0)) clearInterval(timer);
    for (const s of sessions.splice(0)) s.end();
    await t?.close();
    t = undefined;
  });

  /** Sends one byte of `body` every `everyMs` until it is all sent or the connection closes. */
  function trickle(s: RawSession, body: string, everyMs: number): void {
    let i = 0;
    const timer = setInterval(() => {
      if (i >= body.length || s.socket.destroyed) return clearInterval(timer);
      s.send(body[i++]!);
    }, everyMs);
    timers.push(timer);
  }

  it('a STORE body trickled at 10 B/s is cut off (-42) by its whole-body deadline, though it never stalls', async () => {
    // Progress every 100 ms keeps dataProgressTimeoutMs (4 s) from firing; the 200-byte body needs 20 s.
    t = await startDepot({ limits: { dataProgressTimeoutMs: 4_000 } });
    const s = await open();
    const [, w, m] = await rawAllocate(s, 1000);
    s.send(`1 2 ${keyOf(w)} 200 1\n`);
    expect(await s.line()).toBe('1 \n');
    trickle(s, 'x'.repeat(200), 100);

    // A WRITE to the same allocation, queued behind it, is answered when its own time (1 s) is up.
    const queued = await open();
    queued.send(`1 13 ${keyOf(w)} 0 5 1\nhello`);
    expect(await queued.line(WAIT_MS)).toBe('-42 \n');
    expect(await queued.closedWithin(WAIT_MS)).toBe(true);

    expect(await s.line(WAIT_MS)).toBe('-42 \n');
    expect(await s.closedWithin(WAIT_MS)).toBe(true);

    // Nothing of either became visible, and the allocation takes writes again.
    const after = await open();
    after.send(`1 9 ${keyOf(m)} 40 3 0 0 0 10\n`);
    expect(await after.line()).toMatch(/^1 1 0 0 1000 /);
    after.send(`1 13 ${keyOf(w)} 0 2 10\nok`);
    expect(await after.line()).toBe('1 \n');
    expect(await after.line()).toBe('1 2 \n');
  });

  it('minBodyBytesPerSec sets the rate a body must keep on average', async () => {
    t = await startDepot({ limits: { dataProgressTimeoutMs: 1_000, minBodyBytesPerSec: 100 } });
    const s = await open();
    const [, w] = await rawAllocate(s, 1000);
    // Deadline: max(token 1 s, 1 s) + 300 B / 100 B/s = 4 s; at 20 B/s the body needs 15 s.
    s.send(`1 2 ${keyOf(w)} 300 1\n`);
    expect(await s.line()).toBe('1 \n');
    trickle(s, 'y'.repeat(300), 50);
    expect(await s.line(WAIT_MS)).toBe('-42 \n');
    expect(await s.closedWithin(WAIT_MS)).toBe(true);
  });

  it('a huge timeout token is capped by maxRequestTimeoutMs', async () => {
    t = await startDepot({ limits: { dataProgressTimeoutMs: 4_000, maxRequestTimeoutMs: 500 } });
    const s = await open();
    const [, w] = await rawAllocate(s, 1000);
    s.send(`1 2 ${keyOf(w)} 10 999999\nab`); // stalls: holds the allocation for dataProgressTimeoutMs
    expect(await s.line()).toBe('1 \n');
    const queued = await open();
    queued.send(`1 13 ${keyOf(w)} 0 5 999999\nhello`);
    expect(await queued.line(WAIT_MS)).toBe('-42 \n');
    expect(await queued.closedWithin(WAIT_MS)).toBe(true);
  });

  it('a LOAD reply read at a trickle is cut off by the same deadline, though every run drains in time', async () => {
    const dir = tempDir('anvil-slow-load-');
    try {
      const size = 32 << 20; // well beyond what the kernel's socket buffers absorb
      t = await startDepot({
        resource: [{ rid: '1', path: dir.path, capacityBytes: '64MiB', fsync: 'fast' }],
        limits: { dataProgressTimeoutMs: 6_000, minBodyBytesPerSec: '16MiB' },
      });
      const caps = await t.client.allocate(t, { size, durationSec: 60 });
      await t.client.store(caps.write, Buffer.alloc(size, 7));
      t.client.close(); // no pooled connection left: the LOAD's is the only one
      const s = await open();
      s.socket.pause();
      s.socket.removeAllListeners('data');
      s.send(`1 8 ${capTokens(caps.read).join(' ')} 0 ${size} 1\n`);
      // 64 KiB every 100 ms: each 1 MiB read run of the disk drains well within dataProgressTimeoutMs,
      // but the whole reply would take 50 s against the 6 s + 32 MiB / 16 MiB/s = 8 s allowed.
      const timer = setInterval(() => s.socket.read(64 * 1024), 100);
      timers.push(timer);
      await new Promise((r) => setTimeout(r, 200));
      expect(t.depot.connectionCount).toBe(1);
      const deadline = Date.now() + 2 * WAIT_MS;
      while (t.depot.connectionCount > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(t.depot.connectionCount).toBe(0);
    } finally {
      await t?.close();
      t = undefined;
      dir.cleanup();
    }
  }, 40_000);

  it('NFU parameter data trickled in is cut off the same way', async () => {
    t = await startDepot({ limits: { dataProgressTimeoutMs: 1_000, minBodyBytesPerSec: 100 } });
    const s = await open();
    s.send('1 12 1 1 1\n3 0 0 300\n');
    trickle(s, 'z'.repeat(300), 50);
    expect(await s.line(WAIT_MS)).toBe('-42 \n');
    expect(await s.closedWithin(WAIT_MS)).toBe(true);
  });
});

describe('the new limits are validated', () => {
  it.each([
    [{ minBodyBytesPerSec: 0 }, '`limits.minBodyBytesPerSec` must be from 1 to 1073741824 bytes (got 0)'],
    [{ closeDrainBytes: '2GiB' }, '`limits.closeDrainBytes` must be from 0 to 1073741824 bytes (got 2147483648)'],
    [{ closeLingerMs: -1 }, '`limits.closeLingerMs` must be an integer from 0 to 3600000 (got -1)'],
    [{ maxRequestTimeoutMs: 0 }, '`limits.maxRequestTimeoutMs` must be an integer from 1 to 86400000 (got 0)'],
  ])('%j → DEPOT_ERR_CONFIG', (limits, message) => {
    expect(() => parseDepotOptions({ limits })).toThrow(expect.objectContaining({ code: 'DEPOT_ERR_CONFIG' }));
    expect(() => parseDepotOptions({ limits })).toThrow(message);
  });

  it('defaults: 64 KiB/s, 5 min, 4 MiB, 2 s', () => {
    expect(parseDepotOptions().limits).toMatchObject({
      minBodyBytesPerSec: DEFAULT_MIN_BODY_BYTES_PER_SEC,
      maxRequestTimeoutMs: DEFAULT_MAX_REQUEST_TIMEOUT_MS,
      closeDrainBytes: DEFAULT_CLOSE_DRAIN_BYTES,
      closeLingerMs: DEFAULT_CLOSE_LINGER_MS,
    });
    expect([
      DEFAULT_MIN_BODY_BYTES_PER_SEC,
      DEFAULT_MAX_REQUEST_TIMEOUT_MS,
      DEFAULT_CLOSE_DRAIN_BYTES,
      DEFAULT_CLOSE_LINGER_MS,
    ]).toEqual([65_536, 300_000, 4 * 1024 * 1024, 2_000]);
  });
});
