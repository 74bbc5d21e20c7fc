import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawSession, keyOf, rawAllocate, startDepot, type TestDepot } from '../helpers/depot-fixture.js';

const CAPS = /^1 (ibp:\/\/127\.0\.0\.1:\d+\/1#[^ ]+\/READ) (ibp:\/\/[^ ]+\/WRITE) (ibp:\/\/[^ ]+\/MANAGE) \n$/;

async function caps(s: RawSession, line: string): Promise<[string, string, string]> {
  s.send(line);
  const reply = await s.line();
  const m = CAPS.exec(reply);
  if (m === null) throw new Error(`not a caps reply: ${JSON.stringify(reply)}`);
  return [m[1]!, m[2]!, m[3]!];
}

async function write(s: RawSession, w: string, offset: number, body: string): Promise<string> {
  s.send(`1 13 ${keyOf(w)} ${offset} ${body.length} 10\n${body}`);
  const go = await s.line();
  return go === '1 \n' ? s.line() : go;
}

async function load(s: RawSession, r: string, offset: number, length: number): Promise<string> {
  s.send(`1 8 ${keyOf(r)} ${offset} ${length} 10\n`);
  const head = await s.line();
  if (!head.startsWith('1 ')) return head;
  return String(await s.bytes(length));
}

const probe = async (s: RawSession, m: string) => {
  s.send(`1 9 ${keyOf(m)} 40 3 0 0 0 10 \n`);
  return (await s.line())
    .split(' ')
    .filter((_, i) => i !== 5)
    .join(' '); // without seconds-left
};

for (const kind of ['memory', 'disk'] as const) {
  describe(`ACCRE extensions on a ${kind} resource`, () => {
    let t: TestDepot;
    let s: RawSession;
    let dir: string | undefined;
    const start = async () => {
      t = await startDepot({
        resource: [{ rid: '1', capacityBytes: '1MiB', ...(dir === undefined ? {} : { path: dir }) }],
      });
      s = await RawSession.open(t.port);
    };
    beforeAll(async () => {
      if (kind === 'disk') dir = await mkdtemp(join(tmpdir(), 'anvil-accre-'));
      await start();
    });
    afterAll(async () => {
      s.end();
      await t.close();
      if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    });

    it('RENAME: new caps for the same data; the old caps stop working (and stay so after a restart)', async () => {
      const [r, w, m] = await rawAllocate(s, 100);
      expect(await write(s, w, 0, 'hello')).toBe('1 5 \n');
      const [r2, w2, m2] = await caps(s, `1 16 ${keyOf(m)} 10\n`);
      expect(await load(s, r, 0, 5)).toBe('-4 \n');
      expect(await write(s, w, 0, 'x')).toBe('-4 \n');
      s = await RawSession.open(t.port); // a refused write closes the connection
      expect(await load(s, r2, 0, 5)).toBe('hello');
      expect(await write(s, w2, 5, '!')).toBe('1 1 \n');
      expect(await probe(s, m2)).toBe('1 1 0 6 100 2 1 \n');
      s.send(`1 16 ${keyOf(m)} 10\n`);
      expect(await s.line()).toBe('-4 \n');
      if (kind === 'disk') {
        s.end();
        await t.close();
        await start();
        expect(await load(s, r2, 0, 6)).toBe('hello!');
        expect(await load(s, r, 0, 1)).toBe('-4 \n');
      }
    });

    it('ALIAS: caps limited to a byte range, probed and managed with the master key', async () => {
      const [r, w, m] = await rawAllocate(s, 100);
      expect(await write(s, w, 0, '0123456789')).toBe('1 10 \n');
      const [ar, aw, am] = await caps(s, `1 14 ${keyOf(m)} 4 20 0 10\n`);
      expect(await load(s, ar, 0, 6)).toBe('456789');
      expect(await load(s, ar, 0, 7)).toBe('-19 \n'); // past the data held
      expect(await write(s, aw, 6, 'ABCDEFGHIJ')).toBe('1 10 \n'); // master bytes 10..19
      expect(await load(s, r, 8, 10)).toBe('89ABCDEFGH');
      expect(await write(s, aw, 15, '123456')).toBe('-19 \n'); // past the alias's 20 bytes
      s = await RawSession.open(t.port);
      // alias probe: refs, offset, length, seconds left (the master's)
      s.send(`1 15 ${keyOf(am)} 40 3 10 \n`);
      expect((await s.line()).split(' ').slice(0, 5).join(' ')).toBe('1 1 0 4 20');
      // MANAGE (9) PROBE through an alias shows its window; other MANAGE calls refuse alias caps
      expect(await probe(s, am)).toBe('1 1 0 16 20 2 1 \n');
      s.send(`1 9 ${keyOf(am)} 41 1 10\n`);
      expect(await s.line()).toBe('-4 \n');
      // ALIAS_MANAGE needs the master's manage key
      s.send(`1 15 ${keyOf(am)} 43 0 10 0 ${keyOf(am)} 10\n`);
      expect(await s.line()).toBe('-4 \n');
      s.send(`1 15 ${keyOf(am)} 43 0 10 0 ${keyOf(m)} 10\n`);
      expect(await s.line()).toBe('1 \n');
      expect(await load(s, ar, 0, 10)).toBe('0123456789');
      // out of range and longer than the master: refused, nothing changed
      s.send(`1 14 ${keyOf(m)} 90 20 0 10\n`);
      expect(await s.line()).toBe('-19 \n');
      s.send(`1 14 ${keyOf(m)} 0 10 999999 10\n`);
      expect(await s.line()).toBe('-28 \n');
      // DECR of the read count deletes the alias, not the master
      s.send(`1 15 ${keyOf(am)} 42 1 ${keyOf(m)} 10\n`);
      expect(await s.line()).toBe('1 \n');
      expect(await load(s, ar, 0, 1)).toBe('-4 \n');
      expect(await load(s, r, 0, 2)).toBe('01');
      // deleting the master ends its aliases
      const [ar2] = await caps(s, `1 14 ${keyOf(m)} 0 0 0 10\n`);
      expect(await load(s, ar2, 0, 3)).toBe('012');
      s.send(`1 9 ${keyOf(m)} 42 1 10\n`);
      expect(await s.line()).toBe('1 \n');
      expect(await load(s, ar2, 0, 3)).toBe('-4 \n');
    });

    it('an alias survives a restart of a disk depot; a removed one stays removed', async () => {
      const [r, w, m] = await rawAllocate(s, 100);
      expect(await write(s, w, 0, 'abcdefghij')).toBe('1 10 \n');
      const [ar, , am] = await caps(s, `1 14 ${keyOf(m)} 2 5 0 10\n`);
      const [br, , bm] = await caps(s, `1 14 ${keyOf(m)} 0 0 0 10\n`);
      s.send(`1 15 ${keyOf(am)} 41 2 ${keyOf(m)} 10\n`); // write count 1
      expect(await s.line()).toBe('1 \n');
      s.send(`1 15 ${keyOf(bm)} 42 1 ${keyOf(m)} 10\n`); // removed
      expect(await s.line()).toBe('1 \n');
      s.end();
      await t.close();
      await start();
      if (kind === 'memory') {
        expect(await load(s, ar, 0, 5)).toBe('-4 \n');
        return;
      }
      expect(await load(s, ar, 0, 5)).toBe('cdefg');
      s.send(`1 15 ${keyOf(am)} 40 3 10 \n`);
      expect((await s.line()).split(' ').slice(0, 5).join(' ')).toBe('1 1 1 2 5');
      expect(await load(s, br, 0, 1)).toBe('-4 \n');
      expect(await load(s, r, 0, 2)).toBe('ab');
    });

    it('SPLIT and MERGE move space between allocations; refusals change nothing', async () => {
      const [r, w, m] = await rawAllocate(s, 1000);
      expect(await write(s, w, 0, 'x'.repeat(500) + 'y'.repeat(200))).toBe('1 700 \n');
      s.send(`1 18 ${keyOf(m)} 2 1 60 1000 10\n`); // the whole allocation: refused
      expect(await s.line()).toBe('-19 \n');
      expect(await probe(s, m)).toBe('1 1 0 700 1000 2 1 \n');
      // as on the ACCRE depot, the master's data past its new max size is cut
      const [cr, cw, cm] = await caps(s, `1 18 ${keyOf(m)} 2 1 60 400 10\n`);
      expect(await probe(s, m)).toBe('1 1 0 600 600 2 1 \n');
      expect(await load(s, r, 495, 10)).toBe('xxxxxyyyyy');
      expect(await load(s, r, 600, 1)).toBe('-19 \n');
      expect(await probe(s, cm)).toBe('1 1 0 0 400 2 1 \n');
      expect(await write(s, cw, 0, 'child')).toBe('1 5 \n');
      expect(await load(s, cr, 0, 5)).toBe('child');
      s.send(`1 19 ${keyOf(m)} ${keyOf(m)} 10\n`);
      expect(await s.line()).toBe('-30 \n');
      s.send(`1 9 ${keyOf(cm)} 41 1 10\n`); // read count 2: not mergeable
      expect(await s.line()).toBe('1 \n');
      s.send(`1 19 ${keyOf(m)} ${keyOf(cm)} 10\n`);
      expect(await s.line()).toBe('-1 \n');
      s.send(`1 9 ${keyOf(cm)} 42 1 10\n`);
      expect(await s.line()).toBe('1 \n');
      s.send(`1 19 ${keyOf(m)} ${keyOf(cm)} 10\n`);
      expect(await s.line()).toBe('1 \n');
      expect(await probe(s, m)).toBe('1 1 0 600 1000 2 1 \n');
      expect(await probe(s, cm)).toBe('-4 \n');
    });

    it('VEC_WRITE / VEC_READ scatter and gather; a range past the bounds is refused before the body', async () => {
      const [r, w] = await rawAllocate(s, 100);
      s.send(`1 33 ${keyOf(w)} 3 10 3 0 2 50 4 10\nabcdefghi`);
      expect(await s.line()).toBe('1 \n');
      expect(await s.line()).toBe('1 9 \n');
      s.send(`1 35 ${keyOf(r)} 3 50 4 0 2 10 3 10\n`);
      expect(await s.line()).toBe('1 9 \n');
      expect(String(await s.bytes(9))).toBe('fghideabc');
      s.send(`1 35 ${keyOf(r)} 1 50 5 10\n`);
      expect(await s.line()).toBe('-19 \n');
      s.send(`1 33 ${keyOf(w)} 2 0 1 99 2 10\nabc`);
      expect(await s.line()).toBe('-19 \n');
      expect(await s.closedWithin()).toBe(true);
      s = await RawSession.open(t.port);
      expect(await load(s, r, 0, 2)).toBe('de');
    });

    it('GET_CHKSUM answers type NONE, VALIDATE_CHKSUM counts bad blocks, _CHKSUM variants with type 0 are plain', async () => {
      const [r, w, m] = await rawAllocate(s, 200000);
      s.send(`1 28 0 0 ${keyOf(w)} 5 10\nhello`); // STORE_CHKSUM, checksum type NONE
      expect(await s.line()).toBe('1 \n');
      expect(await s.line()).toBe('1 5 \n');
      s.send(`1 24 0 0 ${keyOf(r)} 0 5 10\n`); // LOAD_CHKSUM
      expect(await s.line()).toBe('1 5 \n');
      expect(String(await s.bytes(5))).toBe('hello');
      s.send(`1 31 ${keyOf(m)} 1 10\n`);
      expect(await s.line()).toBe('1 0 \n');
      s.send(`1 32 ${keyOf(m)} 0 10\n`);
      expect(await s.line()).toBe('1 0\n');
      s.send(`1 32 ${keyOf(r)} 0 10\n`);
      expect(await s.line()).toBe('-4 \n');
      s.send(`1 24 1 65536 ${keyOf(r)} 0 5 10\n`); // SHA256 network checksums: not served
      expect(await s.line()).toBe('-64 \n');
      expect(await s.closedWithin()).toBe(true); // a refused command line ends the connection
      s = await RawSession.open(t.port);
    });

    it('PHOEBUS_SEND is a plain SEND (empty path, or a path token)', async () => {
      const [r] = await rawAllocate(s, 100);
      const [, w2] = await rawAllocate(s, 100);
      const [r2, w3] = await rawAllocate(s, 100);
      // the source needs data
      const [sr, sw] = await rawAllocate(s, 100);
      expect(await write(s, sw, 0, 'payload')).toBe('1 7 \n');
      s.send(`1 17  ${keyOf(sr).split(' ')[0]} ${w2} ${keyOf(sr).split(' ')[1]} 0 7 10 10 10\n`);
      expect(await s.line()).toBe('1 7 \n');
      s.send(`1 17 auto ${keyOf(sr).split(' ')[0]} ${w3} ${keyOf(sr).split(' ')[1]} 2 5 10 10 10\n`);
      expect(await s.line()).toBe('1 5 \n');
      expect(await load(s, r2, 0, 5)).toBe('yload');
      expect(await load(s, r, 0, 1)).toBe('-19 \n');
    });
  });
}

describe('malformed ACCRE lines: their status, then the connection is closed', () => {
  let t: TestDepot;
  beforeAll(async () => {
    t = await startDepot({ resource: [{ rid: '1', capacityBytes: '1MiB' }] });
  });
  afterAll(async () => {
    await t.close();
  });
  it.each([
    ['VEC_READ with no ranges', '1 35 1#k w 0 10\n', '-21 \n'],
    ['VEC_READ with a missing length', '1 35 1#k w 2 0 5 10\n', '-21 \n'],
    ['VEC_WRITE with a zero length', '1 33 1#k w 1 0 0 10\n', '-36 \n'],
    ['VEC_READ with a negative offset', '1 35 1#k w 1 -1 5 10\n', '-18 \n'],
    ['ALIAS_ALLOCATE with a negative length', '1 14 1#k w 0 -5 0 10\n', '-30 \n'],
    ['ALIAS_MANAGE with an unknown sub-command', '1 15 1#k w 44 10\n', '-21 \n'],
    ['ALIAS_MANAGE DECR of the manage count', '1 15 1#k w 42 3 1#m x 10\n', '-21 \n'],
    ['SPLIT with reliability 3', '1 18 1#k w 3 1 60 10 10\n', '-21 \n'],
    ['MERGE without the child key', '1 19 1#k w 10\n', '-21 \n'],
    ['RENAME with extra tokens', '1 16 1#k w 10 10 10\n', '-21 \n'],
    ['STORE_CHKSUM with SHA1', '1 28 3 65536 1#k w 5 10\nabcde', '-64 \n'],
    ['ALLOCATE_CHKSUM with MD5', '1 29 4 65536 1 2 1 60 100 10\n', '-64 \n'],
  ])('%s', async (_name, line, expected) => {
    const s = await RawSession.open(t.port);
    try {
      s.send(line);
      expect(await s.line()).toBe(expected);
      expect(await s.closedWithin()).toBe(true);
    } finally {
      s.end();
    }
  });
});
