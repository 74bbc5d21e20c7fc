import { describe, expect, it } from 'vitest';
import {
  DEFAULT_MAX_COMMAND_LINE_BYTES,
  DepotError,
  parseByteSize,
  parseDepotOptions,
  type DepotOptionsInput,
} from '../../depot/index.js';

describe('parseDepotOptions', () => {
  it('defaults: loopback, port 6714, one 1 GiB memory resource RID 1, 64 KiB lines, frozen', () => {
    const o = parseDepotOptions();
    expect(o).toMatchObject({ host: '127.0.0.1', port: 6714, publicHost: '127.0.0.1', statusPassword: 'ibp', wrmKey: 'ignore' });
    expect(o.resources).toEqual([
      {
        rid: '1',
        kind: 'memory',
        capacityBytes: 1024 ** 3,
        maxAllocationBytes: 1024 ** 3,
        maxDurationSec: 2_592_000,
        trashGraceSec: 0,
        path: undefined,
        fsync: 'safe',
        startupCheck: 'full',
      },
    ]);
    expect(o.limits.maxCommandLineBytes).toBe(DEFAULT_MAX_COMMAND_LINE_BYTES);
    expect(Object.isFrozen(o)).toBe(true);
    expect(Object.isFrozen(o.limits)).toBe(true);
    expect(Object.isFrozen(o.resources[0])).toBe(true);
  });

  it('accepts sizes with units and several resources', () => {
    const o = parseDepotOptions({
      resource: [
        { rid: '1', capacityBytes: '1.5GiB', maxAllocationBytes: '64MiB' },
        { rid: '9', capacityBytes: '500kB' },
      ],
      limits: { maxCommandLineBytes: '1KiB', idleTimeoutMs: 1000 },
    });
    expect(o.resources.map((r) => [r.rid, r.capacityBytes, r.maxAllocationBytes])).toEqual([
      ['1', 1.5 * 1024 ** 3, 64 * 1024 ** 2],
      ['9', 500_000, 500_000],
    ]);
    expect(o.limits.maxCommandLineBytes).toBe(1024);
    expect(o.limits.idleTimeoutMs).toBe(1000);
  });

  const invalid: Array<[string, DepotOptionsInput, string]> = [
    ['unknown key', { colour: 'red' } as DepotOptionsInput, 'invalid config: unknown option `colour`'],
    ['renamed key', { password: 'x' } as DepotOptionsInput, 'invalid config: `password` is not an option; use `statusPassword`'],
    ['port range', { port: 70000 }, 'invalid config: `port` must be an integer from 0 to 65535 (got 70000)'],
    ['port type', { port: '80' }, 'invalid config: `port` must be an integer from 0 to 65535 (got "80")'],
    ['wrmKey', { wrmKey: 'maybe' }, 'invalid config: `wrmKey` must be "ignore" or "check" (got "maybe")'],
    [
      'logLevel',
      { logLevel: 'loud' },
      'invalid config: `logLevel` must be one of fatal, error, warn, info, debug, trace, silent (got "loud")',
    ],
    [
      'password with space',
      { statusPassword: 'a b' },
      'invalid config: `statusPassword` must be a non-empty string without spaces (got "a b")',
    ],
    ['resources empty', { resource: [] }, 'invalid config: `resource` must be a non-empty list of tables ([[resource]] in TOML)'],
    [
      'rid 0',
      { resource: [{ rid: '0' }] },
      'invalid config: `resource[0].rid` must be a decimal id from 1 to 99999999 (got "0")',
    ],
    ['duplicate rid', { resource: [{ rid: '2' }, { rid: '2' }] }, 'invalid config: resource id 2 is given twice'],
    ['kind', { resource: [{ kind: 'tape' }] }, 'invalid config: `resource[0].kind` must be "memory" or "disk" (got "tape")'],
    [
      'disk without path',
      { resource: [{ kind: 'disk' }] },
      'invalid config: `resource[0].path` (the data directory) is required for a disk resource',
    ],
    [
      'memory with path',
      { resource: [{ kind: 'memory', path: '/x' }] },
      'invalid config: `resource[0].path` applies to disk resources only; this one is "memory"',
    ],
    [
      'fsync',
      { resource: [{ path: '/x', fsync: 'never' }] },
      'invalid config: `resource[0].fsync` must be "safe" or "fast" (got "never")',
    ],
    [
      'startupCheck',
      { resource: [{ path: '/x', startupCheck: 'some' }] },
      'invalid config: `resource[0].startupCheck` must be "full" or "size" (got "some")',
    ],
    [
      'shared path',
      {
        resource: [
          { rid: '1', path: '/x' },
          { rid: '2', path: '/x' },
        ],
      },
      'invalid config: data directory /x is given to two resources',
    ],
    [
      'transfer allow entry',
      { transfer: { allow: ['10.0.0.0/40'] } },
      'invalid config: `transfer.allow` entries must be "*", an IP, a CIDR like "10.0.0.0/8", or "host:port" (got "10.0.0.0/40")',
    ],
    ['transfer allow type', { transfer: { allow: '*' } }, 'invalid config: `transfer.allow` must be a list of strings'],
    ['transfer unknown', { transfer: { retries: 3 } }, 'invalid config: unknown option `transfer.retries`'],
    [
      'nfu enable',
      { nfu: { enable: 'all' } },
      'invalid config: `nfu.enable` must be a list of opcodes or kernel names ("*" = all)',
    ],
    ['nfu workers', { nfu: { workers: 100 } }, 'invalid config: `nfu.workers` must be an integer from 0 to 64 (got 100)'],
    ['nfu native', { nfu: { native: 'yes' } }, 'invalid config: `nfu.native` must be true or false'],
    [
      'nfu queue timeout',
      { nfu: { queueTimeoutMs: 0 } },
      'invalid config: `nfu.queueTimeoutMs` must be an integer from 1 to 86400000 (got 0)',
    ],
    [
      'nfu admin secret',
      { nfu: { admin: { secret: 'short' } } },
      'invalid config: `nfu.admin.secret` must be a string of at least 16 characters without spaces',
    ],
    ['nfu unknown', { nfu: { threads: 2 } }, 'invalid config: unknown option `nfu.threads`'],
    [
      'trash grace',
      { resource: [{ trashGraceSec: -1 }] },
      'invalid config: `resource[0].trashGraceSec` must be an integer from 0 to 31536000 (got -1)',
    ],
    [
      'bad size',
      { resource: [{ capacityBytes: '12 parsecs' }] },
      'invalid config: `resource[0].capacityBytes` must be a byte size such as 1048576 or "64MiB" (got "12 parsecs")',
    ],
    [
      'negative size',
      { resource: [{ capacityBytes: -1 }] },
      'invalid config: `resource[0].capacityBytes` must be a non-negative integer number of bytes (got -1)',
    ],
    [
      'max alloc > capacity',
      { resource: [{ capacityBytes: 10, maxAllocationBytes: 11 }] },
      'invalid config: `resource[0].maxAllocationBytes` must be from 1 to capacityBytes (10) (got 11)',
    ],
    [
      'duration',
      { resource: [{ maxDurationSec: 0 }] },
      'invalid config: `resource[0].maxDurationSec` must be an integer from 1 to 3153600000 (got 0)',
    ],
    ['limit unknown', { limits: { maxFrames: 1 } }, 'invalid config: unknown option `limits.maxFrames`'],
    [
      'limit range',
      { limits: { maxConnections: 0 } },
      'invalid config: `limits.maxConnections` must be an integer from 1 to 1000000000 (got 0)',
    ],
    [
      'line limit range',
      { limits: { maxCommandLineBytes: 10 } },
      'invalid config: `limits.maxCommandLineBytes` must be from 64 to 16777216 bytes (got 10)',
    ],
    [
      'wildcard host',
      { host: '::' },
      'invalid config: `publicHost` is required when binding the wildcard address :: (it is written into caps)',
    ],
    [
      'resource and resources',
      { resource: [{}], resources: [{}] },
      'invalid config: `resource` and `resources` are the same option; give only one',
    ],
  ];
  it.each(invalid)('%s → DEPOT_ERR_CONFIG with an exact message', (_name, input, message) => {
    let caught: unknown;
    try {
      parseDepotOptions(input);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(DepotError);
    expect(caught).toMatchObject({ code: 'DEPOT_ERR_CONFIG', message });
  });

  it('a disk resource: path given → kind disk, 1 h trash grace, safe fsync, full start-up check', () => {
    const o = parseDepotOptions({ resource: [{ path: '/var/anvil' }, { rid: '2', kind: 'memory' }] });
    expect(o.resources[0]).toMatchObject({
      kind: 'disk',
      path: '/var/anvil',
      trashGraceSec: 3600,
      fsync: 'safe',
      startupCheck: 'full',
    });
    expect(o.resources[1]).toMatchObject({ kind: 'memory', trashGraceSec: 0 });
  });

  it('transfer: defaults allow any destination; CIDRs, IPs and host:port are accepted', () => {
    expect(parseDepotOptions().transfer).toEqual({ allow: ['*'], connectTimeoutMs: 5000, timeoutMs: 300_000 });
    const t = parseDepotOptions({
      transfer: { allow: ['10.0.0.0/8', '::1/128', '192.0.2.7', 'depot.example.org:6714', '[::1]:6714'], timeoutMs: 1000 },
    }).transfer;
    expect(t.allow).toHaveLength(5);
    expect(t.timeoutMs).toBe(1000);
  });

  it('parseByteSize', () => {
    expect(parseByteSize('64MiB', 'x')).toBe(64 * 1024 * 1024);
    expect(parseByteSize('2 GB', 'x')).toBe(2e9);
    expect(parseByteSize(12, 'x')).toBe(12);
    expect(() => parseByteSize(1.5, 'x')).toThrow('`x` must be a non-negative integer number of bytes (got 1.5)');
  });
});
