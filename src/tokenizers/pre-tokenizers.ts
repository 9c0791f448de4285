// Pre-tokenizers: split normalized text into "words" the model tokenizes independently (and caches).
import { isBertPunctuation, isWhitespace, toByteLevel } from './unicode.js';
import { patternToRegExp } from './normalizers.js';

type Json = Record<string, any>;

export interface PreTokenizer {
  /** `first` is true for the section that starts the input (Metaspace prepend_scheme "first"). */
  preTokenize(words: string[], first: boolean): string[];
  toJSON(): Record<string, unknown>;
}

/**
 * GPT-2's pre-tokenization regex (also HF ByteLevel's and tiktoken's "gpt2" pattern). `\s` is JavaScript's, as in
 * js-tiktoken (the oracle we match); Python/Rust engines differ only on U+0085, U+FEFF and U+001C..U+001F.
 */
export const GPT2_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

export type SplitBehavior = 'Removed' | 'Isolated' | 'MergedWithPrevious' | 'MergedWithNext' | 'Contiguous';

/** Splits `s` around the matches of `re` (global) according to HF's SplitDelimiterBehavior. */
export function splitWith(s: string, re: RegExp, behavior: SplitBehavior, invert = false): string[] {
  // (start, end, isMatch) segments covering s
  const segs: [number, number, boolean][] = [];
  let last = 0;
  re.lastIndex = 0;
  for (let m = re.exec(s); m !== null; m = re.exec(s)) {
    if (m[0].length === 0) {
      re.lastIndex++;
      continue;
    }
    if (m.index > last) segs.push([last, m.index, invert]);
    segs.push([m.index, m.index + m[0].length, !invert]);
    last = m.index + m[0].length;
  }
  if (last < s.length) segs.push([last, s.length, invert]);
  const out: string[] = [];
  switch (behavior) {
    case 'Removed':
      for (const [a, b, m] of segs) if (!m) out.push(s.slice(a, b));
      break;
    case 'Isolated':
      for (const [a, b] of segs) out.push(s.slice(a, b));
      break;
    case 'Contiguous': {
      let prevMatch: boolean | null = null;
      for (const [a, b, m] of segs) {
        if (m && prevMatch === true) out[out.length - 1] += s.slice(a, b);
        else out.push(s.slice(a, b));
        prevMatch = m;
      }
      break;
    }
    case 'MergedWithPrevious': {
      let prevMatch = true;
      for (const [a, b, m] of segs) {
        if (m && out.length && !prevMatch) out[out.length - 1] += s.slice(a, b);
        else out.push(s.slice(a, b));
        prevMatch = m;
      }
      break;
    }
    case 'MergedWithNext': {
      let pending = '';
      for (const [a, b, m] of segs) {
        if (m) {
          if (pending) out.push(pending);
          pending = s.slice(a, b);
        } else {
          out.push(pending + s.slice(a, b));
          pending = '';
        }
      }
      if (pending) out.push(pending);
      break;
    }
    default:
      throw new Error(`tokenizer.json: unknown split behavior ${JSON.stringify(behavior)}`);
  }
  return out;
}

function flatMap(words: string[], f: (w: string) => string[]): string[] {
  if (words.length === 1) return f(words[0]);
  const out: string[] = [];
  for (const w of words) for (const x of f(w)) out.push(x);
  return out;
}

/** GPT-2 byte level: optional prefix space, GPT-2 regex split, UTF-8 bytes -> visible chars. */
export class ByteLevelPre implements PreTokenizer {
  constructor(
    readonly addPrefixSpace = false,
    readonly trimOffsets = true,
    readonly useRegex = true,
  ) {}
  preTokenize(words: string[]): string[] {
    return flatMap(words, (w) => {
      if (this.addPrefixSpace && !w.startsWith(' ')) w = ' ' + w;
      const parts = this.useRegex ? (w.match(GPT2_PATTERN) ?? []) : [w];
      return parts.map(toByteLevel);
    });
  }
  toJSON() {
    return {
      type: 'ByteLevel',
      add_prefix_space: this.addPrefixSpace,
      trim_offsets: this.trimOffsets,
      use_regex: this.useRegex,
    };
  }
}

/** Splits on whitespace (removed) and isolates each punctuation character, like BERT. */
export class BertPre implements PreTokenizer {
  preTokenize(words: string[]): string[] {
    return flatMap(words, (w) => {
      const out: string[] = [];
      let cur = '';
      for (const c of w) {
        if (isWhitespace(c)) {
          if (cur) out.push(cur);
          cur = '';
        } else if (isBertPunctuation(c)) {
          if (cur) out.push(cur);
          out.push(c);
          cur = '';
        } else cur += c;
      }
      if (cur) out.push(cur);
      return out;
    });
  }
  toJSON() {
    return { type: 'BertPreTokenizer' };
  }
}

class Whitespace implements PreTokenizer {
  private static re =
    /[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]+|[^\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}\s]+/gu;
  preTokenize(words: string[]) {
    return flatMap(words, (w) => w.match(Whitespace.re) ?? []);
  }
  toJSON() {
    return { type: 'Whitespace' };
  }
}
class WhitespaceSplit implements PreTokenizer {
  preTokenize(words: string[]) {
    return flatMap(words, (w) => w.split(/\p{White_Space}+/u).filter((x) => x.length > 0));
  }
  toJSON() {
    return { type: 'WhitespaceSplit' };
  }
}

