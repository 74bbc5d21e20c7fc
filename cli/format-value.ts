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
