// Normalizers: the first stage of the tokenizer.json pipeline (text -> text), one class per HF type.
import { isBertControl, isCjk, isWhitespace, translateRegex, escapeRegex } from './unicode.js';

export interface Normalizer {
  normalize(text: string): string;
  toJSON(): Record<string, unknown>;
}

type Json = Record<string, any>;

/** HF `Pattern`: `{String: "..."}` (literal) or `{Regex: "..."}`. */
export function patternToRegExp(p: Json, where: string): RegExp {
  if (p && typeof p.String === 'string') return new RegExp(escapeRegex(p.String), 'gu');
  if (p && typeof p.Regex === 'string') return new RegExp(translateRegex(p.Regex), 'gu');
  throw new Error(
    `tokenizer.json: ${where}.pattern must be {"String": ...} or {"Regex": ...}, got ${JSON.stringify(p)}`,
  );
}

class Unicode implements Normalizer {
  constructor(private form: 'NFC' | 'NFD' | 'NFKC' | 'NFKD') {}
  normalize(t: string) {
    return t.normalize(this.form);
  }
  toJSON() {
    return { type: this.form };
  }
}
/**
 * Rust's per-char `char::to_lowercase`, as HF's NormalizedString::lowercase applies it: unlike JavaScript's
 * String#toLowerCase there is no context rule, so a word-final capital sigma becomes σ, never ς.
 */
export function lowercase(t: string): string {
  if (!t.includes('\u03a3')) return t.toLowerCase(); // Σ is the only context-dependent mapping
  let out = '';
  for (const c of t) out += c.toLowerCase();
  return out;
}
class Lowercase implements Normalizer {
  normalize(t: string) {
    return lowercase(t);
  }
  toJSON() {
    return { type: 'Lowercase' };
  }
}
class StripAccents implements Normalizer {
  // HF StripAccents removes nonspacing marks (Mn); it expects NFD input (BertNormalizer does the NFD).
  normalize(t: string) {
    return t.replace(/\p{Mn}/gu, '');
  }
  toJSON() {
    return { type: 'StripAccents' };
  }
}
class Strip implements Normalizer {
  constructor(
    private left: boolean,
    private right: boolean,
  ) {}
  normalize(t: string) {
    if (this.left) t = t.replace(/^\p{White_Space}+/u, '');
    if (this.right) t = t.replace(/\p{White_Space}+$/u, '');
    return t;
  }
  toJSON() {
    return { type: 'Strip', strip_left: this.left, strip_right: this.right };
  }
}
class Replace implements Normalizer {
  private re: RegExp;
  constructor(
    private pattern: Json,
    private content: string,
  ) {
    this.re = patternToRegExp(pattern, 'normalizer Replace');
  }
  normalize(t: string) {
    return t.replace(this.re, () => this.content);
  }
  toJSON() {
    return { type: 'Replace', pattern: this.pattern, content: this.content };
  }
}
class Prepend implements Normalizer {
  constructor(private prepend: string) {}
  normalize(t: string) {
    return t.length ? this.prepend + t : t;
  }
  toJSON() {
    return { type: 'Prepend', prepend: this.prepend };
  }
}
class Sequence implements Normalizer {
  constructor(private items: Normalizer[]) {}
  normalize(t: string) {
    for (const n of this.items) t = n.normalize(t);
    return t;
  }
  toJSON() {
    return { type: 'Sequence', normalizers: this.items.map((n) => n.toJSON()) };
  }
}

/** BERT's normalizer: clean control chars, pad CJK with spaces, strip accents, lowercase (in HF's order). */
export class BertNormalizer implements Normalizer {
  constructor(
    readonly cleanText = true,
    readonly handleChineseChars = true,
    readonly stripAccents: boolean | null = null,
    readonly lowercase = true,
  ) {}
  normalize(text: string): string {
    let out = '';
    for (const c of text) {
      const cp = c.codePointAt(0)!;
      if (this.cleanText) {
        if (cp === 0 || cp === 0xfffd || isBertControl(c)) continue;
        if (isWhitespace(c)) {
          out += ' ';
          continue;
        }
      }
      if (this.handleChineseChars && isCjk(cp)) {
        out += ' ' + c + ' ';
        continue;
      }
      out += c;
    }
    if (this.stripAccents ?? this.lowercase) out = out.normalize('NFD').replace(/\p{Mn}/gu, '');
    if (this.lowercase) out = lowercase(out);
    return out;
  }
  toJSON() {
    return {
      type: 'BertNormalizer',
      clean_text: this.cleanText,
      handle_chinese_chars: this.handleChineseChars,
      strip_accents: this.stripAccents,
      lowercase: this.lowercase,
    };
  }
}

/** sentencepiece's "nmt" normalization: drop control chars, map exotic spaces to ' '. */
class Nmt implements Normalizer {
  normalize(t: string) {
    return t
      .replace(/[\u0001-\u0008\u000B\u000E-\u001F\u007F\u008F\u009F]/g, '')
      .replace(/[\u0009\u000A\u000C\u000D\u1680\u200B-\u200F\u2028\u2029\u2581\uFEFF\uFFFD]/g, ' ');
  }
  toJSON() {
    return { type: 'Nmt' };
  }
}

