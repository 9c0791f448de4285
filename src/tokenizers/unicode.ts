// Unicode helpers shared by the tokenizer pipeline: GPT-2's byte<->unicode table, UTF-8 without
// TextEncoder on the hot path, character classes matching the Rust `tokenizers` crate.

let byteToCharTable: string[] | null = null;
let charToByteTable: Map<string, number> | null = null;

/**
 * GPT-2's bytes_to_unicode(): printable bytes (! .. ~, ¡ .. ¬, ® .. ÿ) map to themselves, the other 68
 * bytes map to U+0100.. in byte order, so every byte becomes one visible character and BPE never sees
 * whitespace/control bytes.
 */
export function byteToChar(): string[] {
  if (byteToCharTable) return byteToCharTable;
  const table = new Array<string>(256);
  const keep = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  let n = 0;
  for (let b = 0; b < 256; b++) table[b] = keep(b) ? String.fromCharCode(b) : String.fromCharCode(256 + n++);
  byteToCharTable = table;
  return table;
}

/** Inverse of byteToChar(). */
export function charToByte(): Map<string, number> {
  if (charToByteTable) return charToByteTable;
  const m = new Map<string, number>();
  byteToChar().forEach((c, b) => m.set(c, b));
  charToByteTable = m;
  return m;
}

/** UTF-8 bytes of `s` mapped through byteToChar(), without allocating a Uint8Array. */
export function toByteLevel(s: string): string {
  const t = byteToChar();
  let out = '';
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      out += t[c];
      continue;
    }
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
      }
    }
    if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd; // lone surrogate: what TextEncoder writes
    if (c < 0x800) out += t[0xc0 | (c >> 6)] + t[0x80 | (c & 63)];
    else if (c < 0x10000) out += t[0xe0 | (c >> 12)] + t[0x80 | ((c >> 6) & 63)] + t[0x80 | (c & 63)];
    else out += t[0xf0 | (c >> 18)] + t[0x80 | ((c >> 12) & 63)] + t[0x80 | ((c >> 6) & 63)] + t[0x80 | (c & 63)];
  }
  return out;
}

const encoder = new TextEncoder();
// ignoreBOM: a leading U+FEFF is text to keep, not a byte-order mark to drop
const decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
export function utf8Encode(s: string): Uint8Array {
  return encoder.encode(s);
}
/** Lossy UTF-8 decoding (invalid sequences become U+FFFD), like Rust's from_utf8_lossy. */
export function utf8Decode(b: Uint8Array | number[]): string {
  return decoder.decode(b instanceof Uint8Array ? b : Uint8Array.from(b));
}

// Character classes as the Rust `tokenizers` crate defines them.
// Rust's char::is_whitespace is the Unicode White_Space property (JS \s differs on U+0085 and U+FEFF)
const WHITESPACE = /^\p{White_Space}$/u;
const PUNCT = /^\p{P}$/u;
const OTHER = /^\p{C}$/u;
export function isWhitespace(c: string): boolean {
  return WHITESPACE.test(c);
}
/** BERT punctuation: ASCII punctuation (incl. $+<=>^`|~) or any Unicode P* character. */
export function isBertPunctuation(c: string): boolean {
  const x = c.codePointAt(0)!;
  if ((x >= 33 && x <= 47) || (x >= 58 && x <= 64) || (x >= 91 && x <= 96) || (x >= 123 && x <= 126)) return true;
  return PUNCT.test(c);
}
/** BertNormalizer's control test: \t \n \r count as whitespace, other C* categories are dropped. */
export function isBertControl(c: string): boolean {
  if (c === '\t' || c === '\n' || c === '\r') return false;
  return OTHER.test(c);
}
export function isCjk(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b920 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

/** `<0xNN>` byte-fallback token for byte b (upper-case hex, as sentencepiece writes it). */
export function byteToken(b: number): string {
  return `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
}
const BYTE_TOKEN = /^<0x([0-9A-Fa-f]{2})>$/;
export function parseByteToken(t: string): number | null {
  const m = BYTE_TOKEN.exec(t);
  return m ? parseInt(m[1], 16) : null;
}

/**
 * Translates an Oniguruma/Rust regex as found in tokenizer.json into a JS regex source. JS (Node 20)
 * lacks inline flag groups, so `(?i:abc)` is expanded to `(?:[aA][bB][cC])`; everything else used by
 * published tokenizers (\p{L}, \p{N}, lookahead, \s) means the same under the `u` flag.
 */
export function translateRegex(src: string): string {
  let out = '';
  let inClass = false;
  for (let i = 0; i < src.length; i++) {
    if (src.startsWith('(?i:', i)) {
      let depth = 1,
        j = i + 4,
        inner = '';
      for (; j < src.length && depth > 0; j++) {
        const c = src[j];
        if (c === '\\') {
          inner += c + src[++j];
          continue;
        }
        if (c === '(') depth++;
        if (c === ')' && --depth === 0) break;
        inner += c;
      }
      out += '(?:' + caseless(inner) + ')';
      i = j;
      continue;
    }
    if (src[i] === '\\' && (src[i + 1] === 'p' || src[i + 1] === 'P') && src[i + 2] === '{') {
      const end = src.indexOf('}', i);
      if (end > 0) {
        out += propertyEscape(src[i + 1], src.slice(i + 3, end));
        i = end;
        continue;
      }
    }
    if (src[i] === '\\') {
      out += src[i] + (src[i + 1] ?? '');
      i++;
      continue;
    }
    if (src[i] === '[') inClass = true;
    else if (src[i] === ']') inClass = false;
    // possessive quantifiers (a?+ a*+ a++ a{n}+), which JS lacks: drop the '+' (as js-tiktoken does)
    else if (
      !inClass &&
      src[i] === '+' &&
      i > 0 &&
      '?*+}'.includes(src[i - 1]) &&
      src[i - 2] !== '\\' &&
      out.length &&
      !out.endsWith('\\')
    ) {
      if (!possessive(out)) {
        out += '+';
      }
      continue;
    }
    out += src[i];
  }
  return out;
}

/** True when `out` ends in a quantifier (so a following '+' is possessive, not a second quantifier). */
function possessive(out: string): boolean {
  const last = out[out.length - 1];
  if (last === '}') return /\{\d+(,\d*)?\}$/.test(out);
  // '?' after '(' is a group modifier, not a quantifier
  return last === '?' ? !out.endsWith('(?') : last === '*' || last === '+';
}

/** Oniguruma accepts script names bare (\p{Han}); JS needs \p{Script=Han} for those. */
function propertyEscape(p: string, name: string): string {
  try {
    new RegExp(`\\${p}{${name}}`, 'u');
    return `\\${p}{${name}}`;
  } catch {
    return `\\${p}{Script=${name}}`;
  }
}
/** Letters outside character classes become [xX]; classes and escapes (\p{..} included) are kept. */
function caseless(s: string): string {
  let out = '';
  let inClass = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '\\' && (s[i + 1] === 'p' || s[i + 1] === 'P') && s[i + 2] === '{' && s.indexOf('}', i) > 0) {
      const e = s.indexOf('}', i);
      out += propertyEscape(s[i + 1], s.slice(i + 3, e));
      i = e;
      continue;
    }
    if (c === '\\') {
      out += c + s[++i];
      continue;
    }
    if (c === '[') inClass = true;
    if (c === ']') inClass = false;
    const lo = c.toLowerCase(),
      up = c.toUpperCase();
    out += !inClass && lo !== up ? `[${lo}${up}]` : c;
  }
  return out;
}

export function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\\/]/g, '\\$&');
}
