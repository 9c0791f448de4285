// Post-processors (add [CLS]/[SEP], <s>...</s>) and decoders (tokens -> text), as in HF tokenizer.json.
import { charToByte, parseByteToken, utf8Decode, utf8Encode } from './unicode.js';
import { patternToRegExp } from './normalizers.js';

type Json = Record<string, any>;

export interface PostProcessor {
  /** Adds the special tokens around one sequence (or a pair). */
  process(a: number[], b: number[] | null, addSpecialTokens: boolean): number[];
  toJSON(): Record<string, unknown>;
}

type Piece = { kind: 'seq'; seq: 'A' | 'B' } | { kind: 'special'; token: string };

/** HF TemplateProcessing, e.g. single "[CLS] $A [SEP]", pair "[CLS] $A [SEP] $B:1 [SEP]:1". */
export class TemplateProcessing implements PostProcessor {
  private single: Piece[];
  private pair: Piece[];
  constructor(
    private singleJson: Json[],
    private pairJson: Json[],
    /** token -> ids it expands to */
    readonly specialTokens: Record<string, { id: string; ids: number[]; tokens: string[] }>,
  ) {
    this.single = singleJson.map((p) => parsePiece(p));
    this.pair = pairJson.map((p) => parsePiece(p));
    for (const p of [...this.single, ...this.pair]) {
      if (p.kind === 'special' && !specialTokens[p.token])
        throw new Error(
          `tokenizer.json: post_processor TemplateProcessing uses ${JSON.stringify(p.token)} which is missing from special_tokens`,
        );
    }
  }
  /** Builds the template from strings like "[CLS] $A [SEP]" and a token -> id map. */
  static fromStrings(single: string, pair: string, ids: Record<string, number>): TemplateProcessing {
    const parse = (s: string) =>
      s
        .split(/\s+/)
        .filter(Boolean)
        .map((w) => {
          const [name, type] = w.split(':');
          const type_id = type ? parseInt(type, 10) : 0;
          if (name === '$A' || name === '$') return { Sequence: { id: 'A', type_id } };
          if (name === '$B') return { Sequence: { id: 'B', type_id } };
          return { SpecialToken: { id: name, type_id } };
        });
    const st: Record<string, { id: string; ids: number[]; tokens: string[] }> = {};
    for (const [t, id] of Object.entries(ids)) st[t] = { id: t, ids: [id], tokens: [t] };
    return new TemplateProcessing(parse(single), parse(pair), st);
  }
  process(a: number[], b: number[] | null, add: boolean): number[] {
    if (!add) return b ? [...a, ...b] : a;
    const template = b ? this.pair : this.single;
    // an empty template would drop the text itself: say so instead of returning no ids
    if (!template.length)
      throw new Error(
        `tokenizer.json: post_processor TemplateProcessing has no "${b ? 'pair' : 'single'}" template to encode ${b ? 'a pair' : 'a sequence'} with`,
      );
    const out: number[] = [];
    for (const p of template) {
      // loops, not push(...x): sequences can be longer than the engine's argument limit
      const src = p.kind === 'seq' ? (p.seq === 'A' ? a : (b ?? [])) : this.specialTokens[p.token].ids;
      for (let i = 0; i < src.length; i++) out.push(src[i]);
    }
    return out;
  }
  toJSON() {
    return {
      type: 'TemplateProcessing',
      single: this.singleJson,
      pair: this.pairJson,
      special_tokens: this.specialTokens,
    };
  }
}
function parsePiece(p: Json): Piece {
  if (p.Sequence) return { kind: 'seq', seq: p.Sequence.id === 'B' ? 'B' : 'A' };
  if (p.SpecialToken) return { kind: 'special', token: p.SpecialToken.id };
  throw new Error(
    `tokenizer.json: post_processor TemplateProcessing piece must be {Sequence} or {SpecialToken}, got ${JSON.stringify(p)}`,
  );
}

