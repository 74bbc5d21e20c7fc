import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { IbpClient, type AllocationCaps } from '../../ibp/index.js';
import { DepotProcess } from '../helpers/depot-process.js';
import { tempDir } from '../helpers/temp-dir.js';

const DIST = new URL('../../dist/depot/index.js', import.meta.url);
const METADATA_DIST = new URL('../../dist/depot/resources/disk/metadata-db.js', import.meta.url);
const BLOCK = 64 * 1024;

/**
 * A depot child (`safe`) where an overwrite is refused after its copy in place, then the depot
 * dies while it rolls the write back. `fault` refuses the write: `wal` fails the metadata WAL's
 * second fdatasync (the first is the STORE's; the write's grouped commit is then recorded but not
 * known durable, and putting its size back makes it durable), `datasync` fails the data file's
 * second fdatasync (the STORE's is the first; the write's, after its copy in place). `kill` picks
 * the point of the rollback it SIGKILLs itself at: `record` before its rollback record reaches the
 * journal, `write-back` half-way through writing the old bytes back (the record is durable by then).
 */
const CHILD = `
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename } from 'node:path';
const { DepotServer, parseDepotOptions } = await import(process.env.ANVIL_DIST);
const { MetadataDb } = await import(process.env.ANVIL_METADATA_DIST);
const [dir, port, fault, kill] = process.argv.slice(2);
const die = () => { process.kill(process.pid, 'SIGKILL'); return new Promise(() => undefined); };
const eio = () => Object.assign(new Error('EIO: injected'), { code: 'EIO' });
let walSyncs = 0;
const realSyncWal = MetadataDb.prototype.syncWal;
MetadataDb.prototype.syncWal = async function () {
  if (fault === 'wal' && ++walSyncs === 2) throw eio();
  return realSyncWal.call(this);
};
let dataSyncs = 0;
const diskIo = {
  async open(path, flags) {
    const fh = await open(path, flags, 0o600);
    const name = basename(path);
    // The rollback opens its descriptors afresh, without O_CREAT: the journal to write its record,
    // the data file to write the old bytes back.
    const fresh = (flags & constants.O_CREAT) === 0 && (flags & (constants.O_WRONLY | constants.O_RDWR)) !== 0;
    if (/^\\d+$/.test(name)) {
      const datasync = fh.datasync.bind(fh);
      fh.datasync = async () => {
        if (fault === 'datasync' && ++dataSyncs === 2) throw eio();
        return datasync();
      };
      if (fresh && kill === 'write-back') {
        const write = fh.write.bind(fh);
        fh.writev = async (buffers, position) => {
          const all = Buffer.concat(buffers);
          await write(all, 0, all.length >> 1, position);
          return die();
        };
      }
    } else if (/^\\d+\\.redo$/.test(name) && fresh && kill === 'record') {
      fh.writev = () => die();
    }
    return fh;
  },
};
const options = parseDepotOptions({ host: '127.0.0.1', port: Number(port), logLevel: 'warn', resource: [{ kind: 'disk', path: dir, fsync: 'safe' }] });
const depot = await DepotServer.start(options, { diskIo });
process.stdout.write('listening on ' + depot.url + '\\n');
`;

function pattern(len: number, salt: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = (salt + i * 31 + (i >> 9)) & 0xff;
  return b;
}

async function startChild(script: string, dir: string, fault: string, kill: string) {
  const child = spawn(process.execPath, [script, dir, '0', fault, kill], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ANVIL_DIST: DIST.href, ANVIL_METADATA_DIST: METADATA_DIST.href },
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exit = new Promise<NodeJS.Signals | number | null>((resolve) => child.on('exit', (code, sig) => resolve(sig ?? code)));
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const m = /listening on ibp:\/\/[^:]+:(\d+)/.exec(out);
    if (m) return { child, exit, port: Number(m[1]) };
    if (child.exitCode !== null) break;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  child.kill('SIGKILL');
  throw new Error(`depot child did not start: ${err}`);
}

interface Case {
  fault: 'wal' | 'datasync';
  kill: 'record' | 'write-back';
  /**
   * What the write's range holds after the restart: `old` once the rollback record is durable (the
   * restart finishes the rollback), `new` when the depot died before it (the write was never
   * answered: the restart finishes it, or it was recorded already).
   */
  outcome: 'old' | 'new';
}

const CASES: Case[] = [
  { fault: 'wal', kill: 'write-back', outcome: 'old' },
  { fault: 'datasync', kill: 'write-back', outcome: 'old' },
  { fault: 'wal', kill: 'record', outcome: 'new' },
  { fault: 'datasync', kill: 'record', outcome: 'new' },
];

describe('crash while a refused overwrite is rolled back', () => {
  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  for (const c of CASES) {
    it(`refused by a failed ${c.fault}, killed at its ${c.kill}: the range is all ${c.outcome}, every acknowledged byte outside it loads`, async () => {
      if (!existsSync(new URL(DIST))) throw new Error('dist/ is missing: run `npx tsc -p tsconfig.build.json`');
      const dir = tempDir('anvil-rollback-');
      cleanups.push(dir.cleanup);
      const script = join(dir.path, 'child.mjs');
      writeFileSync(script, CHILD);
      const data = join(dir.path, 'depot');
      const client = new IbpClient({ timeoutMs: 10_000, connectTimeoutMs: 2_000 });
      cleanups.push(() => client.close());

      const first = await startChild(script, data, c.fault, c.kill);
      cleanups.push(() => first.child.kill('SIGKILL'));
      const caps: AllocationCaps = await client.allocate(
        { host: '127.0.0.1', port: first.port },
        { size: 4 << 20, durationSec: 3600 },
      );
      const stored = 3 << 20;
      const old = pattern(stored, 7);
      expect(await client.store(caps.write, old)).toBe(stored);
      // 2 MiB at 100 000: two journal records, so the write-back takes two writes as well.
      const offset = 100_000;
      const body = pattern(2 << 20, 101);
      await expect(client.write(caps.write, offset, body)).rejects.toThrow();
      expect(await first.exit).toBe('SIGKILL');
      client.close();

      const again = await DepotProcess.start(['--data', data, '--port', String(first.port), '--log-level', 'warn']);
      cleanups.push(() => again.proc.kill('SIGKILL'));
      const client2 = new IbpClient({ timeoutMs: 10_000, connectTimeoutMs: 2_000 });
      cleanups.push(() => client2.close());
      expect((await client2.probe(caps.manage)).size).toBe(stored);
      const got = await client2.load(caps.read, 0, stored);
      const neu = Buffer.from(old);
      body.copy(neu, offset);
      const want = c.outcome === 'old' ? old : neu;
      for (let at = 0; at < stored; at += BLOCK) {
        expect(got.subarray(at, at + BLOCK).equals(want.subarray(at, at + BLOCK)), `block ${at / BLOCK}`).toBe(true);
      }
      // the allocation takes writes again and keeps them
      await client2.write(caps.write, 0, Buffer.from('after'));
      expect((await client2.load(caps.read, 0, 5)).toString()).toBe('after');
      expect(await again.proc.kill('SIGTERM')).toBe(0);
    }, 60_000);
  }
});
