import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { IbpClient, ManualClock, Warmer, parsePolicy, type WarmReport } from '../../framework/index.js';

const flush = async () => {
  for (let i = 0; i < 20; i++) await new Promise<void>((r) => setImmediate(r));
};

/** Waits (real time, bounded) until `n` passes have run: a pass reads the directory, which is real I/O. */
const passesReach = async (passes: unknown[], n: number) => {
  const until = Date.now() + 5_000;
  while (passes.length < n && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
  await flush();
};

describe('the warmer daemon on an injected clock', () => {
  const dir = mkdtempSync(join(tmpdir(), 'anvil-warm-clock-'));
  const client = new IbpClient({ timeoutMs: 1_000 });
  afterAll(() => {
    client.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('passes once at start and then every intervalSec of virtual time, until aborted', async () => {
    const clock = new ManualClock(1_000_000);
    const policy = parsePolicy({ sites: { a: ['127.0.0.1:1'] }, intervalSec: 300 });
    const warmer = new Warmer(client, policy, undefined, clock);
    const passes: WarmReport[] = [];
    const stop = new AbortController();
    const done = warmer.run(dir, { signal: stop.signal, onPass: (r) => passes.push(r) });
    await passesReach(passes, 1);
    expect(passes).toHaveLength(1);
    clock.advance(299_999);
    await flush();
    expect(passes).toHaveLength(1); // not due yet
    clock.advance(1);
    await passesReach(passes, 2);
    expect(passes).toHaveLength(2);
    clock.advance(600_000);
    await passesReach(passes, 3);
    await new Promise((r) => setTimeout(r, 50)); // room for a wrong extra pass to show
    expect(passes).toHaveLength(3); // one pass per wake-up: the second interval starts after the pass
    stop.abort();
    await done;
    expect(clock.pendingTimers).toBe(0);
    expect(passes[0]).toMatchObject({ exnodes: 0, failures: 0 });
  });
});
