import type { Estimate } from '../../framework/index.js';
import { formatDepotCounts, type DepotCounts } from './depot-status.js';

export interface DemoProgress {
  rows: number;
  /** Depots by state: `up` counts only those that answered recently and are not paused, slow or down. */
  depots: DepotCounts;
  estimate: Estimate<Float64Array> | undefined;
  chaos: string | undefined;
}

const fmt = (n: number, digits = 3): string => (Number.isFinite(n) ? Number(n.toPrecision(digits)).toString() : '∞');

/**
 * The demo's one-line summary in the terminal: rewritten in place on a TTY, a plain line every few
 * seconds otherwise (logs, CI).
 */
export class ProgressLine {
  private lastPlain = 0;
  private wrote = false;

  constructor(private readonly out: NodeJS.WritableStream & { isTTY?: boolean; columns?: number }) {}

  update(p: DemoProgress): void {
    const e = p.estimate;
    const parts = [
      `${p.rows.toLocaleString('en-US')} rows`,
      formatDepotCounts(p.depots),
      e === undefined
        ? 'waiting for the first estimate'
        : `ε ${fmt(e.epsilon)} (δ ${e.delta}) · coverage ${(e.coverage * 100).toFixed(1)}% · blocks ${e.blocksUsed} used / ${e.blocksMissing} missing`,
    ];
    if (p.chaos !== undefined) parts.push(p.chaos);
    const line = parts.join(' · ');
    if (this.out.isTTY === true) {
      const width = Math.max(20, (this.out.columns ?? 120) - 1);
      this.out.write(`\r\x1b[2K${line.slice(0, width)}`);
      this.wrote = true;
    } else if (Date.now() - this.lastPlain >= 5000) {
      this.lastPlain = Date.now();
      this.out.write(`${line}\n`);
    }
  }

  done(): void {
    if (this.wrote) this.out.write('\n');
    this.wrote = false;
  }
}
