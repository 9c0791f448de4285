// Sets of Unicode code points as sorted, disjoint, inclusive ranges, and their UTF-8 byte-range form.
// Constraints are written over code points (regex classes, JSON string characters) but tokens are byte
// strings, so every code-point range becomes a few byte-range sequences (the scheme of Rust's
// regex-syntax utf8 module). Surrogates (U+D800..U+DFFF) are never members: they have no UTF-8 form.

/** Flat [lo0, hi0, lo1, hi1, ...], sorted, disjoint, non-adjacent, inclusive. */
export type Ranges = readonly number[];

export const MAX_CP = 0x10ffff;
/** Every encodable code point. */
export const ALL: Ranges = [0, 0xd7ff, 0xe000, MAX_CP];
export const EMPTY: Ranges = [];

export function isEmpty(r: Ranges): boolean {
  return r.length === 0;
}

/** Sorts and merges arbitrary [lo, hi] pairs, dropping surrogates. */
export function normalize(pairs: number[]): Ranges {
  const ps: [number, number][] = [];
  for (let i = 0; i < pairs.length; i += 2) if (pairs[i] <= pairs[i + 1]) ps.push([pairs[i], pairs[i + 1]]);
  ps.sort((a, b) => a[0] - b[0]);
  const out: number[] = [];
  for (const [lo, hi] of ps) {
    const n = out.length;
    if (n && lo <= out[n - 1] + 1) out[n - 1] = Math.max(out[n - 1], hi);
    else out.push(lo, hi);
  }
  return intersect(out, ALL);
}

export function union(a: Ranges, b: Ranges): Ranges {
  return normalize([...a, ...b]);
}

export function intersect(a: Ranges, b: Ranges): Ranges {
  const out: number[] = [];
  let i = 0,
    j = 0;
  while (i < a.length && j < b.length) {
    const lo = Math.max(a[i], b[j]),
      hi = Math.min(a[i + 1], b[j + 1]);
    if (lo <= hi) out.push(lo, hi);
    if (a[i + 1] < b[j + 1]) i += 2;
    else j += 2;
  }
  return out;
}

/** ALL minus r. */
export function complement(r: Ranges): Ranges {
  const out: number[] = [];
  let next = 0;
  for (let i = 0; i < r.length; i += 2) {
    if (r[i] > next) out.push(next, r[i] - 1);
    next = r[i + 1] + 1;
  }
  if (next <= MAX_CP) out.push(next, MAX_CP);
  return intersect(out, ALL);
}

export function subtract(a: Ranges, b: Ranges): Ranges {
  return intersect(a, complement(b));
}

export function ofChars(s: string): Ranges {
  const pairs: number[] = [];
  for (const c of s) pairs.push(c.codePointAt(0)!, c.codePointAt(0)!);
  return normalize(pairs);
}
export function ofRange(lo: number, hi: number): Ranges {
  return normalize([lo, hi]);
}

export function contains(r: Ranges, cp: number): boolean {
  for (let i = 0; i < r.length; i += 2) if (cp >= r[i] && cp <= r[i + 1]) return true;
  return false;
}

/** Up to `limit` members, for error messages. */
export function sample(r: Ranges, limit: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < r.length && out.length < limit; i += 2) {
    for (let c = r[i]; c <= r[i + 1] && out.length < limit; c++) out.push(c);
  }
  return out;
}

export function size(r: Ranges): number {
  let n = 0;
  for (let i = 0; i < r.length; i += 2) n += r[i + 1] - r[i] + 1;
  return n;
}

function utf8(cp: number): number[] {
  if (cp < 0x80) return [cp];
  if (cp < 0x800) return [0xc0 | (cp >> 6), 0x80 | (cp & 63)];
  if (cp < 0x10000) return [0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63)];
  return [0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 63), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63)];
}

/** Byte-range sequences whose union is exactly the UTF-8 encodings of [lo, hi]: each is [[lo, hi] per byte]. */
export function utf8Sequences(lo: number, hi: number, out: [number, number][][] = []): [number, number][][] {
  if (lo > hi) return out;
  // one encoding length at a time
  for (const max of [0x7f, 0x7ff, 0xffff]) {
    if (lo <= max && max < hi) {
      utf8Sequences(lo, max, out);
      return utf8Sequences(max + 1, hi, out);
    }
  }
  if (hi <= 0x7f) {
    out.push([[lo, hi]]);
    return out;
  }
  // split until every continuation byte position spans a full or a single-prefix range
  for (let i = 1; i < 4; i++) {
    const m = (1 << (6 * i)) - 1;
    if ((lo & ~m) !== (hi & ~m)) {
      if ((lo & m) !== 0) {
        utf8Sequences(lo, lo | m, out);
        return utf8Sequences((lo | m) + 1, hi, out);
      }
      if ((hi & m) !== m) {
        utf8Sequences(lo, (hi & ~m) - 1, out);
        return utf8Sequences(hi & ~m, hi, out);
      }
    }
  }
  const a = utf8(lo),
    b = utf8(hi);
  out.push(a.map((x, k) => [x, b[k]]));
  return out;
}
