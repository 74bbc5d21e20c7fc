import { existsSync } from 'node:fs';
import { Command as CliCommand } from 'commander';
import {
  FrameworkError,
  FrameworkErrorCode,
  ReliabilityStore,
  defaultReliabilityPath,
  reliabilityReport,
} from '../framework/index.js';

const fmt = (v: number | undefined, digits = 3): string => (v === undefined ? '-' : Number(v.toFixed(digits)).toString());

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => `${r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ')}\n`).join('');
}

/**
 * `anvil reliability`: the persisted history as two tables — depots (decayed answers, failures, late
 * answers, answer probability, latency) and sources (their blocks' answers and failures, answer probability,
 * data-quality weight) — or `--json` (`{ path, at, depots, sources }`). A `--file` that does not exist is an
 * error (a mistyped name would otherwise look like an empty history); the default file may not exist yet.
 */
export function reliabilityCommand(): CliCommand {
  return new CliCommand('reliability')
    .description('show the coordinator reliability history (per depot and per source)')
    .option('--json', 'print the history as JSON: { path, at, depots, sources }')
    .option('--file <file>', 'reliability history file, which must exist (default: the user state directory)')
    .action(async (flags: { json?: boolean; file?: string }) => {
      if (flags.file !== undefined && !existsSync(flags.file))
        throw new FrameworkError(
          FrameworkErrorCode.INVALID_ARGUMENT,
          `--file ${flags.file}: no such file (leave out --file for the default history, which starts empty)`,
        );
      const path = flags.file ?? defaultReliabilityPath();
      const store = await ReliabilityStore.load(path, { clock: { now: () => Date.now() } });
      const report = reliabilityReport(store);
      if (flags.json === true) {
        process.stdout.write(`${JSON.stringify({ path, ...report })}\n`);
        return;
      }
      process.stdout.write(`${path}\n`);
      if (report.depots.length === 0) process.stdout.write('(no depot history yet)\n');
      else {
        process.stdout.write(
          table([
            ['depot', 'answers', 'failures', 'late', 'p', 'p_low', 'p50_ms', 'p95_ms'],
            ...report.depots.map((d) => [
              d.id,
              fmt(d.answers, 1),
              fmt(d.failures, 1),
              fmt(d.late, 1),
              fmt(d.p),
              fmt(d.pLower),
              fmt(d.latencyP50Ms, 1),
              fmt(d.latencyP95Ms, 1),
            ]),
          ]),
        );
      }
      if (report.sources.length > 0) {
        process.stdout.write(
          `\n${table([
            ['source', 'answers', 'failures', 'p', 'quality_weight', 'z', 'observations'],
            ...report.sources.map((s) => [
              s.id,
              fmt(s.answers, 1),
              fmt(s.failures, 1),
              fmt(s.p),
              fmt(s.weight),
              fmt(s.z, 2),
              String(s.observations),
            ]),
          ])}`,
        );
      }
    });
}
