import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { VirtualClock } from '../../depot/index.js';
import { RawSession, keyOf, rawAllocate, startDepot, type TestDepot } from '../helpers/depot-fixture.js';

const CAP = (port: number, type: string) => `ibp://127\\.0\\.0\\.1:${port}/1#[A-Za-z0-9_-]{43}/\\d+/${type}`;

describe('IBP wire: success replies, byte for byte', () => {
  const clock = new VirtualClock();
  let t: TestDepot;
  let s: RawSession;
  beforeAll(async () => {
    t = await startDepot(
      {
        resource: [
          { rid: '1', capacityBytes: 1 << 20 },
          { rid: '2', capacityBytes: 4096, maxDurationSec: 600 },
        ],
      },
      clock,
    );
  });
  afterEach(() => s?.end());
  afterAll(async () => t.close());

  it('ALLOCATE v1 and v0 reply `1 READ WRITE MANAGE \\n` with three distinct keys', async () => {
    s = await RawSession.open(t.port);
    s.send('1 1 1 2 1 3600 1024 10\n');
    const line = await s.line();
    expect(line).toMatch(new RegExp(`^1 (${CAP(t.port, 'READ')}) (${CAP(t.port, 'WRITE')}) (${CAP(t.port, 'MANAGE')}) \\n$`));
    const keys = line
      .trim()
      .split(' ')
      .slice(1)
      .map((c) => c.split('/')[3]);
    expect(new Set(keys).size).toBe(3);
    s.send('0 1 2 1 3600 1024 10\n');
    expect(await s.line()).toMatch(new RegExp(`^1 ${CAP(t.port, 'READ')} ${CAP(t.port, 'WRITE')} ${CAP(t.port, 'MANAGE')} \\n$`));
  });

  it('STORE, WRITE, LOAD, PROBE, INCR, CHNG, TRUNCATE', async () => {
    s = await RawSession.open(t.port);
    const [r, w, m] = await rawAllocate(s, 1024);
    s.send(`1 2 ${keyOf(w)} 11 10\n`);
    expect(await s.line()).toBe('1 \n');
    s.send('hello world');
    expect(await s.line()).toBe('1 11 \n');
    s.send(`1 13 ${keyOf(w)} 6 5 10\nWORLD`);
    expect(await s.line()).toBe('1 \n');
    expect(await s.line()).toBe('1 5 \n');
    s.send(`1 8 ${keyOf(r)} 0 11 10\n`);
    expect(await s.line()).toBe('1 11 \n');
    expect((await s.bytes(11)).toString()).toBe('hello WORLD');
    s.send(`1 9 ${keyOf(m)} 40 3 0 0 0 10 \n`);
    expect(await s.line()).toBe('1 1 0 11 1024 3600 2 1 \n');
    s.send(`1 9 ${keyOf(m)} 41 1 10\n`);
    expect(await s.line()).toBe('1 \n');
    s.send(`1 9 ${keyOf(m)} 41 2 10\n`);
    expect(await s.line()).toBe('1 \n');
    s.send(`1 9 ${keyOf(m)} 43 3 2048 20 1 10\n`);
    expect(await s.line()).toBe('1 \n');
    s.send(`1 9 ${keyOf(m)} 40 3 0 0 0 10\n`);
    expect(await s.line()).toBe('1 2 1 11 2048 20 1 1 \n');
    s.send(`1 9 ${keyOf(m)} 45 5 10\n`);
    expect(await s.line()).toBe('1 \n');
    s.send(`1 9 ${keyOf(m)} 40 3 0 0 0 10\n`);
    expect(await s.line()).toBe('1 2 1 5 5 20 1 1 \n');
    s.send(`1 9 ${keyOf(m)} 42 1 10\n`);
    expect(await s.line()).toBe('1 \n');
    s.send(`1 9 ${keyOf(m)} 42 1 10\n`);
    expect(await s.line()).toBe('1 \n');
    s.send(`1 9 ${keyOf(m)} 42 2 10\n`);
    expect(await s.line()).toBe('1 \n');
    s.send(`1 9 ${keyOf(m)} 40 3 0 0 0 10\n`);
    expect(await s.line()).toBe('-4 \n');
  });

  it('STATUS INQ v1 (all resources and one), v0, RES and VERSION', async () => {
    const fresh = await startDepot(
      {
        resource: [
          { rid: '1', capacityBytes: '1MiB' },
          { rid: '7', capacityBytes: 4096, maxDurationSec: 600 },
        ],
      },
      clock,
    );
    try {
      s = await RawSession.open(fresh.port);
      await rawAllocate(s, 1000);
      const body =
        'VS:1.4:1.0 DT:1 NFU:1:16:32:33:34:35:36:48:49:50:51:52:53:54 RID:1 RT:2 CT:1048576 ST:1048576 UT:1000 UH:1000 SH:1048576 CH:1048576 AT:1047576 AH:1047576 DR:2592000 RE ' +
        'RID:7 RT:2 CT:4096 ST:4096 UT:0 UH:0 SH:4096 CH:4096 AT:4096 AH:4096 DR:600 RE \n';
      s.send('1 4 0 1 ibp 10\n');
      expect(await s.line()).toBe(`1 ${body.length} \n`);
      expect((await s.bytes(body.length)).toString()).toBe(body);
      s.send('1 4 7 1 ibp 10\n');
      const one =
        'VS:1.4:1.0 DT:1 NFU:1:16:32:33:34:35:36:48:49:50:51:52:53:54 RID:7 RT:2 CT:4096 ST:4096 UT:0 UH:0 SH:4096 CH:4096 AT:4096 AH:4096 DR:600 RE \n';
      expect(await s.line()).toBe(`1 ${one.length} \n`);
      expect((await s.bytes(one.length)).toString()).toBe(one);
      s.send('0 4 1 ibp 10\n');
      expect(await s.line()).toBe('1 1 1 1 2592000 \n');
      s.send('1 4 3 10\n');
      expect(await s.line()).toBe('1 1 7 \n');
      s.send('1 4 5 10\n');
      expect(await s.line()).toBe('1\n');
      const lines: string[] = [];
      for (let l = await s.line(); l !== 'END\n'; l = await s.line()) lines.push(l);
      expect(lines[0]).toMatch(/^Anvil IBP depot \d+\.\d+\.\d+\n$/);
    } finally {
      s.end();
      await fresh.close();
    }
  });

  it('tolerates runs of spaces, tabs, CRLF, 0 and 0.5 timeouts, a missing timeout, and the WRM key', async () => {
    s = await RawSession.open(t.port);
    s.send('1  1   1 2\t1 3600 64   0.5\r\n');
    const caps = (await s.line()).trim().split(' ').slice(1);
    const [wk] = keyOf(caps[1]!).split(' ');
    s.send(`1 2  ${wk}  WHATEVER 3 0\nabc`);
    expect(await s.line()).toBe('1 \n');
    expect(await s.line()).toBe('1 3 \n');
    s.send(`1 8 ${keyOf(caps[0]!)} 0 3\n`);
    expect(await s.line()).toBe('1 3 \n');
    expect((await s.bytes(3)).toString()).toBe('abc');
    s.send(`\n\n1 4 3 0\n`);
    expect(await s.line()).toBe('1 1 2 \n');
  });

  it('serves pipelined commands on one connection, replies in order', async () => {
    s = await RawSession.open(t.port);
    const [r, w, m] = await rawAllocate(s, 100);
    s.send(
      `1 2 ${keyOf(w)} 4 10\nabcd1 2 ${keyOf(w)} 2 10\nef1 8 ${keyOf(r)} 0 6 10\n1 9 ${keyOf(m)} 40 3 0 0 0 10\n1 8 ${keyOf(r)} 5 9 10\n1 4 3 10\n`,
    );
    expect(await s.line()).toBe('1 \n');
    expect(await s.line()).toBe('1 4 \n');
    expect(await s.line()).toBe('1 \n');
    expect(await s.line()).toBe('1 2 \n');
    expect(await s.line()).toBe('1 6 \n');
    expect((await s.bytes(6)).toString()).toBe('abcdef');
    expect(await s.line()).toBe('1 1 0 6 100 3600 2 1 \n');
    expect(await s.line()).toBe('-19 \n');
    expect(await s.line()).toBe('1 1 2 \n');
  });
});
