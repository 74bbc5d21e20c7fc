/**
 * Command-line encoders: one per IBP command, the inverse of {@link parseRequest}. For every request
 * that `parseRequest` can return, `parseRequest(formatRequest(r))` deep-equals `r` (a property test
 * checks it), so the client and the depot agree on every token by construction.
 *
 * Encoders refuse what no depot could parse back — a token with a space, a control character or a
 * non-ASCII byte (which would split the token or inject a second command line), a number that is not a
 * safe integer, a field outside its range — with an {@link IbpProtocolError}, before anything is sent.
 */
import { Command, MAX_IOVEC, ManageOp, StatusOp } from './commands.js';
import { formatCapability, type Capability } from './caps.js';
import { IbpProtocolError, IbpProtocolErrorCode } from '../errors.js';
import { DEFAULT_REQUEST_TIMEOUT_SEC, MAX_NFU_PARAMS } from './parse.js';
import type {
  AccreRequest,
  AliasManageRequest,
  AllocateRequest,
  IbpRequest,
  KeyRef,
  LoadRequest,
  ManageRequest,
  NfuRequest,
  StatusRequest,
  StoreRequest,
  TransferRequest,
  WriteRequest,
} from './requests.js';

/** Largest timeout token a depot reads as a number (nine digits); larger ones fall back to the default. */
export const MAX_TIMEOUT_SEC = 999_999_999;

function invalid(message: string): IbpProtocolError {
  return new IbpProtocolError(IbpProtocolErrorCode.INVALID_PARAMETER, message);
}

function token(value: string, field: string): string {
  if (!/^[\x21-\x7e]+$/.test(value)) {
    throw new IbpProtocolError(
      IbpProtocolErrorCode.BAD_FORMAT,
      `\`${field}\` must be one token of printable ASCII without spaces (got ${value.length} characters)`,
    );
  }
  return value;
}

function integer(value: number, field: string, min = Number.MIN_SAFE_INTEGER): string {
  if (!Number.isSafeInteger(value) || value < min) {
    throw invalid(`\`${field}\` must be a safe integer >= ${min} (got ${value})`);
  }
  return String(value);
}

function rid(value: string, field = 'rid'): string {
  if (!/^\d{1,8}$/.test(value)) throw invalid(`\`${field}\` must be a decimal resource id of 1 to 8 digits (got ${value})`);
  return value;
}

function timeoutToken(timeoutSec: number): string {
  if (!Number.isSafeInteger(timeoutSec) || timeoutSec < 1 || timeoutSec > MAX_TIMEOUT_SEC) {
    throw invalid(`\`timeoutSec\` must be an integer from 1 to ${MAX_TIMEOUT_SEC} (got ${timeoutSec})`);
  }
  return String(timeoutSec);
}

function version(v: 0 | 1): string {
  if (v !== 0 && v !== 1) {
    throw new IbpProtocolError(IbpProtocolErrorCode.PROTOCOL_VERSION, `protocol version must be 0 or 1 (got ${String(v)})`);
  }
  return String(v);
}

/** The two tokens that name a capability in a request: `RID#KEY` (or `KEY`) and the WRM key. */
function keyTokens(ref: KeyRef): [string, string] {
  const key = token(ref.key, 'key');
  if (ref.rid === '' && key.includes('#')) throw invalid('a key without a resource id cannot contain `#`');
  const ridKey = ref.rid === '' ? key : `${rid(ref.rid, 'cap.rid')}#${key}`;
  return [ridKey, token(ref.wrmKey, 'wrmKey')];
}

/** A request without its `command` tag (distributes over unions): what an encoder needs. */
export type RequestFields<R extends IbpRequest> = R extends unknown ? Omit<R, 'command'> : never;

function line(tokens: readonly string[]): string {
  return `${tokens.join(' ')}\n`;
}

/** The {@link KeyRef} of a capability: what a request carries of it. */
export function keyRefOf(cap: Capability): KeyRef {
  return { rid: cap.rid, key: cap.key, wrmKey: cap.wrmKey };
}

