import { Command as CliCommand, InvalidArgumentError, Option } from 'commander';
import { runDemo } from './demo/run-demo.js';

function integer(name: string, min: number, max: number): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max} (got ${JSON.stringify(v)})`);
    }
    return n;
  };
}

/** `90`, `90s`, `2m`, `1h`, or `0` (until stopped) → seconds. */
export function parseDuration(v: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(s|m|h)?$/.exec(v.trim());
  if (m === null)
    throw new InvalidArgumentError(`duration must look like 90s, 2m or 1h, or 0 to run until stopped (got ${JSON.stringify(v)})`);
  const n = Number(m[1]) * (m[2] === 'h' ? 3600 : m[2] === 'm' ? 60 : 1);
  if (n > 7 * 24 * 3600) throw new InvalidArgumentError('duration must be at most a week');
  return n;
}

/** `anvil demo`: depots, a sensor field, a streaming PCA job and the live dashboard, on embedded defaults. */
export function demoCommand(): CliCommand {
  return new CliCommand('demo')
    .description(
      'start loopback depots, stream a simulated sensor field into them, run a streaming PCA where the data sits, ' +
        'and show it live in the browser (depots are killed and paused now and then: failures become sampling events)',
    )
    .addOption(
      new Option('--port <port>', 'port of the dashboard and its WebSocket (0 picks a free one)')
        .default(8714)
        .argParser(integer('--port', 0, 65535)),
    )
    .addOption(new Option('--host <host>', 'address the dashboard listens on').default('127.0.0.1'))
    .addOption(new Option('--depots <n>', 'loopback depots to start').default(4).argParser(integer('--depots', 1, 32)))
    .addOption(
      new Option('--duration <time>', 'how long to run, e.g. 90s or 5m; 0 runs until Ctrl-C')
        .default(0, '0')
        .argParser(parseDuration),
    )
    .addOption(new Option('--no-chaos', 'never kill or pause depots'))
    .addOption(
      new Option('--seed <n>', 'seed of the sensor field and of the chaos')
        .default(1)
        .argParser(integer('--seed', 0, 2 ** 31 - 1)),
    )
    .addOption(
      new Option('--copies <n>', "replicas of every block (with 1, a disrupted depot's blocks become missing samples)")
        .default(1)
        .argParser(integer('--copies', 1, 4)),
    )
    .addOption(new Option('--rate <rows>', 'rows per second per sensor').default(400).argParser(integer('--rate', 1, 100_000)))
    .action(
      async (opts: {
        port: number;
        host: string;
        depots: number;
        duration: number;
        chaos: boolean;
        seed: number;
        rate: number;
        copies: number;
      }) => {
        const stop = new AbortController();
        let signals = 0;
        const onSignal = () => {
          signals++;
          if (signals > 1) process.exit(130);
          process.stdout.write('\nstopping…\n');
          stop.abort();
        };
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
        try {
          await runDemo({
            port: opts.port,
            host: opts.host,
            depots: opts.depots,
            durationSec: opts.duration,
            chaos: opts.chaos,
            seed: opts.seed,
            rate: opts.rate,
            copies: opts.copies,
            signal: stop.signal,
          });
          process.stdout.write('demo stopped\n');
        } finally {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
        }
      },
    );
}
