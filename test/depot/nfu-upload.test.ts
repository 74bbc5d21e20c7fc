import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import initWabt from 'wabt';
import { startDepot, type TestDepot } from '../helpers/depot-fixture.js';

const SECRET = 'correct horse battery staple'.replace(/ /g, '-');

async function wasm(text: string): Promise<Buffer> {
  const wabt = await initWabt();
  return Buffer.from(wabt.parseWat('op.wat', text).toBinary({}).buffer);
}

const REVERSE = `(module
  (import "env" "memory" (memory 1))
  (func (export "run") (param $n i32) (param $cap i32) (result i32)
    (local $i i32) (local $out i32)
    (local.set $out (i32.and (i32.add (local.get $n) (i32.const 7)) (i32.const -8)))
    (if (i32.gt_u (local.get $n) (local.get $cap)) (then (return (i32.const -1))))
    (block $d (loop $l
      (br_if $d (i32.ge_u (local.get $i) (local.get $n)))
      (i32.store8 (i32.add (local.get $out) (local.get $i))
        (i32.load8_u (i32.sub (i32.sub (local.get $n) (local.get $i)) (i32.const 1))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (local.get $n)))`;
const SPIN = `(module (import "env" "memory" (memory 1)) (func (export "run") (param i32 i32) (result i32) (loop $l (br $l)) (i32.const 0)))`;
const GROW = `(module (import "env" "memory" (memory 1)) (func (export "run") (param i32 i32) (result i32) (memory.grow (i32.const 100000))))`;
const IMPORTS_HOST = `(module (import "env" "memory" (memory 1)) (import "env" "log" (func $log (param i32))) (func (export "run") (param i32 i32) (result i32) (call $log (i32.const 1)) (i32.const 0)))`;

describe('admin code upload: WebAssembly ops', () => {
  let t: TestDepot;
  const register = async (opcode: number, module: Buffer, secret = SECRET) =>
    t.client.nfu(t, 0, [
      { kind: 3, data: Buffer.from(JSON.stringify({ secret, opcode, name: `op-${opcode}` })) },
      { kind: 3, data: module },
    ]);
  beforeAll(async () => {
    t = await startDepot({ nfu: { workers: 1, timeoutMs: 300, admin: { secret: SECRET, maxMemoryPages: 8 } } });
  });
  afterAll(async () => t.close());

  it('registers a module as a new opcode, advertised and callable on values and allocations', async () => {
    await expect(register(1000, await wasm(REVERSE), 'wrong-secret-of-some-length')).rejects.toMatchObject({ status: -29 });
    expect((await register(1000, await wasm(REVERSE))).size).toBe(0);
    expect((await t.client.status(t)).nfuOps).toContain(1000);
    const out = await t.client.nfu(t, 1000, [
      { kind: 3, data: Buffer.from('hello') },
      { kind: 4, length: 100 },
    ]);
    expect(out.get(1)?.toString()).toBe('olleh');
    const src = await t.client.allocate(t, { size: 64, durationSec: 60 });
    await t.client.store(src.write, Buffer.from('abcdef'));
    const dest = await t.client.allocate(t, { size: 64, durationSec: 60 });
    await t.client.nfu(t, 1000, [
      { kind: 0, cap: src.read },
      { kind: 1, cap: dest.write, length: 64 },
    ]);
    expect((await t.client.load(dest.read, 0, 6)).toString()).toBe('fedcba');
  });

  it('a module that never returns is stopped at the deadline (-46); the depot keeps serving', async () => {
    await register(1001, await wasm(SPIN));
    const started = Date.now();
    await expect(
      t.client.nfu(t, 1001, [
        { kind: 3, data: Buffer.from('x') },
        { kind: 4, length: 8 },
      ]),
    ).rejects.toMatchObject({ status: -46 });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(
      (
        await t.client.nfu(t, 1000, [
          { kind: 3, data: Buffer.from('ok') },
          { kind: 4, length: 8 },
        ])
      )
        .get(1)
        ?.toString(),
    ).toBe('ko');
  });

  it('memory is bounded: growing past maxMemoryPages fails inside the module', async () => {
    await register(1002, await wasm(GROW));
    await expect(
      t.client.nfu(t, 1002, [
        { kind: 3, data: Buffer.from('x') },
        { kind: 4, length: 8 },
      ]),
    ).rejects.toMatchObject({ status: -30 });
    await expect(
      t.client.nfu(t, 1000, [
        { kind: 3, data: Buffer.from('x') },
        { kind: 4, length: 1_000_000 },
      ]),
    ).rejects.toMatchObject({ status: -30 });
  });

  it('refuses modules with host imports, bad bytes, or a taken opcode', async () => {
    await expect(register(1003, await wasm(IMPORTS_HOST))).rejects.toMatchObject({ status: -30 });
    await expect(register(1004, Buffer.from('not wasm'))).rejects.toMatchObject({ status: -30 });
    await expect(register(1000, await wasm(REVERSE))).rejects.toMatchObject({ status: -30 });
    await expect(register(48, await wasm(REVERSE))).rejects.toMatchObject({ status: -30 });
    expect((await t.client.status(t)).nfuOps).not.toContain(1003);
  });

  it('without an admin secret configured, opcode 0 does not exist', async () => {
    const plain = await startDepot();
    try {
      await expect(
        plain.client.nfu(plain, 0, [
          { kind: 3, data: Buffer.from('{}') },
          { kind: 3, data: Buffer.from('x') },
        ]),
      ).rejects.toMatchObject({ status: -51 });
    } finally {
      await plain.close();
    }
  });
});
