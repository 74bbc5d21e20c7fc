/** Typed IBP requests, as produced by {@link parseRequest} from one command line. */
import type { Capability } from './caps.js';

/** The two tokens that name a capability in a request: `RID#KEY` split, and the WRM key. */
export interface KeyRef {
  /** Resource id from `RID#`; empty when the token had no `#` (pre-1.4 caps). */
  readonly rid: string;
  readonly key: string;
  readonly wrmKey: string;
}

interface Base {
  /** Protocol version token: 0 or 1. */
  readonly version: 0 | 1;
  /** Server-side timeout in seconds as sent (0 or unparsable tokens become 2, as ACCRE does). */
  readonly timeoutSec: number;
}

export interface AllocateRequest extends Base {
  readonly command: 'allocate';
  /** Resource id; `undefined` for v0 requests, `'0'` for "any resource". */
  readonly rid: string | undefined;
  readonly reliability: 1 | 2;
  readonly type: number;
  /** Relative seconds; -1 = the resource's maximum. */
  readonly durationSec: number;
  readonly size: number;
}

export interface StoreRequest extends Base {
  readonly command: 'store';
  readonly cap: KeyRef;
  readonly length: number;
}

export interface WriteRequest extends Base {
  readonly command: 'write';
  readonly cap: KeyRef;
  readonly offset: number;
  readonly length: number;
}

export interface LoadRequest extends Base {
  readonly command: 'load';
  readonly cap: KeyRef;
  readonly offset: number;
  readonly length: number;
}

export type ManageRequest = Base & { readonly command: 'manage'; readonly cap: KeyRef } & (
    | { readonly op: 'probe' }
    | { readonly op: 'incr' | 'decr'; readonly capType: 1 | 2 | 3 }
    | {
        readonly op: 'chng';
        readonly capType: number;
        readonly maxSize: number;
        /** Relative seconds; negative = unchanged. */
        readonly durationSec: number;
        /** 1 or 2, or -1 = unchanged. */
        readonly reliability: number;
      }
    | { readonly op: 'truncate'; readonly size: number }
  );

export type StatusRequest = Base & { readonly command: 'status' } & (
    | { readonly op: 'inq'; readonly rid: string | undefined; readonly password: string }
    | { readonly op: 'res' }
    | { readonly op: 'version' }
    | { readonly op: 'change' }
  );

/** SEND (5), PHOEBUS_SEND (17, served as SEND), PUSH (20), PULL (21): depot-to-depot transfers. */
export interface TransferRequest extends Base {
  readonly command: 'send' | 'phoebus_send' | 'push' | 'pull';
  /** PHOEBUS_SEND only: the gateway path token (`''` when the client sent an empty one). */
  readonly path?: string;
  /** The local cap: a read cap for SEND/PUSH, a write cap for PULL. */
  readonly cap: KeyRef;
  /** The remote cap: a write cap for SEND/PUSH, a read cap for PULL. */
  readonly remote: Capability;
  /** Offset in the local allocation; -1 appends (PULL only). */
  readonly localOffset: number;
  /** Offset in the remote allocation; -1 appends (SEND always appends). */
  readonly remoteOffset: number;
  readonly length: number;
}

/** NFU (12), first line `V 12 OPCODE NPARA`; the parameters follow on their own lines. */
export interface NfuRequest extends Base {
  readonly command: 'nfu';
  readonly opcode: number;
  readonly paramCount: number;
}

/** NFU parameter kinds, in wire order. */
export const NfuParamKind = { REF_RD: 0, REF_WR: 1, REF_RDWR: 2, VAL_IN: 3, VAL_OUT: 4, VAL_INOUT: 5 } as const;
export type NfuParamKindNumber = (typeof NfuParamKind)[keyof typeof NfuParamKind];

/** One NFU parameter as read from the wire: `IOTYPE OFFSET LEN DATALEN` + DATALEN bytes. */
export interface NfuParam {
  readonly kind: NfuParamKindNumber;
  readonly offset: number;
  readonly length: number;
  /** The cap string (REF_*), the input bytes (VAL_IN/INOUT), or empty (VAL_OUT). */
  readonly data: Buffer;
}

/** ALIAS (PROXY) ALLOCATE (14): new caps limited to `[offset, offset + length)` of the allocation a manage cap names. */
export interface AliasAllocateRequest extends Base {
  readonly command: 'alias_allocate';
  readonly cap: KeyRef;
  readonly offset: number;
  readonly length: number;
  /** Relative seconds; 0 = the allocation's own lease. */
  readonly durationSec: number;
}

/** ALIAS MANAGE (15), on an alias's manage cap; INCR/DECR/CHNG also carry the master's manage key. */
export type AliasManageRequest = Base & { readonly command: 'alias_manage'; readonly cap: KeyRef } & (
    | { readonly op: 'probe' }
    | { readonly op: 'incr' | 'decr'; readonly capType: 1 | 2; readonly master: KeyRef }
    | {
        readonly op: 'chng';
        readonly offset: number;
        readonly length: number;
        readonly durationSec: number;
        readonly master: KeyRef;
      }
  );

/** RENAME (16): new caps for the allocation a manage cap names; the old ones stop working. */
export interface RenameRequest extends Base {
  readonly command: 'rename';
  readonly cap: KeyRef;
}

/** SPLIT_ALLOCATE (18): a new allocation carved out of the max size of the one a manage cap names. */
export interface SplitRequest extends Base {
  readonly command: 'split';
  readonly cap: KeyRef;
  readonly reliability: 1 | 2;
  readonly type: number;
  readonly durationSec: number;
  readonly size: number;
}

/** MERGE_ALLOCATE (19): the child's space joins the master's; the child is deleted. */
export interface MergeRequest extends Base {
  readonly command: 'merge';
  readonly cap: KeyRef;
  readonly child: KeyRef;
}

/** GET_CHKSUM (31, `flag` = chksum_info_only) and VALIDATE_CHKSUM (32, `flag` = correct_errors). */
export interface ChksumRequest extends Base {
  readonly command: 'get_chksum' | 'validate_chksum';
  readonly cap: KeyRef;
  readonly flag: number;
}

/** One (offset, length) pair of a vector call. */
export interface IoRange {
  readonly offset: number;
  readonly length: number;
}

/** VEC_WRITE (33) / VEC_READ (35): scatter/gather over (offset, length) pairs; the bytes are concatenated. */
export interface VecRequest extends Base {
  readonly command: 'vec_write' | 'vec_read';
  readonly cap: KeyRef;
  readonly ranges: readonly IoRange[];
}

/** The ACCRE extensions, served by depot/server/accre-commands.ts. */
export type AccreRequest =
  AliasAllocateRequest | AliasManageRequest | RenameRequest | SplitRequest | MergeRequest | ChksumRequest | VecRequest;

export type IbpRequest =
  | AllocateRequest
  | StoreRequest
  | WriteRequest
  | LoadRequest
  | ManageRequest
  | StatusRequest
  | TransferRequest
  | NfuRequest
  | AccreRequest;
