import {
  CAP_TYPE_WORD,
  CHKSUM_BASE_COMMAND,
  CapType,
  ChksumType,
  Command,
  MAX_IOVEC,
  ManageOp,
  Status,
  StatusOp,
  type CapTypeNumber,
} from './commands.js';
import { parseCapability, type Capability } from './caps.js';
import { IbpProtocolError, IbpProtocolErrorCode } from '../errors.js';
import type {
  AliasManageRequest,
  IbpRequest,
  IoRange,
  KeyRef,
  ManageRequest,
  StatusRequest,
  TransferRequest,
  VecRequest,
} from './requests.js';

/** Most parameters an NFU call may carry. */
export const MAX_NFU_PARAMS = 16;

/** Timeout the ACCRE depot substitutes for a `0` or unparsable timeout token ("for LoRS compatibility"). */
export const DEFAULT_REQUEST_TIMEOUT_SEC = 2;

/** Splits a command line on runs of spaces and tabs, as the peers' tokenisers do. */
export function tokenize(line: string): string[] {
  const tokens = line.split(/[ \t]+/);
  if (tokens.length > 0 && tokens[0] === '') tokens.shift();
  if (tokens.length > 0 && tokens[tokens.length - 1] === '') tokens.pop();
  return tokens;
}

function badFormat(message: string, status: number = Status.BAD_FORMAT): IbpProtocolError {
  return new IbpProtocolError(IbpProtocolErrorCode.BAD_FORMAT, message, { status });
}

/** Quotes a client token for an error message, bounded so a huge token cannot bloat logs. */
function quote(token: string | undefined): string {
  if (token === undefined) return 'nothing';
  return JSON.stringify(token.length > 40 ? `${token.slice(0, 40)}…` : token);
}

function int(tokens: readonly string[], index: number, field: string): number {
  const token = tokens[index];
  if (token === undefined || !/^[-+]?\d{1,16}$/.test(token)) {
    throw badFormat(`\`${field}\` must be a decimal integer (got ${quote(token)})`);
  }
  const n = Number(token);
  if (!Number.isSafeInteger(n)) throw badFormat(`\`${field}\` is out of range (got ${quote(token)})`);
  return n;
}

/** Timeout tokens are lenient: `0`, `0.5`, garbage or absent all mean the 2 s default. */
function timeout(tokens: readonly string[], index: number): number {
  const token = tokens[index];
  if (token === undefined || !/^\d{1,9}$/.test(token)) return DEFAULT_REQUEST_TIMEOUT_SEC;
  const n = Number(token);
  return n === 0 ? DEFAULT_REQUEST_TIMEOUT_SEC : n;
}

function keyRef(tokens: readonly string[], index: number): KeyRef {
  const ridKey = tokens[index];
  const wrmKey = tokens[index + 1];
  if (ridKey === undefined || wrmKey === undefined) {
    throw badFormat(`expected a capability key and a WRM key at token ${index + 1}`);
  }
  const hash = ridKey.indexOf('#');
  const rid = hash < 0 ? '' : ridKey.slice(0, hash);
  const key = hash < 0 ? ridKey : ridKey.slice(hash + 1);
  if (key === '' || (hash >= 0 && !/^\d{1,8}$/.test(rid))) {
    throw badFormat(`capability key must be RID#KEY or KEY (got a malformed key token)`, Status.WRONG_CAP_FORMAT);
  }
  return { rid, key, wrmKey };
}

/** Accepts `need` tokens plus an optional trailing timeout token; anything else is BAD_FORMAT. */
function arity(tokens: readonly string[], need: number, what: string): void {
  if (tokens.length < need || tokens.length > need + 1) {
    throw badFormat(`${what} takes ${need} or ${need + 1} tokens (got ${tokens.length})`);
  }
}

