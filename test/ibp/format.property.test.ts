import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  IbpProtocolError,
  formatAllocate,
  formatManage,
  formatRequest,
  formatSend,
  formatStatus,
  formatStore,
  parseRequest,
  type Capability,
  type IbpRequest,
  type KeyRef,
} from '../../ibp/index.js';

/** One token as a peer may send it: printable ASCII, no spaces. */
const token = fc.stringMatching(/^[\x21-\x7e]{1,24}$/);
const version = fc.constantFrom(0 as const, 1 as const);
/** What a depot reads back as a number: 1 to nine digits, never 0 (which means the default). */
const timeoutSec = fc.integer({ min: 1, max: 999_999_999 });
const anyInt = fc.maxSafeInteger();
const nonNegative = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const positive = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });
const rid = fc.stringMatching(/^\d{1,8}$/);

const keyRef: fc.Arbitrary<KeyRef> = fc
  .record({ rid: fc.oneof(fc.constant(''), rid), key: token, wrmKey: token })
  .filter((k) => k.rid !== '' || !k.key.includes('#'));

/** A capability whose string form parses back to it. */
function capability(type: 1 | 2 | 3): fc.Arbitrary<Capability> {
  const part = fc.stringMatching(/^[A-Za-z0-9_\-+=.~!$&'()*,;:@]{1,24}$/);
  return fc
    .record({
      host: fc.oneof(fc.domain(), fc.ipV4(), fc.ipV6()),
      port: fc.integer({ min: 1, max: 65_535 }),
      rid: fc.oneof(fc.constant(''), rid),
      key: part,
      wrmKey: part,
      type: fc.constant(type),
    })
    .filter((c) => c.rid !== '' || !c.key.includes('#'));
}

const base = { version, timeoutSec };

const allocate = fc.oneof(
  fc.record({
    command: fc.constant('allocate' as const),
    version: fc.constant(1 as const),
    rid: fc.option(rid, { nil: undefined }).map((r) => r ?? '0'),
    reliability: fc.constantFrom(1 as const, 2 as const),
    type: anyInt,
    durationSec: anyInt,
    size: anyInt,
    timeoutSec,
  }),
  fc.record({
    command: fc.constant('allocate' as const),
    version: fc.constant(0 as const),
    rid: fc.constant(undefined),
    reliability: fc.constantFrom(1 as const, 2 as const),
    type: anyInt,
    durationSec: anyInt,
    size: anyInt,
    timeoutSec,
  }),
);
const store = fc.record({ command: fc.constant('store' as const), ...base, cap: keyRef, length: positive });
const write = fc.record({ command: fc.constant('write' as const), ...base, cap: keyRef, offset: nonNegative, length: positive });
const load = fc.record({ command: fc.constant('load' as const), ...base, cap: keyRef, offset: nonNegative, length: positive });
const manageBase = { command: fc.constant('manage' as const), ...base, cap: keyRef };
const manage = fc.oneof(
  fc.record({ ...manageBase, op: fc.constant('probe' as const) }),
  fc.record({
    ...manageBase,
    op: fc.constantFrom('incr' as const, 'decr' as const),
    capType: fc.constantFrom(1 as const, 2 as const, 3 as const),
  }),
  fc.record({
    ...manageBase,
    op: fc.constant('chng' as const),
    capType: anyInt,
    maxSize: anyInt,
    durationSec: anyInt,
    reliability: anyInt,
  }),
  fc.record({ ...manageBase, op: fc.constant('truncate' as const), size: anyInt }),
);
const status = fc.oneof(
  fc.record({
    command: fc.constant('status' as const),
    version: fc.constant(1 as const),
    timeoutSec,
    op: fc.constant('inq' as const),
    rid,
    password: token,
  }),
  fc.record({
    command: fc.constant('status' as const),
    version: fc.constant(0 as const),
    timeoutSec,
    op: fc.constant('inq' as const),
    rid: fc.constant(undefined),
    password: token,
  }),
  fc.record({ command: fc.constant('status' as const), ...base, op: fc.constantFrom('res' as const, 'version' as const) }),
  fc.record({ command: fc.constant('status' as const), version, timeoutSec: fc.constant(2), op: fc.constant('change' as const) }),
);
const send = fc.record({
  command: fc.constant('send' as const),
  ...base,
  cap: keyRef,
  remote: capability(2),
  localOffset: nonNegative,
  remoteOffset: fc.constant(-1),
  length: positive,
});
const push = fc.record({
  command: fc.constant('push' as const),
  ...base,
  cap: keyRef,
  remote: capability(2),
  localOffset: nonNegative,
  remoteOffset: fc.integer({ min: -1, max: Number.MAX_SAFE_INTEGER }),
  length: positive,
});
const pull = fc.record({
  command: fc.constant('pull' as const),
  ...base,
  cap: keyRef,
  remote: capability(1),
  localOffset: fc.integer({ min: -1, max: Number.MAX_SAFE_INTEGER }),
  remoteOffset: nonNegative,
  length: positive,
});
const nfu = fc.record({
  command: fc.constant('nfu' as const),
  ...base,
  opcode: nonNegative,
  paramCount: fc.integer({ min: 0, max: 16 }),
});

const phoebusSend = fc.record({
  command: fc.constant('phoebus_send' as const),
  ...base,
  path: fc.oneof(
    fc.constant(''),
    token.filter((p) => !p.startsWith('ibp://')),
  ),
  cap: keyRef.filter((k) => !k.key.startsWith('ibp://')),
  remote: capability(2),
  localOffset: nonNegative,
  remoteOffset: fc.constant(-1),
  length: positive,
});
const aliasAllocate = fc.record({
  command: fc.constant('alias_allocate' as const),
  ...base,
  cap: keyRef,
  offset: nonNegative,
  length: nonNegative,
  durationSec: nonNegative,
});
const aliasManage = fc.oneof(
  fc.record({ command: fc.constant('alias_manage' as const), ...base, cap: keyRef, op: fc.constant('probe' as const) }),
  fc.record({
    command: fc.constant('alias_manage' as const),
    ...base,
    cap: keyRef,
    op: fc.constantFrom('incr' as const, 'decr' as const),
    capType: fc.constantFrom(1 as const, 2 as const),
    master: keyRef,
  }),
  fc.record({
    command: fc.constant('alias_manage' as const),
    ...base,
    cap: keyRef,
    op: fc.constant('chng' as const),
    offset: nonNegative,
    length: nonNegative,
    durationSec: nonNegative,
    master: keyRef,
  }),
);
const rename = fc.record({ command: fc.constant('rename' as const), ...base, cap: keyRef });
const split = fc.record({
  command: fc.constant('split' as const),
  ...base,
  cap: keyRef,
  reliability: fc.constantFrom(1 as const, 2 as const),
  type: anyInt,
  durationSec: anyInt,
  size: anyInt,
});
const merge = fc.record({ command: fc.constant('merge' as const), ...base, cap: keyRef, child: keyRef });
const chksum = (command: 'get_chksum' | 'validate_chksum') =>
  fc.record({ command: fc.constant(command), ...base, cap: keyRef, flag: fc.integer({ min: 0, max: 1 }) });
const vec = (command: 'vec_write' | 'vec_read') =>
  fc.record({
    command: fc.constant(command),
    ...base,
    cap: keyRef,
    ranges: fc.array(fc.record({ offset: nonNegative, length: fc.integer({ min: 1, max: 2 ** 40 }) }), {
      minLength: 1,
      maxLength: 20,
    }),
  });

/** A deep copy with ordinary prototypes (fast-check builds records without one). */
function plain<T>(value: T): T {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return value.map((v: unknown) => plain(v)) as T;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)])) as T;
}

