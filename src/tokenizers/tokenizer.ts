// The Tokenizer: HF tokenizer.json pipeline (added tokens -> normalizer -> pre-tokenizer -> model ->
// post-processor; decoder on the way back) plus tokenizer_config.json roles and chat templates.
import { Template } from '@huggingface/jinja';
import { AddedToken, AddedTokenMatcher, addedTokenFromJSON } from './added-tokens.js';
import { Model, modelFromJSON } from './models.js';
import { Normalizer, normalizerFromJSON } from './normalizers.js';
import { PreTokenizer, preTokenizerFromJSON } from './pre-tokenizers.js';
import { Decoder, PostProcessor, decoderFromJSON, postProcessorFromJSON } from './processors.js';

export type SpecialRole = 'bos' | 'eos' | 'pad' | 'unk' | 'mask' | 'cls' | 'sep';
export const SPECIAL_ROLES: readonly SpecialRole[] = ['bos', 'eos', 'pad', 'unk', 'mask', 'cls', 'sep'];
export interface SpecialToken {
  token: string;
  id: number;
}
export type SpecialTokens = Partial<Record<SpecialRole, SpecialToken>>;

export interface EncodeOptions {
  /** Run the post-processor (adds [CLS]/[SEP], <s>, ... where the tokenizer defines them). Default true. */
  addSpecialTokens?: boolean;
  /** Second sequence for pair templates ("[CLS] A [SEP] B [SEP]"). */
  pair?: string;
}
export interface DecodeOptions {
  skipSpecialTokens?: boolean;
}

export interface ChatMessage {
  role: string;
  content: unknown;
  [key: string]: unknown;
}
export interface ChatTemplateOptions {
  addGenerationPrompt?: boolean;
  /** Template source overriding the tokenizer's, or the name of one of its named templates. */
  chatTemplate?: string;
  tools?: unknown[];
  documents?: unknown[];
  /** Extra template variables (e.g. enable_thinking). */
  extra?: Record<string, unknown>;
}

export interface TokenizerParts {
  model: Model;
  normalizer?: Normalizer | null;
  preTokenizer?: PreTokenizer | null;
  postProcessor?: PostProcessor | null;
  decoder?: Decoder | null;
  addedTokens?: AddedToken[];
  /** Role -> token string; resolved to ids. Missing roles are inferred from conventional names. */
  specialTokens?: Partial<Record<SpecialRole, string>>;
  /** tokenizer_config.json contents (kept and re-saved). */
  config?: Record<string, unknown>;
  chatTemplate?: string | Record<string, string> | null;
  /** tokenizer.json truncation/padding sections, preserved verbatim. */
  truncation?: unknown;
  padding?: unknown;
}

// Conventional names, tried in order when tokenizer_config.json does not name a role.
const ROLE_NAMES: Record<SpecialRole, string[]> = {
  bos: ['<s>', '<|begin_of_text|>', '<bos>', '<|startoftext|>', '<|endoftext|>'],
  eos: ['</s>', '<|end_of_text|>', '<eos>', '<|endoftext|>'],
  pad: ['[PAD]', '<pad>', '<|pad|>'],
  unk: ['[UNK]', '<unk>', '<|unk|>'],
  mask: ['[MASK]', '<mask>'],
  cls: ['[CLS]', '<cls>'],
  sep: ['[SEP]', '<sep>'],
};

export class Tokenizer {
  readonly model: Model;
  readonly normalizer: Normalizer | null;
  readonly preTokenizer: PreTokenizer | null;
  readonly postProcessor: PostProcessor | null;
  readonly decoder: Decoder | null;
  readonly addedTokens: AddedToken[];
  readonly specialTokens: SpecialTokens;
  readonly config: Record<string, unknown>;
  private chatTemplates: Record<string, string>;
  private truncation: unknown;
  private padding: unknown;
  private rawMatcher: AddedTokenMatcher;
  private normMatcher: AddedTokenMatcher;
  private addedById = new Map<number, AddedToken>();
  private addedByContent = new Map<string, AddedToken>();
  private templateCache = new Map<string, Template>();

