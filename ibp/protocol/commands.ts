/**
 * IBP wire constants: protocol versions, command and sub-command numbers, status codes.
 * Numbers are those of `ibp_protocol.h` shared by the LoCI 1.4 and ACCRE depots (the tables are
 * in docs/protocol.md); names follow the same spelling.
 */

/** Protocol version tokens: `0` = IBPv031 (no RID field), `1` = IBPv040 (adds the RID). */
export const IBP_V0 = 0;
export const IBP_V1 = 1;

/** Default TCP port of an IBP depot. */
export const IBP_DEFAULT_PORT = 6714;
/** The ST_INQ password the peer tools send by default. */
export const DEFAULT_STATUS_PASSWORD = 'ibp';

export const Command = {
  ALLOCATE: 1,
  STORE: 2,
  DELIVER: 3,
  STATUS: 4,
  SEND: 5,
  MCOPY: 6,
  REMOTE_STORE: 7,
  LOAD: 8,
  MANAGE: 9,
  SEND_BU: 10,
  CT_COPY: 11,
  NFU: 12,
  WRITE: 13,
  ALIAS_ALLOCATE: 14,
  ALIAS_MANAGE: 15,
  RENAME: 16,
  PHOEBUS_SEND: 17,
  SPLIT_ALLOCATE: 18,
  MERGE_ALLOCATE: 19,
  PUSH: 20,
  PULL: 21,
  PUSH_CHKSUM: 22,
  PULL_CHKSUM: 23,
  LOAD_CHKSUM: 24,
  SEND_CHKSUM: 25,
  PHOEBUS_SEND_CHKSUM: 26,
  WRITE_CHKSUM: 27,
  STORE_CHKSUM: 28,
  ALLOCATE_CHKSUM: 29,
  SPLIT_ALLOCATE_CHKSUM: 30,
  GET_CHKSUM: 31,
  VALIDATE_CHKSUM: 32,
  VEC_WRITE: 33,
  VEC_WRITE_CHKSUM: 34,
  VEC_READ: 35,
  VEC_READ_CHKSUM: 36,
} as const;

/** The command each ACCRE `_CHKSUM` variant adds `CS_TYPE BLOCKSIZE` to (after the command number). */
export const CHKSUM_BASE_COMMAND: Readonly<Record<number, number>> = {
  22: 20,
  23: 21,
  24: 8,
  25: 5,
  26: 17,
  27: 13,
  28: 2,
  29: 1,
  30: 18,
  34: 33,
  36: 35,
};

/** ACCRE checksum types (`tbx/chksum.h`); only NONE is served (block CRCs are the depot's own). */
export const ChksumType = { NONE: 0, SHA256: 1, SHA512: 2, SHA1: 3, MD5: 4 } as const;

/** Most (offset, length) pairs a VEC_READ / VEC_WRITE may carry (ACCRE `IOVEC_MAX`). */
export const MAX_IOVEC = 4096;
export type CommandNumber = (typeof Command)[keyof typeof Command];

export const ManageOp = {
  PROBE: 40,
  INCR: 41,
  DECR: 42,
  CHNG: 43,
  CONFIG: 44,
  TRUNCATE: 45,
} as const;

export const StatusOp = {
  INQ: 1,
  CHANGE: 2,
  RES: 3,
  STATS: 4,
  VERSION: 5,
} as const;

/** Allocation reliability: soft (volatile, may be reclaimed) or hard (stable). */
export const Reliability = { SOFT: 1, HARD: 2 } as const;
/** Allocation types; only BYTEARRAY is served (as by the ACCRE depot). */
export const AllocationType = { BYTEARRAY: 1, BUFFER: 2, FIFO: 3, CIRQ: 4 } as const;
/** Capability types as used by MANAGE INCR/DECR and in cap strings. */
export const CapType = { READ: 1, WRITE: 2, MANAGE: 3 } as const;
export type CapTypeNumber = (typeof CapType)[keyof typeof CapType];
export const CAP_TYPE_WORD: Readonly<Record<CapTypeNumber, string>> = {
  1: 'READ',
  2: 'WRITE',
  3: 'MANAGE',
};

/** IBP reply status codes. `OK` is 1, every error is negative. */
export const Status = {
  OK: 1,
  GENERIC: -1,
  SOCK_READ: -2,
  SOCK_WRITE: -3,
  CAP_NOT_FOUND: -4,
  CAP_NOT_WRITE: -5,
  CAP_NOT_READ: -6,
  CAP_NOT_MANAGE: -7,
  INVALID_WRITE_CAP: -8,
  INVALID_READ_CAP: -9,
  INVALID_MANAGE_CAP: -10,
  WRONG_CAP_FORMAT: -11,
  CAP_ACCESS_DENIED: -12,
  CONNECTION: -13,
  FILE_OPEN: -14,
  FILE_READ: -15,
  FILE_WRITE: -16,
  FILE_ACCESS: -17,
  FILE_SEEK_ERROR: -18,
  WOULD_EXCEED_LIMIT: -19,
  WOULD_DAMAGE_DATA: -20,
  BAD_FORMAT: -21,
  TYPE_NOT_SUPPORTED: -22,
  RSRC_UNAVAIL: -23,
  INTERNAL: -24,
  INVALID_CMD: -25,
  WOULD_BLOCK: -26,
  PROT_VERS: -27,
  LONG_DURATION: -28,
  WRONG_PASSWD: -29,
  INVALID_PARAMETER: -30,
  INV_PAR_HOST: -31,
  INV_PAR_PORT: -32,
  INV_PAR_ATDR: -33,
  INV_PAR_ATRL: -34,
  INV_PAR_ATTP: -35,
  INV_PAR_SIZE: -36,
  INV_PAR_PTR: -37,
  ALLOC_FAILED: -38,
  TOO_MANY_UNITS: -39,
  SET_SOCK_ATTR: -40,
  GET_SOCK_ATTR: -41,
  CLIENT_TIMEOUT: -42,
  UNKNOWN_FUNCTION: -43,
  INV_IP_ADDR: -44,
  WOULD_EXCEED_POLICY: -45,
  SERVER_TIMEOUT: -46,
  SERVER_RECOVERING: -47,
  CAP_DELETING: -48,
  UNKNOWN_RS: -49,
  INVALID_RID: -50,
  NFU_UNKNOWN: -51,
  NFU_DUP_PARA: -52,
  QUEUE_FULL: -53,
  CRT_AUTH_FAIL: -54,
  INVALID_CERT_FILE: -55,
  INVALID_PRIVATE_KEY_PASSWD: -56,
  INVALID_PRIVATE_KEY_FILE: -57,
  AUTHENTICATION_REQ: -58,
  AUTHEN_NOT_SUPPORT: -59,
  AUTHENTICATION_FAILED: -60,
  INVALID_HOST: -61,
  CANT_CONNECT: -62,
  CHKSUM: -63,
  CHKSUM_TYPE: -64,
  CHKSUM_BLOCKSIZE: -65,
  OUT_OF_SOCKETS: -66,
} as const;
export type StatusCode = (typeof Status)[keyof typeof Status];

const STATUS_NAMES = new Map<number, string>(Object.entries(Status).map(([k, v]) => [v, k]));

/** The symbolic name of a status code (`-4` → `CAP_NOT_FOUND`), or `UNKNOWN(<n>)`. */
export function statusName(code: number): string {
  return STATUS_NAMES.get(code) ?? `UNKNOWN(${code})`;
}