function positiveLength(tokens: readonly string[], index: number): number {
  const n = int(tokens, index, 'length');
  if (n < 1) {
    throw new IbpProtocolError(IbpProtocolErrorCode.INVALID_PARAMETER, `\`length\` must be at least 1 (got ${n})`, {
      status: Status.INV_PAR_SIZE,
    });
  }
  return n;
}

function offsetAt(tokens: readonly string[], index: number): number {
  const n = int(tokens, index, 'offset');
  if (n < 0) {
    throw new IbpProtocolError(IbpProtocolErrorCode.INVALID_PARAMETER, `\`offset\` must be >= 0 (got ${n})`, {
      status: Status.FILE_SEEK_ERROR,
    });
  }
  return n;
}

/**
 * Parses one IBP command line into a typed request. Token layouts (v0 and v1 forms) are listed in
 * docs/protocol.md; {@link formatRequest} is the inverse. Throws {@link IbpProtocolError} carrying the IBP status to answer with;
 * every parse error is protocol-level (the connection is closed after the reply).
 */
export function parseRequest(line: string): IbpRequest {
  const t = tokenize(line);
  if (t.length < 2) throw badFormat(`a command needs a version and a command number (got ${t.length} tokens)`);
  const versionToken = t[0]!;
  if (!/^\d+$/.test(versionToken)) throw badFormat(`protocol version must be 0 or 1 (got ${quote(versionToken)})`);
  // Exactly `0` or `1`: a numeric token naming another version (`2`, `00`, `01`) is -27.
  if (versionToken !== '0' && versionToken !== '1') {
    throw new IbpProtocolError(
      IbpProtocolErrorCode.PROTOCOL_VERSION,
      `protocol version must be 0 or 1 (got ${quote(versionToken)})`,
    );
  }
  const version = versionToken === '1' ? 1 : 0;
  if (!/^\d{1,3}$/.test(t[1]!)) throw badFormat(`command number must be a small integer (got ${quote(t[1])})`);
  const command = Number(t[1]);
  const base = CHKSUM_BASE_COMMAND[command];
  if (base !== undefined) return parseChksumVariant(t, base);

  switch (command) {
    case Command.ALLOCATE: {
      const v1 = version === 1 ? 1 : 0;
      arity(t, 6 + v1, `ALLOCATE (v${version})`);
      const rid = v1 === 1 ? t[2]! : undefined;
      if (rid !== undefined && !/^\d{1,8}$/.test(rid)) {
        throw badFormat(`resource id must be a decimal number (got ${quote(rid)})`);
      }
      const reliability = int(t, 2 + v1, 'reliability');
      if (reliability !== 1 && reliability !== 2) {
        throw badFormat(`\`reliability\` must be 1 (soft) or 2 (hard) (got ${reliability})`);
      }
      return {
        command: 'allocate',
        version,
        rid,
        reliability,
        type: int(t, 3 + v1, 'type'),
        durationSec: int(t, 4 + v1, 'duration'),
        size: int(t, 5 + v1, 'size'),
        timeoutSec: timeout(t, 6 + v1),
      };
    }
    case Command.STORE:
      arity(t, 5, 'STORE');
      return { command: 'store', version, cap: keyRef(t, 2), length: positiveLength(t, 4), timeoutSec: timeout(t, 5) };
    case Command.WRITE:
      arity(t, 6, 'WRITE');
      return {
        command: 'write',
        version,
        cap: keyRef(t, 2),
        offset: offsetAt(t, 4),
        length: positiveLength(t, 5),
        timeoutSec: timeout(t, 6),
      };
    case Command.LOAD:
      arity(t, 6, 'LOAD');
      return {
        command: 'load',
        version,
        cap: keyRef(t, 2),
        offset: offsetAt(t, 4),
        length: positiveLength(t, 5),
        timeoutSec: timeout(t, 6),
      };
    case Command.MANAGE:
      return parseManage(t, version);
    case Command.SEND:
      return parseSend(t, version);
    case Command.PHOEBUS_SEND: {
      // `V 17 PATH KEY DEST_CAP …`; an empty PATH leaves no token (then the cap follows the key).
      const hasPath = t[3]?.startsWith('ibp://') !== true;
      const send = parseSend(hasPath ? [t[0]!, t[1]!, ...t.slice(3)] : t, version);
      return { ...send, command: 'phoebus_send', path: hasPath ? (t[2] ?? '') : '' };
    }
    case Command.ALIAS_ALLOCATE:
      arity(t, 7, 'ALIAS_ALLOCATE');
      return {
        command: 'alias_allocate',
        version,
        cap: keyRef(t, 2),
        offset: offsetAt(t, 4),
        length: nonNegative(t, 5, 'length'),
        durationSec: nonNegative(t, 6, 'duration'),
        timeoutSec: timeout(t, 7),
      };
    case Command.ALIAS_MANAGE:
      return parseAliasManage(t, version);
    case Command.RENAME:
      arity(t, 4, 'RENAME');
      return { command: 'rename', version, cap: keyRef(t, 2), timeoutSec: timeout(t, 4) };
    case Command.SPLIT_ALLOCATE: {
      arity(t, 8, 'SPLIT_ALLOCATE');
      const reliability = int(t, 4, 'reliability');
      if (reliability !== 1 && reliability !== 2) {
        throw badFormat(`\`reliability\` must be 1 (soft) or 2 (hard) (got ${reliability})`);
      }
      return {
        command: 'split',
        version,
        cap: keyRef(t, 2),
        reliability,
        type: int(t, 5, 'type'),
        durationSec: int(t, 6, 'duration'),
        size: int(t, 7, 'size'),
        timeoutSec: timeout(t, 8),
      };
    }
    case Command.MERGE_ALLOCATE:
      arity(t, 6, 'MERGE_ALLOCATE');
      return { command: 'merge', version, cap: keyRef(t, 2), child: keyRef(t, 4), timeoutSec: timeout(t, 6) };
    case Command.GET_CHKSUM:
    case Command.VALIDATE_CHKSUM:
      arity(t, 5, command === Command.GET_CHKSUM ? 'GET_CHKSUM' : 'VALIDATE_CHKSUM');
      return {
        command: command === Command.GET_CHKSUM ? 'get_chksum' : 'validate_chksum',
        version,
        cap: keyRef(t, 2),
        flag: nonNegative(t, 4, command === Command.GET_CHKSUM ? 'chksum_info_only' : 'correct_errors'),
        timeoutSec: timeout(t, 5),
      };
    case Command.VEC_WRITE:
    case Command.VEC_READ:
      return parseVec(t, version, command === Command.VEC_WRITE ? 'vec_write' : 'vec_read');
    case Command.PUSH:
    case Command.PULL:
      return parsePushPull(t, version, command === Command.PUSH ? 'push' : 'pull');
    case Command.STATUS:
      return parseStatus(t, version);
    case Command.NFU: {
      if (t.length < 4 || t.length > 5) throw badFormat(`NFU takes 4 or 5 tokens (got ${t.length})`);
      const opcode = int(t, 2, 'opcode');
      const paramCount = int(t, 3, 'parameter count');
      if (opcode < 0) throw badFormat(`\`opcode\` must be >= 0 (got ${opcode})`);
      if (paramCount < 0 || paramCount > MAX_NFU_PARAMS) {
        throw badFormat(`\`parameter count\` must be from 0 to ${MAX_NFU_PARAMS} (got ${paramCount})`);
      }
      return { command: 'nfu', version, opcode, paramCount, timeoutSec: timeout(t, 4) };
    }
    default:
      throw new IbpProtocolError(IbpProtocolErrorCode.UNKNOWN_COMMAND, `command ${command} is not served by this depot`);
  }
}

