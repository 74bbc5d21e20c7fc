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
