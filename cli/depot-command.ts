import { readFile } from 'node:fs/promises';
import { totalmem } from 'node:os';
import { Command as CliCommand, Option } from 'commander';
import { parse as parseToml } from 'smol-toml';
import { DepotError, DepotServer, parseDepotOptions, type DepotOptions, type DepotOptionsInput } from '../depot/index.js';

interface DepotFlags {
  host?: string;
  port?: string;
  publicHost?: string;
  config?: string;
  logLevel?: string;
  statusPassword?: string;
  wrmKey?: string;
  capacity?: string;
  maxAllocation?: string;
  maxDuration?: string;
  data?: string;
  fsync?: string;
  transferAllow?: string;
}

/** Reads a TOML config file; errors name the file and the line. */
async function readConfig(path: string): Promise<DepotOptionsInput> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new DepotError('DEPOT_ERR_CONFIG', `cannot read config file ${path}: ${(e as Error).message}`);
  }
  try {
    return parseToml(text) as DepotOptionsInput;
  } catch (e) {
    throw new DepotError('DEPOT_ERR_CONFIG', `config file ${path} is not valid TOML: ${(e as Error).message}`);
  }
}

function integerFlag(value: string, flag: string): number | string {
  // Left as a string when not a plain integer so the validator reports the flag's value.
  return /^\d+$/.test(value) ? Number(value) : `${flag}=${value}`;
}

/** Merges flags over the config file: flags win; resource flags apply to the default resource. */
export async function depotOptionsFrom(flags: DepotFlags): Promise<DepotOptionsInput> {
  const input: DepotOptionsInput = flags.config === undefined ? {} : await readConfig(flags.config);
  if (flags.host !== undefined) input.host = flags.host;
  if (flags.port !== undefined) input.port = integerFlag(flags.port, '--port');
  if (flags.publicHost !== undefined) input.publicHost = flags.publicHost;
  if (flags.logLevel !== undefined) input.logLevel = flags.logLevel;
  if (flags.statusPassword !== undefined) input.statusPassword = flags.statusPassword;
  if (flags.wrmKey !== undefined) input.wrmKey = flags.wrmKey;
  if (flags.transferAllow !== undefined) {
    const transfer = (typeof input.transfer === 'object' && input.transfer !== null ? input.transfer : {}) as Record<
      string,
      unknown
    >;
    input.transfer = {
      ...transfer,
      allow: flags.transferAllow
        .split(',')
        .map((e) => e.trim())
        .filter((e) => e !== ''),
    };
  }
  const resourceFlags: Record<string, unknown> = {};
  if (flags.capacity !== undefined) resourceFlags['capacityBytes'] = flags.capacity;
  if (flags.maxAllocation !== undefined) resourceFlags['maxAllocationBytes'] = flags.maxAllocation;
  if (flags.maxDuration !== undefined) resourceFlags['maxDurationSec'] = integerFlag(flags.maxDuration, '--max-duration');
  if (flags.data !== undefined) {
    resourceFlags['kind'] = 'disk';
    resourceFlags['path'] = flags.data;
  }
  if (flags.fsync !== undefined) resourceFlags['fsync'] = flags.fsync;
  if (Object.keys(resourceFlags).length > 0) {
    const list = (input.resource ?? input.resources) as Record<string, unknown>[] | undefined;
    if (list !== undefined && list.length !== 1) {
      throw new DepotError(
        'DEPOT_ERR_CONFIG',
        'invalid config: --data/--fsync/--capacity/--max-allocation/--max-duration apply to a single resource; the config file defines several',
      );
    }
    const first = list?.[0] ?? {};
    delete input.resources;
    input.resource = [{ ...first, ...resourceFlags }];
  }
  return input;
}

/**
 * Options that are valid but probably not what the user meant, as one sentence each: the depot
 * starts anyway and logs them as warnings. (Options without any effect are refused by the parser.)
 */
export function depotStartupWarnings(options: DepotOptions, machineMemoryBytes = totalmem()): string[] {
  const warnings: string[] = [];
  if (options.nfu.workers === 0) {
    warnings.push(
      'nfu.workers = 0 runs NFU ops inline on the event loop: no worker pool, no nfu.timeoutMs and no queue bound, ' +
        'and a long op stalls every connection (meant for tests; use 1 or more)',
    );
  }
  const memory = options.resources.filter((r) => r.kind === 'memory').reduce((sum, r) => sum + r.capacityBytes, 0);
  if (memory > machineMemoryBytes) {
    warnings.push(
      `memory resources total ${memory} bytes of capacity, more than this machine's RAM (${machineMemoryBytes} bytes): ` +
        'the depot accepts allocations it may not be able to hold (use --data DIR for a disk resource)',
    );
  }
  return warnings;
}

/** `anvil depot`: runs a depot in the foreground until SIGINT/SIGTERM. */
export function depotCommand(): CliCommand {
  return new CliCommand('depot')
    .description('run an IBP depot in the foreground (a memory resource, or a disk resource with --data)')
    .option('--host <host>', 'address to listen on (default 127.0.0.1)')
    .option('--port <port>', 'TCP port to listen on, 0 for any free port (default 6714)')
    .option('--public-host <host>', 'host written into capabilities (default: --host)')
    .option('-c, --config <file>', 'TOML config file (see README); flags override it')
    .addOption(
      new Option('--log-level <level>', 'log level of the JSON logs on stderr (default info)').choices([
        'fatal',
        'error',
        'warn',
        'info',
        'debug',
        'trace',
        'silent',
      ]),
    )
    .option('--status-password <password>', 'password for STATUS inquiries (default "ibp")')
    .addOption(
      new Option('--wrm-key <policy>', 'ignore or check the WRM-key token of requests (default ignore)').choices([
        'ignore',
        'check',
      ]),
    )
    .option('--data <dir>', 'serve a disk resource from this data directory (kept across restarts)')
    .addOption(
      new Option('--fsync <policy>', 'with --data: safe (fsync before ack, default) or fast (unsafe on power loss)').choices([
        'safe',
        'fast',
      ]),
    )
    .option(
      '--transfer-allow <list>',
      'remote depots SEND/PUSH/PULL may reach: *, IPs, CIDRs, host:port, comma-separated (default *)',
    )
    .option('--capacity <bytes>', 'capacity of the resource, e.g. 1GiB (default 1GiB); a memory one should fit in RAM')
    .option(
      '--max-allocation <bytes>',
      'largest single allocation, e.g. 256MiB (default: the capacity; in memory at most 4GiB, one Buffer)',
    )
    .option('--max-duration <seconds>', 'longest lease in seconds (default 2592000 = 30 days)')
    .action(async (flags: DepotFlags) => {
      const options = parseDepotOptions(await depotOptionsFrom(flags));
      const depot = await DepotServer.start(options);
      for (const warning of depotStartupWarnings(options)) depot.log.warn(warning);
      process.stdout.write(`listening on ${depot.url}\n`);
      await new Promise<void>((resolve) => {
        let stopping = false;
        const stop = (signal: NodeJS.Signals) => {
          if (stopping) {
            depot.log.warn({ signal }, 'second signal: exiting now');
            process.exit(1);
          }
          stopping = true;
          depot.log.info({ signal }, 'shutting down');
          void depot.close().then(resolve);
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
    });
}
