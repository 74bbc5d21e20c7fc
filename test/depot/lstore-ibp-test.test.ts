import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawSession, keyOf, startDepot, type TestDepot } from '../helpers/depot-fixture.js';

/**
 * Replays, byte for byte, what the ACCRE client library sends for the first (synchronous) block of
 * LStore's `test/ibp_test.c`, and checks what that test checks. Line formats follow the client's
 * `op_cmd.c`: version 1, timeout 30, the probe line's trailing space, and STORE/WRITE bodies sent
 * right behind the command without waiting for the go-ahead. Its depot-to-depot copies (steps 12
 * and 14) belong to the transfer issue and are not replayed here.
 */
describe('LStore ibp_test first block, as the ACCRE client sends it', () => {
  let t: TestDepot;
  let s: RawSession;
  beforeAll(async () => {
    t = await startDepot({ resource: [{ rid: '1', capacityBytes: '64MiB' }] });
    s = await RawSession.open(t.port);
  });
  afterAll(async () => {
    s.end();
    await t.close();
  });

  const allocate = async () => {
    s.send('1 1 1 2 1 60 1048576 30\n');
    const t = (await s.line()).trim().split(' ');
    expect(t[0]).toBe('1');
    expect(t.slice(1).map((c) => c.split('/').pop())).toEqual(['READ', 'WRITE', 'MANAGE']);
    return t.slice(1) as [string, string, string];
  };
  const probe = async (m: string) => {
    s.send(`1 9 ${keyOf(m)} 40 3 0 0 0 30 \n`);
    return s.line();
  };

  it('runs steps 1–11, 13, 15–20 with the expected results', async () => {
    const c1 = await allocate(); // 1
    expect(await probe(c1[2])).toBe('1 1 0 0 1048576 60 2 1 \n'); // 2
    s.send(`1 9 ${keyOf(c1[2])} 42 2 30\n`); // 3: DECR write count (already 0: clamps)
    expect(await s.line()).toBe('1 \n');
    expect(await probe(c1[2])).toBe('1 1 0 0 1048576 60 2 1 \n'); // 4: read=1 write=0
    s.send(`1 9 ${keyOf(c1[2])} 43 3 2097152 20 2 30\n`); // 5: CHNG 2 MiB, 20 s, hard
    expect(await s.line()).toBe('1 \n');
    expect(await probe(c1[2])).toBe('1 1 0 0 2097152 20 2 1 \n'); // 6
    s.send(Buffer.concat([Buffer.from(`1 2 ${keyOf(c1[1])} 786432 30\n`), Buffer.alloc(786432, '0')])); // 7
    expect(await s.line()).toBe('1 \n');
    expect(await s.line()).toBe('1 786432 \n');
    s.send(Buffer.concat([Buffer.from(`1 2 ${keyOf(c1[1])} 262144 30\n`), Buffer.alloc(262144, '0')])); // 8
    expect(await s.line()).toBe('1 \n');
    expect(await s.line()).toBe('1 262144 \n');
    s.send(Buffer.concat([Buffer.from(`1 13 ${keyOf(c1[1])} 10 524288 30\n`), Buffer.alloc(524288, '1')])); // 9
    expect(await s.line()).toBe('1 \n');
    expect(await s.line()).toBe('1 524288 \n');
    s.send(`1 8 ${keyOf(c1[0])} 0 1048576 30\n`); // 10
    expect(await s.line()).toBe('1 1048576 \n');
    const data = await s.bytes(1048576);
    const expected = Buffer.alloc(1048576, '0');
    expected.fill('1', 10, 10 + 524288);
    expect(data.equals(expected)).toBe(true);
    const c2 = await allocate(); // 11 (depot 2 = the same depot)
    const c4 = await allocate(); // 13
    for (const m of [c4[2], c1[2], c2[2]]) {
      s.send(`1 9 ${keyOf(m)} 42 1 30\n`); // 15–17: DECR read → deleted (read 0, write 0)
      expect(await s.line()).toBe('1 \n');
      expect(await probe(m)).toBe('-4 \n');
    }
    s.send('1 4 1 1 ibp 30\n'); // 18: ST_INQ
    const head = (await s.line()).trim().split(' ');
    expect(head[0]).toBe('1');
    const n = Number(head[1]);
    expect(n > 0 && n <= 1024).toBe(true);
    expect((await s.bytes(n)).toString()).toMatch(/^VS:1\.4:1\.0 DT:1 NFU:1(:\d+)+ RID:1 RT:2 CT:67108864 .* DR:2592000 RE \n$/);
    s.send('1 4 5 30\n'); // 19: ST_VERSION
    expect(await s.line()).toBe('1\n');
    let lines = 0;
    while ((await s.line()) !== 'END\n') lines++;
    expect(lines).toBeGreaterThan(0);
    s.send('1 4 3 30\n'); // 20: ST_RES
    expect(await s.line()).toBe('1 1 \n');
  });
});

