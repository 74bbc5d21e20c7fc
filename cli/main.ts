import { Command as CliCommand, CommanderError, type Option } from 'commander';
import { depotCommand } from './depot-command.js';
import { lorsCommands } from './lors-commands.js';
import { nfuCommand } from './nfu-command.js';
import { reliabilityCommand } from './reliability-command.js';
import { runCommand } from './run-command.js';
import { addAlgorithmCommands } from './algorithms-command.js';
import { ingestCommand } from './ingest-command.js';
import { simulateCommand } from './simulate-command.js';
import { demoCommand } from './demo-command.js';
import { serveCommand } from './serve-command.js';

/** Longest error message printed; the rest is cut (a message may quote a whole bad input). */
const MAX_MESSAGE_CHARS = 2000;

/**
 * A message safe to print on a terminal: control characters and undecodable bytes are shown as
 * escapes (`\x1b`, `\ufffd`) instead of being echoed, and a long message is cut.
 */
export function printable(message: string): string {
  // eslint-disable-next-line no-control-regex
  let out = message.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\ufffd]/g, (c) =>
    c === '\ufffd' ? '\\ufffd' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
  out = out.replace(/\n(?=.)/g, '\n  '); // continuation lines indented under "anvil: "
  return out.length > MAX_MESSAGE_CHARS
    ? `${out.slice(0, MAX_MESSAGE_CHARS)}… (${out.length - MAX_MESSAGE_CHARS} more characters)`
    : out;
}

/** `anvil: CODE: message`, the code once even when the message already starts with it (Node's system errors do). */
export function formatError(e: unknown): string {
  const code = (e as { code?: unknown }).code;
  let message = e instanceof Error ? e.message : String(e);
  if (typeof code === 'string' && message.startsWith(`${code}: `)) message = message.slice(code.length + 2);
  return `anvil: ${typeof code === 'string' ? `${code}: ` : ''}${printable(message)}\n`;
}

/**
 * Every command reports an unknown option before a missing required one: commander checks
 * required options first, so they are checked here instead, just before the action runs.
 */
function requiredAfterUnknown(program: CliCommand): void {
  const required = new Map<CliCommand, Option[]>();
  const visit = (cmd: CliCommand) => {
    const options = cmd.options.filter((o) => o.mandatory);
    for (const o of options) {
      o.mandatory = false;
      o.description = `${o.description} (required)`;
    }
    if (options.length > 0) required.set(cmd, options);
    cmd.commands.forEach(visit);
  };
  visit(program);
  program.hook('preAction', (_program, action) => {
    for (const o of required.get(action) ?? []) {
      if (action.getOptionValue(o.attributeName()) === undefined) {
        action.error(`error: required option '${o.flags}' not specified`, {
          code: 'commander.missingMandatoryOptionValue',
        });
      }
    }
  });
}

/** The `anvil` command tree: every subcommand, required options checked after unknown ones. */
export function anvilProgram(): CliCommand {
  const program = new CliCommand('anvil')
    .description('Anvil: IBP depots and in-locus randomized linear algebra')
    .version('0.1.0')
    .exitOverride()
    .enablePositionalOptions() // `anvil run pca --json`: the subcommand's --json, not run's
    .showHelpAfterError();
  program.addCommand(demoCommand());
  program.addCommand(serveCommand());
  program.addCommand(depotCommand());
  for (const c of lorsCommands()) program.addCommand(c);
  program.addCommand(nfuCommand());
  program.addCommand(addAlgorithmCommands(runCommand()));
  program.addCommand(reliabilityCommand());
  program.addCommand(ingestCommand());
  program.addCommand(simulateCommand());
  requiredAfterUnknown(program);
  // A usage error prints the failing command's own usage after the `error: …` line (commander copies the
  // setting only to subcommands made with .command(), not to those added with .addCommand()).
  const helpAfterError = (cmd: CliCommand): void => {
    cmd.showHelpAfterError();
    cmd.commands.forEach(helpAfterError);
  };
  helpAfterError(program);
  return program;
}

/**
 * Entry point of the `anvil` command. Returns the process exit code; errors with a stable
 * `code` (configuration, protocol) are printed as one line naming that code.
 */
export async function main(argv: readonly string[]): Promise<number> {
  const program = anvilProgram();
  try {
    await program.parseAsync([...argv]);
    // Commands that finished with partial failures (refresh, augment, warm) set an exit code.
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    process.stderr.write(formatError(e));
    return 2;
  }
}