const byKind: Record<IbpRequest['command'], fc.Arbitrary<IbpRequest>> = {
  allocate,
  store,
  write,
  load,
  manage,
  status,
  send,
  push,
  pull,
  nfu,
  phoebus_send: phoebusSend,
  alias_allocate: aliasAllocate,
  alias_manage: aliasManage,
  rename,
  split,
  merge,
  get_chksum: chksum('get_chksum'),
  validate_chksum: chksum('validate_chksum'),
  vec_write: vec('vec_write'),
  vec_read: vec('vec_read'),
};

describe('command-line encoders are the inverse of parseRequest', () => {
  for (const [kind, requests] of Object.entries(byKind)) {
    it(`parseRequest(formatRequest(r)) equals r for every ${kind} request`, () => {
      fc.assert(
        fc.property(requests, (r) => {
          const line = formatRequest(r);
          expect(line.endsWith('\n')).toBe(true);
          expect(line.indexOf('\n')).toBe(line.length - 1);
          expect(parseRequest(line.slice(0, -1))).toStrictEqual(plain(r));
        }),
        { numRuns: 300 },
      );
    });
  }

  it('writes the token layouts of the protocol', () => {
    const cap = { rid: '1', key: 'K', wrmKey: 'W' };
    expect(formatAllocate({ version: 1, rid: '0', reliability: 2, type: 1, durationSec: 3600, size: 1024, timeoutSec: 10 })).toBe(
      '1 1 0 2 1 3600 1024 10\n',
    );
    expect(
      formatAllocate({ version: 0, rid: undefined, reliability: 1, type: 1, durationSec: -1, size: 8, timeoutSec: 10 }),
    ).toBe('0 1 1 1 -1 8 10\n');
    expect(formatStore({ version: 1, cap, length: 11, timeoutSec: 30 })).toBe('1 2 1#K W 11 30\n');
    expect(formatManage({ version: 1, cap, op: 'probe', timeoutSec: 30 })).toBe('1 9 1#K W 40 3 0 0 0 30\n');
    expect(formatStatus({ version: 1, op: 'inq', rid: '0', password: 'ibp', timeoutSec: 30 })).toBe('1 4 0 1 ibp 30\n');
    expect(formatStatus({ version: 0, op: 'inq', rid: undefined, password: 'ibp', timeoutSec: 30 })).toBe('0 4 1 ibp 30\n');
    const remote = { host: '127.0.0.1', port: 6714, rid: '1', key: 'D', wrmKey: '7', type: 2 as const };
    expect(formatSend({ version: 1, cap, remote, localOffset: 0, remoteOffset: -1, length: 5, timeoutSec: 30 })).toBe(
      '1 5 1#K ibp://127.0.0.1:6714/1#D/7/WRITE W 0 5 30 30 30\n',
    );
    expect(formatRequest({ command: 'nfu', version: 1, opcode: 33, paramCount: 3, timeoutSec: 2 })).toBe('1 12 33 3\n');
    // the ACCRE extensions, token for token as the ACCRE client's op_cmd.c writes them
    const m = { rid: '1', key: 'M', wrmKey: 'X' };
    expect(
      formatRequest({ command: 'alias_allocate', version: 1, cap, offset: 10, length: 20, durationSec: 0, timeoutSec: 30 }),
    ).toBe('1 14 1#K W 10 20 0 30\n');
    expect(formatRequest({ command: 'alias_manage', version: 1, cap, op: 'probe', timeoutSec: 30 })).toBe('1 15 1#K W 40 3 30\n');
    expect(formatRequest({ command: 'alias_manage', version: 1, cap, op: 'decr', capType: 1, master: m, timeoutSec: 30 })).toBe(
      '1 15 1#K W 42 1 1#M X 30\n',
    );
    expect(
      formatRequest({
        command: 'alias_manage',
        version: 1,
        cap,
        op: 'chng',
        offset: 1,
        length: 2,
        durationSec: 3,
        master: m,
        timeoutSec: 30,
      }),
    ).toBe('1 15 1#K W 43 1 2 3 1#M X 30\n');
    expect(formatRequest({ command: 'rename', version: 1, cap, timeoutSec: 30 })).toBe('1 16 1#K W 30\n');
    expect(
      formatRequest({ command: 'split', version: 1, cap, reliability: 2, type: 1, durationSec: 60, size: 100, timeoutSec: 30 }),
    ).toBe('1 18 1#K W 2 1 60 100 30\n');
    expect(formatRequest({ command: 'merge', version: 1, cap, child: m, timeoutSec: 30 })).toBe('1 19 1#K W 1#M X 30\n');
    expect(formatRequest({ command: 'get_chksum', version: 1, cap, flag: 1, timeoutSec: 30 })).toBe('1 31 1#K W 1 30\n');
    expect(formatRequest({ command: 'validate_chksum', version: 1, cap, flag: 0, timeoutSec: 30 })).toBe('1 32 1#K W 0 30\n');
    const ranges = [
      { offset: 0, length: 5 },
      { offset: 100, length: 7 },
    ];
    expect(formatRequest({ command: 'vec_write', version: 1, cap, ranges, timeoutSec: 30 })).toBe('1 33 1#K W 2 0 5 100 7 30\n');
    expect(formatRequest({ command: 'vec_read', version: 1, cap, ranges, timeoutSec: 30 })).toBe('1 35 1#K W 2 0 5 100 7 30\n');
    expect(
      formatRequest({
        command: 'phoebus_send',
        version: 1,
        path: '',
        cap,
        remote,
        localOffset: 0,
        remoteOffset: -1,
        length: 5,
        timeoutSec: 30,
      }),
    ).toBe('1 17 1#K ibp://127.0.0.1:6714/1#D/7/WRITE W 0 5 30 30 30\n');
    // _CHKSUM variants with checksum type 0 (none) are their base command; other types are -64
    expect(parseRequest('1 28 0 65536 1#K W 11 30')).toStrictEqual(parseRequest('1 2 1#K W 11 30'));
    expect(parseRequest('1 29 0 0 1 2 1 60 100 30')).toStrictEqual(parseRequest('1 1 1 2 1 60 100 30'));
    expect(() => parseRequest('1 24 1 65536 1#K W 0 10 30')).toThrow(expect.objectContaining({ status: -64 }));
  });

  it('refuses tokens that would split or inject a command line, and values no depot parses back', () => {
    const refusals: Array<[string, () => string, string]> = [
      [
        'a password with a space',
        () => formatStatus({ version: 1, op: 'inq', rid: '0', password: 'a b', timeoutSec: 1 }),
        'IBP_ERR_BAD_FORMAT',
      ],
      [
        'a key with a newline',
        () => formatStore({ version: 1, cap: { rid: '1', key: 'K\n1 9 x', wrmKey: 'W' }, length: 1, timeoutSec: 1 }),
        'IBP_ERR_BAD_FORMAT',
      ],
      [
        'an empty WRM key',
        () => formatStore({ version: 1, cap: { rid: '1', key: 'K', wrmKey: '' }, length: 1, timeoutSec: 1 }),
        'IBP_ERR_BAD_FORMAT',
      ],
      [
        'a non-ASCII key',
        () => formatStore({ version: 1, cap: { rid: '1', key: 'é', wrmKey: 'W' }, length: 1, timeoutSec: 1 }),
        'IBP_ERR_BAD_FORMAT',
      ],
      [
        'a length of 0',
        () => formatStore({ version: 1, cap: { rid: '1', key: 'K', wrmKey: 'W' }, length: 0, timeoutSec: 1 }),
        'IBP_ERR_INVALID_PARAMETER',
      ],
      [
        'a fractional size',
        () => formatAllocate({ version: 1, rid: '0', reliability: 2, type: 1, durationSec: 1, size: 1.5, timeoutSec: 1 }),
        'IBP_ERR_INVALID_PARAMETER',
      ],
      [
        'a timeout of 0',
        () => formatStore({ version: 1, cap: { rid: '1', key: 'K', wrmKey: 'W' }, length: 1, timeoutSec: 0 }),
        'IBP_ERR_INVALID_PARAMETER',
      ],
      [
        'a resource id with letters',
        () => formatAllocate({ version: 1, rid: 'x', reliability: 2, type: 1, durationSec: 1, size: 1, timeoutSec: 1 }),
        'IBP_ERR_INVALID_PARAMETER',
      ],
      [
        'a v0 ALLOCATE with a resource id',
        () => formatAllocate({ version: 0, rid: '1', reliability: 2, type: 1, durationSec: 1, size: 1, timeoutSec: 1 }),
        'IBP_ERR_INVALID_PARAMETER',
      ],
      [
        'a SEND that does not append',
        () =>
          formatSend({
            version: 1,
            cap: { rid: '1', key: 'K', wrmKey: 'W' },
            remote: { host: 'h', port: 1, rid: '1', key: 'D', wrmKey: '7', type: 2 },
            localOffset: 0,
            remoteOffset: 0,
            length: 1,
            timeoutSec: 1,
          }),
        'IBP_ERR_INVALID_PARAMETER',
      ],
      ['version 2', () => formatStatus({ version: 2 as 1, op: 'res', timeoutSec: 1 }), 'IBP_ERR_PROTOCOL_VERSION'],
    ];
    for (const [what, build, code] of refusals) {
      let thrown: unknown;
      try {
        build();
      } catch (err) {
        thrown = err;
      }
      expect(thrown, what).toBeInstanceOf(IbpProtocolError);
      expect((thrown as IbpProtocolError).code, what).toBe(code);
    }
  });
});
