/**
 * `npm run bench:files`: upload and download MB/s of a 256 MiB file over 4 loopback depot
 * processes with copies 1 and 2, next to a single-connection raw STORE/LOAD of the same bytes to
 * one depot, in the same run. JSON on stdout.
 */
import { createHash, randomFillSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDepotProcess } from './lib/depot-process.js';
import { IbpClient, download, upload } from '../framework/index.js';

const SIZE = Number(process.env['BENCH_FILE_MIB'] ?? 256) * 1024 * 1024;

const mbps = (bytes: number, ms: number) => Math.round((bytes / 1e6 / (ms / 1000)) * 10) / 10;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const dir = mkdtempSync(join(tmpdir(), 'anvil-bench-files-'));
const depots = await Promise.all([0, 1, 2, 3].map(() => startDepotProcess()));
const client = new IbpClient({ timeoutMs: 300_000 });
const rows: Array<Record<string, unknown>> = [];
try {
  const data = Buffer.allocUnsafe(SIZE);
  randomFillSync(data);
  const file = join(dir, 'input.bin');
  writeFileSync(file, data);
  const digest = sha(data);

  // Warm-up (first large buffers of each process page-fault their memory in), then the baseline:
  // one connection, one allocation, raw STORE then LOAD.
  for (const round of ['warm-up', 'measure']) {
    const caps = await client.allocate(depots[0]!.addr, { size: SIZE, durationSec: 600 });
    let t = Date.now();
    await client.store(caps.write, data);
    const storeMs = Date.now() - t;
    t = Date.now();
    const back = await client.load(caps.read, 0, SIZE);
    const loadMs = Date.now() - t;
    if (sha(back) !== digest) throw new Error('baseline corrupt');
    await client.decr(caps.manage, 'read');
    if (round === 'measure') {
      rows.push({
        name: `files:baseline-raw-store-load:1-connection:size=${SIZE}`,
        storeMBps: mbps(SIZE, storeMs),
        loadMBps: mbps(SIZE, loadMs),
      });
    }
  }
  for (const copies of [1, 2]) {
    let t = Date.now();
    const x = await upload(client, file, { depots: depots.map((d) => d.addr), copies, threads: 4, durationSec: 600 });
    const upMs = Date.now() - t;
    const out = join(dir, `out-${copies}.bin`);
    t = Date.now();
    await download(client, x, out, { threads: 4, resume: false });
    const downMs = Date.now() - t;
    if (sha(readFileSync(out)) !== digest) throw new Error('download corrupt');
    rows.push({
      name: `files:upload-download:depots=4,copies=${copies},block=4MiB,threads=4:size=${SIZE}`,
      uploadMBps: mbps(SIZE, upMs),
      uploadStoredMBps: mbps(SIZE * copies, upMs),
      downloadMBps: mbps(SIZE, downMs),
    });
    rmSync(out);
    for (const m of x.mappings) await client.decr(m.manage!, 'read');
  }
} finally {
  client.close();
  await Promise.all(depots.map((d) => d.stop()));
  rmSync(dir, { recursive: true, force: true });
}
process.stdout.write(
  `${JSON.stringify({ bench: 'files', node: process.version, when: new Date().toISOString(), rows }, null, 2)}\n`,
);
