import { IbpClient, type Capability } from '../../../ibp/index.js';
import { startDepot } from '../../helpers/depot-fixture.js';
import { AckLedger } from '../lib/ack-ledger.js';
import { MixedLoad } from '../lib/mixed-load.js';
import type { Scenario } from '../lib/scenario.js';

/**
 * A client that returns one wrong byte on purpose: the `plantAt`-th LOAD (counting from 1) comes back
 * with bit `bit` of byte `at % length` flipped — a fault of the harness's own making, to show that the
 * suite catches it, fails, and replays it from the seed.
 */
class LyingClient extends IbpClient {
  private loads = 0;
  planted: { load: number; byte: number } | undefined;

  constructor(
    private readonly plantAt: number,
    private readonly at: number,
    private readonly bit: number,
  ) {
    super({ timeoutMs: 3_000 });
  }

  override async load(cap: Capability | string, offset: number, length: number): Promise<Buffer> {
    const got = await super.load(cap, offset, length);
    if (++this.loads === this.plantAt && got.length > 0) {
      const byte = this.at % got.length;
      got[byte] = got[byte]! ^ (1 << this.bit);
      this.planted = { load: this.loads, byte: offset + byte };
    }
    return got;
  }
}

/**
 * The suite's seam test: a seeded wrong byte planted in what one LOAD returns, under a one-worker mixed
 * load on an in-process memory depot (so the schedule is the seed's alone). The ledger must count it as
 * `wrong_bytes`, the run must fail, and the same seed must plant the same byte again. Not in the
 * suite's scenario list: `npm run test:chaos -- --plant` adds it (test/chaos/chaos-seam.test.ts).
 */
export const plantedFault: Scenario = {
  name: 'planted-fault',
  async run(ctx) {
    const plant = ctx.rand.fork();
    const client = new LyingClient(plant.int(1, 8), plant.int(0, 1 << 20), plant.int(0, 7));
    const depot = await startDepot({ resource: [{ rid: '1', capacityBytes: '16MiB' }] });
    const ledger = new AckLedger();
    const load = new MixedLoad(
      client,
      ledger,
      ctx.rand.fork(),
      { count: 1, depot: () => ({ host: depot.host, port: depot.port }) },
      {
        workers: 1,
        ops: 120,
        deadlineMs: 10_000,
        hangMs: 5_000,
        maxAllocations: 4,
        allocationBytes: 64 * 1024,
        maxBodyBytes: 8 * 1024,
        transfers: false,
        nfu: false,
      },
    );
    try {
      await load.run();
      await load.verifyAll();
    } finally {
      client.close();
      await depot.close();
    }
    const f = ctx.figures;
    f.count('acked_lost', ledger.figures.ackedLost);
    f.count('wrong_bytes', ledger.figures.wrongBytes);
    f.count('hangs', load.figures.hangs);
    f.set('planted_load', client.planted?.load ?? null);
    f.set('planted_byte', client.planted?.byte ?? null);
    f.set('planted_ops', load.figures.ops);
    ctx.log(
      `planted a flipped bit in LOAD #${client.planted?.load ?? '-'} at byte ${client.planted?.byte ?? '-'}; ` +
        `ops ${load.figures.ops}, wrong bytes caught ${ledger.figures.wrongBytes}`,
    );
  },
};