/** ALLOCATE: `1 1 RID REL TYPE DURATION SIZE TIMEOUT` (v1) or `0 1 REL TYPE DURATION SIZE TIMEOUT` (v0). */
export function formatAllocate(r: RequestFields<AllocateRequest>): string {
  if (r.reliability !== 1 && r.reliability !== 2) throw invalid(`\`reliability\` must be 1 or 2 (got ${String(r.reliability)})`);
  if (r.version === 0 && r.rid !== undefined) throw invalid('a v0 ALLOCATE carries no resource id');
  if (r.version === 1 && r.rid === undefined) throw invalid('a v1 ALLOCATE needs a resource id (`0` = any)');
  return line([
    version(r.version),
    String(Command.ALLOCATE),
    ...(r.rid === undefined ? [] : [rid(r.rid)]),
    String(r.reliability),
    integer(r.type, 'type'),
    integer(r.durationSec, 'durationSec'),
    integer(r.size, 'size'),
    timeoutToken(r.timeoutSec),
  ]);
}

/** STORE (append): `V 2 RID#KEY WRM LENGTH TIMEOUT`; the LENGTH body bytes follow. */
export function formatStore(r: RequestFields<StoreRequest>): string {
  return line([
    version(r.version),
    String(Command.STORE),
    ...keyTokens(r.cap),
    integer(r.length, 'length', 1),
    timeoutToken(r.timeoutSec),
  ]);
}

/** WRITE (at an offset): `V 13 RID#KEY WRM OFFSET LENGTH TIMEOUT`; the LENGTH body bytes follow. */
export function formatWrite(r: RequestFields<WriteRequest>): string {
  return line([
    version(r.version),
    String(Command.WRITE),
    ...keyTokens(r.cap),
    integer(r.offset, 'offset', 0),
    integer(r.length, 'length', 1),
    timeoutToken(r.timeoutSec),
  ]);
}

/** LOAD: `V 8 RID#KEY WRM OFFSET LENGTH TIMEOUT`. */
export function formatLoad(r: RequestFields<LoadRequest>): string {
  return line([
    version(r.version),
    String(Command.LOAD),
    ...keyTokens(r.cap),
    integer(r.offset, 'offset', 0),
    integer(r.length, 'length', 1),
    timeoutToken(r.timeoutSec),
  ]);
}

/**
 * MANAGE: `V 9 RID#KEY WRM SUB …ARGS TIMEOUT`. PROBE sends `40 3 0 0 0` (the cap type and three
 * placeholder fields every peer sends and ignores), INCR/DECR `41|42 CAPTYPE`, CHNG
 * `43 CAPTYPE MAXSIZE DURATION REL`, TRUNCATE `45 SIZE`.
 */
export function formatManage(r: RequestFields<ManageRequest>): string {
  let args: string[];
  switch (r.op) {
    case 'probe':
      args = [String(ManageOp.PROBE), '3', '0', '0', '0'];
      break;
    case 'incr':
    case 'decr':
      if (r.capType !== 1 && r.capType !== 2 && r.capType !== 3) {
        throw invalid(`\`capType\` must be 1, 2 or 3 (got ${String(r.capType)})`);
      }
      args = [String(r.op === 'incr' ? ManageOp.INCR : ManageOp.DECR), String(r.capType)];
      break;
    case 'chng':
      args = [
        String(ManageOp.CHNG),
        integer(r.capType, 'capType'),
        integer(r.maxSize, 'maxSize'),
        integer(r.durationSec, 'durationSec'),
        integer(r.reliability, 'reliability'),
      ];
      break;
    case 'truncate':
      args = [String(ManageOp.TRUNCATE), integer(r.size, 'size')];
      break;
    default:
      throw invalid(`unknown MANAGE operation ${JSON.stringify((r as { op: unknown }).op)}`);
  }
  return line([version(r.version), String(Command.MANAGE), ...keyTokens(r.cap), ...args, timeoutToken(r.timeoutSec)]);
}

