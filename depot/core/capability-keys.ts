import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** Bytes of CSPRNG output behind every capability key. */
export const CAP_KEY_BYTES = 32;

/** A new unguessable key: 32 CSPRNG bytes, base64url (43 characters, no `/`, `#` or spaces). */
export function newCapabilityKey(): string {
  return randomBytes(CAP_KEY_BYTES).toString('base64url');
}

/** SHA-256 of a key: the only form in which the depot keeps it. */
export function digestKey(key: string): Buffer {
  return createHash('sha256').update(key, 'latin1').digest();
}

/**
 * Index under which a digest is filed. Only the first half of the digest is used for the map
 * lookup; the whole digest is then compared in constant time ({@link sameDigest}).
 */
export function digestIndex(digest: Buffer): string {
  return digest.toString('base64', 0, 16);
}

export function sameDigest(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
