import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtualClock } from '../../depot/index.js';
import { RawSession, keyOf, rawAllocate, startDepot, type TestDepot } from '../helpers/depot-fixture.js';

/** Sends one line on a fresh connection; returns the reply line and whether the depot closed. */
async function once(port: number, line: string): Promise<{ reply: string; closed: boolean }> {
  const s = await RawSession.open(port);
  try {
    s.send(line);
    const reply = await s.line();
    return { reply, closed: await s.closedWithin(1_000) };
  } finally {
    s.end();
  }
}

describe('IBP wire: every refusal has its exact status and changes nothing', () => {
  const clock = new VirtualClock();
  let t: TestDepot;
  let caps: [string, string, string];
  let usage: () => Promise<string>;
  beforeAll(async () => {
    t = await startDepot(
      {
        resource: [{ rid: '1', capacityBytes: 10_000, maxAllocationBytes: 4_000, maxDurationSec: 3600 }],
        limits: { maxAllocations: 4 },
      },
      clock,
    );
    const s = await RawSession.open(t.port);
    caps = await rawAllocate(s, 1000);
    s.send(`1 2 ${keyOf(caps[1])} 10 10\n0123456789`);
    await s.line();
    await s.line();
    s.end();
    usage = async () => {
      const u = await RawSession.open(t.port);
      u.send(`1 9 ${keyOf(caps[2])} 40 3 0 0 0 10\n1 4 1 1 ibp 10\n`);
      const probe = await u.line();
      const head = await u.line();
      const body = (await u.bytes(Number(head.split(' ')[1]))).toString();
      u.end();
      return probe + body;
    };
  });
  afterAll(async () => t.close());

  const protocolErrors: Array<[string, string, string]> = [
    ['empty version', 'x 1 1 2 1 60 10 10\n', '-21 \n'],
    ['one token', '1\n', '-21 \n'],
    ['bad version', '2 1 1 2 1 60 10 10\n', '-27 \n'],
    ['unknown command', '1 99 a b\n', '-43 \n'],
    ['unserved command (DELIVER)', '1 3 a b 10\n', '-43 \n'],
    ['allocate, missing token', '1 1 1 2 1 60\n', '-21 \n'],
    ['allocate, extra tokens', '1 1 1 2 1 60 10 10 10 10\n', '-21 \n'],
    ['allocate, non-numeric size', '1 1 1 2 1 60 1e3 10\n', '-21 \n'],
    ['allocate, reliability 3', '1 1 1 3 1 60 10 10\n', '-21 \n'],
    ['allocate, non-numeric rid', '1 1 x 2 1 60 10 10\n', '-21 \n'],
    ['store, length 0', '1 2 1#abc 0 0 10\n', '-36 \n'],
    ['write, negative offset', '1 13 1#abc 0 -1 5 10\n', '-18 \n'],
    ['load, length 0', '1 8 1#abc 0 0 0 10\n', '-36 \n'],
    ['key token without key', '1 8 1# 0 0 5 10\n', '-11 \n'],
    ['manage, unknown sub-command', '1 9 1#abc 0 47 10\n', '-21 \n'],
    ['incr, captype 9', '1 9 1#abc 0 41 9 10\n', '-21 \n'],
    ['status, unknown sub-command', '1 4 9 10\n', '-21 \n'],
    ['status, wrong password', '1 4 1 1 secret 10\n', '-29 \n'],
    ['status, ST_CHANGE', '1 4 1 2 ibp 10\n', '-25 \n'],
  ];
  it.each(protocolErrors)('%s → status, connection closed', async (_name, line, expected) => {
    const before = await usage();
    const r = await once(t.port, line);
    expect(r.reply).toBe(expected);
    expect(r.closed).toBe(true);
    expect(await usage()).toBe(before);
  });

  const refusals: Array<[string, (c: [string, string, string]) => string, string]> = [
    ['allocate, type 0', () => '1 1 1 2 0 60 10 10\n', '-30 \n'],
    ['allocate, type 5', () => '1 1 1 2 5 60 10 10\n', '-30 \n'],
    ['allocate, duration 0', () => '1 1 1 2 1 0 10 10\n', '-30 \n'],
    ['allocate, duration -5', () => '1 1 1 2 1 -5 10 10\n', '-30 \n'],
    ['allocate, duration over max', () => '1 1 1 2 1 3601 10 10\n', '-28 \n'],
    ['allocate, size 0', () => '1 1 1 2 1 60 0 10\n', '-30 \n'],
    ['allocate, over maxAllocationBytes', () => '1 1 1 2 1 60 4001 10\n', '-19 \n'],
    ['allocate, unknown RID', () => '1 1 5 2 1 60 10 10\n', '-50 \n'],
    ['load, unknown key', () => '1 8 1#nope 0 0 5 10\n', '-4 \n'],
    ['load, write cap', (c) => `1 8 ${keyOf(c[1])} 0 5 10\n`, '-4 \n'],
    ['load, past the data', (c) => `1 8 ${keyOf(c[0])} 5 6 10\n`, '-19 \n'],
    ['load, wrong RID prefix', (c) => `1 8 ${keyOf(c[0]).replace(/^1#/, '2#')} 0 5 10\n`, '-4 \n'],
    ['chng, read cap (PROBE takes it; CHNG needs the manage cap)', (c) => `1 9 ${keyOf(c[0])} 43 3 1000 60 2 10\n`, '-4 \n'],
    ['truncate, write cap', (c) => `1 9 ${keyOf(c[1])} 45 5 10\n`, '-4 \n'],
    ['incr, captype 3', (c) => `1 9 ${keyOf(c[2])} 41 3 10\n`, '-30 \n'],
    ['chng, below the data', (c) => `1 9 ${keyOf(c[2])} 43 3 9 60 2 10\n`, '-20 \n'],
    ['chng, size 0', (c) => `1 9 ${keyOf(c[2])} 43 3 0 60 2 10\n`, '-20 \n'],
    ['chng, over maxAllocationBytes', (c) => `1 9 ${keyOf(c[2])} 43 3 4001 60 2 10\n`, '-19 \n'],
    ['chng, duration 0', (c) => `1 9 ${keyOf(c[2])} 43 3 1000 0 2 10\n`, '-30 \n'],
    ['chng, duration over max', (c) => `1 9 ${keyOf(c[2])} 43 3 1000 3601 2 10\n`, '-45 \n'],
    ['chng, reliability 7', (c) => `1 9 ${keyOf(c[2])} 43 3 1000 60 7 10\n`, '-21 \n'],
    ['truncate, negative', (c) => `1 9 ${keyOf(c[2])} 45 -1 10\n`, '-30 \n'],
    ['truncate, over maxAllocationBytes', (c) => `1 9 ${keyOf(c[2])} 45 4001 10\n`, '-19 \n'],
    ['status, unknown RID', () => '1 4 5 1 ibp 10\n', '-50 \n'],
  ];
  it.each(refusals)('%s → status, connection kept', async (_name, make, expected) => {
    const before = await usage();
    const s = await RawSession.open(t.port);
    try {
      s.send(make(caps));
      expect(await s.line()).toBe(expected);
      s.send('1 4 3 10\n');
      expect(await s.line()).toBe('1 1 \n');
    } finally {
      s.end();
    }
    expect(await usage()).toBe(before);
  });

  it.each([
    ['store, unknown key', () => '1 2 1#nope 0 5 10\nabcde', '-4 \n'],
    ['store, read cap', (c: [string, string, string]) => `1 2 ${keyOf(c[0])} 5 10\nabcde`, '-4 \n'],
    ['store, past max size', (c: [string, string, string]) => `1 2 ${keyOf(c[1])} 991 10\n`, '-19 \n'],
    ['write, past max size', (c: [string, string, string]) => `1 13 ${keyOf(c[1])} 999 2 10\nab`, '-19 \n'],
  ])('%s → status before any body byte is taken, connection closed', async (_name, make, expected) => {
    const before = await usage();
    const r = await once(t.port, make(caps));
    expect(r).toEqual({ reply: expected, closed: true });
    expect(await usage()).toBe(before);
  });

  it('refuses capacity and allocation-count overflow with -38, and frees on delete', async () => {
    const s = await RawSession.open(t.port);
    try {
      const a = await rawAllocate(s, 4000);
      const b = await rawAllocate(s, 4000);
      s.send('1 1 1 2 1 60 1001 10\n');
      expect(await s.line()).toBe('-38 \n'); // 1000 + 4000 + 4000 + 1001 > 10000
      const c = await rawAllocate(s, 10);
      s.send('1 1 1 2 1 60 10 10\n');
      expect(await s.line()).toBe('-38 \n'); // maxAllocations = 4
      for (const m of [a[2], b[2], c[2]]) {
        s.send(`1 9 ${keyOf(m)} 42 1 10\n`);
        expect(await s.line()).toBe('1 \n');
      }
      const d = await rawAllocate(s, 4000);
      s.send(`1 9 ${keyOf(d[2])} 42 1 10\n`);
      expect(await s.line()).toBe('1 \n');
    } finally {
      s.end();
    }
  });

  it('expired leases answer -4 and give their capacity back', async () => {
    const s = await RawSession.open(t.port);
    try {
      const [r, , m] = await rawAllocate(s, 4000, 30);
      s.send(`1 4 1 1 ibp 10\n`);
      const head = await s.line();
      expect((await s.bytes(Number(head.split(' ')[1]))).toString()).toContain('UT:5000');
      clock.advance(29_999);
      s.send(`1 9 ${keyOf(m)} 40 3 0 0 0 10\n`);
      expect(await s.line()).toBe('1 1 0 0 4000 1 2 1 \n');
      clock.advance(1);
      s.send(`1 8 ${keyOf(r)} 0 1 10\n`);
      expect(await s.line()).toBe('-4 \n');
      s.send(`1 9 ${keyOf(m)} 40 3 0 0 0 10\n`);
      expect(await s.line()).toBe('-4 \n');
      s.send(`1 4 1 1 ibp 10\n`);
      const head2 = await s.line();
      expect((await s.bytes(Number(head2.split(' ')[1]))).toString()).toContain('UT:1000');
    } finally {
      s.end();
    }
  });

  it('the sweep frees expired leases nobody touches', async () => {
    const s = await RawSession.open(t.port);
    try {
      await rawAllocate(s, 2000, 10);
      expect(t.depot.core.allocationCount).toBe(2);
      clock.advance(10_000);
      t.depot.core.sweep(); // the periodic sweep may already have run: either way it is gone
      expect(t.depot.core.allocationCount).toBe(1);
    } finally {
      s.end();
    }
  });
});

describe('IBP wire: WRM key checked when configured', () => {
  let t: TestDepot;
  beforeAll(async () => {
    t = await startDepot({ wrmKey: 'check' });
  });
  afterAll(async () => t.close());

  it('a wrong WRM key is refused per cap type (-8 write, -9 read, -10 manage); the right one works', async () => {
    const s = await RawSession.open(t.port);
    const [r, w, m] = await rawAllocate(s, 10);
    const bad = (cap: string) => keyOf(cap).replace(/ \d+$/, ' 999999');
    s.send(`1 8 ${bad(r)} 0 1 10\n`);
    expect(await s.line()).toBe('-9 \n');
    s.send(`1 9 ${bad(m)} 40 3 0 0 0 10\n`);
    expect(await s.line()).toBe('-10 \n');
    s.send(`1 9 ${keyOf(m)} 40 3 0 0 0 10\n`);
    expect(await s.line()).toMatch(/^1 1 0 0 10 /);
    s.send(`1 2 ${bad(w)} 1 10\nx`);
    expect(await s.line()).toBe('-8 \n');
    expect(await s.closedWithin()).toBe(true);
    s.end();
  });
});
