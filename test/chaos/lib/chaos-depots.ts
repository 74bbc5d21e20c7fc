import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  startLoopbackDepots,
  type LoopbackDepots,
  type LoopbackDepotOptions,
} from '../../../framework/dataset/loopback-depots.js';
import { isAlive } from './process-stats.js';

/** Limits of the depots under chaos: the defaults, shortened so every abuse ends within seconds. */
export const CHAOS_DEPOT_CONFIG = `
[limits]
maxConnections = 64
idleTimeoutMs = 5000
commandLineTimeoutMs = 2000
dataProgressTimeoutMs = 3000
closeLingerMs = 500
shutdownGraceMs = 1000

[transfer]
connectTimeoutMs = 1000
timeoutMs = 4000

[nfu]
workers = 1
maxQueue = 4
timeoutMs = 2000
queueTimeoutMs = 3000
memoryBudgetMb = 64
`;

/**
 * Loopback depot processes for the chaos suite, with the short limits of {@link CHAOS_DEPOT_CONFIG}
 * (written into `dir`), and crash accounting: a depot found dead that the suite did not kill is a crash.
 */
export class ChaosDepots {
  crashes = 0;
  private readonly expectedDown = new Set<number>();

  private constructor(readonly loop: LoopbackDepots) {}

  static async start(n: number, dir: string, options: LoopbackDepotOptions & { config?: string } = {}): Promise<ChaosDepots> {
    const config = join(dir, `chaos-depot-${Math.random().toString(36).slice(2)}.toml`);
    writeFileSync(config, options.config ?? CHAOS_DEPOT_CONFIG);
    const { config: _c, ...rest } = options;
    const loop = await startLoopbackDepots(n, {
      capacity: '64MiB',
      ...rest,
      extraArgs: ['--config', config, ...(options.extraArgs ?? [])],
    });
    return new ChaosDepots(loop);
  }

  get depots() {
    return this.loop.depots;
  }

  pid(i: number): number {
    return this.loop.pid(i);
  }

  /** Counts every depot that died without being killed by the suite. */
  checkAlive(): number {
    let dead = 0;
    for (let i = 0; i < this.loop.depots.length; i++) {
      if (this.expectedDown.has(i)) continue;
      if (!isAlive(this.loop.pid(i))) {
        dead++;
        this.crashes++;
        this.expectedDown.add(i); // count it once
      }
    }
    return dead;
  }

  async kill(i: number): Promise<void> {
    this.checkAlive();
    this.expectedDown.add(i);
    await this.loop.kill(i);
  }

  pause(i: number): void {
    this.loop.pause(i);
  }

  resume(i: number): void {
    this.loop.resume(i);
  }

  async restart(i: number): Promise<void> {
    this.expectedDown.add(i);
    await this.loop.restart(i);
    this.expectedDown.delete(i);
  }

  async stop(): Promise<void> {
    this.checkAlive();
    await this.loop.stop();
  }
}