/**
 * sentencepiece's precompiled normalization map (T5, XLM-R, ...): a darts-clone double-array trie over
 * UTF-8 bytes whose leaves index NUL-terminated replacement strings. Applied per grapheme exactly as the
 * Rust crate spm_precompiled does (whole grapheme first when shorter than 6 bytes, else per char).
 */
class Precompiled implements Normalizer {
  private units: Uint32Array;
  private normalized: Uint8Array;
  private segmenter: Intl.Segmenter | null;
  private cache = new Map<string, string | null>();
  constructor(private charsmap: string) {
    const blob = base64Decode(charsmap);
    if (blob.length < 4) throw new Error('tokenizer.json: normalizer Precompiled.precompiled_charsmap is too short');
    const dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
    const trieSize = dv.getUint32(0, true);
    if (4 + trieSize > blob.length)
      throw new Error('tokenizer.json: normalizer Precompiled.precompiled_charsmap: trie size exceeds blob');
    this.units = new Uint32Array(trieSize / 4);
    for (let i = 0; i < this.units.length; i++) this.units[i] = dv.getUint32(4 + 4 * i, true);
    this.normalized = blob.subarray(4 + trieSize);
    this.segmenter =
      typeof Intl !== 'undefined' && 'Segmenter' in Intl
        ? new Intl.Segmenter(undefined, { granularity: 'grapheme' })
        : null;
  }
  private transform(chunk: string): string | null {
    const hit = this.cache.get(chunk);
    if (hit !== undefined) return hit;
    const key = new TextEncoder().encode(chunk);
    const u = this.units;
    let pos = 0;
    let unit = u[0];
    pos ^= offset(unit);
    let result: string | null = null;
    for (const c of key) {
      if (c === 0) break;
      pos ^= c;
      unit = u[pos];
      if ((unit & 0x800000ff) >>> 0 !== c) break;
      pos ^= offset(unit);
      if ((unit >>> 8) & 1) {
        const index = u[pos] & 0x7fffffff;
        let end = index;
        while (end < this.normalized.length && this.normalized[end] !== 0) end++;
        result = new TextDecoder('utf-8', { ignoreBOM: true }).decode(this.normalized.subarray(index, end));
        break; // the crate takes the first (shortest) match
      }
    }
    if (this.cache.size < 100000) this.cache.set(chunk, result);
    return result;
  }
  normalize(text: string): string {
    let out = '';
    const graphemes = this.segmenter ? Array.from(this.segmenter.segment(text), (s) => s.segment) : Array.from(text);
    for (const g of graphemes) {
      if (utf8Length(g) < 6) {
        const n = this.transform(g);
        if (n !== null) {
          out += n;
          continue;
        }
      }
      for (const c of g) out += this.transform(c) ?? c;
    }
    return out;
  }
  toJSON() {
    return { type: 'Precompiled', precompiled_charsmap: this.charsmap };
  }
}
function offset(unit: number): number {
  return (unit >>> 10) << ((unit & (1 << 9)) >>> 6);
}
function utf8Length(s: string): number {
  let n = 0;
  for (const c of s) {
    const cp = c.codePointAt(0)!;
    n += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
  }
  return n;
}
function base64Decode(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function normalizerFromJSON(j: Json | null | undefined): Normalizer | null {
  if (j == null) return null;
  switch (j.type) {
    case 'NFC':
    case 'NFD':
    case 'NFKC':
    case 'NFKD':
      return new Unicode(j.type);
    case 'Lowercase':
      return new Lowercase();
    case 'StripAccents':
      return new StripAccents();
    case 'Strip':
      return new Strip(j.strip_left ?? true, j.strip_right ?? true);
    case 'Replace':
      return new Replace(j.pattern, j.content ?? '');
    case 'Prepend':
      return new Prepend(j.prepend ?? '');
    case 'Nmt':
      return new Nmt();
    case 'Precompiled':
      if (!j.precompiled_charsmap) return null; // an empty charsmap is the identity
      return new Precompiled(j.precompiled_charsmap);
    case 'BertNormalizer':
      return new BertNormalizer(
        j.clean_text ?? true,
        j.handle_chinese_chars ?? true,
        j.strip_accents ?? null,
        j.lowercase ?? true,
      );
    case 'Sequence':
      if (!Array.isArray(j.normalizers))
        throw new Error('tokenizer.json: normalizer Sequence.normalizers must be an array');
      return new Sequence(
        j.normalizers
          .map((n: Json) => normalizerFromJSON(n))
          .filter((n: Normalizer | null): n is Normalizer => n !== null),
      );
    default:
      throw new Error(`tokenizer.json: unsupported normalizer type ${JSON.stringify(j.type)}`);
  }
}
