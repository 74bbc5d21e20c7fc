import { Command as CliCommand, CommanderError } from 'commander';
import { depotCommand } from './depot-command.js';
import { lorsCommands } from './lors-commands.js';
import { ingestCommand } from './ingest-command.js';
import { simulateCommand } from './simulate-command.js';

/**
 * Entry point of the `anvil` command. Returns the process exit code; errors with a stable
 * `code` (configuration, protocol) are printed as one line naming that code.
 */
export async function main(argv: readonly string[]): Promise<number> {
  const program = new CliCommand('anvil')
    .description('Anvil: IBP depots and in-locus randomized linear algebra')
    .version('0.1.0')
    .exitOverride()
    .showHelpAfterError();
  program.addCommand(depotCommand());
  for (const c of lorsCommands()) program.addCommand(c);
  program.addCommand(ingestCommand());
  program.addCommand(simulateCommand());
  try {
    await program.parseAsync([...argv]);
    // Commands that finished with partial failures (refresh, augment, warm) set an exit code.
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    const code = (e as { code?: unknown }).code;
    process.stderr.write(`anvil: ${typeof code === 'string' ? `${code}: ` : ''}${(e as Error).message}\n`);
    return 2;
  }
}