function nonNegative(tokens: readonly string[], index: number, field: string): number {
  const n = int(tokens, index, field);
  if (n < 0) {
    throw new IbpProtocolError(IbpProtocolErrorCode.INVALID_PARAMETER, `\`${field}\` must be >= 0 (got ${n})`);
  }
  return n;
}

/**
 * An ACCRE `_CHKSUM` variant: `V CMD CS_TYPE BLOCKSIZE …` + the base command's tokens. Only
 * CS_TYPE 0 (NONE: no network checksum) is served, as the base command; any other type is -64.
 */
function parseChksumVariant(t: readonly string[], base: number): IbpRequest {
  const csType = int(t, 2, 'checksum type');
  int(t, 3, 'checksum block size');
  if (csType !== ChksumType.NONE) {
    throw new IbpProtocolError(
      IbpProtocolErrorCode.TYPE_NOT_SUPPORTED,
      `checksum type ${csType} is not served; only 0 (none) is (the depot keeps its own block CRCs)`,
      { status: Status.CHKSUM_TYPE },
    );
  }
  return parseRequest([t[0]!, String(base), ...t.slice(4)].join(' '));
}

/** `V 15 KEY WRM 40 CAPTYPE T` | `V 15 KEY WRM 41|42 CAPTYPE MKEY MWRM T` | `V 15 KEY WRM 43 OFF LEN DUR MKEY MWRM T` */
function parseAliasManage(t: readonly string[], version: 0 | 1): AliasManageRequest {
  if (t.length < 5) throw badFormat(`ALIAS_MANAGE needs a key, a WRM key and a sub-command (got ${t.length} tokens)`);
  const cap = keyRef(t, 2);
  const op = int(t, 4, 'manage sub-command');
  switch (op) {
    case ManageOp.PROBE:
      if (t.length > 7) throw badFormat(`ALIAS PROBE takes at most 7 tokens (got ${t.length})`);
      return { command: 'alias_manage', version, cap, op: 'probe', timeoutSec: timeout(t, t.length - 1) };
    case ManageOp.INCR:
    case ManageOp.DECR: {
      arity(t, 8, op === ManageOp.INCR ? 'ALIAS INCR' : 'ALIAS DECR');
      const capType = int(t, 5, 'captype');
      if (capType !== 1 && capType !== 2) throw badFormat(`\`captype\` must be 1 (read) or 2 (write) (got ${capType})`);
      return {
        command: 'alias_manage',
        version,
        cap,
        op: op === ManageOp.INCR ? 'incr' : 'decr',
        capType,
        master: keyRef(t, 6),
        timeoutSec: timeout(t, 8),
      };
    }
    case ManageOp.CHNG:
      arity(t, 10, 'ALIAS CHNG');
      return {
        command: 'alias_manage',
        version,
        cap,
        op: 'chng',
        offset: offsetAt(t, 5),
        length: nonNegative(t, 6, 'length'),
        durationSec: nonNegative(t, 7, 'duration'),
        master: keyRef(t, 8),
        timeoutSec: timeout(t, 10),
      };
    default:
      throw badFormat(`unknown ALIAS_MANAGE sub-command ${op}`);
  }
}

