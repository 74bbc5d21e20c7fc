import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { formatCapability, type Capability, type DepotAddress } from '../../../ibp/index.js';

const CHILD = fileURLToPath(new URL('./latency-probe-child.mjs', import.meta.url));

/**
 * A well-behaved client in a separate process (`latency-probe-child.mjs`): it measures sequential 4 KiB
 * LOADs of one allocation, so its latency reflects the depot and the machine, not the event loop of the
 * process that runs the abusers. Every wait is bounded.
 */
export class LatencyProbe {
  private buf = '';
  private readonly replies: Array<(lat: number[] | Error) => void> = [];
  private readonly exited: Promise<void>;

  private constructor(private readonly child: ChildProcess) {
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => {
      this.buf += d;
      for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        const { lat } = JSON.parse(line) as { lat: number[] };
        this.replies.shift()?.(lat);
      }
    });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        for (const r of this.replies.splice(0)) r(new Error(`latency probe exited (${code ?? signal}): ${err.trim()}`));
        resolve();
      }),
    );
  }

  /** Starts the probe process against `depot`, reading through `read` (its host and port are replaced by `depot`'s). */
  static start(depot: DepotAddress, read: Capability): LatencyProbe {
    const child = spawn(process.execPath, [CHILD, depot.host, String(depot.port), formatCapability(read)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    return new LatencyProbe(child);
  }

  /** Starts measuring up to `max` LOADs (or until {@link stop}); resolves with their latencies (ms) within `timeoutMs`. */
  measure(max: number, timeoutMs: number): Promise<number[]> {
    return new Promise<number[]>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.stop();
        reject(new Error(`latency probe: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.replies.push((lat) => {
        clearTimeout(timer);
        if (lat instanceof Error) reject(lat);
        else resolve(lat);
      });
      this.child.stdin!.write(`run ${max}\n`);
    });
  }

  /** Ends the current measurement early. */
  stop(): void {
    if (this.child.stdin!.writable) this.child.stdin!.write('stop\n');
  }

  /** Ends the process (its stdin closes; SIGKILL if it has not left within 3 s). */
  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.stdin!.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 3_000);
    await this.exited;
    clearTimeout(timer);
  }
}
