import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { RawSession, keyOf, rawAllocate } from '../helpers/depot-fixture.js';
import { DepotProcess } from '../helpers/depot-process.js';
import { tempDir } from '../helpers/temp-dir.js';

/** Upper bound on the wait for the process to exit (a bound, not a timing assertion). */
const EXIT_BOUND_MS = 15_000;

async function exitWithin(proc: DepotProcess, ms: number): Promise<number | null | 'still running'> {
  let timer: NodeJS.Timeout | undefined;
  const r = await Promise.race([
    proc.exit,
    new Promise<'still running'>((resolve) => (timer = setTimeout(() => resolve('still running'), ms))),
  ]);
  clearTimeout(timer);
  return r;
}

/** Resolves when the depot ends or resets the connection. */
function endedByDepot(s: Socket): Promise<void> {
  return new Promise((resolve) => {
    if (s.readableEnded || s.destroyed) resolve();
    for (const event of ['end', 'close', 'error']) s.once(event, () => resolve());
  });
}

describe('SIGTERM / SIGINT stop a depot whatever its clients do', () => {
  let proc: DepotProcess | undefined;
  const sockets: Socket[] = [];
  const dirs: Array<() => void> = [];
  afterEach(() => {
    for (const s of sockets.splice(0)) s.destroy();
    if (proc !== undefined && proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGKILL');
    proc = undefined;
    for (const cleanup of dirs.splice(0)) cleanup();
  });

  async function startWith(limits: string[]): Promise<{ port: number }> {
    const dir = tempDir('anvil-shutdown-');
    dirs.push(dir.cleanup);
    const file = join(dir.path, 'depot.toml');
    writeFileSync(file, ['[limits]', ...limits].join('\n'));
    const started = await DepotProcess.start(['--config', file, '--port', '0', '--log-level', 'info']);
    proc = started.proc;
    return { port: started.port };
  }

  /**
   * A client that sent one command, read its reply, and keeps the connection open: it never
   * closes its side, not even after the depot's FIN (allowHalfOpen), as a C client that does not read.
   */
  async function idleClient(port: number): Promise<Socket> {
    const s = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    s.on('error', () => undefined);
    sockets.push(s);
    s.write('1 4 3 10\n');
    const reply = await new Promise<string>((resolve) => s.once('data', (d: Buffer) => resolve(d.toString('latin1'))));
    expect(reply).toBe('1 1 \n');
    return s;
  }

  it.each(['SIGTERM', 'SIGINT'] as const)(
    '%s with an idle client holding its connection: it is closed at once and the process exits',
    async (signal) => {
      const { port } = await startWith(['shutdownGraceMs = 60000']);
      const idle = await idleClient(port);
      const idleClosed = endedByDepot(idle);
      proc!.child.kill(signal);
      // The grace period (60 s) is far beyond the bound: only closing idle connections at once exits in time.
      expect(await exitWithin(proc!, EXIT_BOUND_MS)).toBe(0);
      await idleClosed;
      expect(proc!.stderr).toContain('depot closed');
    },
  );

  it('half-open and stalled clients: in-flight commands get shutdownGraceMs, then every socket is destroyed', async () => {
    const { port } = await startWith(['shutdownGraceMs = 500', 'dataProgressTimeoutMs = 600000', 'idleTimeoutMs = 600000']);
    // 1. idle, never reads the FIN, never closes
    await idleClient(port);
    // 2. half-open: the client ended its side but never reads what the depot writes
    const half = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    half.on('error', () => undefined);
    sockets.push(half);
    await new Promise((resolve) => half.once('connect', resolve));
    half.pause();
    // 3. a LOAD of 8 MiB whose reader never reads (the depot's writes cannot drain)
    const filler = await RawSession.open(port);
    sockets.push(filler.socket);
    const [r, w] = await rawAllocate(filler, 9 << 20);
    filler.send(`1 2 ${keyOf(w)} ${8 << 20} 10\n`);
    expect(await filler.line()).toBe('1 \n');
    filler.send(Buffer.alloc(8 << 20, 1));
    expect(await filler.line(10_000)).toBe(`1 ${8 << 20} \n`);
    // 4. a STORE whose body stalls mid-way (in flight)
    const busy = await RawSession.open(port);
    sockets.push(busy.socket);
    busy.send(`1 2 ${keyOf(w)} 100 10\nabc`);
    expect(await busy.line()).toBe('1 \n');
    const stuck = connect({ host: '127.0.0.1', port });
    stuck.on('error', () => undefined);
    sockets.push(stuck);
    stuck.pause();
    stuck.write(`1 8 ${keyOf(r)} 0 ${8 << 20} 10\n`);
    half.end('1 4 3 10\n');

    proc!.child.kill('SIGTERM');
    expect(await exitWithin(proc!, EXIT_BOUND_MS)).toBe(0);
    expect(proc!.stderr).toContain('shutdown grace period over');
  });
});
