import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { RawSession, startDepot, type TestDepot } from '../helpers/depot-fixture.js';

const MiB = 1024 * 1024;
const BODY = Buffer.alloc(16 * MiB, 0x61);
/** Upper bound on any single wait of these tests (a bound, not a timing assertion). */
const WAIT_MS = 10_000;

interface Outcome {
  /** The reply line the depot sent before closing, if it arrived. */
  reply: string | undefined;
  /** The client's own write was flushed to the kernel (the depot kept reading). */
  flushed: boolean;
  /** The connection was reset (the depot stopped reading and closed). */
  reset: boolean;
}

/**
 * A client as a real IBP client behaves: writes a command and the bytes behind it without waiting,
 * then waits until it has learnt the outcome — its write flushed and the reply read, or a reset —
 * and closes. Rejects when it learns nothing within WAIT_MS (the defect: blocked forever).
 */
function refusedClient(port: number, head: string, bodyBytes: number): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, noDelay: true });
    const out: Outcome = { reply: undefined, flushed: false, reset: false };
    let received = '';
    let ended = false;
    const finish = (e?: Error) => {
      clearTimeout(timer);
      s.destroy();
      if (e) reject(e);
      else resolve(out);
    };
    const check = () => {
      if (out.reset || (out.flushed && out.reply !== undefined && ended)) finish();
    };
    const timer = setTimeout(
      () => finish(new Error(`client learnt nothing in ${WAIT_MS} ms: ${JSON.stringify({ ...out, ended })}`)),
      WAIT_MS,
    );
    s.on('data', (d: Buffer) => {
      received += d.toString('latin1');
      const nl = received.indexOf('\n');
      if (nl >= 0 && out.reply === undefined) out.reply = received.slice(0, nl + 1);
      check();
    });
    s.on('end', () => {
      ended = true;
      check();
    });
    s.on('error', () => {
      out.reset = true;
      check();
    });
    s.once('connect', () => {
      s.write(head, 'latin1');
      const body = BODY.subarray(0, bodyBytes);
      s.write(body, (e) => {
        if (e) return;
        out.flushed = true;
        check();
      });
    });
  });
}

/** Polls `read` until it returns `want` or WAIT_MS pass; returns the last value read. */
async function settle(read: () => Promise<number> | number, want: number): Promise<number> {
  const deadline = Date.now() + WAIT_MS;
  let n = await read();
  while (n !== want && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    n = await read();
  }
  return n;
}

async function inBatches<T>(n: number, batch: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < n; i += batch) {
    out.push(...(await Promise.all(Array.from({ length: Math.min(batch, n - i) }, (_, j) => task(i + j)))));
  }
  return out;
}

const mib = (bytes: number) => Math.round(bytes / MiB);

