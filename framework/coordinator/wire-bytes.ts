import type { NfuParamSpec } from '../../ibp/index.js';
import { Command, formatCapability, type Capability } from '../../ibp/index.js';

/**
 * Bytes the IBP client writes for an NFU request with these parameters, framed as `IbpClient.nfu` frames
 * them (LoCI wire): `1 NFU OP N\n`, then per parameter `KIND OFFSET LEN DATALEN\n` + data, then `\n`.
 */
export function nfuRequestBytes(opcode: number, params: readonly NfuParamSpec[]): number {
  let n = `1 ${Command.NFU} ${opcode} ${params.length}\n`.length + 1;
  for (const p of params) {
    let dataLength = 0;
    if (p.kind <= 2) dataLength = (typeof p.cap === 'string' ? p.cap : formatCapability(p.cap as Capability)).length;
    else if (p.kind !== 4) dataLength = p.data?.length ?? 0;
    n += `${p.kind} ${p.offset ?? 0} ${p.length ?? 0} ${dataLength}\n`.length + dataLength;
  }
  return n;
}

/** Bytes of a depot's NFU reply: `1 \n`, `N \n`, then per output `INDEX LEN \n` + bytes. */
export function nfuReplyBytes(outputs: ReadonlyMap<number, Uint8Array> | readonly (readonly [number, Uint8Array])[]): number {
  const entries = outputs instanceof Map ? [...outputs] : (outputs as readonly (readonly [number, Uint8Array])[]);
  let n = '1 \n'.length + `${entries.length} \n`.length;
  for (const [index, data] of entries) n += `${index} ${data.length} \n`.length + data.length;
  return n;
}

/** Bytes of a simple request line and its `1 COUNT \n` style reply (ALLOCATE, SEND, PULL, MANAGE). */
export function lineExchangeBytes(requestLine: string, replyLine: string): number {
  return Buffer.byteLength(requestLine, 'latin1') + Buffer.byteLength(replyLine, 'latin1');
}