/** `V 33|35 KEY WRM N off1 len1 … offN lenN [TIMEOUT]` */
function parseVec(t: readonly string[], version: 0 | 1, command: 'vec_write' | 'vec_read'): VecRequest {
  const n = int(t, 4, 'count');
  if (n < 1 || n > MAX_IOVEC) throw badFormat(`\`count\` must be from 1 to ${MAX_IOVEC} (got ${n})`);
  arity(t, 5 + 2 * n, command === 'vec_write' ? 'VEC_WRITE' : 'VEC_READ');
  const ranges: IoRange[] = [];
  let total = 0;
  for (let i = 0; i < n; i++) {
    const offset = offsetAt(t, 5 + 2 * i);
    const length = positiveLength(t, 6 + 2 * i);
    total += length;
    ranges.push({ offset, length });
  }
  if (!Number.isSafeInteger(total)) throw badFormat('the total length of the ranges is out of range');
  return { command, version, cap: keyRef(t, 2), ranges, timeoutSec: timeout(t, 5 + 2 * n) };
}

function remoteCap(tokens: readonly string[], index: number, need: CapTypeNumber): Capability {
  const cap = parseCapability(tokens[index] ?? '');
  if (cap === undefined)
    throw badFormat(`the remote capability is not a valid IBP cap (got ${quote(tokens[index])})`, Status.WRONG_CAP_FORMAT);
  if (cap.type !== need) {
    throw badFormat(
      `the remote capability must be a ${CAP_TYPE_WORD[need]} cap (got ${CAP_TYPE_WORD[cap.type]})`,
      Status.WRONG_CAP_FORMAT,
    );
  }
  return cap;
}

