import { spawn, type ChildProcess } from 'node:child_process';

const BIN = new URL('../../bin/anvil.js', import.meta.url).pathname;

/** An `anvil depot` child process. */
export class DepotProcess {
  private out = '';
  private err = '';
  readonly exit: Promise<number | null>;

  private constructor(readonly child: ChildProcess) {
    child.stdout!.on('data', (d: Buffer) => (this.out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (this.err += d.toString()));
    this.exit = new Promise((resolve) => child.on('exit', (code, signal) => resolve(signal === null ? code : null)));
  }

  /** Spawns `anvil depot args`, with `env` added to this process's environment. */
  static spawn(args: readonly string[], env: Record<string, string> = {}): DepotProcess {
    return new DepotProcess(
      spawn(process.execPath, [BIN, 'depot', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } }),
    );
  }

  /** Starts a depot (see {@link spawn}) and waits until it listens. */
  static async start(
    args: readonly string[],
    timeoutMs = 15_000,
    env: Record<string, string> = {},
  ): Promise<{ proc: DepotProcess; host: string; port: number }> {
    const proc = DepotProcess.spawn(args, env);
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const m = /^listening on ibp:\/\/([^:]+):(\d+)$/m.exec(proc.out);
      if (m) return { proc, host: m[1]!, port: Number(m[2]) };
      if (proc.child.exitCode !== null) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    proc.child.kill('SIGKILL');
    throw new Error(`depot did not start: ${proc.err}`);
  }

  get stdout(): string {
    return this.out;
  }
  get stderr(): string {
    return this.err;
  }

  async kill(signal: NodeJS.Signals): Promise<number | null> {
    this.child.kill(signal);
    return this.exit;
  }
}
