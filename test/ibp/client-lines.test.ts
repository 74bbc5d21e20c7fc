import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IbpClient, parseCapability, parseNfuParamHeader, parseRequest, type IbpRequest } from '../../ibp/index.js';

/**
 * A scripted depot that parses every command line with the depot's own `parseRequest` and records the
 * typed request: what the client sends is checked by the same code that serves it.
 */
class RecordingDepot {
  readonly requests: IbpRequest[] = [];
  readonly refused: string[] = [];
  private server!: Server;
  port = 0;

  async start(): Promise<void> {
    this.server = createServer((socket) => this.serve(socket));
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private cap(word: string): string {
    return `ibp://127.0.0.1:${this.port}/1#k${word}/7/${word}`;
  }

  private serve(socket: Socket): void {
    socket.on('error', () => undefined);
    let buffered = Buffer.alloc(0);
    /** Bytes still to swallow (a body, an NFU value) before the next line. */
    let skip = 0;
    let nfuLeft = -1;
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      for (let guard = 0; guard < 10_000; guard++) {
        if (skip > 0) {
          const n = Math.min(skip, buffered.length);
          buffered = buffered.subarray(n);
          skip -= n;
          if (skip > 0) return;
          if (this.pendingAck !== undefined) {
            socket.write(this.pendingAck);
            this.pendingAck = undefined;
          }
        }
        const nl = buffered.indexOf(0x0a);
        if (nl < 0) return;
        const line = buffered.subarray(0, nl).toString('latin1');
        buffered = buffered.subarray(nl + 1);
        if (nfuLeft > 0) {
          const header = parseNfuParamHeader(line, 0, 1 << 20);
          skip = header.dataLength;
          nfuLeft--;
          continue;
        }
        if (nfuLeft === 0) {
          nfuLeft = -1; // the empty line closing the parameters
          socket.write('1 \n0 \n');
          continue;
        }
        const reply = this.answer(line);
        if (reply === undefined) {
          socket.end();
          return;
        }
        socket.write(reply.now);
        if (reply.body !== undefined) {
          skip = reply.body;
          this.pendingAck = reply.ack;
        }
        if (reply.nfuParams !== undefined) nfuLeft = reply.nfuParams;
      }
    });
  }

  private pendingAck: string | undefined;

  private answer(line: string): { now: string; body?: number; ack?: string; nfuParams?: number } | undefined {
    let r: IbpRequest;
    try {
      r = parseRequest(line);
    } catch {
      this.refused.push(line);
      return undefined;
    }
    this.requests.push(r);
    switch (r.command) {
      case 'allocate':
        return { now: `1 ${this.cap('READ')} ${this.cap('WRITE')} ${this.cap('MANAGE')} \n` };
      case 'store':
      case 'write':
        return { now: '1 \n', body: r.length, ack: `1 ${r.length} \n` };
      case 'load':
        return { now: `1 ${r.length} \n${'x'.repeat(r.length)}` };
      case 'manage':
        return { now: r.op === 'probe' ? '1 1 0 5 64 60 2 1 \n' : '1 \n' };
      case 'status':
        if (r.op === 'inq' && r.version === 0) return { now: '1 0 1 0 60 \n' };
        if (r.op === 'inq') {
          const body = 'VS:1.4:1.0 DT:1 RID:1 RT:2 CT:10 ST:10 UT:0 UH:0 SH:10 CH:10 AT:10 AH:10 DR:60 RE \n';
          return { now: `1 ${body.length} \n${body}` };
        }
        if (r.op === 'res') return { now: '1 1 \n' };
        return { now: '1\nrecording depot\nEND\n' };
      case 'send':
      case 'push':
      case 'pull':
        return { now: `1 ${r.length} \n` };
      case 'nfu':
        return { now: '', nfuParams: r.paramCount };
      case 'phoebus_send':
        return { now: `1 ${r.length} \n` };
      case 'alias_allocate':
      case 'rename':
      case 'split':
        return { now: `1 ${this.cap('READ')} ${this.cap('WRITE')} ${this.cap('MANAGE')} \n` };
      case 'alias_manage':
        return { now: r.op === 'probe' ? '1 1 0 4 10 60 \n' : '1 \n' };
      case 'merge':
        return { now: '1 \n' };
      case 'get_chksum':
        return { now: '1 0 \n' };
      case 'validate_chksum':
        return { now: '1 0\n' };
      case 'vec_write': {
        const total = r.ranges.reduce((n, x) => n + x.length, 0);
        return { now: '1 \n', body: total, ack: `1 ${total} \n` };
      }
      case 'vec_read': {
        const total = r.ranges.reduce((n, x) => n + x.length, 0);
        return { now: `1 ${total} \n${'x'.repeat(total)}` };
      }
    }
  }
}

