import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import { depotId, type DepotHealthTracker, type LiveHub, type LoopbackDepots } from '../../framework/index.js';
import type { DepotStatusBoard } from './depot-status.js';

/** Seconds between disruptions, and how long one lasts. */
const EVERY_SEC: readonly [number, number] = [10, 18];
const DOWN_SEC: readonly [number, number] = [5, 9];

/**
 * The demo's chaos: now and then one depot is killed (SIGKILL, then restarted empty — a memory depot loses
 * its data) or paused (SIGSTOP, then SIGCONT). At most one depot is disrupted at a time. Each action is
 * published on the dashboard's timeline; the coordinator only learns of it from its ops failing.
 */
export class ChaosMonkey {
  private readonly rand: () => number;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private busy: Promise<void> = Promise.resolve();
  lastAction: string | undefined;

  constructor(
    private readonly loop: LoopbackDepots,
    private readonly hub: LiveHub,
    private readonly health: DepotHealthTracker,
    seed: number,
    /** The status line's view of the depots: told what the monkey did to a process. */
    private readonly board?: DepotStatusBoard,
  ) {
    const rng = xoroshiro128plus(seed ^ 0x5eed);
    this.rand = () => uniformFloat64(rng);
  }

  start(): void {
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.busy;
  }

  private between([lo, hi]: readonly [number, number]): number {
    return (lo + (hi - lo) * this.rand()) * 1000;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.busy = this.disrupt().finally(() => this.schedule());
    }, this.between(EVERY_SEC));
  }

  private event(kind: 'failure' | 'recovery', text: string, depot: string): void {
    this.lastAction = text;
    this.hub.publish({ v: 1, type: 'event', kind, at: Date.now(), text, depot });
  }

  private async disrupt(): Promise<void> {
    const i = Math.floor(this.rand() * this.loop.depots.length);
    const name = depotId(this.loop.depots[i]!);
    const down = this.between(DOWN_SEC);
    // Waits `ms`, or less once the monkey is stopped.
    const wait = (ms: number) =>
      new Promise<void>((resolve) => {
        const until = Date.now() + ms;
        const poll = setInterval(() => {
          if (this.stopped || Date.now() >= until) {
            clearInterval(poll);
            resolve();
          }
        }, 100);
      });
    if (this.rand() < 0.6) {
      await this.loop.kill(i);
      this.event('failure', `chaos: killed ${name} (SIGKILL)`, name);
      // Its process is gone: show it, even before an op of the job runs into it.
      this.health.set(name, 'failed', 'killed (SIGKILL)');
      this.board?.disrupted(name, 'killed');
      await wait(down);
      if (this.stopped) return;
      await this.loop.restart(i);
      this.event('recovery', `chaos: restarted ${name} (empty: the replicas it held are gone)`, name);
      this.health.set(name, 'up');
      this.board?.disrupted(name, undefined);
    } else {
      this.loop.pause(i);
      this.event('failure', `chaos: paused ${name} (SIGSTOP)`, name);
      this.health.set(name, 'slow', 'paused (SIGSTOP)');
      this.board?.disrupted(name, 'paused');
      await wait(down);
      this.loop.resume(i);
      this.event('recovery', `chaos: resumed ${name} (SIGCONT)`, name);
      this.board?.disrupted(name, undefined);
    }
  }
}
