import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { runDemo } from '../../cli/demo/run-demo.js';
import { liveStream, type LiveMessage } from '../../framework/index.js';

/** A stream that keeps what is written (the demo's progress output). */
function sink(): Writable & { text: () => string } {
  let text = '';
  return Object.assign(
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        text += chunk.toString();
        cb();
      },
    }),
    { isTTY: false, text: () => text },
  );
}

describe('anvil demo: start and end of the job', () => {
  it('healthy depots: no refresh failure or slow depot at the start, and a --duration end sends job-done, not job-failed', async () => {
    const messages: LiveMessage[] = [];
    let stopFeed: (() => void) | undefined;
    const out = sink();
    await runDemo({
      port: 0,
      host: '127.0.0.1',
      depots: 4,
      durationSec: 6,
      chaos: false,
      seed: 1,
      rate: 400,
      copies: 1,
      out,
      onReady: (url) => {
        const sub = liveStream(`${url.replace(/^http/, 'ws')}live`, { reconnect: false }).subscribe((m) => messages.push(m));
        stopFeed = () => sub.unsubscribe();
      },
    });
    stopFeed?.();
    const failures = messages.filter((m) => m.type === 'event' && m.kind === 'failure');
    expect(failures).toEqual([]);
    const health = messages.filter((m) => m.type === 'depot-health');
    expect(health.filter((m) => m.state !== 'up')).toEqual([]);
    expect(messages.filter((m) => m.type === 'estimate').length).toBeGreaterThan(0);
    expect(messages.filter((m) => m.type === 'job-failed')).toEqual([]);
    const done = messages.filter((m) => m.type === 'job-done');
    expect(done).toHaveLength(1);
    // The completion comes after the job's last estimate.
    const lastEstimate = messages.map((m) => m.type).lastIndexOf('estimate');
    expect(messages.indexOf(done[0]!)).toBeGreaterThan(lastEstimate);
  }, 60_000);
});
