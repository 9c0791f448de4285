// OpenAI request fields → engine requests, and engine token events → OpenAI response objects and
// stream chunks (exactly OpenAI's shapes: id, object, created, model, choices[], usage).
import type { EngineRequest } from '../infer/engine/engine.js';
import type { TokenEvent } from '../infer/engine/sequence.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { tokenVocab } from '../infer/constrain/index.js';
import { badRequest } from './errors.js';

/** the sampling fields shared by /v1/completions and /v1/chat/completions */
export interface SamplingBody {
  model: string;
  max_tokens?: number | null;
  max_completion_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  top_k?: number | null;
  min_p?: number | null;
  n?: number | null;
  stop?: string | string[] | null;
  seed?: number | null;
  presence_penalty?: number | null;
  frequency_penalty?: number | null;
  repetition_penalty?: number | null;
  logit_bias?: Record<string, number> | null;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean } | null;
  user?: string;
}

export type FinishReason = 'stop' | 'length' | 'tool_calls';

/** engine request fields from an OpenAI body (validated by the route schema; ranges by the engine) */
export function samplingFields(
  b: SamplingBody,
  topLogprobs: number | undefined,
  maxTokensDefault: number,
): Omit<EngineRequest, 'prompt'> {
  const stop = b.stop == null ? [] : typeof b.stop === 'string' ? [b.stop] : b.stop;
  if (stop.length > 16) throw badRequest('stop', `stop: at most 16 strings, got ${stop.length}`);
  const bias: Record<number, number> = {};
  for (const [k, v] of Object.entries(b.logit_bias ?? {})) {
    if (!/^\d+$/.test(k))
      throw badRequest('logit_bias', `logit_bias: keys must be token ids, got ${JSON.stringify(k)}`);
    if (v < -100 || v > 100) throw badRequest('logit_bias', `logit_bias[${k}]: must be in [-100, 100], got ${v}`);
    bias[Number(k)] = v;
  }
  const maxTokens = b.max_completion_tokens ?? b.max_tokens ?? maxTokensDefault;
  return {
    maxTokens,
    temperature: b.temperature ?? 1,
    topP: b.top_p ?? 1,
    topK: b.top_k ?? 0,
    minP: b.min_p ?? 0,
    n: b.n ?? 1,
    stop,
    seed: b.seed ?? undefined,
    presencePenalty: b.presence_penalty ?? 0,
    frequencyPenalty: b.frequency_penalty ?? 0,
    repetitionPenalty: b.repetition_penalty ?? 1,
    logitBias: bias,
    logprobs: topLogprobs,
  };
}

export function finishReason(r: TokenEvent['finishReason']): FinishReason | null {
  return r === null ? null : r === 'length' ? 'length' : 'stop';
}

/** a generated token as logprobs list it: its id, its log-probabilities, and where its text starts */
export interface TrackedToken {
  id: number;
  lp: TokenEvent['logprobs'];
  /** offset of the token's text in the generated text (partial UTF-8 tokens share the character's offset) */
  start: number;
  end: number;
  /** a stop token: it ends the sequence and shows no text */
  stop: boolean;
}

/**
 * The tokens behind the text a choice returns. The engine holds back text that may begin a stop string
 * and drops it when the stop string matches, while its tokens were already sampled: a token is listed in
 * logprobs once all of its text is shown, and at the end only if its text starts inside the final text,
 * so logprobs describe exactly the returned text, streamed or not (the same tokens, the same offsets).
 * Offsets come from the tokenizer's streaming decoder, as the engine's text does.
 */
export class TokenTrack {
  private readonly decoder: { push(id: number): string };
  private pos = 0;
  private queue: TrackedToken[] = [];
  /** every token released so far, in order */
  readonly kept: TrackedToken[] = [];

  constructor(
    tok: Tokenizer,
    private readonly stopIds: ReadonlySet<number>,
  ) {
    this.decoder = tok.decodeStream();
  }

  push(id: number, lp: TokenEvent['logprobs']): void {
    const stop = this.stopIds.has(id);
    const start = this.pos;
    this.pos += stop ? 0 : this.decoder.push(id).length;
    this.queue.push({ id, lp, start, end: this.pos, stop });
  }

