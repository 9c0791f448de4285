// `lineage generate` through the inference engine: n samples, min-p, penalties, stop strings, logprobs,
// speculative decoding (draft model or prompt lookup), tokens streamed as they come.
import type { LanguageModel } from '../../models/model.js';
import type { Tokenizer } from '../../tokenizers/tokenizer.js';
import { Engine, type EngineRequest } from '../../infer/engine/engine.js';
import { TokenTrack } from '../../serve/openai.js';
import type { KvDtype } from '../../infer/engine/kv-dtype.js';

export interface EngineGenerateOptions {
  request: EngineRequest;
  draftModel: LanguageModel | null;
  promptLookup: boolean;
  /** the model's own MTP depths draft (--speculative mtp) */
  mtpDraft?: boolean;
  speculativeTokens?: number;
  json: boolean;
  kvDtype?: KvDtype;
  /** printed once the engine has accepted the request (the prompt, before its streamed continuation) */
  echo?: string;
  /** rewrites a request error (e.g. to name the CLI flag instead of the request field) */
  mapError?: (e: unknown) => Error;
}

interface Choice {
  text: string;
  /** the tokens behind `text` (those cut with a stop string are dropped, as serve does), their logprobs */
  track: TokenTrack;
  finishReason: string | null;
  /** beam search: the hypothesis' length-penalised score */
  score?: number;
}

/** flags only the engine path honours (the plain path refuses them) */
export const ENGINE_FLAGS = [
  'n',
  'min-p',
  'repetition-penalty',
  'stop',
  'logprobs',
  'draft-model',
  'speculative-tokens',
  'prompt-lookup',
  'speculative',
  'kv-dtype',
  'beams',
  'length-penalty',
];

/** adds the request and streams its events into the choices */
async function run(engine: Engine, o: EngineGenerateOptions, choices: Choice[], stream: boolean): Promise<void> {
  let handle: ReturnType<Engine['add']>;
  try {
    handle = engine.add(o.request); // validates the request: nothing is printed before it is accepted
  } catch (e) {
    throw o.mapError ? o.mapError(e) : e;
  }
  if (o.echo !== undefined) process.stdout.write(o.echo);
  for await (const e of handle) {
    const c = choices[e.index]!;
    if (e.token >= 0) c.track.push(e.token, e.logprobs);
    c.text += e.text;
    c.track.release(c.text.length, e.finishReason !== null);
    if (e.finishReason) c.finishReason = e.finishReason;
    if (e.beamScore !== undefined) c.score = e.beamScore;
    if (stream) process.stdout.write(e.text);
  }
}

export async function generateWithEngine(
  model: LanguageModel,
  tokenizer: Tokenizer,
  o: EngineGenerateOptions,
): Promise<void> {
  const n = o.request.n ?? 1;
  const need =
    (typeof o.request.prompt === 'string' ? o.request.prompt.length : o.request.prompt.length) +
    (o.request.maxTokens ?? 128);
  const engine = new Engine(model, {
    tokenizer,
    kvMemoryBytes: Math.max(16 << 20, Math.max(n, o.request.beams ?? 1) * need * 4096),
    draftModel: o.draftModel,
    promptLookup: o.promptLookup,
    mtpDraft: o.mtpDraft ?? false,
    speculativeTokens: o.speculativeTokens,
    kvDtype: o.kvDtype ?? 'float32',
  });
  const eos = model.config.tokens.eos;
  const stopIds = new Set([...(o.request.stopTokenIds ?? []), ...(eos !== null && !o.request.ignoreEos ? [eos] : [])]);
  const choices: Choice[] = Array.from({ length: n }, () => ({
    text: '',
    track: new TokenTrack(tokenizer, stopIds),
    finishReason: null,
  }));
  const stream = !o.json && n === 1;
  try {
    // --max-tokens 0: nothing to generate (the engine takes requests of at least one token)
    if (o.request.maxTokens === 0) {
      for (const c of choices) c.finishReason = 'length';
      if (o.echo !== undefined) process.stdout.write(o.echo);
    } else await run(engine, o, choices, stream);
  } finally {
    engine.dispose();
  }
  const stats = engine.stats();
  if (o.json) {
    const out = (c: Choice) => ({
      text: c.text,
      ids: c.track.kept.map((t) => t.id),
      finishReason: c.finishReason,
      ...(o.request.logprobs !== undefined ? { logprobs: c.track.kept.map((t) => t.lp).filter((lp) => !!lp) } : {}),
      ...(c.score !== undefined ? { score: c.score } : {}),
    });
    const spec = o.draftModel || o.promptLookup || o.mtpDraft ? { acceptanceRate: stats.acceptanceRate } : {};
    console.log(JSON.stringify(n === 1 ? { ...out(choices[0]!), ...spec } : { choices: choices.map(out), ...spec }));
    return;
  }
  if (stream) return void process.stdout.write('\n');
  const label = (c: Choice, i: number) =>
    c.score !== undefined
      ? `beam ${i} (${c.finishReason}, score ${c.score.toFixed(4)})`
      : `sample ${i} (${c.finishReason})`;
  choices.forEach((c, i) => process.stdout.write(`--- ${label(c, i)} ---\n${c.text}\n`));
}
