/** Label value the cross-entropy loss skips (PyTorch's default ignore_index). */
export const IGNORE_INDEX = -100;

/** Right-pads rows to the same length into a flat (rows, L) Int32Array. */
export function padRows(
  rows: ArrayLike<number>[],
  padValue: number,
  length?: number,
): { data: Int32Array; length: number } {
  const L = length ?? rows.reduce((m, r) => Math.max(m, r.length), 0);
  const data = new Int32Array(rows.length * L).fill(padValue);
  rows.forEach((r, i) => {
    if (r.length > L) throw new Error(`padRows: row ${i} has ${r.length} tokens, more than length ${L}`);
    for (let t = 0; t < r.length; t++) data[i * L + t] = r[t];
  });
  return { data, length: L };
}

/** 1 where a row has a real token, 0 in its right padding: (rows, L). */
export function lengthMask(lengths: number[], L: number): Uint8Array {
  const m = new Uint8Array(lengths.length * L);
  lengths.forEach((n, i) => m.fill(1, i * L, i * L + n));
  return m;
}