describe('a refused connection with unread input is released (socket, memory), and its client learns at once', () => {
  let t: TestDepot | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  const cases: ReadonlyArray<{ name: string; head: string; body: number; status: string }> = [
    { name: '4 MiB command line', head: '1 4 3 10 ', body: 4 * MiB, status: '-21 \n' },
    {
      name: 'STORE to a bad cap + its 2 MiB body',
      head: `1 2 1#${'x'.repeat(43)} 1 ${2 * MiB} 10\n`,
      body: 2 * MiB,
      status: '-4 \n',
    },
    { name: 'hello + 2 MiB', head: 'hello\n', body: 2 * MiB, status: '-21 \n' },
    { name: 'a wrong version + 2 MiB', head: '7 4 3 10\n', body: 2 * MiB, status: '-27 \n' },
  ];

  it('500 such connections: every client learns, every server socket is freed, RSS comes back down', async () => {
    t = await startDepot();
    const depot = t.depot;
    expect(await depot.openSockets()).toBe(0);
    const rssBefore = process.memoryUsage().rss;
    const outcomes = await inBatches(500, 25, async (i) => {
      const c = cases[i % cases.length]!;
      const o = await refusedClient(t!.port, c.head, c.body);
      return { c, o };
    });
    for (const { c, o } of outcomes) {
      // Either the depot drained the input (write flushed) and the reply arrived, or it reset.
      expect(o.reset || (o.flushed && o.reply === c.status), `${c.name}: ${JSON.stringify(o)}`).toBe(true);
    }
    expect(await settle(() => depot.openSockets(), 0)).toBe(0);
    expect(depot.connectionCount).toBe(0);
    global.gc?.();
    const rssAfter = process.memoryUsage().rss;
    console.info(
      `500 refused connections: RSS ${mib(rssBefore)} → ${mib(rssAfter)} MiB, ` +
        `${outcomes.filter((x) => x.o.reset).length} reset, ${outcomes.filter((x) => !x.o.reset).length} drained`,
    );
    // The depot still serves.
    const s = await RawSession.open(t.port);
    s.send('1 4 3 10\n');
    expect(await s.line()).toBe('1 1 \n');
    s.end();
  });

  it('a refused client that never closes nor reads is cut after closeLingerMs', async () => {
    t = await startDepot({ limits: { closeLingerMs: 200 } });
    const sockets: Socket[] = [];
    try {
      for (let i = 0; i < 10; i++) {
        const s = connect({ host: '127.0.0.1', port: t.port });
        s.on('error', () => undefined);
        s.pause(); // never reads the reply, never closes
        s.write(`7 4 3 10\n`);
        s.write(BODY.subarray(0, 64 * 1024));
        sockets.push(s);
      }
      await settle(() => t!.depot.openSockets(), 10);
      expect(await settle(() => t!.depot.openSockets(), 0)).toBe(0);
      expect(t.depot.connectionCount).toBe(0);
    } finally {
      for (const s of sockets) s.destroy();
    }
  });

  it('at most closeDrainBytes of a refused client input are read: then the connection is reset', async () => {
    t = await startDepot({ limits: { closeDrainBytes: 256 * 1024, closeLingerMs: 60_000 } });
    // More than the kernel's socket buffers can hold (a client's send buffer grows to 4 MiB here, and
    // the depot's receive buffer stays small once it stops reading): the write cannot be flushed
    // before the reset, so the client cannot take the reply and FIN for the whole story.
    const o = await refusedClient(t.port, 'hello\n', 16 * MiB);
    expect(o.reset).toBe(true);
    expect(await settle(() => t!.depot.openSockets(), 0)).toBe(0);
  });
});

describe('connections refused with -66 at the connection limit are released', () => {
  let t: TestDepot | undefined;
  const held: RawSession[] = [];
  afterEach(async () => {
    for (const s of held.splice(0)) s.end();
    await t?.close();
    t = undefined;
  });

  async function holdLimit(): Promise<void> {
    for (let i = 0; i < 2; i++) {
      const s = await RawSession.open(t!.port);
      s.send('1 4 3 10\n');
      expect(await s.line()).toBe('1 1 \n');
      held.push(s);
    }
  }

  it('300 clients that send a command, read -66 and close leave no socket behind', async () => {
    t = await startDepot({ limits: { maxConnections: 2 } });
    await holdLimit();
    expect(await t.depot.openSockets()).toBe(2);
    const outcomes = await inBatches(300, 25, () => refusedClient(t!.port, '1 4 3 10\n', 0));
    for (const o of outcomes) expect(o.reset || o.reply === '-66 2 \n', JSON.stringify(o)).toBe(true);
    expect(await settle(() => t!.depot.openSockets(), 2)).toBe(2);
  });

  it('clients that never close after -66 are cut after closeLingerMs', async () => {
    t = await startDepot({ limits: { maxConnections: 2, closeLingerMs: 200 } });
    await holdLimit();
    const sockets: Socket[] = [];
    try {
      await Promise.all(
        Array.from({ length: 20 }, async () => {
          const s = connect({ host: '127.0.0.1', port: t!.port });
          s.on('error', () => undefined);
          s.pause(); // never consumes the -66, never closes
          sockets.push(s);
          await new Promise((resolve) => s.once('readable', resolve)); // the depot accepted and answered
        }),
      );
      expect(await settle(() => t!.depot.openSockets(), 2)).toBe(2);
    } finally {
      for (const s of sockets) s.destroy();
    }
  });
});