export type PrependScheme = 'always' | 'first' | 'never';
/** sentencepiece's whitespace handling: ' ' -> '▁', prefix '▁', split before each '▁'. */
export class Metaspace implements PreTokenizer {
  private splitRe: RegExp;
  constructor(
    readonly replacement = '\u2581',
    readonly prependScheme: PrependScheme = 'always',
    readonly split = true,
  ) {
    this.splitRe = new RegExp(replacement.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'gu');
  }
  preTokenize(words: string[], first: boolean): string[] {
    return flatMap(words, (w) => {
      w = w.replaceAll(' ', this.replacement);
      const prepend = this.prependScheme === 'always' || (this.prependScheme === 'first' && first);
      if (prepend && !w.startsWith(this.replacement)) w = this.replacement + w;
      return this.split ? splitWith(w, this.splitRe, 'MergedWithNext') : [w];
    });
  }
  // add_prefix_space is the pre-0.19 spelling; writing it too lets older `tokenizers` versions load the file
  toJSON() {
    return {
      type: 'Metaspace',
      replacement: this.replacement,
      add_prefix_space: this.prependScheme !== 'never',
      prepend_scheme: this.prependScheme,
      split: this.split,
    };
  }
}

/** HF Split: a string or regex pattern with a delimiter behavior. */
export class Split implements PreTokenizer {
  private re: RegExp;
  constructor(
    readonly pattern: Json,
    readonly behavior: SplitBehavior,
    readonly invert = false,
  ) {
    this.re = patternToRegExp(pattern, 'pre_tokenizer Split');
  }
  preTokenize(words: string[]) {
    return flatMap(words, (w) => splitWith(w, this.re, this.behavior, this.invert));
  }
  toJSON() {
    return { type: 'Split', pattern: this.pattern, behavior: this.behavior, invert: this.invert };
  }
}

class Punctuation implements PreTokenizer {
  constructor(private behavior: SplitBehavior = 'Isolated') {}
  preTokenize(words: string[]) {
    const re = /[\p{P}!-\/:-@\[-`{-~]/gu;
    return flatMap(words, (w) => splitWith(w, re, this.behavior));
  }
  toJSON() {
    return { type: 'Punctuation', behavior: this.behavior };
  }
}
class Digits implements PreTokenizer {
  constructor(private individual: boolean) {}
  preTokenize(words: string[]) {
    return flatMap(words, (w) => splitWith(w, this.individual ? /\p{Nd}/gu : /\p{Nd}+/gu, 'Isolated'));
  }
  toJSON() {
    return { type: 'Digits', individual_digits: this.individual };
  }
}
class CharDelimiterSplit implements PreTokenizer {
  constructor(private delimiter: string) {}
  preTokenize(words: string[]) {
    return flatMap(words, (w) => w.split(this.delimiter).filter((x) => x.length > 0));
  }
  toJSON() {
    return { type: 'CharDelimiterSplit', delimiter: this.delimiter };
  }
}
class SequencePre implements PreTokenizer {
  constructor(private items: PreTokenizer[]) {}
  preTokenize(words: string[], first: boolean) {
    for (const p of this.items) words = p.preTokenize(words, first);
    return words;
  }
  toJSON() {
    return { type: 'Sequence', pretokenizers: this.items.map((p) => p.toJSON()) };
  }
}

export function preTokenizerFromJSON(j: Json | null | undefined): PreTokenizer | null {
  if (j == null) return null;
  switch (j.type) {
    case 'ByteLevel':
      return new ByteLevelPre(j.add_prefix_space ?? true, j.trim_offsets ?? true, j.use_regex ?? true);
    case 'BertPreTokenizer':
      return new BertPre();
    case 'Whitespace':
      return new Whitespace();
    case 'WhitespaceSplit':
      return new WhitespaceSplit();
    case 'Metaspace': {
      // older files: add_prefix_space (bool) instead of prepend_scheme
      const scheme: PrependScheme = j.prepend_scheme ?? (j.add_prefix_space === false ? 'never' : 'always');
      return new Metaspace(j.replacement ?? '\u2581', scheme, j.split ?? true);
    }
    case 'Split':
      return new Split(j.pattern, j.behavior ?? 'Isolated', j.invert ?? false);
    case 'Punctuation':
      return new Punctuation(j.behavior ?? 'Isolated');
    case 'Digits':
      return new Digits(j.individual_digits ?? false);
    case 'CharDelimiterSplit':
      return new CharDelimiterSplit(j.delimiter);
    case 'Sequence':
      if (!Array.isArray(j.pretokenizers))
        throw new Error('tokenizer.json: pre_tokenizer Sequence.pretokenizers must be an array');
      return new SequencePre(j.pretokenizers.map((p: Json) => preTokenizerFromJSON(p)!).filter(Boolean));
    default:
      throw new Error(`tokenizer.json: unsupported pre_tokenizer type ${JSON.stringify(j.type)}`);
  }
}
