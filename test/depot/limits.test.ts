import { afterEach, describe, expect, it } from 'vitest';
import { RawSession, keyOf, rawAllocate, startDepot, type TestDepot } from '../helpers/depot-fixture.js';

describe('depot limits: each one hit once, with its status, and the depot keeps serving', () => {
  let t: TestDepot | undefined;
  const sessions: RawSession[] = [];
  const open = async () => {
    const s = await RawSession.open(t!.port);
    sessions.push(s);
    return s;
  };
  afterEach(async () => {
    for (const s of sessions.splice(0)) s.end();
    await t?.close();
    t = undefined;
  });

  async function stillServes(): Promise<void> {
    const s = await open();
    s.send('1 4 3 10\n');
    expect(await s.line()).toBe('1 1 \n');
  }

  it('a command line over maxCommandLineBytes → -21 and close, before the line ends', async () => {
    t = await startDepot({ limits: { maxCommandLineBytes: 128 } });
    const s = await open();
    s.send(`1 4 3 10${' '.repeat(200)}`); // no newline: refused on length alone
    expect(await s.line()).toBe('-21 \n');
    expect(await s.closedWithin()).toBe(true);
    const ok = await open();
    ok.send(`1 4 3 ${' '.repeat(100)}10\n`); // 118 bytes with spaces: under the limit
    expect(await ok.line()).toBe('1 1 \n');
  });

  it('the default line limit is 64 KiB', async () => {
    t = await startDepot();
    const s = await open();
    s.send(`1 4 3 10 ${'9'.repeat(64 * 1024)}\n`);
    expect(await s.line()).toBe('-21 \n');
    expect(await s.closedWithin()).toBe(true);
    await stillServes();
  });

  it('connections over maxConnections get "-66 <retry>" and are closed; freed slots are reused', async () => {
    t = await startDepot({ limits: { maxConnections: 2, overloadRetrySec: 3 } });
    const a = await open();
    const b = await open();
    a.send('1 4 3 10\n');
    expect(await a.line()).toBe('1 1 \n');
    b.send('1 4 3 10\n');
    expect(await b.line()).toBe('1 1 \n');
    const c = await open();
    expect(await c.line()).toBe('-66 3 \n');
    expect(await c.closedWithin()).toBe(true);
    a.end();
    await a.closed;
    await new Promise((r) => setTimeout(r, 50));
    const d = await open();
    d.send('1 4 3 10\n');
    expect(await d.line()).toBe('1 1 \n');
  });

  it('an idle connection is closed after idleTimeoutMs, silently', async () => {
    t = await startDepot({ limits: { idleTimeoutMs: 150 } });
    const s = await open();
    s.send('1 4 3 10\n');
    expect(await s.line()).toBe('1 1 \n');
    expect(await s.closedWithin(2_000)).toBe(true);
    await stillServes();
  });

  it('a line trickled slower than commandLineTimeoutMs → -42 and close (slowloris)', async () => {
    t = await startDepot({ limits: { commandLineTimeoutMs: 200, idleTimeoutMs: 5_000 } });
    const s = await open();
    s.send('1 4');
    const timer = setInterval(() => s.send(' '), 50);
    try {
      expect(await s.line(3_000)).toBe('-42 \n');
      expect(await s.closedWithin()).toBe(true);
    } finally {
      clearInterval(timer);
    }
    await stillServes();
  });

  it('a stalled STORE body → -42 and close; nothing of it becomes visible', async () => {
    t = await startDepot({ limits: { dataProgressTimeoutMs: 200 } });
    const s = await open();
    const [r, w, m] = await rawAllocate(s, 100);
    s.send(`1 2 ${keyOf(w)} 10 10\nabcd`);
    expect(await s.line()).toBe('1 \n');
    expect(await s.line(3_000)).toBe('-42 \n');
    expect(await s.closedWithin()).toBe(true);
    const s2 = await open();
    s2.send(`1 9 ${keyOf(m)} 40 3 0 0 0 10\n`);
    expect(await s2.line()).toMatch(/^1 1 0 0 100 /);
    s2.send(`1 13 ${keyOf(w)} 8 2 10\nzz`); // leaves a hole at 0..8: it must read as zeros
    expect(await s2.line()).toBe('1 \n');
    expect(await s2.line()).toBe('1 2 \n');
    s2.send(`1 8 ${keyOf(r)} 0 10 10\n`);
    expect(await s2.line()).toBe('1 10 \n');
    expect(await s2.bytes(10)).toEqual(Buffer.concat([Buffer.alloc(8), Buffer.from('zz')]));
  });

  it('a client that disconnects mid-body leaves no partial append', async () => {
    t = await startDepot();
    const s = await open();
    const [r, w] = await rawAllocate(s, 100);
    s.send(`1 2 ${keyOf(w)} 3 10\nabc`);
    await s.line();
    await s.line();
    s.send(`1 2 ${keyOf(w)} 50 10\n0123456789`);
    expect(await s.line()).toBe('1 \n');
    s.end();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const s2 = await open();
    s2.send(`1 2 ${keyOf(w)} 2 10\nde`);
    expect(await s2.line()).toBe('1 \n');
    expect(await s2.line()).toBe('1 2 \n');
    s2.send(`1 8 ${keyOf(r)} 0 5 10\n1 8 ${keyOf(r)} 0 6 10\n`);
    expect(await s2.line()).toBe('1 5 \n');
    expect((await s2.bytes(5)).toString()).toBe('abcde');
    expect(await s2.line()).toBe('-19 \n');
  });

  it('graceful close: idle connections close at once, an in-flight STORE completes', async () => {
    t = await startDepot({ limits: { shutdownGraceMs: 5_000 } });
    const idle = await open();
    idle.send('1 4 3 10\n');
    await idle.line();
    const busy = await open();
    const [, w] = await rawAllocate(busy, 100);
    busy.send(`1 2 ${keyOf(w)} 6 10\nabc`);
    expect(await busy.line()).toBe('1 \n');
    const closing = t.depot.close();
    expect(await idle.closedWithin()).toBe(true);
    busy.send('def');
    expect(await busy.line()).toBe('1 6 \n');
    expect(await busy.closedWithin()).toBe(true);
    await closing;
    t.client.close();
    t = undefined;
  });

  it('graceful close cuts a stalled connection after shutdownGraceMs', async () => {
    t = await startDepot({ limits: { shutdownGraceMs: 100, dataProgressTimeoutMs: 60_000 } });
    const busy = await open();
    const [, w] = await rawAllocate(busy, 100);
    busy.send(`1 2 ${keyOf(w)} 6 10\nabc`);
    expect(await busy.line()).toBe('1 \n');
    const started = Date.now();
    await t.depot.close();
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(await busy.closedWithin()).toBe(true);
    t.client.close();
    t = undefined;
  });
});
