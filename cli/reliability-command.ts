import { Command as CliCommand } from 'commander';
import { ReliabilityStore, defaultReliabilityPath } from '../framework/index.js';

const fmt = (v: number | undefined, digits = 3): string => (v === undefined ? '-' : Number(v.toFixed(digits)).toString());

/** `anvil reliability`: the persisted per-depot and per-source history as a table, or `--json`. */
export function reliabilityCommand(): CliCommand {
  return new CliCommand('reliability')
    .description('show the coordinator reliability history (per depot and per source)')
    .option('--json', 'print the snapshot as JSON')
    .option('--file <file>', 'reliability history file (default: the user state directory)')
    .action(async (flags: { json?: boolean; file?: string }) => {
      const path = flags.file ?? defaultReliabilityPath();
      const store = await ReliabilityStore.load(path, { clock: { now: () => Date.now() } });
      const snap = store.snapshot();
      if (flags.json === true) {
        process.stdout.write(`${JSON.stringify({ path, ...snap })}\n`);
        return;
      }
      const rows = [
        ['depot', 'answers', 'failures', 'late', 'p', 'p_low', 'p50_ms', 'p95_ms'],
        ...snap.depots.map((d) => [
          d.id,
          fmt(d.answers, 1),
          fmt(d.failures, 1),
          fmt(d.late, 1),
          fmt(d.p),
          fmt(d.pLower),
          fmt(d.latencyP50Ms, 1),
          fmt(d.latencyP95Ms, 1),
        ]),
      ];
      const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
      process.stdout.write(`${path}\n`);
      for (const r of rows) process.stdout.write(`${r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ')}\n`);
      if (snap.depots.length === 0) process.stdout.write('(no depot history yet)\n');
      for (const s of snap.sources)
        process.stdout.write(`source ${s.id}: weight ${fmt(s.weight)} (${s.observations} observations)\n`);
    });
}
