/** `n` bytes of a pattern that differs with `seed` and does not repeat within 4 KiB, so a misplaced byte shows. */
export function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 131 + seed * 7 + (i >> 12)) & 0xff;
  return b;
}
