import { connect, createServer, type Server, type Socket } from 'node:net';
import { lastValueFrom } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IbpClient, formatCapability, type DepotAddress } from '../../ibp/index.js';
import { ReliabilityStore, summarizeBlock } from '../../framework/estimation/index.js';
import { startLoopbackDepots, type LoopbackDepots } from '../../framework/dataset/loopback-depots.js';
import { Coordinator } from '../../framework/coordinator/coordinator.js';
import { columnStatsJob } from '../../framework/coordinator/column-stats-job.js';
import { gramJob } from '../../framework/coordinator/gram-job.js';
import { sketchJob } from '../../framework/coordinator/sketch-job.js';
import type { Dataset, DatasetBlock } from '../../framework/coordinator/dataset-shape.js';
import { blockData } from './fixtures.js';

/** A TCP proxy on 127.0.0.1 in front of one depot that counts the bytes it forwards each way. */
class CountingProxy {
  up = 0;
  down = 0;
  readonly #sockets = new Set<Socket>();
  private constructor(
    readonly server: Server,
    readonly address: DepotAddress,
  ) {}

  static async start(target: DepotAddress): Promise<CountingProxy> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const proxy = new CountingProxy(server, { host: '127.0.0.1', port: (server.address() as { port: number }).port });
    server.on('connection', (client) => {
      const depot = connect(target.port, target.host);
      for (const s of [client, depot]) {
        proxy.#sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => {
          proxy.#sockets.delete(s);
          client.destroy();
          depot.destroy();
        });
      }
      client.on('data', (d: Buffer) => {
        proxy.up += d.length;
        depot.write(d);
      });
      depot.on('data', (d: Buffer) => {
        proxy.down += d.length;
        client.write(d);
      });
    });
    return proxy;
  }

  get total(): number {
    return this.up + this.down;
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

const COLS = 5;
const ROWS = 30;

describe('bytesMoved counts the bytes on the wire', () => {
  let depots: LoopbackDepots;
  let proxies: CountingProxy[];
  let client: IbpClient;
  let dataset: Dataset;

  beforeAll(async () => {
    depots = await startLoopbackDepots(2, { capacity: '16MiB' });
    proxies = await Promise.all(depots.depots.map((d) => CountingProxy.start(d)));
    client = new IbpClient({ timeoutMs: 5_000 });
    const data = blockData(10, ROWS, COLS, 3);
    const blocks: DatasetBlock[] = [];
    for (const [index, d] of data.entries()) {
      const bytes = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
      const i = index % 2;
      // Stored directly; the dataset reaches each depot through its counting proxy (the caps name the depot).
      const caps = await client.allocate(depots.depots[i]!, { size: bytes.length, durationSec: 600 });
      await client.store(caps.write, bytes);
      blocks.push({
        index,
        rowStart: index * ROWS,
        rows: ROWS,
        bytes: bytes.length,
        replicas: [{ depot: proxies[i]!.address, read: formatCapability(caps.read), allocOffset: 0, length: bytes.length }],
        summary: summarizeBlock(d, ROWS, COLS),
      });
    }
    dataset = { name: 'counted', dtype: 'float64', rows: 10 * ROWS, cols: COLS, blocks };
  }, 30_000);
  afterAll(async () => {
    client?.close();
    await Promise.all((proxies ?? []).map((p) => p.close()));
    await depots?.stop();
  });

  for (const [name, make] of [
    ['column means', (ds: Dataset) => columnStatsJob(ds, 'means')],
    ['Gram', (ds: Dataset) => gramJob(ds)],
    ['CountSketch', (ds: Dataset) => sketchJob(ds, { kind: 'count-sketch', k: 4, seed: 9 })],
  ] as const) {
    it(`${name}: bytesMoved equals the bytes the proxies forwarded`, async () => {
      const coordinator = await Coordinator.open({
        client,
        reliabilityPath: null,
        reliability: new ReliabilityStore({ clock: { now: () => Date.now() } }),
      });
      // A first run learns the depots' advertised ops (STATUS, not part of a job's traffic).
      await lastValueFrom(coordinator.run(make(dataset)));
      const before = proxies.reduce((s, p) => s + p.total, 0);
      const e = await lastValueFrom(coordinator.run(make(dataset)));
      const forwarded = proxies.reduce((s, p) => s + p.total, 0) - before;
      expect(e.coverage).toBe(1);
      expect(forwarded).toBeGreaterThan(0);
      expect(e.bytesMoved).toBe(forwarded);
      await coordinator.close();
    });
  }
});
