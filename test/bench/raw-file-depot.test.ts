import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/temp-dir.js';

// The bench's least depot (bench/native/raw-file-depot.cc), built here with the system's compiler:
// its `md5` mode must really digest what it stores and check what it serves, or the figures the
// bench sets next to it would stand for less work than they claim.
const SOURCE = fileURLToPath(new URL('../../bench/native/raw-file-depot.cc', import.meta.url));
const BLOCK = 64 * 1024;

function pattern(len: number, salt: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = (i * 131 + salt * 7 + (i >> 9)) & 0xff;
  return b;
}

/** One connection to the least depot: sends a command (and a body) and reads what comes back. */
class Wire {
  private readonly parts: Buffer[] = [];
  closed = false;
  private constructor(readonly socket: Socket) {
    socket.on('data', (c: Buffer) => this.parts.push(c));
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => undefined);
  }
  static async open(port: number): Promise<Wire> {
    const s = connect({ host: '127.0.0.1', port });
    await once(s, 'connect');
    return new Wire(s);
  }
  get held(): Buffer {
    return Buffer.concat(this.parts);
  }
  /** Waits until `n` bytes have come, or the connection has closed; what came, whole. */
  async atLeast(n: number, timeoutMs = 10_000): Promise<Buffer> {
    for (const deadline = Date.now() + timeoutMs; Date.now() < deadline;) {
      if (this.held.length >= n || this.closed) return this.held;
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error(`only ${this.held.length} of ${n} bytes came`);
  }
  take(n: number): Buffer {
    const all = this.held;
    this.parts.splice(0, this.parts.length, all.subarray(n));
    return all.subarray(0, n);
  }
  async store(key: string, body: Buffer): Promise<void> {
    this.socket.write(`1 2 ${key} 0 ${body.length} 60\n`);
    expect((await this.atLeast(2)).subarray(0, 2).toString()).toBe('1\n');
    this.take(2);
    this.socket.write(body);
    const reply = `1 ${body.length}\n`;
    expect(this.take((await this.atLeast(reply.length)).length).toString()).toBe(reply);
  }
  async write(key: string, offset: number, body: Buffer): Promise<void> {
    this.socket.write(`1 13 ${key} 0 ${offset} ${body.length} 60\n`);
    expect((await this.atLeast(2)).subarray(0, 2).toString()).toBe('1\n');
    this.take(2);
    this.socket.write(body);
    const reply = `1 ${body.length}\n`;
    expect(this.take((await this.atLeast(reply.length)).length).toString()).toBe(reply);
  }
  /** The body of a LOAD, or undefined if the depot cut the connection before all of it came. */
  async load(key: string, offset: number, length: number): Promise<Buffer | undefined> {
    this.socket.write(`1 8 ${key} 0 ${offset} ${length} 60\n`);
    const head = `1 ${length}\n`;
    const got = await this.atLeast(head.length + length);
    if (got.length < head.length + length) return undefined;
    expect(got.subarray(0, head.length).toString()).toBe(head);
    return Buffer.from(this.take(head.length + length).subarray(head.length));
  }
}

describe('the bench least depot', () => {
  const dir = tempDir();
  let program = '';
  const children: ChildProcess[] = [];
  beforeAll(() => {
    program = join(dir.path, 'raw-file-depot');
    const r = spawnSync(process.env['CXX']?.trim() || 'g++', ['-O2', '-pthread', '-o', program, SOURCE], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`raw-file-depot does not build: ${r.stderr || String(r.error)}`);
  }, 120_000);
  afterAll(() => {
    for (const c of children) c.kill('SIGKILL');
    dir.cleanup();
  });

  async function start(data: string, mode: string[]): Promise<number> {
    const child = spawn(program, [data, ...mode], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    const [first] = (await once(child.stdout!, 'data')) as [Buffer];
    return Number(first.toString().trim());
  }

  it('refuses a mode it does not know', () => {
    const r = spawnSync(program, [dir.path, 'fast', 'sha1'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('usage: raw-file-depot DIR fast|sync [md5]');
  });

  for (const md5 of [true, false]) {
    it(`${md5 ? 'with md5 it serves intact blocks and cuts a LOAD that meets a changed one' : 'without md5 it serves whatever the file holds'}`, async () => {
      const data = join(dir.path, md5 ? 'md5' : 'plain');
      spawnSync('mkdir', ['-p', data]);
      const port = await start(data, md5 ? ['fast', 'md5'] : ['fast']);
      const w = await Wire.open(port);
      // Whole blocks, then a tail that covers part of a block; then a WRITE inside a block, and one
      // across a block boundary.
      const expected = Buffer.concat([pattern(5 * BLOCK, 1), pattern(BLOCK / 2 + 5, 2)]);
      await w.store('k1', expected.subarray(0, 5 * BLOCK));
      await w.store('k1', expected.subarray(5 * BLOCK));
      const inside = pattern(1000, 3);
      await w.write('k1', BLOCK + 100, inside);
      inside.copy(expected, BLOCK + 100);
      const across = pattern(3000, 4);
      await w.write('k1', 3 * BLOCK - 1000, across);
      across.copy(expected, 3 * BLOCK - 1000);
      expect(await w.load('k1', 0, expected.length)).toEqual(expected);
      expect(await w.load('k1', BLOCK + 7, 2 * BLOCK)).toEqual(expected.subarray(BLOCK + 7, 3 * BLOCK + 7));

      // One byte of block 4 changes behind the depot's back.
      const [file] = readdirSync(data);
      const path = join(data, file!);
      const bytes = readFileSync(path);
      bytes[4 * BLOCK + 123] ^= 0x5a;
      writeFileSync(path, bytes);
      const changed = Buffer.from(expected);
      changed[4 * BLOCK + 123] ^= 0x5a;

      // Blocks before it are still served, from a new connection.
      const w2 = await Wire.open(port);
      expect(await w2.load('k1', 0, 4 * BLOCK)).toEqual(expected.subarray(0, 4 * BLOCK));
      const got = await w2.load('k1', 3 * BLOCK, 2 * BLOCK);
      if (md5) {
        expect(got).toBeUndefined();
        expect(w2.closed).toBe(true);
      } else expect(got).toEqual(changed.subarray(3 * BLOCK, 5 * BLOCK));
      w.socket.destroy();
      w2.socket.destroy();
    });
  }
});