  /** the tokens whose text is now all shown (`shown` characters); `final`: the sequence ended */
  release(shown: number, final: boolean): TrackedToken[] {
    let k = 0;
    while (k < this.queue.length && this.queue[k]!.end <= shown && !this.queue[k]!.stop) k++;
    let out = this.queue.splice(0, k);
    if (final) {
      out = out.concat(this.queue.filter((t) => t.start < shown || t.stop));
      this.queue = [];
    }
    this.kept.push(...out);
    return out;
  }
}

/** what one of a request's n sequences produced */
export interface ChoiceState {
  text: string;
  /** tokens generated (usage counts them all, also those cut with a stop string) */
  tokens: number;
  finish: FinishReason | null;
  /** the tokens behind the returned text, tracked only when the request asked for logprobs */
  track: TokenTrack | null;
}

export const newChoice = (tok: Tokenizer, stopIds: ReadonlySet<number>, logprobs: boolean): ChoiceState => ({
  text: '',
  tokens: 0,
  finish: null,
  track: logprobs ? new TokenTrack(tok, stopIds) : null,
});

/** folds one engine event into its choice; returns the text delta and the tokens it releases to logprobs */
export function applyEvent(c: ChoiceState, e: TokenEvent): { delta: string; released: TrackedToken[] } {
  if (e.token >= 0) {
    c.tokens++;
    c.track?.push(e.token, e.logprobs);
  }
  c.text += e.text;
  c.finish = finishReason(e.finishReason);
  return { delta: e.text, released: c.track?.release(c.text.length, e.finishReason !== null) ?? [] };
}

const rawBytesCache = new WeakMap<Tokenizer, (Uint8Array | null)[] | null>();

/** the bytes each token id adds to the output (null: unknown for this tokenizer's decoder, or special) */
function rawBytes(tok: Tokenizer, id: number): Uint8Array | null {
  let table = rawBytesCache.get(tok);
  if (table === undefined) {
    try {
      table = tokenVocab(tok).bytes;
    } catch {
      table = null; // a decoder the byte view does not model: fall back to the decoded text
    }
    rawBytesCache.set(tok, table);
  }
  return table?.[id] ?? null;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A token as logprobs name it: `bytes` are its own bytes (a byte-level token that is part of a UTF-8
 * character keeps its byte, so clients can rebuild the character); its string is their text, or, when the
 * bytes are not whole UTF-8 on their own, OpenAI's `bytes:\xNN` escape (distinct keys, unlike U+FFFD).
 */
export function tokenView(tok: Tokenizer, id: number): { token: string; bytes: number[] } {
  const raw = rawBytes(tok, id);
  if (!raw) {
    const token = tok.decode([id]);
    return { token, bytes: Array.from(new TextEncoder().encode(token)) };
  }
  const bytes = Array.from(raw);
  try {
    return { token: strictUtf8.decode(raw), bytes };
  } catch {
    return { token: 'bytes:' + bytes.map((b) => `\\x${b.toString(16).padStart(2, '0')}`).join(''), bytes };
  }
}

/** chat logprobs: {content: [{token, logprob, bytes, top_logprobs: [...]}]} for these tokens */
export function chatLogprobs(tok: Tokenizer, toks: readonly TrackedToken[]) {
  return {
    content: toks.map(({ id, lp }) => ({
      ...tokenView(tok, id),
      logprob: lp?.logprob ?? 0,
      top_logprobs: (lp?.top ?? []).map((t) => {
        const v = tokenView(tok, t.id);
        return { token: v.token, logprob: t.logprob, bytes: v.bytes };
      }),
    })),
  };
}

/** legacy completions logprobs: {tokens, token_logprobs, top_logprobs: [{token: logprob}], text_offset} */
export function completionLogprobs(tok: Tokenizer, toks: readonly TrackedToken[]) {
  return {
    tokens: toks.map((t) => tokenView(tok, t.id).token),
    token_logprobs: toks.map((t) => t.lp?.logprob ?? 0),
    top_logprobs: toks.map((t) =>
      Object.fromEntries((t.lp?.top ?? []).map((a) => [tokenView(tok, a.id).token, a.logprob])),
    ),
    text_offset: toks.map((t) => t.start),
  };
}

export function usage(prompt: number, completion: number) {
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}
