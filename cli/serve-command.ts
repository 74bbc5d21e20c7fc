import { basename } from 'node:path';
import { Command as CliCommand, InvalidArgumentError, Option } from 'commander';
import { Coordinator, LiveServer, publishJob, spectrumSeries, vectorSeries, type Summarizer } from '../framework/index.js';
import { readJobFile } from './run-command.js';

function integer(name: string, min: number, max: number): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!/^\d+$/.test(v.trim()) || n < min || n > max) {
      throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max} (got ${JSON.stringify(v)})`);
    }
    return n;
  };
}

const collect = (v: string, all: string[]): string[] => [...all, v];

/** What the dashboard plots for a job kind: spectra for matrices, the first coordinates for vectors. */
function summarizerFor(kind: unknown, cols: number): Summarizer<ArrayLike<number>> {
  if (kind === 'gram' || kind === 'covariance') return spectrumSeries(cols, Math.min(3, cols));
  if (typeof kind === 'string' && kind.startsWith('column-')) return vectorSeries(kind.slice('column-'.length));
  return vectorSeries('value');
}

/**
 * `anvil serve`: the live server (dashboard + WebSocket stream) on its own, optionally running jobs from
 * JOB.json files (the `anvil run` format) and streaming their estimates. It keeps serving after the jobs end,
 * until Ctrl-C.
 */
export function serveCommand(): CliCommand {
  return new CliCommand('serve')
    .description(
      'serve the live dashboard and its WebSocket stream (/live); run jobs given with --job and stream their estimates',
    )
    .addOption(new Option('--port <port>', 'TCP port (0 picks a free one)').default(8714).argParser(integer('--port', 0, 65535)))
    .addOption(new Option('--host <host>', 'address to listen on').default('127.0.0.1'))
    .addOption(
      new Option('--job <file>', 'a job file to run and stream (repeatable; format of anvil run)').default([]).argParser(collect),
    )
    .addOption(
      new Option(
        '--origin <url>',
        'a browser origin allowed to open the stream besides the server\'s own (repeatable; "*" for any)',
      )
        .default([])
        .argParser(collect),
    )
    .addOption(
      new Option('--max-clients <n>', 'most WebSocket clients at once')
        .default(64)
        .argParser(integer('--max-clients', 1, 100_000)),
    )
    .addOption(new Option('--reliability <file>', 'reliability history file (default: the user state directory)'))
    .action(
      async (flags: {
        port: number;
        host: string;
        job: string[];
        origin: string[];
        maxClients: number;
        reliability?: string;
      }) => {
        // Jobs are read before anything starts, so a bad file changes nothing.
        const jobs = [];
        for (const file of flags.job) {
          const { o, dataset, job } = await readJobFile(file);
          jobs.push({ file, kind: (o['job'] as { kind?: unknown } | undefined)?.kind, dataset, job });
        }
        const server = await new LiveServer({
          host: flags.host,
          port: flags.port,
          maxClients: flags.maxClients,
          allowedOrigins: flags.origin.includes('*') ? '*' : flags.origin,
        }).listen();
        process.stdout.write(`dashboard: ${server.url}\nstream: ws://${flags.host}:${server.port}/live\n`);
        const coordinator =
          jobs.length === 0
            ? undefined
            : await Coordinator.open(flags.reliability === undefined ? {} : { reliabilityPath: flags.reliability });
        const subs = jobs.map(({ file, kind, dataset, job }) =>
          publishJob(
            server.hub,
            {
              jobId: basename(file)
                .replace(/[^A-Za-z0-9._:-]/g, '_')
                .slice(0, 128),
              name: `${job.name} of ${dataset.name}`,
              dataset: { rows: dataset.rows, cols: dataset.cols, blocks: dataset.blocks.length },
            },
            coordinator!.run(job),
            summarizerFor(kind, dataset.cols),
          ).subscribe({
            error: (e: unknown) => process.stderr.write(`anvil serve: job ${file}: ${(e as Error).message}\n`),
            complete: () => process.stdout.write(`job ${file} done\n`),
          }),
        );
        await new Promise<void>((resolve) => {
          const stop = () => resolve();
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
        });
        for (const s of subs) s.unsubscribe();
        await coordinator?.close();
        await server.close();
        process.stdout.write('stopped\n');
      },
    );
}