  constructor(p: TokenizerParts) {
    this.model = p.model;
    this.normalizer = p.normalizer ?? null;
    this.preTokenizer = p.preTokenizer ?? null;
    this.postProcessor = p.postProcessor ?? null;
    this.decoder = p.decoder ?? null;
    this.addedTokens = [...(p.addedTokens ?? [])].sort((a, b) => a.id - b.id);
    this.truncation = p.truncation ?? null;
    this.padding = p.padding ?? null;
    for (const t of this.addedTokens) {
      this.addedById.set(t.id, t);
      this.addedByContent.set(t.content, t);
    }
    this.rawMatcher = new AddedTokenMatcher(this.addedTokens.filter((t) => !t.normalized || !this.normalizer));
    const norm = this.normalizer;
    this.normMatcher = norm
      ? new AddedTokenMatcher(
          this.addedTokens.filter((t) => t.normalized),
          (s) => norm.normalize(s),
        )
      : new AddedTokenMatcher([]);
    this.config = { ...(p.config ?? {}) };
    const ct = p.chatTemplate ?? null;
    this.chatTemplates = typeof ct === 'string' ? { default: ct } : { ...(ct ?? {}) };
    this.specialTokens = this.resolveRoles(p.specialTokens ?? {});
  }

  private resolveRoles(named: Partial<Record<SpecialRole, string>>): SpecialTokens {
    const out: SpecialTokens = {};
    for (const role of SPECIAL_ROLES) {
      const given = named[role];
      if (given != null) {
        const id = this.tokenToId(given);
        if (id === undefined)
          throw new Error(`Tokenizer: ${role}_token ${JSON.stringify(given)} is not in the vocabulary`);
        out[role] = { token: given, id };
        continue;
      }
      // a config entry naming a token outside the vocabulary still decides the role: no guessing
      if (tokenString(this.config[`${role}_token`]) != null) continue;
      if (role === 'unk' && this.model.unkToken != null && this.tokenToId(this.model.unkToken) !== undefined) {
        out.unk = { token: this.model.unkToken, id: this.tokenToId(this.model.unkToken)! };
        continue;
      }
      for (const name of ROLE_NAMES[role]) {
        // only special added tokens count, so e.g. a char vocabulary containing "<s>" text is not a role
        const t = this.addedByContent.get(name);
        if (t && t.special) {
          out[role] = { token: name, id: t.id };
          break;
        }
      }
    }
    return out;
  }

  /** The constructor arguments that rebuild this tokenizer (for the with* copies). */
  private parts(): TokenizerParts {
    const roles: Partial<Record<SpecialRole, string>> = {};
    for (const r of SPECIAL_ROLES) if (this.specialTokens[r]) roles[r] = this.specialTokens[r]!.token;
    return {
      model: this.model,
      normalizer: this.normalizer,
      preTokenizer: this.preTokenizer,
      postProcessor: this.postProcessor,
      decoder: this.decoder,
      addedTokens: this.addedTokens,
      specialTokens: roles,
      config: this.config,
      chatTemplate: this.chatTemplates,
      truncation: this.truncation,
      padding: this.padding,
    };
  }

  /**
   * A copy with extra added tokens (e.g. ChatML's <|im_start|> for chat fine-tuning). Tokens already in
   * the vocabulary keep their id; new ones get ids from vocabSize up. `roles` names special roles
   * (e.g. { pad: '<|pad|>' }).
   */
  withAddedTokens(
    tokens: string[],
    opts: { special?: boolean; roles?: Partial<Record<SpecialRole, string>> } = {},
  ): Tokenizer {
    const added = [...this.addedTokens];
    let next = this.vocabSize;
    for (const content of tokens) {
      if (!content) throw new Error('Tokenizer.withAddedTokens: tokens must be non-empty strings');
      if (added.some((t) => t.content === content)) continue;
      const id = this.model.tokenToId(content) ?? next++;
      added.push({
        id,
        content,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: !(opts.special ?? true),
        special: opts.special ?? true,
      });
    }
    const p = this.parts();
    return new Tokenizer({ ...p, addedTokens: added, specialTokens: { ...p.specialTokens, ...opts.roles } });
  }

  /** A copy whose default chat template is `template`. */
  withChatTemplate(template: string): Tokenizer {
    return new Tokenizer({ ...this.parts(), chatTemplate: { ...this.chatTemplates, default: template } });
  }

  /** Number of ids (embedding rows needed): max id over the model and the added tokens, plus one. */
  get vocabSize(): number {
    let n = this.model.size;
    for (const t of this.addedTokens) if (t.id + 1 > n) n = t.id + 1;
    return n;
  }
  tokenToId(token: string): number | undefined {
    return this.addedByContent.get(token)?.id ?? this.model.tokenToId(token);
  }
  idToToken(id: number): string | undefined {
    return this.addedById.get(id)?.content ?? this.model.idToToken(id);
  }
  /** Named chat templates (usually just "default"). */
  get chatTemplate(): string | null {
    return this.chatTemplates.default ?? Object.values(this.chatTemplates)[0] ?? null;
  }

