/**
 * Reply formatters, byte-exact with the ACCRE depot's shapes (docs/protocol.md lists them): the
 * status, single spaces, and a space before the newline, which peer clients that split on single
 * spaces without trimming rely on.
 */

/** `1 \n`: success without values, and the go-ahead before a STORE/WRITE body. */
export const OK_REPLY = '1 \n';

/** `-N \n`, or `-66 <retry> \n` with extra tokens. */
export function errorReply(status: number, ...extra: readonly (string | number)[]): string {
  return extra.length === 0 ? `${status} \n` : `${status} ${extra.join(' ')} \n`;
}

/** `1 READCAP WRITECAP MANAGECAP \n` */
export function allocateReply(read: string, write: string, manage: string): string {
  return `1 ${read} ${write} ${manage} \n`;
}

/** `1 NBYTES \n`: after a STORE/WRITE body, before LOAD data, before a v1 ST_INQ body. */
export function countReply(nbytes: number): string {
  return `1 ${nbytes} \n`;
}

export interface ProbeFields {
  readonly readRefs: number;
  readonly writeRefs: number;
  readonly size: number;
  readonly maxSize: number;
  readonly secondsLeft: number;
  readonly reliability: number;
  readonly type: number;
  /** FIFO and CIRQ only: bytes ever stored (the write position; wraps = floor(written / maxSize)). */
  readonly written?: number;
  /** FIFO and CIRQ only: bytes consumed by reads (always 0 for a CIRQ). */
  readonly consumed?: number;
}

/**
 * `1 READ_REF WRITE_REF CUR_SIZE MAX_SIZE SECONDS_LEFT RELIABILITY TYPE \n`; a FIFO or CIRQ adds
 * `WRITTEN CONSUMED` before the newline (clients reading seven fields ignore them).
 */
export function probeReply(p: ProbeFields): string {
  const ring = p.written === undefined ? '' : ` ${p.written} ${p.consumed ?? 0}`;
  return `1 ${p.readRefs} ${p.writeRefs} ${p.size} ${p.maxSize} ${p.secondsLeft} ${p.reliability} ${p.type}${ring} \n`;
}

/** ALIAS_MANAGE PROBE: `1 READ_REF WRITE_REF OFFSET LENGTH SECONDS_LEFT \n`. */
export function aliasProbeReply(p: {
  readonly readRefs: number;
  readonly writeRefs: number;
  readonly offset: number;
  readonly length: number;
  readonly secondsLeft: number;
}): string {
  return `1 ${p.readRefs} ${p.writeRefs} ${p.offset} ${p.length} ${p.secondsLeft} \n`;
}

/** `1 RID1 RID2 … \n` (ST_RES). */
export function resourcesReply(rids: readonly string[]): string {
  return `1 ${rids.map((r) => `${r} `).join('')}\n`;
}

/** ST_VERSION: `1\n`, free text lines, then `END\n`. */
export function versionReply(lines: readonly string[]): string {
  return `1\n${lines.map((l) => `${l.replace(/[\r\n]/g, ' ')}\n`).join('')}END\n`;
}

export interface ResourceStatus {
  readonly rid: string;
  /** 1 = disk, 2 = RAM (`RS_DISK`/`RS_RAM`). */
  readonly resourceType: 1 | 2;
  readonly capacityBytes: number;
  readonly usedBytes: number;
  readonly maxDurationSec: number;
}

/**
 * The v1 ST_INQ body: `VS:1.4:1.0 DT:1 [NFU:op:op…] RID:r RT:t CT:… ST:… UT:… UH:… SH:… CH:…
 * AT:… AH:… DR:… RE … \n`, one `RID … RE` group per resource. All resources serve hard
 * allocations only, so the hard and total figures coincide.
 */
export function inquiryBodyV1(resources: readonly ResourceStatus[], nfuOps: readonly number[]): string {
  const parts = ['VS:1.4:1.0', 'DT:1'];
  if (nfuOps.length > 0) parts.push(`NFU:${nfuOps.join(':')}`);
  for (const r of resources) {
    const free = Math.max(0, r.capacityBytes - r.usedBytes);
    parts.push(
      `RID:${r.rid}`,
      `RT:${r.resourceType}`,
      `CT:${r.capacityBytes}`,
      `ST:${r.capacityBytes}`,
      `UT:${r.usedBytes}`,
      `UH:${r.usedBytes}`,
      `SH:${r.capacityBytes}`,
      `CH:${r.capacityBytes}`,
      `AT:${free}`,
      `AH:${free}`,
      `DR:${r.maxDurationSec}`,
      'RE',
    );
  }
  return `${parts.join(' ')} \n`;
}

const MIB = 1024 * 1024;

/** The v0 ST_INQ reply (no status line): `HARD_MB HARD_USED_MB SOFT_MB SOFT_USED_MB MAX_DURATION \n`. */
export function inquiryBodyV0(resources: readonly ResourceStatus[]): string {
  let capacity = 0;
  let used = 0;
  let maxDuration = 0;
  for (const r of resources) {
    capacity += r.capacityBytes;
    used += r.usedBytes;
    maxDuration = Math.max(maxDuration, r.maxDurationSec);
  }
  const capMb = Math.floor(capacity / MIB);
  const usedMb = Math.ceil(used / MIB);
  return `${capMb} ${usedMb} ${capMb} ${usedMb} ${maxDuration} \n`;
}