describe('every IbpClient call sends a line the depot parser reads back as that call', () => {
  const depot = new RecordingDepot();
  let client: IbpClient;
  beforeAll(async () => {
    await depot.start();
    client = new IbpClient({ timeoutMs: 5_000 });
  });
  afterAll(async () => {
    client.close();
    await depot.close();
  });
  const at = (): { host: string; port: number } => ({ host: '127.0.0.1', port: depot.port });
  const cap = (word: string): string => `ibp://127.0.0.1:${depot.port}/1#k${word}/7/${word}`;
  const other = 'ibp://10.0.0.2:6714/3#kOther/9/';
  const last = (): IbpRequest => depot.requests.at(-1)!;
  const ref = (word: string) => ({ rid: '1', key: `k${word}`, wrmKey: '7' });
  const common = { version: 1, timeoutSec: 30 };

  it('ALLOCATE, v1 and v0', async () => {
    const caps = await client.allocate(at(), { size: 64, durationSec: 600, rid: '2', reliability: 'soft' });
    expect(caps.read).toEqual(parseCapability(cap('READ')));
    expect(last()).toStrictEqual({
      command: 'allocate',
      ...common,
      rid: '2',
      reliability: 1,
      type: 1,
      durationSec: 600,
      size: 64,
    });
    await client.allocate(at(), { size: 8, durationSec: -1, v0: true });
    expect(last()).toStrictEqual({
      command: 'allocate',
      version: 0,
      rid: undefined,
      reliability: 2,
      type: 1,
      durationSec: -1,
      size: 8,
      timeoutSec: 30,
    });
  });

  it('STORE, WRITE and their streamed forms', async () => {
    expect(await client.store(cap('WRITE'), Buffer.from('hello'))).toBe(5);
    expect(last()).toStrictEqual({ command: 'store', ...common, cap: ref('WRITE'), length: 5 });
    expect(await client.store(cap('WRITE'), Buffer.alloc(100_000))).toBe(100_000); // waits for the go-ahead
    expect(last()).toStrictEqual({ command: 'store', ...common, cap: ref('WRITE'), length: 100_000 });
    expect(await client.write(cap('WRITE'), 3, Buffer.from('ab'))).toBe(2);
    expect(last()).toStrictEqual({ command: 'write', ...common, cap: ref('WRITE'), offset: 3, length: 2 });
    await client.storeFrom(cap('WRITE'), 4, async (w) => w(Buffer.from('abcd')));
    expect(last()).toStrictEqual({ command: 'store', ...common, cap: ref('WRITE'), length: 4 });
    await client.storeFrom(cap('WRITE'), 4, async (w) => w(Buffer.from('abcd')), 9);
    expect(last()).toStrictEqual({ command: 'write', ...common, cap: ref('WRITE'), offset: 9, length: 4 });
  });

  it('LOAD and its streamed form', async () => {
    expect((await client.load(cap('READ'), 2, 3)).toString()).toBe('xxx');
    expect(last()).toStrictEqual({ command: 'load', ...common, cap: ref('READ'), offset: 2, length: 3 });
    let got = 0;
    await client.loadTo(cap('READ'), 0, 7, (c) => void (got += c.length));
    expect(got).toBe(7);
    expect(last()).toStrictEqual({ command: 'load', ...common, cap: ref('READ'), offset: 0, length: 7 });
  });

  it('MANAGE PROBE, INCR, DECR, CHNG and TRUNCATE', async () => {
    const m = cap('MANAGE');
    const base = { command: 'manage', ...common, cap: ref('MANAGE') };
    expect(await client.probe(m)).toMatchObject({ readRefs: 1, size: 5, maxSize: 64 });
    expect(last()).toStrictEqual({ ...base, op: 'probe' });
    await client.incr(m, 'write');
    expect(last()).toStrictEqual({ ...base, op: 'incr', capType: 2 });
    await client.decr(m, 'read');
    expect(last()).toStrictEqual({ ...base, op: 'decr', capType: 1 });
    await client.change(m, { maxSize: 128, durationSec: -1 });
    expect(last()).toStrictEqual({ ...base, op: 'chng', capType: 3, maxSize: 128, durationSec: -1, reliability: -1 });
    await client.truncate(m, 0);
    expect(last()).toStrictEqual({ ...base, op: 'truncate', size: 0 });
  });

  it('the ACCRE extensions: RENAME, aliases, SPLIT, MERGE, VALIDATE_CHKSUM, vector I/O; queue types and windows', async () => {
    const m = cap('MANAGE');
    expect((await client.rename(m)).read).toEqual(parseCapability(cap('READ')));
    expect(last()).toStrictEqual({ command: 'rename', ...common, cap: ref('MANAGE') });
    await client.aliasAllocate(m, { offset: 4, length: 10 });
    expect(last()).toStrictEqual({
      command: 'alias_allocate',
      ...common,
      cap: ref('MANAGE'),
      offset: 4,
      length: 10,
      durationSec: 0,
    });
    expect(await client.aliasProbe(m)).toEqual({ readRefs: 1, writeRefs: 0, offset: 4, length: 10, secondsLeft: 60 });
    expect(last()).toStrictEqual({ command: 'alias_manage', ...common, cap: ref('MANAGE'), op: 'probe' });
    await client.aliasRemove(m, m);
    expect(last()).toStrictEqual({
      command: 'alias_manage',
      ...common,
      cap: ref('MANAGE'),
      op: 'decr',
      capType: 1,
      master: ref('MANAGE'),
    });
    await client.split(m, { size: 100, durationSec: 60 });
    expect(last()).toStrictEqual({
      command: 'split',
      ...common,
      cap: ref('MANAGE'),
      reliability: 2,
      type: 1,
      durationSec: 60,
      size: 100,
    });
    await client.merge(m, m);
    expect(last()).toStrictEqual({ command: 'merge', ...common, cap: ref('MANAGE'), child: ref('MANAGE') });
    expect(await client.validate(m)).toBe(0);
    expect(last()).toStrictEqual({ command: 'validate_chksum', ...common, cap: ref('MANAGE'), flag: 0 });
    const ranges = [
      { offset: 10, length: 2 },
      { offset: 0, length: 3 },
    ];
    expect(await client.vecWrite(cap('WRITE'), ranges, Buffer.from('abcde'))).toBe(5);
    expect(last()).toStrictEqual({ command: 'vec_write', ...common, cap: ref('WRITE'), ranges });
    expect((await client.vecRead(cap('READ'), ranges)).toString()).toBe('xxxxx');
    expect(last()).toStrictEqual({ command: 'vec_read', ...common, cap: ref('READ'), ranges });
    await client.allocate(at(), { size: 64, durationSec: 600, rid: '1', type: 'cirq' });
    expect(last()).toMatchObject({ command: 'allocate', type: 4 });
    await client.loadWindow(cap('READ'), 50, 5);
    expect(last()).toStrictEqual({ command: 'load', ...common, cap: ref('READ'), offset: 50, length: 5 });
  });

  it('STATUS INQ (v1 and v0), RES and VERSION', async () => {
    expect((await client.status(at())).resources).toHaveLength(1);
    expect(last()).toStrictEqual({ command: 'status', ...common, op: 'inq', rid: '0', password: 'ibp' });
    expect((await client.statusV0(at(), 'secret')).maxDurationSec).toBe(60);
    expect(last()).toStrictEqual({
      command: 'status',
      version: 0,
      timeoutSec: 30,
      op: 'inq',
      rid: undefined,
      password: 'secret',
    });
    expect(await client.resources(at())).toEqual(['1']);
    expect(last()).toStrictEqual({ command: 'status', ...common, op: 'res' });
    expect(await client.version(at())).toEqual(['recording depot']);
    expect(last()).toStrictEqual({ command: 'status', ...common, op: 'version' });
  });

  it('SEND, PUSH and PULL', async () => {
    const transfer = { ...common, cap: ref('READ'), length: 10 };
    await client.copy(cap('READ'), `${other}WRITE`, { offset: 4, length: 10 });
    expect(last()).toStrictEqual({
      command: 'send',
      ...transfer,
      remote: parseCapability(`${other}WRITE`),
      localOffset: 4,
      remoteOffset: -1,
    });
    await client.push(cap('READ'), `${other}WRITE`, { length: 10, remoteOffset: 100 });
    expect(last()).toStrictEqual({
      command: 'push',
      ...transfer,
      remote: parseCapability(`${other}WRITE`),
      localOffset: 0,
      remoteOffset: 100,
    });
    await client.pull(cap('WRITE'), `${other}READ`, { length: 10, remoteOffset: -1 });
    expect(last()).toStrictEqual({
      command: 'pull',
      ...transfer,
      cap: ref('WRITE'),
      remote: parseCapability(`${other}READ`),
      localOffset: -1,
      remoteOffset: 0,
    });
  });

  it('NFU', async () => {
    const out = await client.nfu(at(), 33, [
      { kind: 3, data: Buffer.from('{"k":1}') },
      { kind: 0, cap: cap('READ') },
      { kind: 4, length: 64 },
    ]);
    expect(out.size).toBe(0);
    expect(last()).toStrictEqual({ command: 'nfu', version: 1, opcode: 33, paramCount: 3, timeoutSec: 2 });
  });

  it('refuses, before sending anything, an argument that would break the line', async () => {
    const before = depot.requests.length;
    await expect(client.statusV0(at(), 'two words')).rejects.toMatchObject({ code: 'CLIENT_ERR_INVALID_ARGUMENT' });
    await expect(client.status(at(), { password: 'a\n1 4 3 10' })).rejects.toMatchObject({ code: 'CLIENT_ERR_INVALID_ARGUMENT' });
    await expect(client.status(at(), { rid: 'any' })).rejects.toMatchObject({ code: 'CLIENT_ERR_INVALID_ARGUMENT' });
    await expect(client.change(cap('MANAGE'), { maxSize: 1, durationSec: 0.5 })).rejects.toMatchObject({
      code: 'CLIENT_ERR_INVALID_ARGUMENT',
    });
    await expect(client.push(cap('READ'), `${other}WRITE`, { length: 1, offset: -1 })).rejects.toMatchObject({
      code: 'CLIENT_ERR_INVALID_ARGUMENT',
    });
    expect(depot.requests.length).toBe(before);
    expect(depot.refused).toEqual([]);
  });
});
