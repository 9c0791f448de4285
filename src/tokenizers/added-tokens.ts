// Added tokens ("<|endoftext|>", "[CLS]", ...): matched in the text and split out before the model runs.
import { escapeRegex } from './unicode.js';

export interface AddedToken {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

export function addedTokenFromJSON(j: Record<string, any>, i: number): AddedToken {
  if (typeof j?.content !== 'string' || typeof j?.id !== 'number')
    throw new Error(`tokenizer.json: added_tokens[${i}] needs "id" (number) and "content" (string)`);
  return {
    id: j.id,
    content: j.content,
    single_word: j.single_word ?? false,
    lstrip: j.lstrip ?? false,
    rstrip: j.rstrip ?? false,
    normalized: j.normalized ?? !(j.special ?? false),
    special: j.special ?? false,
  };
}

/** A piece of input: plain text for the pipeline, or an added token's id. */
export type Section = { text: string; id?: undefined } | { text: string; id: number };

/** Leftmost-longest matcher over a set of added tokens. */
export class AddedTokenMatcher {
  private re: RegExp | null;
  private byContent = new Map<string, AddedToken>();
  /**
   * `normalize` maps each token's content to the text it is matched as: HF matches `normalized` added tokens
   * in the normalized input by their normalized content (e.g. "NewWord" as "newword" under Lowercase).
   */
  constructor(tokens: AddedToken[], normalize: (s: string) => string = (s) => s) {
    const patterns: [string, AddedToken][] = [];
    for (const t of tokens) {
      const p = normalize(t.content);
      if (p.length > 0) patterns.push([p, t]);
    }
    patterns.sort((a, b) => b[0].length - a[0].length);
    // the first token (lowest id, as the caller passes them sorted) wins when two normalize alike
    for (const [p, t] of patterns) if (!this.byContent.has(p)) this.byContent.set(p, t);
    this.re = patterns.length ? new RegExp(patterns.map(([p]) => escapeRegex(p)).join('|'), 'gu') : null;
  }
  get empty() {
    return this.re === null;
  }

  /** Splits text into sections; lstrip/rstrip swallow adjacent whitespace, single_word needs word boundaries. */
  split(text: string): Section[] {
    if (!this.re) return [{ text }];
    const out: Section[] = [];
    let last = 0;
    this.re.lastIndex = 0;
    for (let m = this.re.exec(text); m !== null; m = this.re.exec(text)) {
      const tok = this.byContent.get(m[0])!;
      let start = m.index,
        end = m.index + m[0].length;
      if (tok.single_word) {
        const before = text[start - 1],
          after = text[end];
        if ((before && /[\p{L}\p{N}_]/u.test(before)) || (after && /[\p{L}\p{N}_]/u.test(after))) continue;
      }
      if (tok.lstrip) while (start > last && /\s/u.test(text[start - 1])) start--;
      if (tok.rstrip) while (end < text.length && /\s/u.test(text[end])) end++;
      if (start > last) out.push({ text: text.slice(last, start) });
      out.push({ text: m[0], id: tok.id });
      last = end;
      this.re.lastIndex = end;
    }
    if (last < text.length) out.push({ text: text.slice(last) });
    return out;
  }
}
