// Regular expressions for bounded JSON numbers (JSON Schema minimum / maximum / exclusive*).
// Integers: an exact digit-by-digit range regex. Numbers with a fraction: the integer part is ranged and
// the fraction is free except at a bound (`5` inclusive allows 5.000, exclusive allows only 5.0..01+).
// Non-integer bounds of `number` are rounded inward (minimum 0.5 generates values >= 1): every output
// stays valid, some valid values are unreachable; docs/CONSTRAINED.md says so. No exponents when bounded.

export interface Bound {
  value: number;
  exclusive: boolean;
}

const LIMIT = 1e15;

function checkLimit(v: number): void {
  if (Math.abs(v) > LIMIT) throw new Error(`json schema: numeric bounds beyond ±${LIMIT} are not supported`);
}

/** Regex source for the naturals a..b (b = Infinity for unbounded), no leading zeros. */
export function naturalRange(a: number, b: number): string {
  if (a > b) throw new Error(`naturalRange: ${a} > ${b}`);
  const alts: string[] = [];
  const la = String(a).length;
  if (b === Infinity) {
    alts.push(sameLength(String(a), '9'.repeat(la)));
    alts.push(`[1-9]\\d{${la},}`);
    return `(?:${alts.join('|')})`;
  }
  const lb = String(b).length;
  for (let len = la; len <= lb; len++) {
    const lo = len === la ? String(a) : '1' + '0'.repeat(len - 1);
    const hi = len === lb ? String(b) : '9'.repeat(len);
    alts.push(sameLength(lo, hi));
  }
  return `(?:${alts.join('|')})`;
}

/** Digit strings of one length from lo to hi (lo <= hi as numbers). */
function sameLength(lo: string, hi: string): string {
  if (lo.length === 1) return lo === hi ? lo : `[${lo}-${hi}]`;
  if (lo[0] === hi[0]) return lo[0] + sameLength(lo.slice(1), hi.slice(1));
  const rest = lo.length - 1;
  const alts = [lo[0] + sameLength(lo.slice(1), '9'.repeat(rest))];
  const d0 = Number(lo[0]) + 1,
    d1 = Number(hi[0]) - 1;
  if (d0 <= d1) alts.push(`${d0 === d1 ? d0 : `[${d0}-${d1}]`}\\d{${rest}}`);
  alts.push(hi[0] + sameLength('0'.repeat(rest), hi.slice(1)));
  return `(?:${alts.join('|')})`;
}

/** Inclusive integer bounds [L, H] (±Infinity when absent), or null when empty. */
function integerBounds(lo: Bound | null, hi: Bound | null): [number, number] | null {
  if (lo) checkLimit(lo.value);
  if (hi) checkLimit(hi.value);
  const L = !lo ? -Infinity : lo.exclusive ? Math.floor(lo.value) + 1 : Math.ceil(lo.value);
  const H = !hi ? Infinity : hi.exclusive ? Math.ceil(hi.value) - 1 : Math.floor(hi.value);
  return L <= H ? [L, H] : null;
}

export function integerRangeRegex(lo: Bound | null, hi: Bound | null): string | null {
  const r = integerBounds(lo, hi);
  if (!r) return null;
  const [L, H] = r;
  const alts: string[] = [];
  if (H >= 0) alts.push(naturalRange(Math.max(L, 0), H));
  if (L < 0) alts.push('-' + naturalRange(Math.max(-H, 1), -L));
  return alts.length === 1 ? alts[0] : `(?:${alts.join('|')})`;
}

const FRACTION = '(?:\\.\\d+)?';
const ZEROS = '(?:\\.0+)?';
const NONZERO = '\\.0*[1-9]\\d*';

/**
 * Magnitudes m with A <= m <= B (or A < m when openA, m < B when openB), written I(.F)?; A, B are
 * non-negative integers, B may be Infinity.
 */
function magnitudeRange(A: number, B: number, openA: boolean, openB: boolean): string[] {
  if (A === B) return openA || openB ? [] : [`${A}${ZEROS}`];
  const alts = [openA ? `${A}${NONZERO}` : `${A}${FRACTION}`];
  if (A + 1 <= B - 1) alts.push(naturalRange(A + 1, B - 1) + FRACTION);
  else if (B === Infinity) alts.push(naturalRange(A + 1, Infinity) + FRACTION);
  if (B !== Infinity && !openB) alts.push(`${B}${ZEROS}`);
  return alts;
}

/** Real numbers in the bounds; non-integer bounds are rounded inward to integers. */
export function numberRangeRegex(lo: Bound | null, hi: Bound | null): string | null {
  if (lo) checkLimit(lo.value);
  if (hi) checkLimit(hi.value);
  const round = (b: Bound | null, up: boolean): Bound | null => {
    if (!b || Number.isInteger(b.value)) return b;
    return { value: up ? Math.ceil(b.value) : Math.floor(b.value), exclusive: false };
  };
  const l = round(lo, true),
    h = round(hi, false);
  const L = l ? l.value : -Infinity,
    H = h ? h.value : Infinity;
  if (L > H || (L === H && (l!.exclusive || h!.exclusive))) return null;
  const alts: string[] = [];
  if (H >= 0) {
    // non-negative side: [max(L, 0), H]
    const A = Math.max(L, 0);
    alts.push(...magnitudeRange(A, H, L >= 0 && !!l?.exclusive, !!h?.exclusive));
  }
  if (L < 0) {
    // negative side: magnitudes in (max(-H, 0), -L], zero excluded (it is written on the other side)
    const A = Math.max(-H, 0);
    const openA = H >= 0 ? true : !!h?.exclusive;
    alts.push(...magnitudeRange(A, -L, openA, !!l?.exclusive).map((a) => '-' + a));
  }
  if (!alts.length) return null;
  return `(?:${alts.join('|')})`;
}
