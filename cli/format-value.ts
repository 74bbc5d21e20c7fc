/**
 * An estimate's value as text: a vector on one line, a matrix (its length a multiple of `cols` above `cols`,
 * row-major) as its shape and one line per row, the numbers right-aligned in columns.
 */
export function formatValue(value: ArrayLike<number>, cols: number, digits = 6): string {
  const cells = Array.from(value, (v) => v.toPrecision(digits));
  if (cols < 1 || cells.length <= cols || cells.length % cols !== 0) return `value: ${cells.join(' ')}\n`;
  const rows = cells.length / cols;
  const width = Math.max(...cells.map((c) => c.length));
  let out = `value (${rows} × ${cols}):\n`;
  for (let i = 0; i < rows; i++)
    out += `  ${cells
      .slice(i * cols, (i + 1) * cols)
      .map((c) => c.padStart(width))
      .join(' ')}\n`;
  return out;
}

/**
 * A probability (δ) as text: four significant digits, trailing zeros dropped, so that a sum of parts such as
 * 0.05 + 0.01 prints as 0.06 (not 0.060000000000000005) and 0.025 stays 0.025.
 */
export function formatProbability(p: number): string {
  return Number.isFinite(p) ? String(Number(p.toPrecision(4))) : String(p);
}