/** BertProcessing ([CLS] A [SEP] B [SEP]) and RobertaProcessing (<s> A </s></s> B </s>). */
class ClsSep implements PostProcessor {
  constructor(
    private type: 'BertProcessing' | 'RobertaProcessing',
    private sep: [string, number],
    private cls: [string, number],
    private extra: Json,
  ) {}
  process(a: number[], b: number[] | null, add: boolean) {
    if (!add) return b ? [...a, ...b] : a;
    const out = [this.cls[1], ...a, this.sep[1]];
    if (b) {
      if (this.type === 'RobertaProcessing') out.push(this.sep[1]);
      out.push(...b, this.sep[1]);
    }
    return out;
  }
  toJSON() {
    return { type: this.type, sep: this.sep, cls: this.cls, ...this.extra };
  }
}
/** ByteLevel post-processing only trims offsets; ids are unchanged. */
class ByteLevelPost implements PostProcessor {
  constructor(private j: Json) {}
  process(a: number[], b: number[] | null) {
    return b ? [...a, ...b] : a;
  }
  toJSON() {
    return {
      type: 'ByteLevel',
      add_prefix_space: this.j.add_prefix_space ?? true,
      trim_offsets: this.j.trim_offsets ?? true,
      use_regex: this.j.use_regex ?? true,
    };
  }
}
class SequencePost implements PostProcessor {
  constructor(private items: PostProcessor[]) {}
  process(a: number[], b: number[] | null, add: boolean) {
    // ByteLevel only touches offsets, so the id-changing processors (in practice one template, as in
    // Llama 3's [ByteLevel, TemplateProcessing]) see the sequences; later ones get the joined result.
    const active = this.items.filter((p) => !(p instanceof ByteLevelPost));
    if (!active.length) return b ? [...a, ...b] : a;
    let out = active[0].process(a, b, add);
    for (const p of active.slice(1)) out = p.process(out, null, add);
    return out;
  }
  toJSON() {
    return { type: 'Sequence', processors: this.items.map((p) => p.toJSON()) };
  }
}

export function postProcessorFromJSON(j: Json | null | undefined): PostProcessor | null {
  if (j == null) return null;
  switch (j.type) {
    case 'TemplateProcessing': {
      const special: Record<string, { id: string; ids: number[]; tokens: string[] }> = {};
      // older files store special_tokens as a list
      const st = Array.isArray(j.special_tokens)
        ? Object.fromEntries(j.special_tokens.map((t: Json) => [t.id, t]))
        : (j.special_tokens ?? {});
      for (const [k, v] of Object.entries(st as Record<string, Json>))
        special[k] = { id: v.id ?? k, ids: v.ids, tokens: v.tokens };
      return new TemplateProcessing(j.single ?? [], j.pair ?? [], special);
    }
    case 'BertProcessing':
      return new ClsSep('BertProcessing', j.sep, j.cls, {});
    case 'RobertaProcessing':
      return new ClsSep('RobertaProcessing', j.sep, j.cls, {
        trim_offsets: j.trim_offsets ?? true,
        add_prefix_space: j.add_prefix_space ?? true,
      });
    case 'ByteLevel':
      return new ByteLevelPost(j);
    case 'Sequence':
      return new SequencePost((j.processors ?? []).map((p: Json) => postProcessorFromJSON(p)!).filter(Boolean));
    default:
      throw new Error(`tokenizer.json: unsupported post_processor type ${JSON.stringify(j.type)}`);
  }
}

// ---------------------------------------------------------------------------------------------------
// Decoders: each maps a token list to a token list (HF decode_chain); the tokenizer joins the result.

export interface Decoder {
  decodeChain(tokens: string[]): string[];
  toJSON(): Record<string, unknown>;
}

class ByteLevelDec implements Decoder {
  decodeChain(tokens: string[]): string[] {
    const map = charToByte();
    const bytes: number[] = [];
    for (const t of tokens) {
      const start = bytes.length;
      let ok = true;
      for (const c of t) {
        const b = map.get(c);
        if (b === undefined) {
          ok = false;
          break;
        }
        bytes.push(b);
      }
      // tokens outside the byte alphabet (added tokens) contribute their own UTF-8
      if (!ok) {
        bytes.length = start;
        bytes.push(...utf8Encode(t));
      }
    }
    return [utf8Decode(bytes)];
  }
  toJSON() {
    return { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true };
  }
}

export function cleanUpTokenization(s: string): string {
  return s
    .replaceAll(' .', '.')
    .replaceAll(' ?', '?')
    .replaceAll(' !', '!')
    .replaceAll(' ,', ',')
    .replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't")
    .replaceAll(" 'm", "'m")
    .replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve")
    .replaceAll(" 're", "'re");
}

class WordPieceDec implements Decoder {
  constructor(
    private prefix = '##',
    private cleanup = true,
  ) {}
  decodeChain(tokens: string[]) {
    return tokens.map((t, i) => {
      if (i > 0) t = t.startsWith(this.prefix) ? t.slice(this.prefix.length) : ' ' + t;
      return this.cleanup ? cleanUpTokenization(t) : t;
    });
  }
  toJSON() {
    return { type: 'WordPiece', prefix: this.prefix, cleanup: this.cleanup };
  }
}