/**
 * STATUS: ST_INQ `1 4 RID 1 PASSWORD TIMEOUT` (v1; RID `0` = every resource) or `0 4 1 PASSWORD
 * TIMEOUT` (v0); ST_RES `V 4 3 TIMEOUT`; ST_VERSION `V 4 5 TIMEOUT`; ST_CHANGE `V 4 2 2`, which depots
 * refuse (its timeout is always the default).
 */
export function formatStatus(r: RequestFields<StatusRequest>): string {
  const head = [version(r.version), String(Command.STATUS)];
  switch (r.op) {
    case 'inq': {
      if (r.version === 0 && r.rid !== undefined) throw invalid('a v0 ST_INQ carries no resource id');
      if (r.version === 1 && r.rid === undefined) throw invalid('a v1 ST_INQ needs a resource id (`0` = every resource)');
      const ridTokens = r.rid === undefined ? [] : [rid(r.rid)];
      return line([...head, ...ridTokens, String(StatusOp.INQ), token(r.password, 'password'), timeoutToken(r.timeoutSec)]);
    }
    case 'res':
      return line([...head, String(StatusOp.RES), timeoutToken(r.timeoutSec)]);
    case 'version':
      return line([...head, String(StatusOp.VERSION), timeoutToken(r.timeoutSec)]);
    case 'change':
      if (r.timeoutSec !== DEFAULT_REQUEST_TIMEOUT_SEC) {
        throw invalid(`ST_CHANGE always carries the default timeout of ${DEFAULT_REQUEST_TIMEOUT_SEC} s`);
      }
      return line([...head, String(StatusOp.CHANGE), String(DEFAULT_REQUEST_TIMEOUT_SEC)]);
    default:
      throw invalid(`unknown STATUS operation ${JSON.stringify((r as { op: unknown }).op)}`);
  }
}

function remoteCap(cap: Capability, need: 1 | 2, command: string): string {
  if (cap.type !== need) throw invalid(`${command} needs a ${need === 1 ? 'READ' : 'WRITE'} remote capability`);
  return token(formatCapability(cap), 'remote capability');
}

/**
 * SEND: `V 5 KEY DEST_WRITE_CAP WRM OFFSET LENGTH T T T` (the source, destination and
 * destination-client timeouts all carry `timeoutSec`). SEND always appends: `remoteOffset` must be -1.
 */
export function formatSend(r: RequestFields<TransferRequest>): string {
  if (r.remoteOffset !== -1) throw invalid(`SEND always appends: \`remoteOffset\` must be -1 (got ${r.remoteOffset})`);
  const [key, wrm] = keyTokens(r.cap);
  const t = timeoutToken(r.timeoutSec);
  return line([
    version(r.version),
    String(Command.SEND),
    key,
    remoteCap(r.remote, 2, 'SEND'),
    wrm,
    integer(r.localOffset, 'localOffset', 0),
    integer(r.length, 'length', 1),
    t,
    t,
    t,
  ]);
}

/**
 * PHOEBUS_SEND (17), served as a plain SEND: `V 17 [PATH] KEY DEST_WRITE_CAP WRM OFFSET LENGTH T T T`;
 * an empty `path` sends no token (as the ACCRE client's empty field).
 */
export function formatPhoebusSend(r: RequestFields<TransferRequest>): string {
  const send = formatSend(r).split(' ');
  const path = r.path ?? '';
  return [send[0], String(Command.PHOEBUS_SEND), ...(path === '' ? [] : [token(path, 'path')]), ...send.slice(2)].join(' ');
}

function aliasManageArgs(r: AliasManageRequest): string[] {
  switch (r.op) {
    case 'probe':
      return [String(ManageOp.PROBE), '3'];
    case 'incr':
    case 'decr':
      if (r.capType !== 1 && r.capType !== 2) throw invalid(`\`capType\` must be 1 or 2 (got ${String(r.capType)})`);
      return [String(r.op === 'incr' ? ManageOp.INCR : ManageOp.DECR), String(r.capType), ...keyTokens(r.master)];
    case 'chng':
      return [
        String(ManageOp.CHNG),
        integer(r.offset, 'offset', 0),
        integer(r.length, 'length', 0),
        integer(r.durationSec, 'durationSec', 0),
        ...keyTokens(r.master),
      ];
    default:
      throw invalid(`unknown ALIAS_MANAGE operation ${JSON.stringify((r as { op: unknown }).op)}`);
  }
}

