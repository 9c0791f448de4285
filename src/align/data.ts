// TRL's dataset formats, one JSON object per line, validated with errors that name the file, the line
// and the field, then encoded into (prompt, completion) token rows.
//   sft         {"messages": [{"role", "content"}, ...], "tools"?: [...]}  or  {"prompt", "completion"}
//   preference  {"prompt", "chosen", "rejected"}          (strings, or message lists)
//   unpaired    {"prompt", "completion", "label": bool}   (KTO)
//   prompt-only {"prompt"} (+ "answer" for verifiable rewards)                (PPO, GRPO)
// Conversational rows are rendered with the tokenizer's chat template (a plain "ROLE: text" template
// for tokenizers without one); the loss covers the assistant turns only.
import type { ChatMessage, Tokenizer } from '../tokenizers/tokenizer.js';
import type { Sequence } from './logprobs.js';

export interface Message {
  role: string;
  content: string;
  /** an assistant turn that calls tools (OpenAI / TRL shape: [{type, function: {name, arguments}}]) */
  tool_calls?: unknown[];
  /** a `tool` turn: which call it answers */
  tool_call_id?: string;
  name?: string;
}
type Text = string | Message[];

export type DataKind = 'sft' | 'preference' | 'unpaired' | 'prompt';

export interface SftRecord {
  kind: 'sft';
  line: number;
  messages?: Message[];
  /** TRL's `tools` column: the tool definitions the chat template renders for this conversation */
  tools?: unknown[];
  prompt?: string;
  completion?: string;
}
export interface PreferenceRecord {
  kind: 'preference';
  line: number;
  prompt: Text;
  chosen: Text;
  rejected: Text;
}
export interface UnpairedRecord {
  kind: 'unpaired';
  line: number;
  prompt: Text;
  completion: Text;
  label: boolean;
}
export interface PromptRecord {
  kind: 'prompt';
  line: number;
  prompt: Text;
  answer?: string;
}
export type AlignRecord = SftRecord | PreferenceRecord | UnpairedRecord | PromptRecord;

/** used when the tokenizer has no chat_template: plain text any character vocabulary can spell */
export const PLAIN_CHAT_TEMPLATE =
  "{% for m in messages %}{{ m['role'] | upper }}: {{ m['content'] }}\n{% endfor %}" +
  '{% if add_generation_prompt %}ASSISTANT: {% endif %}';

class DataError extends Error {}

function fail(file: string, line: number, msg: string): never {
  throw new DataError(`${file}:${line}: ${msg}`);
}

/** a string or a non-empty message list; `empty` says whether '' is allowed */
function text(o: Record<string, unknown>, field: string, file: string, line: number, allowEmpty = false): Text {
  const v = o[field];
  if (v === undefined || v === null) fail(file, line, `missing field '${field}'`);
  if (typeof v === 'string') {
    if (!allowEmpty && v.trim() === '') fail(file, line, `field '${field}' is empty`);
    return v;
  }
  if (!Array.isArray(v)) fail(file, line, `field '${field}' must be a string or a list of messages, got ${typeof v}`);
  if (v.length === 0) fail(file, line, `field '${field}' is an empty message list`);
  return v.map((m, i) => message(m, `${field}[${i}]`, file, line));
}

/** the roles chat templates render (OpenAI's and TRL's); another role would be trained on unnoticed */
const ROLES = ['system', 'developer', 'user', 'assistant', 'tool'];

function message(m: unknown, where: string, file: string, line: number): Message {
  const o = m as Record<string, unknown>;
  if (typeof o !== 'object' || o === null) fail(file, line, `${where} must be an object {"role", "content"}`);
  if (o.role === undefined || o.role === null || o.role === '') fail(file, line, `${where}.role is missing`);
  if (typeof o.role !== 'string') fail(file, line, `${where}.role must be a string, got ${typeof o.role}`);
  if (!ROLES.includes(o.role))
    fail(file, line, `${where}.role ${JSON.stringify(o.role)} is not one of ${ROLES.join(', ')}`);
  const calls = o.tool_calls;
  if (calls !== undefined && calls !== null && (!Array.isArray(calls) || calls.length === 0))
    fail(file, line, `${where}.tool_calls must be a non-empty list`);
  const hasCalls = Array.isArray(calls) && calls.length > 0;
  // a turn that only calls tools has no text (null or '' in OpenAI's and TRL's rows)
  const content = hasCalls && (o.content === null || o.content === undefined) ? '' : o.content;
  if (content === undefined || content === null) fail(file, line, `${where}.content is missing`);
  if (typeof content !== 'string') fail(file, line, `${where}.content must be a string, got ${typeof content}`);
  if (o.role === 'assistant' && !hasCalls && content.trim() === '')
    fail(file, line, `${where}.content is an empty response`);
  return {
    role: o.role,
    content,
    ...(hasCalls ? { tool_calls: calls as unknown[] } : {}),
    ...(typeof o.tool_call_id === 'string' ? { tool_call_id: o.tool_call_id } : {}),
    ...(typeof o.name === 'string' ? { name: o.name } : {}),
  };
}

