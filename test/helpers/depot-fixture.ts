import { connect, type Socket } from 'node:net';
import { pino } from 'pino';
import { StreamReader, parseCapability, capTokens } from '../../ibp/index.js';
import { DepotServer, parseDepotOptions, type Clock, type DepotOptionsInput, type DepotServerDeps } from '../../depot/index.js';
import { IbpClient, type AllocationCaps } from '../../framework/index.js';

export interface TestDepot {
  readonly depot: DepotServer;
  readonly host: string;
  readonly port: number;
  readonly client: IbpClient;
  close(): Promise<void>;
}

/** Starts an in-process depot on 127.0.0.1 with a free port and a silent logger. */
export async function startDepot(
  input: DepotOptionsInput = {},
  clock?: Clock,
  deps: Partial<DepotServerDeps> = {},
): Promise<TestDepot> {
  const options = parseDepotOptions({ host: '127.0.0.1', port: 0, logLevel: 'silent', ...input });
  const depot = await DepotServer.start(options, { logger: pino({ level: 'silent' }), ...(clock ? { clock } : {}), ...deps });
  const client = new IbpClient({ timeoutMs: 10_000 });
  const { port } = depot.address;
  return {
    depot,
    host: '127.0.0.1',
    port,
    client,
    async close() {
      client.close();
      await depot.close();
    },
  };
}

/** A raw TCP session to a depot for byte-exact tests. */
export class RawSession {
  private readonly reader: StreamReader;
  readonly closed: Promise<void>;

  private constructor(readonly socket: Socket) {
    this.reader = new StreamReader(socket, { highWaterBytes: 64 * 1024 * 1024 });
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => undefined);
  }

  static open(port: number, host = '127.0.0.1'): Promise<RawSession> {
    return new Promise((resolve, reject) => {
      const s = connect({ host, port, noDelay: true });
      s.once('connect', () => resolve(new RawSession(s)));
      s.once('error', reject);
    });
  }

  send(data: string | Uint8Array): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /** The next reply line with its newline, byte-exact. */
  async line(timeoutMs = 5_000): Promise<string> {
    return `${await this.reader.readLine(1 << 20, timeoutMs, timeoutMs)}\n`;
  }

  async bytes(n: number, timeoutMs = 5_000): Promise<Buffer> {
    const parts: Buffer[] = [];
    await this.reader.readBytes(n, timeoutMs, (c) => void parts.push(Buffer.from(c)));
    return Buffer.concat(parts);
  }

  /** Resolves true if the depot closes the connection within `timeoutMs`. */
  async closedWithin(timeoutMs = 2_000): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([
      this.closed.then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
    ]);
    clearTimeout(timer);
    return r;
  }

  end(): void {
    this.socket.destroy();
  }
}

/** `RID#KEY WRMKEY` of a cap string, as sent on the wire. */
export function keyOf(cap: string | { toString(): string }): string {
  const parsed = parseCapability(String(cap));
  if (parsed === undefined) throw new Error(`not a cap: ${String(cap)}`);
  return capTokens(parsed).join(' ');
}

/** Allocates over a raw session and returns the three cap strings. */
export async function rawAllocate(s: RawSession, size: number, duration = 3600, rid = '1'): Promise<[string, string, string]> {
  s.send(`1 1 ${rid} 2 1 ${duration} ${size} 10\n`);
  const line = await s.line();
  const t = line.trim().split(' ');
  if (t[0] !== '1') throw new Error(`allocate failed: ${line}`);
  return [t[1]!, t[2]!, t[3]!];
}

export type { AllocationCaps };