/**
 * The ACCRE extensions, as the ACCRE client writes them (`op_cmd.c`):
 * ALIAS_ALLOCATE `V 14 KEY WRM OFFSET LENGTH DURATION T`; ALIAS_MANAGE `V 15 KEY WRM 40 3 T`,
 * `V 15 KEY WRM 41|42 CAPTYPE MKEY MWRM T`, `V 15 KEY WRM 43 OFFSET LENGTH DURATION MKEY MWRM T`;
 * RENAME `V 16 KEY WRM T`; SPLIT `V 18 KEY WRM REL TYPE DURATION SIZE T`; MERGE `V 19 MKEY MWRM CKEY CWRM T`;
 * GET_CHKSUM `V 31 KEY WRM INFO_ONLY T`; VALIDATE_CHKSUM `V 32 KEY WRM CORRECT T`;
 * VEC_WRITE / VEC_READ `V 33|35 KEY WRM N off1 len1 … T`.
 */
export function formatAccre(r: AccreRequest): string {
  const head = (command: number) => [version(r.version), String(command), ...keyTokens(r.cap)];
  const t = timeoutToken(r.timeoutSec);
  switch (r.command) {
    case 'alias_allocate':
      return line([
        ...head(Command.ALIAS_ALLOCATE),
        integer(r.offset, 'offset', 0),
        integer(r.length, 'length', 0),
        integer(r.durationSec, 'durationSec', 0),
        t,
      ]);
    case 'alias_manage':
      return line([...head(Command.ALIAS_MANAGE), ...aliasManageArgs(r), t]);
    case 'rename':
      return line([...head(Command.RENAME), t]);
    case 'split':
      if (r.reliability !== 1 && r.reliability !== 2)
        throw invalid(`\`reliability\` must be 1 or 2 (got ${String(r.reliability)})`);
      return line([
        ...head(Command.SPLIT_ALLOCATE),
        String(r.reliability),
        integer(r.type, 'type'),
        integer(r.durationSec, 'durationSec'),
        integer(r.size, 'size'),
        t,
      ]);
    case 'merge':
      return line([...head(Command.MERGE_ALLOCATE), ...keyTokens(r.child), t]);
    case 'get_chksum':
    case 'validate_chksum':
      return line([
        ...head(r.command === 'get_chksum' ? Command.GET_CHKSUM : Command.VALIDATE_CHKSUM),
        integer(r.flag, 'flag', 0),
        t,
      ]);
    case 'vec_write':
    case 'vec_read': {
      if (r.ranges.length < 1 || r.ranges.length > MAX_IOVEC) {
        throw invalid(`a vector call carries 1 to ${MAX_IOVEC} ranges (got ${r.ranges.length})`);
      }
      const pairs = r.ranges.flatMap((x) => [integer(x.offset, 'offset', 0), integer(x.length, 'length', 1)]);
      const total = r.ranges.reduce((n, x) => n + x.length, 0);
      if (!Number.isSafeInteger(total)) throw invalid('the total length of the ranges is not a safe integer');
      return line([
        ...head(r.command === 'vec_write' ? Command.VEC_WRITE : Command.VEC_READ),
        String(r.ranges.length),
        ...pairs,
        t,
      ]);
    }
    default:
      throw new IbpProtocolError(
        IbpProtocolErrorCode.UNKNOWN_COMMAND,
        `no encoder for command ${JSON.stringify((r as { command: unknown }).command)}`,
      );
  }
}

