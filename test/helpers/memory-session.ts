import { Duplex } from 'node:stream';
import { pino } from 'pino';
import { VirtualClock, parseDepotOptions, type DepotOptionsInput } from '../../depot/index.js';
import { DepotCore } from '../../depot/core/depot-core.js';
import { Connection } from '../../depot/server/connection.js';

/** An in-memory duplex: what the test pushes is what the depot reads; what it writes is collected. */
class MemorySocket extends Duplex {
  readonly out: Buffer[] = [];
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.out.push(Buffer.from(chunk));
    cb();
  }
}

/** Deterministic 43-character keys: `k0…`, `k1…`, in allocation order (read, write, manage). */
export function seededKey(i: number): string {
  return `k${i}`.padEnd(43, '_');
}

/**
 * Feeds `chunks` to one depot connection (a fresh depot each time, with seeded keys and a virtual
 * clock), letting the depot run between chunks; returns every byte it wrote.
 */
export async function runMemorySession(chunks: readonly Buffer[], input: DepotOptionsInput = {}): Promise<Buffer> {
  const options = parseDepotOptions({ port: 6714, logLevel: 'silent', ...input });
  let n = 0;
  const core = await DepotCore.open(options, new VirtualClock(), { newKey: () => seededKey(n++) });
  const log = pino({ level: 'silent' });
  const socket = new MemorySocket();
  const connection = new Connection(socket, { core, options, log, versionLines: () => ['test'] }, log);
  for (const chunk of chunks) {
    socket.push(chunk);
    await new Promise((resolve) => setImmediate(resolve));
  }
  socket.push(null);
  await connection.done;
  return Buffer.concat(socket.out);
}
