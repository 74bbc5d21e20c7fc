/**
 * `npm run bench:depot`: store and load throughput of one depot process on loopback, plus the
 * small-operation rate, printed as JSON. The depot runs as a child process (as in production);
 * the client is the framework's IbpClient. Bounded: each row runs for at most ROW_SECONDS.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDepotProcess } from './lib/depot-process.js';
import { IbpClient, type DepotAddress } from '../framework/index.js';

const ROW_SECONDS = Number(process.env['BENCH_ROW_SECONDS'] ?? 3);

interface Row {
  name: string;
  iterations: number;
  seconds: number;
  storeMBps?: number;
  loadMBps?: number;
  opsPerSec?: number;
  copyMBps?: number;
}

async function storeLoad(client: IbpClient, addr: DepotAddress, size: number, kind: string): Promise<Row> {
  const data = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4096) data.writeUInt32LE(i, i);
  let storeNs = 0n;
  let loadNs = 0n;
  let iterations = 0;
  const started = Date.now();
  while (Date.now() - started < ROW_SECONDS * 1000 || iterations < 2) {
    const caps = await client.allocate(addr, { size, durationSec: 600 });
    const t0 = process.hrtime.bigint();
    await client.store(caps.write, data);
    const t1 = process.hrtime.bigint();
    const back = await client.load(caps.read, 0, size);
    const t2 = process.hrtime.bigint();
    if (back.readUInt32LE(size - (size % 4096 || 4096)) !== size - (size % 4096 || 4096)) throw new Error('corrupt load');
    await client.decr(caps.manage, 'read');
    storeNs += t1 - t0;
    loadNs += t2 - t1;
    iterations++;
  }
  const mb = (size * iterations) / 1e6;
  return {
    name: `depot:store-load:${kind}:size=${size}`,
    iterations,
    seconds: (Date.now() - started) / 1000,
    storeMBps: round(mb / (Number(storeNs) / 1e9)),
    loadMBps: round(mb / (Number(loadNs) / 1e9)),
  };
}

async function smallOps(addr: DepotAddress, concurrency: number, kind: string): Promise<Row> {
  const data = Buffer.alloc(4096, 1);
  const clients = Array.from({ length: concurrency }, () => new IbpClient());
  let iterations = 0;
  const started = Date.now();
  await Promise.all(
    clients.map(async (client) => {
      while (Date.now() - started < ROW_SECONDS * 1000) {
        const caps = await client.allocate(addr, { size: 4096, durationSec: 600 });
        await client.store(caps.write, data);
        await client.load(caps.read, 0, 4096);
        await client.decr(caps.manage, 'read');
        iterations++;
      }
    }),
  );
  for (const c of clients) c.close();
  const seconds = (Date.now() - started) / 1000;
  return {
    name: `depot:small-ops:allocate+store4k+load:${kind}:clients=${concurrency}`,
    iterations,
    seconds,
    opsPerSec: round(iterations / seconds),
  };
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}

/** Depot-to-depot SEND of `size` bytes from `from` to `to` (both depot processes). */
async function copyRow(client: IbpClient, from: DepotAddress, to: DepotAddress, size: number, label: string): Promise<Row> {
  const src = await client.allocate(from, { size, durationSec: 600 });
  await client.store(src.write, Buffer.alloc(size, 3));
  let ns = 0n;
  let iterations = 0;
  const started = Date.now();
  while (Date.now() - started < ROW_SECONDS * 1000 || iterations < 2) {
    const dest = await client.allocate(to, { size, durationSec: 600 });
    const t0 = process.hrtime.bigint();
    await client.copy(src.read, dest.write, { length: size });
    ns += process.hrtime.bigint() - t0;
    await client.decr(dest.manage, 'read');
    iterations++;
  }
  await client.decr(src.manage, 'read');
  return {
    name: `depot:copy(SEND):${label}:size=${size}`,
    iterations,
    seconds: (Date.now() - started) / 1000,
    copyMBps: round((size * iterations) / 1e6 / (Number(ns) / 1e9)),
  };
}

const dataDir = mkdtempSync(join(tmpdir(), 'anvil-bench-'));
const memory = await startDepotProcess();
const memory2 = await startDepotProcess();
const diskSafe = await startDepotProcess(['--data', join(dataDir, 'safe'), '--fsync', 'safe']);
const diskFast = await startDepotProcess(['--data', join(dataDir, 'fast'), '--fsync', 'fast']);
const client = new IbpClient({ timeoutMs: 120_000 });
const rows: Row[] = [];
try {
  for (const [kind, d] of [
    ['memory', memory],
    ['disk-safe', diskSafe],
    ['disk-fast', diskFast],
  ] as const) {
    for (const size of [4096, 1 << 20, 64 << 20]) rows.push(await storeLoad(client, d.addr, size, kind));
    rows.push(await smallOps(d.addr, 1, kind));
    rows.push(await smallOps(d.addr, 8, kind));
  }
  rows.push(await copyRow(client, memory.addr, memory2.addr, 64 << 20, 'memory->memory'));
  rows.push(await copyRow(client, memory.addr, diskSafe.addr, 64 << 20, 'memory->disk-safe'));
} finally {
  client.close();
  await Promise.all([memory, memory2, diskSafe, diskFast].map((d) => d.stop()));
  rmSync(dataDir, { recursive: true, force: true });
}
process.stdout.write(
  `${JSON.stringify({ bench: 'depot', node: process.version, when: new Date().toISOString(), rowSeconds: ROW_SECONDS, rows }, null, 2)}\n`,
);
