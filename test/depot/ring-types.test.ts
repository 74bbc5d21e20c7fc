import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RawSession, keyOf, startDepot, type TestDepot } from '../helpers/depot-fixture.js';

async function allocate(s: RawSession, type: number, size: number): Promise<[string, string, string]> {
  s.send(`1 1 1 2 ${type} 600 ${size} 10\n`);
  const t = (await s.line()).trim().split(' ');
  expect(t[0]).toBe('1');
  return [t[1]!, t[2]!, t[3]!];
}

async function store(s: RawSession, w: string, body: Buffer | string): Promise<string> {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  s.send(Buffer.concat([Buffer.from(`1 2 ${keyOf(w)} ${b.length} 10\n`), b]));
  const go = await s.line();
  if (go !== '1 \n') return go;
  return s.line();
}

async function load(s: RawSession, r: string, offset: number, length: number, timeout = 10): Promise<Buffer | string> {
  s.send(`1 8 ${keyOf(r)} ${offset} ${length} ${timeout}\n`);
  const head = await s.line();
  const t = head.trim().split(' ');
  if (t[0] !== '1') return head;
  return s.bytes(Number(t[1]));
}

/** The PROBE reply with its seconds-left field (which depends on the wall clock) replaced by `T`. */
async function probe(s: RawSession, m: string): Promise<string> {
  s.send(`1 9 ${keyOf(m)} 40 3 0 0 0 10 \n`);
  const line = await s.line();
  const t = line.split(' ');
  if (t.length > 7 && Number(t[5]) > 590 && Number(t[5]) <= 600) t[5] = 'T';
  return t.join(' ');
}

/** Byte `i` of the test stream. */
const streamByte = (i: number) => (i * 7 + (i >> 8)) & 0xff;
function stream(from: number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = streamByte(from + i);
  return b;
}