function record(kind: DataKind, o: Record<string, unknown>, file: string, line: number): AlignRecord {
  switch (kind) {
    case 'sft': {
      if (o.messages !== undefined) {
        const messages = text(o, 'messages', file, line) as Message[];
        if (!Array.isArray(messages) || !messages.some((m) => m.role === 'assistant'))
          fail(file, line, "field 'messages' has no assistant turn to learn from");
        if (o.tools !== undefined && o.tools !== null && !Array.isArray(o.tools))
          fail(file, line, "field 'tools' must be a list of tool definitions");
        return { kind, line, messages, ...(Array.isArray(o.tools) && o.tools.length ? { tools: o.tools } : {}) };
      }
      if (o.prompt === undefined) fail(file, line, "missing field 'messages' (or 'prompt' + 'completion')");
      return {
        kind,
        line,
        prompt: text(o, 'prompt', file, line, true) as string,
        completion: text(o, 'completion', file, line) as string,
      };
    }
    case 'preference':
      return {
        kind,
        line,
        prompt: text(o, 'prompt', file, line, true),
        chosen: text(o, 'chosen', file, line),
        rejected: text(o, 'rejected', file, line),
      };
    case 'unpaired': {
      if (typeof o.label !== 'boolean')
        fail(file, line, o.label === undefined ? "missing field 'label'" : "field 'label' must be true or false");
      return {
        kind,
        line,
        prompt: text(o, 'prompt', file, line, true),
        completion: text(o, 'completion', file, line),
        label: o.label,
      };
    }
    case 'prompt': {
      if (o.answer !== undefined && typeof o.answer !== 'string' && typeof o.answer !== 'number')
        fail(file, line, "field 'answer' must be a string or a number");
      return {
        kind,
        line,
        prompt: text(o, 'prompt', file, line),
        ...(o.answer !== undefined ? { answer: String(o.answer) } : {}),
      };
    }
  }
}

/** parses JSONL text into validated records of `kind` (blank lines skipped) */
export function parseAlignData(src: string, kind: DataKind, file = '<data>'): AlignRecord[] {
  const out: AlignRecord[] = [];
  src.split('\n').forEach((raw, i) => {
    if (raw.trim() === '') return;
    let o: unknown;
    try {
      o = JSON.parse(raw);
    } catch (e) {
      fail(file, i + 1, `bad JSON: ${(e as Error).message}`);
    }
    if (typeof o !== 'object' || o === null || Array.isArray(o)) fail(file, i + 1, 'expected a JSON object');
    out.push(record(kind, o as Record<string, unknown>, file, i + 1));
  });
  if (out.length === 0) throw new DataError(`${file}: no examples`);
  return out;
}

// ---- encoding ----

export class Encoder {
  readonly eos: number | null;
  constructor(readonly tok: Tokenizer) {
    this.eos = tok.specialTokens.eos?.id ?? null;
  }

  ids(s: string): number[] {
    return this.tok.encode(s, { addSpecialTokens: false });
  }

  chat(messages: Message[], addGenerationPrompt = false, tools?: unknown[]): string {
    const own = this.tok.chatTemplate;
    return this.tok.applyChatTemplate(messages as unknown as ChatMessage[], {
      addGenerationPrompt,
      ...(own ? {} : { chatTemplate: PLAIN_CHAT_TEMPLATE }),
      ...(tools ? { tools } : {}),
    });
  }

  /** the prompt as the model sees it (conversations end with the generation prompt) */
  promptText(p: Text): string {
    return typeof p === 'string' ? p : this.chat(p, true);
  }

  /** (prompt, completion) ids; a conversational completion is the rendered continuation of the prompt */
  pair(prompt: Text, completion: Text): Sequence {
    if (typeof prompt === 'string' && typeof completion === 'string')
      return { prompt: this.ids(prompt), completion: this.withEos(this.ids(completion)) };
    const pm = typeof prompt === 'string' ? [{ role: 'user', content: prompt }] : prompt;
    const cm = typeof completion === 'string' ? [{ role: 'assistant', content: completion }] : completion;
    const head = this.chat(pm, true);
    const full = this.chat([...pm, ...cm]);
    if (!full.startsWith(head))
      throw new Error('chat template: the rendered prompt is not a prefix of the rendered conversation');
    return { prompt: this.ids(head), completion: this.ids(full.slice(head.length)) };
  }

  private withEos(ids: number[]): number[] {
    return this.eos === null ? ids : [...ids, this.eos];
  }

  /** SFT row: loss on the completion, or on every assistant turn of a conversation (mask over completion) */
  sft(r: SftRecord): Sequence {
    if (!r.messages) return this.pair(r.prompt!, r.completion!);
    const ms = r.messages;
    const chat = (upto: Message[], gen = false) => this.chat(upto, gen, r.tools);
    const first = ms.findIndex((m) => m.role === 'assistant');
    let done = chat(ms.slice(0, first), true);
    const prompt = this.ids(done);
    const completion: number[] = [];
    const mask: number[] = [];
    const append = (upto: string, learn: number, turn: number) => {
      if (!upto.startsWith(done))
        throw new Error(`the chat template renders turn ${turn} inconsistently (not a prefix)`);
      const seg = this.ids(upto.slice(done.length));
      completion.push(...seg);
      mask.push(...seg.map(() => learn));
      done = upto;
    };
    for (let i = first; i < ms.length; i++) {
      if (ms[i]!.role === 'assistant') append(chat(ms.slice(0, i), true), 0, i); // the generation prompt
      append(chat(ms.slice(0, i + 1)), ms[i]!.role === 'assistant' ? 1 : 0, i);
    }
    return { prompt, completion, mask };
  }
}