/** `V 5 KEY DEST_WRITE_CAP TYPEKEY OFFSET LENGTH [SRC_TIMEOUT [DEST_TIMEOUT [DEST_CLIENT_TIMEOUT]]]` */
function parseSend(t: readonly string[], version: 0 | 1): TransferRequest {
  if (t.length < 7 || t.length > 10) throw badFormat(`SEND takes 7 to 10 tokens (got ${t.length})`);
  const length = positiveLength(t, 6);
  return {
    command: 'send',
    version,
    cap: keyRef([t[2]!, t[4]!], 0),
    remote: remoteCap(t, 3, CapType.WRITE),
    localOffset: offsetAt(t, 5),
    remoteOffset: -1,
    length,
    timeoutSec: timeout(t, 7),
  };
}

/**
 * `V 20|21 CTYPE [PATH] LOCAL_KEY REMOTE_CAP LOCAL_TYPEKEY LOCAL_OFFSET REMOTE_OFFSET LENGTH TIMEOUT…`.
 * CTYPE 1 is TCP; its PATH is empty (so absent once tokenized), but a placeholder is tolerated.
 */
function parsePushPull(t: readonly string[], version: 0 | 1, command: 'push' | 'pull'): TransferRequest {
  const ctype = int(t, 2, 'ctype');
  if (ctype === 2) {
    throw new IbpProtocolError(
      IbpProtocolErrorCode.TYPE_NOT_SUPPORTED,
      'Phoebus transfers (ctype 2) are not supported; use TCP (ctype 1)',
    );
  }
  if (ctype !== 1) throw badFormat(`\`ctype\` must be 1 (TCP) (got ${ctype})`);
  const at = t[4]?.startsWith('ibp://') === true ? 3 : 4; // index of LOCAL_KEY
  if (t.length < at + 6 || t.length > at + 9)
    throw badFormat(`${command.toUpperCase()} takes ${at + 6} to ${at + 9} tokens (got ${t.length})`);
  const localOffset = int(t, at + 3, 'local offset');
  const remoteOffset = int(t, at + 4, 'remote offset');
  for (const [v, name] of [
    [localOffset, 'local offset'],
    [remoteOffset, 'remote offset'],
  ] as const) {
    if (v < -1)
      throw new IbpProtocolError(IbpProtocolErrorCode.INVALID_PARAMETER, `\`${name}\` must be >= -1 (got ${v})`, {
        status: Status.FILE_SEEK_ERROR,
      });
  }
  if (command === 'push' && localOffset === -1) {
    throw new IbpProtocolError(
      IbpProtocolErrorCode.INVALID_PARAMETER,
      'PUSH reads from the local allocation: its offset cannot be -1',
      {
        status: Status.FILE_SEEK_ERROR,
      },
    );
  }

  return {
    command,
    version,
    cap: keyRef([t[at]!, t[at + 2]!], 0),
    remote: remoteCap(t, at + 1, command === 'push' ? CapType.WRITE : CapType.READ),
    localOffset,
    // PULL never appends remotely: the ACCRE depot reads a remote offset of -1 as 0, and so do we.
    remoteOffset: command === 'pull' && remoteOffset === -1 ? 0 : remoteOffset,
    length: positiveLength(t, at + 5),
    timeoutSec: timeout(t, at + 6),
  };
}