/**
 * The later blocks of LStore's `ibp_test` (`main` after the first block, and its `perform_*` and
 * `base_iovec_test` helpers), as its client library writes them: the copies of the first block
 * (IBP_copy = SEND with an empty path, IBP_phoebus_copy = PHOEBUS_SEND with path `auto`), the
 * vector test, RENAME, the alias tests (including the copy from a limited alias to a full one),
 * split/merge and push/pull. Both "depots" are the same depot, as the test allows.
 */
describe('LStore ibp_test later blocks, as the ACCRE client sends them', () => {
  let t: TestDepot;
  let s: RawSession;
  beforeAll(async () => {
    t = await startDepot({ resource: [{ rid: '1', capacityBytes: '64MiB' }] });
    s = await RawSession.open(t.port);
  });
  afterAll(async () => {
    s.end();
    await t.close();
  });

  const allocate = async (size: number) => {
    s.send(`1 1 1 2 1 900 ${size} 30\n`);
    const t = (await s.line()).trim().split(' ');
    expect(t[0]).toBe('1');
    return t.slice(1) as [string, string, string];
  };
  const capsReply = async () => {
    const t = (await s.line()).trim().split(' ');
    expect(t[0]).toBe('1');
    expect(t.slice(1).map((c) => c.split('/').pop())).toEqual(['READ', 'WRITE', 'MANAGE']);
    return t.slice(1) as [string, string, string];
  };
  const store = async (w: string, data: Buffer) => {
    s.send(Buffer.concat([Buffer.from(`1 2 ${keyOf(w)} ${data.length} 30\n`), data]));
    return `${await s.line()}${await s.line()}`;
  };
  const writeAt = async (w: string, offset: number, data: Buffer) => {
    s.send(Buffer.concat([Buffer.from(`1 13 ${keyOf(w)} ${offset} ${data.length} 30\n`), data]));
    const go = await s.line();
    return go === '1 \n' ? `${go}${await s.line()}` : go;
  };
  const load = async (r: string, offset: number, length: number) => {
    s.send(`1 8 ${keyOf(r)} ${offset} ${length} 30\n`);
    const head = await s.line();
    return head.startsWith('1 ') ? (await s.bytes(length)).toString('latin1') : head;
  };
  const probe = async (m: string) => {
    s.send(`1 9 ${keyOf(m)} 40 3 0 0 0 30 \n`);
    return (await s.line()).trim().split(' ');
  };
  const decr = async (m: string) => {
    s.send(`1 9 ${keyOf(m)} 42 1 30\n`);
    return s.line();
  };
  const split = (cap: string) => keyOf(cap).split(' ') as [string, string];

  it('first block copies: IBP_copy (empty path) and IBP_phoebus_copy (path auto)', async () => {
    const c1 = await allocate(1048576);
    expect(await store(c1[1], Buffer.alloc(1048576, '0'))).toBe('1 \n1 1048576 \n');
    const c2 = await allocate(1048576);
    const [k, w] = split(c1[0]);
    s.send(`1 5  ${k} ${c2[1]} ${w} 0 1024 30 30 30\n`); // 12: the unused path gives two spaces
    expect(await s.line()).toBe('1 1024 \n');
    const c4 = await allocate(1048576);
    s.send(`1 17 auto ${k} ${c4[1]} ${w} 0 1024 30 30 30\n`); // 14
    expect(await s.line()).toBe('1 1024 \n');
    expect(await load(c4[0], 0, 1024)).toBe('0'.repeat(1024));
    for (const c of [c4, c1, c2]) expect(await decr(c[2])).toBe('1 \n');
  });

  it('base_async_test: 10 MiB written as 10000-byte stripes in reverse order, pipelined, then read back in 5000-byte pieces', async () => {
    const size = 10 * 1024 * 1024;
    const c = await allocate(size);
    const expected = Buffer.alloc(size, '_');
    const stripes = Math.floor(size / 10000);
    const writes: Buffer[] = [];
    for (let i = 0; i < stripes; i++) {
      const offset = (stripes - 1 - i) * 10000; // the test walks the stripes from the end
      expected.fill(65 + (i % 27), offset, offset + 10000);
      writes.push(Buffer.from(`1 13 ${keyOf(c[1])} ${offset} 10000 30\n`), expected.subarray(offset, offset + 10000));
    }
    expected.fill('@', stripes * 10000);
    const rest = size - stripes * 10000;
    writes.push(Buffer.from(`1 13 ${keyOf(c[1])} ${stripes * 10000} ${rest} 30\n`), expected.subarray(stripes * 10000));
    s.send(Buffer.concat(writes)); // every WRITE pipelined behind the previous one
    for (let i = 0; i < stripes; i++) expect(`${await s.line()}${await s.line()}`).toBe('1 \n1 10000 \n');
    expect(`${await s.line()}${await s.line()}`).toBe(`1 \n1 ${rest} \n`);
    const reads: string[] = [];
    for (let off = 0; off < size; off += 5000) reads.push(`1 8 ${keyOf(c[0])} ${off} ${Math.min(5000, size - off)} 30\n`);
    s.send(reads.join(''));
    const got: Buffer[] = [];
    for (let off = 0; off < size; off += 5000) {
      const n = Math.min(5000, size - off);
      expect(await s.line()).toBe(`1 ${n} \n`);
      got.push(await s.bytes(n));
    }
    expect(Buffer.concat(got).equals(expected)).toBe(true);
    expect(await decr(c[2])).toBe('1 \n');
  });

  it('base_iovec_test: a 10 MiB VEC_WRITE of 10000-byte stripes, read back by a VEC_READ of 5000-byte pieces', async () => {
    const size = 10 * 1024 * 1024;
    const c = await allocate(size);
    const expected = Buffer.alloc(size);
    const wr: string[] = [];
    const stripes = Math.floor(size / 10000);
    for (let i = 0; i < stripes; i++) {
      expected.fill(65 + (i % 27), i * 10000, (i + 1) * 10000);
      wr.push(`${i * 10000} 10000`);
    }
    expected.fill('@', stripes * 10000);
    wr.push(`${stripes * 10000} ${size - stripes * 10000}`);
    s.send(Buffer.concat([Buffer.from(`1 33 ${keyOf(c[1])} ${wr.length} ${wr.join(' ')} 60\n`), expected]));
    expect(await s.line()).toBe('1 \n');
    expect(await s.line()).toBe(`1 ${size} \n`);
    const rd: string[] = [];
    for (let off = 0; off < size; off += 5000) rd.push(`${off} ${Math.min(5000, size - off)}`);
    s.send(`1 35 ${keyOf(c[0])} ${rd.length} ${rd.join(' ')} 60\n`);
    expect(await s.line()).toBe(`1 ${size} \n`);
    expect((await s.bytes(size, 20_000)).equals(expected)).toBe(true);
    expect(await decr(c[2])).toBe('1 \n');
  });

  it('IBP_RENAME: the original caps fail, the new ones read the data', async () => {
    const c = await allocate(1048576);
    const data = Buffer.from('This is a test....\0', 'latin1');
    expect(await store(c[1], data)).toBe(`1 \n1 ${data.length} \n`);
    s.send(`1 16 ${keyOf(c[2])} 30\n`);
    const c2 = await capsReply();
    expect(await load(c[0], 0, data.length)).toBe('-4 \n');
    expect(await load(c2[0], 0, data.length)).toBe(data.toString('latin1'));
    expect(await decr(c2[2])).toBe('1 \n');
  });

  it('IBP_alias_ALLOCATE/MANAGE: full and limited aliases, R/W past the limit fails, alias→alias copy, removal', async () => {
    const c = await allocate(1048576);
    s.send(`1 14 ${keyOf(c[2])} 0 0 0 30\n`); // full alias
    const a2 = await capsReply();
    expect((await probe(c[2])).slice(0, 5)).toEqual(['1', '1', '0', '0', '1048576']);
    expect((await probe(a2[2])).slice(0, 5)).toEqual(['1', '1', '0', '0', '1048576']); // the allocation, through the alias
    s.send(`1 15 ${keyOf(a2[2])} 40 3 30 \n`); // ibp_proxy_probe
    expect((await s.line()).trim().split(' ').slice(0, 5)).toEqual(['1', '1', '0', '0', '0']);
    s.send(`1 14 ${keyOf(c[2])} 10 40 0 30\n`); // limited alias, range 10–50
    const a3 = await capsReply();
    expect((await probe(a3[2]))[4]).toBe('40'); // "max size … This should be 40"
    const wbuf = Buffer.alloc(1048576, '0');
    expect(await store(a2[1], wbuf)).toBe('1 \n1 1048576 \n'); // append using the full alias
    const data = Buffer.from('This is a test.\0', 'latin1');
    expect(await writeAt(a3[1], 0, data)).toBe('1 \n1 16 \n'); // write using the limited alias
    data.copy(wbuf, 10);
    expect(await load(a2[0], 0, 26)).toBe(wbuf.subarray(0, 26).toString('latin1'));
    expect(await writeAt(a3[1], 35, data)).toBe('-19 \n'); // beyond the limited alias: refused
    s = await RawSession.open(t.port); // (its body was on the way: the connection is closed)
    expect(await load(a3[0], 35, 16)).toBe('-19 \n');
    // restricted alias → full alias of another allocation, by IBP_copy
    const c4 = await allocate(1048576);
    s.send(`1 14 ${keyOf(c4[2])} 0 0 0 30\n`);
    const a5 = await capsReply();
    const [k3, w3] = split(a3[0]);
    s.send(`1 5  ${k3} ${a5[1]} ${w3} 0 16 30 30 30\n`);
    expect(await s.line()).toBe('1 16 \n');
    expect(await load(a5[0], 0, 16)).toBe(data.toString('latin1'));
    s.send(`1 15 ${keyOf(a5[2])} 42 1 ${keyOf(c4[2])} 30\n`); // ibp_proxy_remove
    expect(await s.line()).toBe('1 \n');
    expect(await decr(c4[2])).toBe('1 \n');
    s.send(`1 15 ${keyOf(a2[2])} 42 1 ${keyOf(a3[2])} 30\n`); // with an alias as the "master": refused
    expect(await s.line()).toBe('-4 \n');
    s.send(`1 15 ${keyOf(a2[2])} 42 1 ${keyOf(c[2])} 30\n`);
    expect(await s.line()).toBe('1 \n');
    expect(await load(a2[0], 35, 16)).toBe('-4 \n'); // the deleted full alias
    s.send(`1 15 ${keyOf(a3[2])} 42 1 ${keyOf(c[2])} 30\n`);
    expect(await s.line()).toBe('1 \n');
    expect(await decr(c[2])).toBe('1 \n');
  });

  it('perform_splitmerge_tests', async () => {
    const wbuf = Buffer.alloc(2048, '0');
    wbuf[1023] = 0x31;
    wbuf[1024] = 0x32;
    const m = await allocate(2048);
    expect(await store(m[1], wbuf)).toBe('1 \n1 2048 \n');
    s.send(`1 18 ${keyOf(m[2])} 2 1 900 1024 30\n`);
    const c = await capsReply();
    expect((await probe(m[2])).slice(3, 5)).toEqual(['1024', '1024']);
    expect((await probe(c[2])).slice(3, 5)).toEqual(['0', '1024']);
    expect(await load(m[0], 0, 1024)).toBe(wbuf.subarray(0, 1024).toString('latin1'));
    expect(await store(c[1], wbuf.subarray(0, 1024))).toBe('1 \n1 1024 \n');
    expect(await load(c[0], 0, 1024)).toBe(wbuf.subarray(0, 1024).toString('latin1'));
    s.send(`1 18 ${keyOf(m[2])} 2 1 900 2048 30\n`); // too big: must fail
    expect(await s.line()).toBe('-19 \n');
    expect((await probe(m[2])).slice(3, 5)).toEqual(['1024', '1024']);
    s.send(`1 19 ${keyOf(m[2])} ${keyOf(c[2])} 30\n`);
    expect(await s.line()).toBe('1 \n');
    expect(await probe(c[2])).toEqual(['-4']);
    expect((await probe(m[2])).slice(3, 5)).toEqual(['1024', '2048']);
    expect(await decr(m[2])).toBe('1 \n');
  });

  it('perform_manage_truncate_tests: CHNG cannot lose data, may shrink to the data; TRUNCATE cuts', async () => {
    const bufsize = 1024 * 1024;
    const pos = Math.floor(bufsize / 3);
    const c = await allocate(2 * bufsize);
    const buffer = Buffer.alloc(bufsize, '*');
    buffer[pos - 1] = 0x41;
    buffer[pos] = 0x52;
    buffer[bufsize - 1] = 0x54;
    expect(await writeAt(c[1], 0, buffer)).toBe(`1 \n1 ${bufsize} \n`);
    expect((await probe(c[2])).slice(3, 5)).toEqual([String(bufsize), String(2 * bufsize)]);
    s.send(`1 9 ${keyOf(c[2])} 43 3 ${bufsize / 2} -1 -1 30\n`); // would lose data
    expect(await s.line()).toBe('-20 \n');
    const p = await probe(c[2]);
    expect([p[3], p[4], p[6], p[7]]).toEqual([String(bufsize), String(2 * bufsize), '2', '1']);
    s.send(`1 9 ${keyOf(c[2])} 43 3 ${bufsize + 1} -1 -1 30\n`); // shrink, nothing lost
    expect(await s.line()).toBe('1 \n');
    expect((await probe(c[2])).slice(3, 5)).toEqual([String(bufsize), String(bufsize + 1)]);
    s.send(`1 9 ${keyOf(c[2])} 45 ${pos} 30\n`);
    expect(await s.line()).toBe('1 \n');
    expect((await probe(c[2])).slice(3, 5)).toEqual([String(pos), String(pos)]);
    expect(await load(c[0], 0, pos)).toBe(buffer.subarray(0, pos).toString('latin1'));
    expect(await decr(c[2])).toBe('1 \n');
  });

  it('perform_pushpull_tests', async () => {
    const c1 = await allocate(2048);
    const c2 = await allocate(2048);
    expect(await store(c1[1], Buffer.from('1'))).toBe('1 \n1 1 \n');
    const [k1r, w1r] = split(c1[0]);
    const [k1w, w1w] = split(c1[1]);
    s.send(`1 20 1  ${k1r} ${c2[1]} ${w1r} 0 -1 1 30 30 30\n`); // PUSH, append
    expect(await s.line()).toBe('1 1 \n');
    s.send(`1 21 1  ${k1w} ${c2[0]} ${w1w} -1 0 1 30 30 30\n`); // PULL, append locally
    expect(await s.line()).toBe('1 1 \n');
    s.send(`1 20 1  ${k1r} ${c2[1]} ${w1r} 0 -1 2 30 30 30\n`);
    expect(await s.line()).toBe('1 2 \n');
    expect(await writeAt(c1[1], 1, Buffer.from('23'))).toBe('1 \n1 2 \n');
    s.send(`1 20 1  ${k1r} ${c2[1]} ${w1r} 1 1 2 30 30 30\n`);
    expect(await s.line()).toBe('1 2 \n');
    expect(await load(c1[0], 0, 3)).toBe('123');
    expect(await load(c2[0], 0, 3)).toBe('123');
    expect(await decr(c1[2])).toBe('1 \n');
    expect(await decr(c2[2])).toBe('1 \n');
  });
});
