import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DepotProbe, DepotStatusBoard, formatDepotCounts } from '../../cli/demo/depot-status.js';
import { ProgressLine } from '../../cli/demo/progress-line.js';
import { depotId, startLoopbackDepots, type LoopbackDepots } from '../../framework/index.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('demo status line: which depots are up', () => {
  const names = ['a:1', 'b:2', 'c:3', 'd:4'];

  it('counts a depot as up only while it answers recently at a normal speed and is not paused or killed', () => {
    let now = 0;
    const board = new DepotStatusBoard(names, { freshMs: 5000, slowMs: 750, now: () => now });
    expect(formatDepotCounts(board.counts())).toBe('depots up 0/4 (4 silent)'); // nothing answered yet
    for (const d of names) board.answered(d, 10);
    expect(formatDepotCounts(board.counts())).toBe('depots up 4/4');
    board.disrupted('b:2', 'paused');
    expect(formatDepotCounts(board.counts())).toBe('depots up 3/4 (1 paused)');
    now = 100;
    board.answered('c:3', 2000); // a slow answer
    board.late('d:4'); // an attempt ran late since its last answer
    expect(formatDepotCounts(board.counts())).toBe('depots up 1/4 (2 slow, 1 paused)');
    now += 6000; // no answer from anyone for longer than freshMs
    board.answered('a:1', 5);
    expect(board.state('c:3')).toBe('silent');
    expect(formatDepotCounts(board.counts())).toBe('depots up 1/4 (1 paused, 2 silent)');
    board.disrupted('b:2', undefined); // resumed: up again only once it answers
    expect(board.state('b:2')).toBe('silent');
    board.answered('b:2', 5);
    now += 10;
    board.failed('a:1'); // its last attempt failed after its last answer
    board.disrupted('d:4', 'killed');
    expect(formatDepotCounts(board.counts())).toBe('depots up 1/4 (2 down, 1 silent)');
  });

  it('the progress line shows the counts', () => {
    let text = '';
    const out = Object.assign(
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          text += chunk.toString();
          cb();
        },
      }),
      { isTTY: false },
    );
    new ProgressLine(out).update({
      rows: 1234,
      depots: { up: 3, slow: 0, paused: 1, down: 0, silent: 0, total: 4 },
      estimate: undefined,
      chaos: undefined,
    });
    expect(text).toContain('1,234 rows · depots up 3/4 (1 paused) · waiting for the first estimate');
  });
});

describe('demo liveness probe against loopback depots', () => {
  let loop: LoopbackDepots;
  beforeAll(async () => {
    loop = await startLoopbackDepots(2);
  }, 30_000);
  afterAll(async () => {
    loop.resume(1);
    await loop.stop();
  });

  it('a depot paused with SIGSTOP stops counting as up even when no op is sent to it', async () => {
    const names = loop.depots.map(depotId);
    const board = new DepotStatusBoard(names, { freshMs: 800, slowMs: 400 });
    const probe = new DepotProbe(loop.depots, board, 300);
    try {
      for (let i = 0; i < 50 && board.counts().up < 2; i++) {
        probe.tick();
        await sleep(100);
      }
      expect(board.counts().up).toBe(2);
      loop.pause(1);
      for (let i = 0; i < 50 && board.state(names[1]!) === 'up'; i++) {
        probe.tick();
        await sleep(100);
      }
      expect(board.state(names[1]!)).not.toBe('up');
      expect(board.state(names[0]!)).toBe('up');
      expect(formatDepotCounts(board.counts())).toMatch(/^depots up 1\/2 \(1 (slow|silent)\)$/);
    } finally {
      probe.stop();
      loop.resume(1);
    }
  }, 30_000);
});
