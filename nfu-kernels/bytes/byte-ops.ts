import { sha256 } from '@noble/hashes/sha2.js';
import { KernelError, KernelErrorCode } from '../errors.js';
import { catalogued, type KernelConfig } from '../kernel.js';

/** LoCI's xor: `out[i] = p0[i] xor p1[i mod len(p1)]` for `i < len(p0)`. */
export function xorBytes(p0: Uint8Array, p1: Uint8Array): Uint8Array {
  if (p1.length === 0) throw new KernelError(KernelErrorCode.BAD_PARAMETERS, 'xor: the key (parameter 1) is empty');
  const out = new Uint8Array(p0.length);
  for (let i = 0; i < p0.length; i++) out[i] = p0[i]! ^ p1[i % p1.length]!;
  return out;
}

/** Opcode 1 with the LoCI semantics, so LoCI NFU clients work unchanged. */
export const xorKernel: KernelConfig = {
  ...catalogued('xor'),
  outputBytes: (_a, lengths) => lengths[0] ?? 0,
  workBytes: () => 0,
  run: (_a, [p0, p1]) => xorBytes(p0!, p1!),
};

export const sha256Kernel: KernelConfig = {
  ...catalogued('sha256'),
  outputBytes: () => 32,
  workBytes: () => 0,
  run: (_a, [data]) => sha256(data!),
};