  /** Ids of one text without post-processing. */
  private encodeRaw(text: string): number[] {
    const out: number[] = [];
    let first = true;
    for (const sec of this.rawMatcher.split(text)) {
      if (sec.id !== undefined) {
        out.push(sec.id);
        first = false;
        continue;
      }
      const norm = this.normalizer ? this.normalizer.normalize(sec.text) : sec.text;
      for (const s of this.normMatcher.split(norm)) {
        if (s.id !== undefined) {
          out.push(s.id);
          first = false;
          continue;
        }
        if (!s.text.length) continue; // HF yields no tokens for empty text (Metaspace would invent a "▁")
        const words = this.preTokenizer ? this.preTokenizer.preTokenize([s.text], first) : [s.text];
        for (const w of words) {
          const ids = this.model.tokenize(w);
          for (let i = 0; i < ids.length; i++) out.push(ids[i]);
        }
        first = false;
      }
    }
    return out;
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') throw new Error(`Tokenizer.encode: text must be a string, got ${typeof text}`);
    const add = opts.addSpecialTokens ?? true;
    const a = this.encodeRaw(text);
    const b = opts.pair !== undefined ? this.encodeRaw(opts.pair) : null;
    if (this.postProcessor) return this.postProcessor.process(a, b, add);
    return b ? [...a, ...b] : a;
  }

  /** Token strings of encode(text). */
  tokenize(text: string, opts: EncodeOptions = {}): string[] {
    return this.encode(text, opts).map((id) => this.idToToken(id)!);
  }