class MetaspaceDec implements Decoder {
  constructor(
    private replacement = '\u2581',
    private prependScheme = 'always',
    private split = true,
  ) {}
  decodeChain(tokens: string[]) {
    return tokens.map((t, i) => {
      t = t.replaceAll(this.replacement, ' ');
      if (i === 0 && this.prependScheme !== 'never' && t.startsWith(' ')) t = t.slice(1);
      return t;
    });
  }
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

/** Runs of <0xNN> tokens become the UTF-8 text they encode (U+FFFD per byte if invalid, like HF). */
class ByteFallbackDec implements Decoder {
  decodeChain(tokens: string[]) {
    const out: string[] = [];
    let run: number[] = [];
    const flush = () => {
      if (!run.length) return;
      const s = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
      try {
        out.push(s.decode(Uint8Array.from(run)));
      } catch {
        for (let i = 0; i < run.length; i++) out.push('\ufffd');
      }
      run = [];
    };
    for (const t of tokens) {
      const b = parseByteToken(t);
      if (b !== null) run.push(b);
      else {
        flush();
        out.push(t);
      }
    }
    flush();
    return out;
  }
  toJSON() {
    return { type: 'ByteFallback' };
  }
}

class Fuse implements Decoder {
  decodeChain(tokens: string[]) {
    return [tokens.join('')];
  }
  toJSON() {
    return { type: 'Fuse' };
  }
}
class StripDec implements Decoder {
  constructor(
    private content: string,
    private start: number,
    private stop: number,
  ) {}
  decodeChain(tokens: string[]) {
    return tokens.map((t) => {
      const cs = Array.from(t);
      let a = 0,
        b = cs.length;
      for (let i = 0; i < this.start && a < b && cs[a] === this.content; i++) a++;
      for (let i = 0; i < this.stop && b > a && cs[b - 1] === this.content; i++) b--;
      return cs.slice(a, b).join('');
    });
  }
  toJSON() {
    return { type: 'Strip', content: this.content, start: this.start, stop: this.stop };
  }
}
class ReplaceDec implements Decoder {
  private re: RegExp;
  constructor(
    private pattern: Json,
    private content: string,
  ) {
    this.re = patternToRegExp(pattern, 'decoder Replace');
  }
  decodeChain(tokens: string[]) {
    return tokens.map((t) => t.replace(this.re, () => this.content));
  }
  toJSON() {
    return { type: 'Replace', pattern: this.pattern, content: this.content };
  }
}
class BPEDec implements Decoder {
  constructor(private suffix = '</w>') {}
  decodeChain(tokens: string[]) {
    return tokens.map((t, i) => t.replaceAll(this.suffix, i === tokens.length - 1 ? '' : ' '));
  }
  toJSON() {
    return { type: 'BPEDecoder', suffix: this.suffix };
  }
}
class SequenceDec implements Decoder {
  constructor(private items: Decoder[]) {}
  decodeChain(tokens: string[]) {
    for (const d of this.items) tokens = d.decodeChain(tokens);
    return tokens;
  }
  toJSON() {
    return { type: 'Sequence', decoders: this.items.map((d) => d.toJSON()) };
  }
}

export function decoderFromJSON(j: Json | null | undefined): Decoder | null {
  if (j == null) return null;
  switch (j.type) {
    case 'ByteLevel':
      return new ByteLevelDec();
    case 'WordPiece':
      return new WordPieceDec(j.prefix ?? '##', j.cleanup ?? true);
    case 'Metaspace':
      return new MetaspaceDec(
        j.replacement ?? '\u2581',
        j.prepend_scheme ?? (j.add_prefix_space === false ? 'never' : 'always'),
        j.split ?? true,
      );
    case 'ByteFallback':
      return new ByteFallbackDec();
    case 'Fuse':
      return new Fuse();
    case 'Strip':
      return new StripDec(j.content ?? ' ', j.start ?? 0, j.stop ?? 0);
    case 'Replace':
      return new ReplaceDec(j.pattern, j.content ?? '');
    case 'BPEDecoder':
      return new BPEDec(j.suffix ?? '</w>');
    case 'Sequence':
      return new SequenceDec((j.decoders ?? []).map((d: Json) => decoderFromJSON(d)!).filter(Boolean));
    default:
      throw new Error(`tokenizer.json: unsupported decoder type ${JSON.stringify(j.type)}`);
  }
}