for (const kind of ['memory', 'disk'] as const) {
  describe(`LoCI allocation types on a ${kind} resource`, () => {
    let t: TestDepot;
    let s: RawSession;
    let dir: string | undefined;
    const start = async () => {
      t = await startDepot({
        resource: [{ rid: '1', capacityBytes: '64MiB', ...(dir === undefined ? {} : { path: dir }) }],
      });
      s = await RawSession.open(t.port);
    };
    beforeAll(async () => {
      if (kind === 'disk') dir = await mkdtemp(join(tmpdir(), 'anvil-ring-'));
      await start();
    });
    afterAll(async () => {
      s.end();
      await t.close();
      if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    });

    it('CIRQ: the LoCI smoke test — five 25 KiB stores into 100 KiB, four 25 KiB loads', async () => {
      const [r, w, m] = await allocate(s, 4, 100 * 1024);
      for (let i = 0; i < 5; i++) expect(await store(s, w, stream(i * 25600, 25600))).toBe('1 25600 \n');
      for (let i = 0; i < 4; i++) {
        const got = await load(s, r, 0, 25600);
        expect(Buffer.isBuffer(got) && got.equals(stream(4 * 25600, 25600))).toBe(true);
      }
      expect(await probe(s, m)).toBe(`1 1 0 102400 102400 T 2 4 128000 0 \n`);
      // a window by its end position: [W - 100 KiB, W) is everything held, oldest first
      const all = await load(s, r, 128000, 102400);
      expect(Buffer.isBuffer(all) && all.equals(stream(25600, 102400))).toBe(true);
      // a window already overwritten, one past the write position, one longer than the queue
      expect(await load(s, r, 25600, 1)).toBe('-19 \n');
      expect(await load(s, r, 128001, 1, 1)).toBe('-46 \n');
      expect(await load(s, r, 0, 102401)).toBe('-19 \n');
      expect(await store(s, w, Buffer.alloc(102401))).toBe('-19 \n');
      s = await RawSession.open(t.port); // that refusal closed the connection (its body was on the way)
      // TRUNCATE and a CHNG of the size are refused; nothing changed
      s.send(`1 9 ${keyOf(m)} 45 10 10\n`);
      expect(await s.line()).toBe('-22 \n');
      s.send(`1 9 ${keyOf(m)} 43 3 200000 600 2 10\n`);
      expect(await s.line()).toBe('-20 \n');
      expect(await probe(s, m)).toBe(`1 1 0 102400 102400 T 2 4 128000 0 \n`);
    });

    it('FIFO: stores append, loads consume in order, a full FIFO waits then -46', async () => {
      const [r, w, m] = await allocate(s, 3, 10);
      expect(await store(s, w, 'abcdef')).toBe('1 6 \n');
      expect(await store(s, w, 'ghij')).toBe('1 4 \n');
      expect(await probe(s, m)).toBe('1 1 0 10 10 T 2 3 10 0 \n');
      s.send(Buffer.concat([Buffer.from(`1 2 ${keyOf(w)} 1 1\n`), Buffer.from('k')]));
      expect(await s.line()).toBe('-46 \n'); // no room within the timeout; the body is not taken
      s = await RawSession.open(t.port);
      expect(String(await load(s, r, 0, 4))).toBe('abcd');
      expect(await store(s, w, 'klm')).toBe('1 3 \n'); // wraps around
      expect(String(await load(s, r, 0, 9))).toBe('efghijklm');
      expect(await probe(s, m)).toBe('1 1 0 0 10 T 2 3 13 13 \n');
      // a load waits for its data: a second connection stores it meanwhile
      s.send(`1 8 ${keyOf(r)} 0 3 10\n`);
      const s2 = await RawSession.open(t.port);
      expect(await store(s2, w, 'xyz')).toBe('1 3 \n');
      expect(await s.line()).toBe('1 3 \n');
      expect(String(await s.bytes(3))).toBe('xyz');
      s2.end();
      expect(await load(s, r, 0, 1, 1)).toBe('-46 \n');
    });

    it('FIFO: a STORE waits for room that a LOAD on another connection makes; a wait ends with its deletion', async () => {
      const [r, w, m] = await allocate(s, 3, 4);
      expect(await store(s, w, 'abcd')).toBe('1 4 \n');
      const s2 = await RawSession.open(t.port);
      try {
        s2.send(Buffer.concat([Buffer.from(`1 2 ${keyOf(w)} 2 10\n`), Buffer.from('ef')])); // no room yet
        expect(String(await load(s, r, 0, 3))).toBe('abc');
        expect(await s2.line()).toBe('1 \n');
        expect(await s2.line()).toBe('1 2 \n');
        expect(String(await load(s, r, 0, 3))).toBe('def');
        s2.send(`1 8 ${keyOf(r)} 0 2 10\n`); // waits for data
        s.send(`1 9 ${keyOf(m)} 42 1 10\n`); // deletes the FIFO
        expect(await s.line()).toBe('1 \n');
        expect(await s2.line()).toBe('-4 \n');
      } finally {
        s2.end();
      }
    });

    it('BUFFER: a store replaces the content, a write patches it, loads do not consume', async () => {
      const [r, w, m] = await allocate(s, 2, 16);
      expect(await store(s, w, 'hello world')).toBe('1 11 \n');
      expect(await store(s, w, 'bye')).toBe('1 3 \n');
      expect(String(await load(s, r, 0, 3))).toBe('bye');
      expect(await load(s, r, 0, 4)).toBe('-19 \n');
      s.send(Buffer.concat([Buffer.from(`1 13 ${keyOf(w)} 2 3 10\n`), Buffer.from('XYZ')]));
      expect(await s.line()).toBe('1 \n');
      expect(await s.line()).toBe('1 3 \n');
      expect(String(await load(s, r, 0, 5))).toBe('byXYZ');
      expect(await probe(s, m)).toBe('1 1 0 5 16 T 2 2 \n');
    });

    it('every type is kept across a restart', async () => {
      const [cr, cw, cm] = await allocate(s, 4, 1000);
      for (let i = 0; i < 7; i++) expect(await store(s, cw, stream(i * 300, 300))).toBe('1 300 \n');
      const [fr, fw] = await allocate(s, 3, 100);
      expect(await store(s, fw, 'queued!')).toBe('1 7 \n');
      expect(String(await load(s, fr, 0, 3))).toBe('que');
      s.end();
      await t.close();
      await start();
      if (kind === 'memory') {
        expect(await probe(s, cm)).toBe('-4 \n');
        return;
      }
      expect(await probe(s, cm)).toBe('1 1 0 1000 1000 T 2 4 2100 0 \n');
      const got = await load(s, cr, 0, 1000);
      expect(Buffer.isBuffer(got) && got.equals(stream(1100, 1000))).toBe(true);
      expect(String(await load(s, fr, 0, 4))).toBe('ued!');
    });
  });
}

describe('allocation types', () => {
  let t: TestDepot;
  let s: RawSession;
  afterEach(async () => {
    s.end();
    await t.close();
  });
  it('type 5 and type 0 are invalid parameters', async () => {
    t = await startDepot({ resource: [{ rid: '1', capacityBytes: '1MiB' }] });
    s = await RawSession.open(t.port);
    s.send('1 1 1 2 5 60 10 10\n');
    expect(await s.line()).toBe('-30 \n');
  });
});

describe('NFU on a CIRQ', () => {
  it('a REF_RD parameter sees the queue in its logical order (oldest held byte first)', async () => {
    const { createHash } = await import('node:crypto');
    const t = await startDepot({ resource: [{ rid: '1', capacityBytes: '1MiB' }], nfu: { workers: 1 } });
    const s = await RawSession.open(t.port);
    try {
      const [r, w] = await allocate(s, 4, 8);
      expect(await store(s, w, 'abcde')).toBe('1 5 \n');
      expect(await store(s, w, 'fghij')).toBe('1 5 \n'); // physical bytes: "ijcdefgh"
      const out = await t.client.nfu(t, 16, [
        { kind: 0, cap: r, offset: 0, length: 0 },
        { kind: 4, length: 32 },
      ]);
      expect(out.get(1)!.equals(createHash('sha256').update('cdefghij').digest())).toBe(true);
      const part = await t.client.nfu(t, 16, [
        { kind: 0, cap: r, offset: 5, length: 3 },
        { kind: 4, length: 32 },
      ]);
      expect(part.get(1)!.equals(createHash('sha256').update('hij').digest())).toBe(true);
    } finally {
      s.end();
      await t.close();
    }
  });
});