function parseManage(t: readonly string[], version: 0 | 1): ManageRequest {
  if (t.length < 5) throw badFormat(`MANAGE needs a key, a WRM key and a sub-command (got ${t.length} tokens)`);
  const cap = keyRef(t, 2);
  const op = int(t, 4, 'manage sub-command');
  switch (op) {
    case ManageOp.PROBE: {
      // `40 CAPTYPE 0 0 0 TIMEOUT`; the captype and three placeholder fields are ignored, and
      // shorter forms from older clients are tolerated.
      if (t.length > 10) throw badFormat(`PROBE takes at most 10 tokens (got ${t.length})`);
      return { command: 'manage', version, cap, op: 'probe', timeoutSec: timeout(t, t.length - 1) };
    }
    case ManageOp.INCR:
    case ManageOp.DECR: {
      arity(t, 6, op === ManageOp.INCR ? 'INCR' : 'DECR');
      const capType = int(t, 5, 'captype');
      if (capType !== 1 && capType !== 2 && capType !== 3) {
        throw badFormat(`\`captype\` must be 1 (read) or 2 (write) (got ${capType})`);
      }
      return {
        command: 'manage',
        version,
        cap,
        op: op === ManageOp.INCR ? 'incr' : 'decr',
        capType,
        timeoutSec: timeout(t, 6),
      };
    }
    case ManageOp.CHNG: {
      arity(t, 9, 'CHNG');
      return {
        command: 'manage',
        version,
        cap,
        op: 'chng',
        capType: int(t, 5, 'captype'),
        maxSize: int(t, 6, 'max size'),
        durationSec: int(t, 7, 'duration'),
        reliability: int(t, 8, 'reliability'),
        timeoutSec: timeout(t, 9),
      };
    }
    case ManageOp.TRUNCATE: {
      arity(t, 6, 'TRUNCATE');
      return { command: 'manage', version, cap, op: 'truncate', size: int(t, 5, 'size'), timeoutSec: timeout(t, 6) };
    }
    default:
      throw badFormat(`unknown MANAGE sub-command ${op}`);
  }
}

function parseStatus(t: readonly string[], version: 0 | 1): StatusRequest {
  // v1 short form `1 4 SUB TIMEOUT` (ST_RES, ST_VERSION) versus `1 4 RID SUB PASSWORD TIMEOUT`;
  // v0 has no RID: `0 4 SUB PASSWORD TIMEOUT`.
  const short = version === 1 && t.length < 5;
  const ridIndex = version === 1 && !short ? 2 : -1;
  const subIndex = ridIndex < 0 ? 2 : 3;
  const sub = int(t, subIndex, 'status sub-command');
  const rid = ridIndex < 0 ? undefined : t[ridIndex]!;
  if (rid !== undefined && !/^\d{1,8}$/.test(rid)) throw badFormat(`resource id must be a decimal number (got ${quote(rid)})`);
  switch (sub) {
    case StatusOp.INQ: {
      const password = t[subIndex + 1];
      if (password === undefined) throw badFormat('ST_INQ needs a password token');
      if (t.length > subIndex + 3) throw badFormat(`ST_INQ takes at most ${subIndex + 3} tokens (got ${t.length})`);
      return { command: 'status', version, op: 'inq', rid, password, timeoutSec: timeout(t, subIndex + 2) };
    }
    case StatusOp.RES:
    case StatusOp.VERSION:
      if (t.length > subIndex + 3) throw badFormat(`STATUS ${sub} takes at most ${subIndex + 3} tokens (got ${t.length})`);
      return {
        command: 'status',
        version,
        op: sub === StatusOp.RES ? 'res' : 'version',
        timeoutSec: timeout(t, t.length - 1),
      };
    case StatusOp.CHANGE:
      return { command: 'status', version, op: 'change', timeoutSec: DEFAULT_REQUEST_TIMEOUT_SEC };
    default:
      throw badFormat(`unknown STATUS sub-command ${sub}`);
  }
}