  decode(ids: ArrayLike<number>, opts: DecodeOptions = {}): string {
    const tokens: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      const added = this.addedById.get(id);
      if (added && added.special && opts.skipSpecialTokens) continue;
      const t = added?.content ?? this.model.idToToken(id);
      if (t === undefined)
        throw new Error(
          `Tokenizer.decode: id ${id} at position ${i} is outside the vocabulary (size ${this.vocabSize})`,
        );
      tokens.push(t);
    }
    return this.decoder ? this.decoder.decodeChain(tokens).join('') : tokens.join(' ');
  }

  /**
   * Incremental detokenization for generation: push ids one at a time, get the new text. Text is held
   * back while it ends in an incomplete UTF-8 sequence (U+FFFD), and each step decodes a short window
   * with its left context so decoders that treat the first token specially (Metaspace, WordPiece)
   * still produce the right spacing — the scheme of HF tokenizers' DecodeStream.
   */
  decodeStream(opts: DecodeOptions = {}): { push(id: number): string; flush(): string } {
    const ids: number[] = [];
    let prefix = 0,
      read = 0;
    const step = (final: boolean): string => {
      const before = this.decode(ids.slice(prefix, read), opts);
      const now = this.decode(ids.slice(prefix), opts);
      if (now.length <= before.length || (!final && now.endsWith('\ufffd'))) return '';
      prefix = read;
      read = ids.length;
      return now.slice(before.length);
    };
    return {
      push: (id: number) => {
        ids.push(id);
        return step(false);
      },
      flush: () => step(true),
    };
  }

  /** Renders a chat with the tokenizer_config.json chat_template, as transformers' apply_chat_template(tokenize=False). */
  applyChatTemplate(messages: ChatMessage[], opts: ChatTemplateOptions = {}): string {
    const src =
      opts.chatTemplate !== undefined
        ? (this.chatTemplates[opts.chatTemplate] ?? opts.chatTemplate)
        : this.chatTemplate;
    if (!src)
      throw new Error(
        'Tokenizer.applyChatTemplate: this tokenizer has no chat_template (tokenizer_config.json "chat_template"); pass { chatTemplate }',
      );
    let tmpl = this.templateCache.get(src);
    if (!tmpl) {
      try {
        tmpl = new Template(src);
      } catch (e) {
        throw new Error(`Tokenizer.applyChatTemplate: cannot parse chat_template: ${(e as Error).message}`);
      }
      this.templateCache.set(src, tmpl);
    }
    const vars: Record<string, unknown> = {
      ...this.specialTokenStrings(),
      messages,
      add_generation_prompt: opts.addGenerationPrompt ?? false,
      ...(opts.tools ? { tools: opts.tools } : {}),
      ...(opts.documents ? { documents: opts.documents } : {}),
      ...(opts.extra ?? {}),
    };
    // raise_exception and strftime_now are built into @huggingface/jinja's environment, as in transformers
    try {
      return tmpl.render(vars);
    } catch (e) {
      throw new Error(`Tokenizer.applyChatTemplate: ${(e as Error).message}`);
    }
  }

  /** Ids of a rendered chat (no extra special tokens: the template writes them, as transformers does). */
  encodeChat(messages: ChatMessage[], opts: ChatTemplateOptions = {}): number[] {
    return this.encode(this.applyChatTemplate(messages, opts), { addSpecialTokens: false });
  }

  /** `bos_token: "<s>"`, ... as transformers passes them to chat templates. */
  private specialTokenStrings(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const role of SPECIAL_ROLES) {
      const t = this.specialTokens[role]?.token ?? tokenString(this.config[`${role}_token`]);
      if (t != null) out[`${role}_token`] = t;
    }
    return out;
  }

  /** The Hugging Face tokenizer.json object. */
  toJSON(): Record<string, unknown> {
    return {
      version: '1.0',
      truncation: this.truncation,
      padding: this.padding,
      added_tokens: this.addedTokens.map((t) => ({
        id: t.id,
        content: t.content,
        single_word: t.single_word,
        lstrip: t.lstrip,
        rstrip: t.rstrip,
        normalized: t.normalized,
        special: t.special,
      })),
      normalizer: this.normalizer?.toJSON() ?? null,
      pre_tokenizer: this.preTokenizer?.toJSON() ?? null,
      post_processor: this.postProcessor?.toJSON() ?? null,
      decoder: this.decoder?.toJSON() ?? null,
      model: this.model.toJSON(),
    };
  }

  /** tokenizer_config.json: the stored config with the roles and chat template filled in. */
  toConfigJSON(): Record<string, unknown> {
    const out: Record<string, unknown> = {
      tokenizer_class: 'PreTrainedTokenizerFast',
      clean_up_tokenization_spaces: false,
      ...this.config,
    };
    for (const role of SPECIAL_ROLES) {
      const t = this.specialTokens[role];
      if (t) out[`${role}_token`] = t.token; // the resolved role wins over a stale config entry
    }
    const names = Object.keys(this.chatTemplates);
    if (names.length === 1 && names[0] === 'default') out.chat_template = this.chatTemplates.default;
    else if (names.length) out.chat_template = names.map((name) => ({ name, template: this.chatTemplates[name] }));
    return out;
  }

  /** Builds a tokenizer from a tokenizer.json object (or its text) and, optionally, tokenizer_config.json. */
  static fromJSON(obj: unknown, config: Record<string, unknown> = {}): Tokenizer {
    if (typeof obj === 'string') {
      try {
        obj = JSON.parse(obj);
      } catch (e) {
        throw new Error(`tokenizer.json: not valid JSON: ${(e as Error).message}`);
      }
    }
    if (obj == null || typeof obj !== 'object' || Array.isArray(obj))
      throw new Error('tokenizer.json: expected a JSON object');
    const j = obj as Record<string, any>;
    const added = Array.isArray(j.added_tokens)
      ? j.added_tokens.map((t: Record<string, unknown>, i: number) => addedTokenFromJSON(t, i))
      : [];
    const roles: Partial<Record<SpecialRole, string>> = {};
    for (const role of SPECIAL_ROLES) {
      const t = tokenString(config[`${role}_token`]);
      if (t != null) roles[role] = t;
    }
    // tokenizer_config.json "added_tokens_decoder" can add tokens missing from tokenizer.json
    const dec = config.added_tokens_decoder as Record<string, Record<string, unknown>> | undefined;
    if (dec && typeof dec === 'object') {
      for (const [id, t] of Object.entries(dec)) {
        if (!added.some((a: AddedToken) => a.id === Number(id)))
          added.push(addedTokenFromJSON({ ...t, id: Number(id) }, added.length));
      }
    }
    let chatTemplate: string | Record<string, string> | null = null;
    const ct = config.chat_template;
    if (typeof ct === 'string') chatTemplate = ct;
    else if (Array.isArray(ct))
      chatTemplate = Object.fromEntries(ct.map((e: { name: string; template: string }) => [e.name, e.template]));
    const model = modelFromJSON(j.model);
    const tok = new Tokenizer({
      model,
      addedTokens: added,
      config,
      chatTemplate,
      truncation: j.truncation,
      padding: j.padding,
      normalizer: normalizerFromJSON(j.normalizer),
      preTokenizer: preTokenizerFromJSON(j.pre_tokenizer),
      postProcessor: postProcessorFromJSON(j.post_processor),
      decoder: decoderFromJSON(j.decoder),
      specialTokens: Object.fromEntries(
        Object.entries(roles).filter(
          ([, t]) => model.tokenToId(t) !== undefined || added.some((a: AddedToken) => a.content === t),
        ),
      ),
    });
    return tok;
  }
}

/** tokenizer_config.json stores tokens as "<s>" or {"content": "<s>", ...}. */
function tokenString(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string')
    return (v as { content: string }).content;
  return null;
}