function formatPushPull(r: RequestFields<TransferRequest>, command: 'push' | 'pull'): string {
  const [key, wrm] = keyTokens(r.cap);
  const t = timeoutToken(r.timeoutSec);
  return line([
    version(r.version),
    String(command === 'push' ? Command.PUSH : Command.PULL),
    '1', // CTYPE 1: TCP (its PATH is empty, so no token)
    key,
    remoteCap(r.remote, command === 'push' ? 2 : 1, command.toUpperCase()),
    wrm,
    integer(r.localOffset, 'localOffset', command === 'push' ? 0 : -1),
    integer(r.remoteOffset, 'remoteOffset', command === 'push' ? -1 : 0),
    integer(r.length, 'length', 1),
    t,
    t,
    t,
  ]);
}

/**
 * PUSH: `V 20 1 KEY DEST_WRITE_CAP WRM LOCAL_OFFSET REMOTE_OFFSET LENGTH T T T` (CTYPE 1 = TCP);
 * `remoteOffset` -1 appends at the destination.
 */
export function formatPush(r: RequestFields<TransferRequest>): string {
  return formatPushPull(r, 'push');
}

/**
 * PULL: `V 21 1 KEY SRC_READ_CAP WRM LOCAL_OFFSET REMOTE_OFFSET LENGTH T T T`; `localOffset` -1
 * appends locally; `remoteOffset` is >= 0 (depots read a remote -1 as 0).
 */
export function formatPull(r: RequestFields<TransferRequest>): string {
  return formatPushPull(r, 'pull');
}

/**
 * NFU first line: `V 12 OPCODE NPARA [TIMEOUT]`; the parameter headers and data follow. LoCI's NFU
 * line has no timeout token, so it is written only when `timeoutSec` is not the default a depot
 * assumes for its absence ({@link DEFAULT_REQUEST_TIMEOUT_SEC}).
 */
export function formatNfu(r: RequestFields<NfuRequest>): string {
  if (!Number.isSafeInteger(r.paramCount) || r.paramCount < 0 || r.paramCount > MAX_NFU_PARAMS) {
    throw invalid(`\`paramCount\` must be from 0 to ${MAX_NFU_PARAMS} (got ${r.paramCount})`);
  }
  return line([
    version(r.version),
    String(Command.NFU),
    integer(r.opcode, 'opcode', 0),
    String(r.paramCount),
    ...(r.timeoutSec === DEFAULT_REQUEST_TIMEOUT_SEC ? [] : [timeoutToken(r.timeoutSec)]),
  ]);
}

/**
 * The command line of any request (the encoder of its command), ending in `\n`.
 *
 * @throws {IbpProtocolError} `IBP_ERR_BAD_FORMAT` for a token with spaces, control characters or
 * non-ASCII bytes; `IBP_ERR_INVALID_PARAMETER` for a number that is not a safe integer or is out of
 * its range, or a field that does not fit the form (a v0 request with a resource id);
 * `IBP_ERR_PROTOCOL_VERSION` for a version other than 0 or 1; `IBP_ERR_UNKNOWN_COMMAND` for an
 * unknown `command`. Each `format*` encoder throws the same codes.
 */
export function formatRequest(r: IbpRequest): string {
  switch (r.command) {
    case 'allocate':
      return formatAllocate(r);
    case 'store':
      return formatStore(r);
    case 'write':
      return formatWrite(r);
    case 'load':
      return formatLoad(r);
    case 'manage':
      return formatManage(r);
    case 'status':
      return formatStatus(r);
    case 'send':
      return formatSend(r);
    case 'phoebus_send':
      return formatPhoebusSend(r);
    case 'alias_allocate':
    case 'alias_manage':
    case 'rename':
    case 'split':
    case 'merge':
    case 'get_chksum':
    case 'validate_chksum':
    case 'vec_write':
    case 'vec_read':
      return formatAccre(r);
    case 'push':
      return formatPush(r);
    case 'pull':
      return formatPull(r);
    case 'nfu':
      return formatNfu(r);
    default:
      throw new IbpProtocolError(
        IbpProtocolErrorCode.UNKNOWN_COMMAND,
        `no encoder for command ${JSON.stringify((r as { command: unknown }).command)}`,
      );
  }
}
