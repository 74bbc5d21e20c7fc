import { connect, type Socket } from 'node:net';

/** What came back for one raw request: a reply line, the connection closed, or nothing in time. */
export type RawOutcome = { kind: 'line'; line: string } | { kind: 'closed' } | { kind: 'silent' };

/**
 * A raw TCP connection to a depot for abuse: sends bytes as given and reads reply lines (bounded), with no
 * client-side checks in between.
 */
export class RawWire {
  private buf = '';
  private waiters: Array<() => void> = [];
  closed = false;

  private constructor(readonly socket: Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      // keep only a bounded tail: abusers never need more than a reply line
      this.buf = (this.buf + d).slice(-65_536);
      this.wake();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  static open(port: number, timeoutMs = 2_000): Promise<RawWire> {
    return new Promise((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port, noDelay: true });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error('connect timeout'));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        resolve(new RawWire(s));
      });
      s.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  send(data: string | Uint8Array): boolean {
    if (this.closed || this.socket.destroyed) return false;
    return this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /** The next reply line (without its newline), `closed`, or `silent` after `timeoutMs`. */
  async next(timeoutMs: number): Promise<RawOutcome> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const nl = this.buf.indexOf('\n');
      if (nl >= 0) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        return { kind: 'line', line };
      }
      if (this.closed) return { kind: 'closed' };
      const left = deadline - Date.now();
      if (left <= 0) return { kind: 'silent' };
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Resolves true when the depot closes the connection within `timeoutMs`. */
  async closedWithin(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) {
      this.buf = '';
      await this.next(deadline - Date.now());
    }
    return this.closed;
  }

  destroy(): void {
    this.socket.destroy();
  }
}
