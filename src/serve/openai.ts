// OpenAI request fields → engine requests, and engine token events → OpenAI response objects and
// stream chunks (exactly OpenAI's shapes: id, object, created, model, choices[], usage).
import type { EngineRequest } from '../infer/engine/engine.js';
import type { TokenEvent } from '../infer/engine/sequence.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
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

/** what one of a request's n sequences produced */
export interface ChoiceState {
  text: string;
  tokens: number;
  finish: FinishReason | null;
  logprobs: TokenEvent['logprobs'][];
  ids: number[];
}

export const newChoice = (): ChoiceState => ({ text: '', tokens: 0, finish: null, logprobs: [], ids: [] });

/** folds one engine event into its choice; returns the text delta */
export function applyEvent(c: ChoiceState, e: TokenEvent): string {
  if (e.token >= 0) {
    c.tokens++;
    c.ids.push(e.token);
    c.logprobs.push(e.logprobs);
  }
  c.text += e.text;
  c.finish = finishReason(e.finishReason);
  return e.text;
}

const bytesOf = (s: string) => Array.from(new TextEncoder().encode(s));

/** chat logprobs: {content: [{token, logprob, bytes, top_logprobs: [...]}]} for these tokens */
export function chatLogprobs(tok: Tokenizer, ids: readonly number[], lps: readonly TokenEvent['logprobs'][]) {
  return {
    content: ids.map((id, i) => {
      const token = tok.decode([id]);
      const lp = lps[i];
      return {
        token,
        logprob: lp?.logprob ?? 0,
        bytes: bytesOf(token),
        top_logprobs: (lp?.top ?? []).map((t) => {
          const s = tok.decode([t.id]);
          return { token: s, logprob: t.logprob, bytes: bytesOf(s) };
        }),
      };
    }),
  };
}

/** legacy completions logprobs: {tokens, token_logprobs, top_logprobs: [{token: logprob}], text_offset} */
export function completionLogprobs(
  tok: Tokenizer,
  ids: readonly number[],
  lps: readonly TokenEvent['logprobs'][],
  offset0: number,
) {
  const tokens = ids.map((id) => tok.decode([id]));
  let off = offset0;
  const text_offset = tokens.map((t) => {
    const o = off;
    off += t.length;
    return o;
  });
  return {
    tokens,
    token_logprobs: lps.map((lp) => lp?.logprob ?? 0),
    top_logprobs: lps.map((lp) => Object.fromEntries((lp?.top ?? []).map((t) => [tok.decode([t.id]), t.logprob]))),
    text_offset,
  };
}

export function usage(prompt: number, completion: number) {
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}
