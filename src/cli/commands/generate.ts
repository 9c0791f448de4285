// `lineage generate`: sample text from a model directory (default: the bundled Shakespeare model, found
// relative to this package, not the working directory). Greedy at --temperature 0; KV-cached decoding.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { generate } from '../../infer/generate.js';
import { loadModelDir } from '../../infer/model-dir-node.js';
import { flagNumber, flagString, parseFlags, type ParsedFlags } from '../flags.js';
import { requireModelDir } from '../files.js';
import type { LanguageModel } from '../../models/model.js';
import type { Tokenizer } from '../../tokenizers/tokenizer.js';
import type { EngineRequest } from '../../infer/engine/engine.js';
import { checkSamplingParams, drawToken, sequenceRng } from '../../infer/engine/sampler.js';
import type { ModelConfig } from '../../models/config.js';
import { draftContextNotice } from '../../infer/engine/drafter.js';
import { ENGINE_FLAGS, generateWithEngine } from './generate-engine.js';
import { checkMtpModel, parseSpeculative } from './speculative-flag.js';
import { checkKvDtype } from '../../infer/engine/kv-dtype.js';
import { CONSTRAIN_FLAGS, CONSTRAIN_HELP, constraintFromFlags, constraintProcessor } from './constrain-flags.js';
import type { Constraint } from '../../infer/constrain/index.js';
import { loadAdapterDir } from '../../align/lora-node.js';

/** models/shakespeare-char beside dist/ (this file is dist/src/cli/commands/generate.js) */
export function bundledModelDir(): string {
  return fileURLToPath(new URL('../../../../models/shakespeare-char', import.meta.url));
}

const HELP = `usage: lineage generate [--model DIR] --prompt TEXT [options]

  --model DIR        model directory with tokenizer.json (default: the bundled shakespeare-char model);
                     make one from a preset with 'lineage init --preset NAME --out DIR'
  --prompt TEXT      text to continue (default: a newline)
  --max-tokens N     tokens to generate (default 200)
  --temperature T    0 = greedy (default 0.8)
  --top-k K          keep the K most likely tokens (default 0 = off)
  --top-p P          nucleus sampling (default 1 = off)
  --seed S           sampling seed (default 0)
${CONSTRAIN_HELP}
  --lora DIR         apply a PEFT LoRA adapter directory (adapter_config.json) on top of --model
  --json             print {"text","ids","finishReason"} instead of streaming the text (with --stop, ids and
                     logprobs are the tokens behind the text)

every model the inference engine serves (decoders other than ALiBi, T5/BART, Mamba, RNN/LSTM/GRU) runs
through it and stops at its context (a note on stderr says so up front when --max-tokens would pass
it); a learned-position decoder (GPT-2) given none of the flags below slides its window past the
context instead. Both paths draw the same sample for a --seed. Engine flags (recurrent models: all but
speculative decoding and --beams):
  --n N                    N independent samples of the prompt (sharing its KV blocks)
  --min-p P                drop tokens less likely than P x the top token
  --repetition-penalty R   divide the logits of tokens already seen by R (> 1 discourages repeats)
  --stop TEXT              stop before TEXT (repeatable)
  --logprobs K             with --json: log-probabilities of each token and its K top alternatives
  --draft-model DIR        speculative decoding with this smaller model (same tokenizer) as drafter
  --speculative-tokens K   draft tokens per step (default 5 with --draft-model, else 4)
  --prompt-lookup          speculative decoding with n-gram drafts from the text so far
  --speculative mtp        speculative decoding with the model's own multi-token-prediction depths
                           (DeepSeek-V3 MTP) as drafter: no second model
  --beams B                beam search with B beams (deterministic; --n K returns the K best of them)
  --length-penalty L       beam search: score = sum of logprobs / length^L (default 1)
  --kv-dtype D             KV cache element type: float32 (default), float16, bfloat16, int8`;

export async function generateCommand(argv: string[]): Promise<void> {
  const valued = [
    'model',
    'prompt',
    'max-tokens',
    'temperature',
    'top-k',
    'top-p',
    'seed',
    'n',
    'min-p',
    'repetition-penalty',
    'stop',
    'logprobs',
    'draft-model',
    'speculative-tokens',
    'speculative',
    'kv-dtype',
    'beams',
    'length-penalty',
    'lora',
    ...CONSTRAIN_FLAGS,
  ];
  const f = parseFlags('generate', argv, valued, ['json', 'prompt-lookup']);
  if (f.help) return void console.log(HELP);
  const given = flagString(f, 'model');
  const dir = given ?? bundledModelDir();
  if (given !== undefined) requireModelDir('--model', given);
  else if (!existsSync(dir)) throw new Error(`the bundled model ${dir} is missing from this install; pass --model DIR`);
  const { model, tokenizer } = await loadModelDir(dir);
  if (!tokenizer) throw new Error(`${dir}: no tokenizer.json (generate needs one to encode the prompt)`);
  const lora = flagString(f, 'lora');
  if (lora) loadAdapterDir(model, lora);
  const prompt = flagString(f, 'prompt') ?? '\n';
  const promptIds = tokenizer.encode(prompt, { addSpecialTokens: false });
  if (promptIds.length === 0) throw new Error('--prompt: encodes to no tokens');
  const json = f.bools.has('json');
  const eos = model.config.tokens.eos;
  const maxTokens = flagNumber(f, 'max-tokens', { int: true, min: 0 }) ?? 200;
  checkFlagCombinations(f);
  // compiled here, so that a schema the vocabulary cannot spell is reported before anything runs
  const constraint = constraintFromFlags(f, tokenizer, eos, maxTokens);
  const route = chooseRoute(f, model.config, promptIds.length, maxTokens);
  if (route.note) console.error(`lineage generate: note: ${route.note}`);
  if (route.engine) {
    await engineGenerate(f, model, tokenizer, prompt, promptIds.length, maxTokens, constraint);
    return void model.dispose();
  }
  const sampling = {
    temperature: flagNumber(f, 'temperature', { min: 0 }) ?? 0.8,
    topK: flagNumber(f, 'top-k', { int: true, min: 0 }) ?? 0,
    topP: topPFlag(f),
    seed: flagNumber(f, 'seed', { int: true }) ?? 0,
  };
  try {
    checkSamplingParams(sampling, model.config.vocabSize, 'request');
  } catch (e) {
    throw flagError(e);
  }
  // the engine's sampler and per-sequence generator: a seed draws the same sample on either path
  const rng = sequenceRng(sampling.seed, 0);
  let shown = '';
  const ids: number[] = [];
  if (!json) process.stdout.write(prompt);
  const stopIds = eos !== null ? [eos] : [];
  const out = generate(model, promptIds, {
    maxTokens,
    constraint: constraint ?? undefined,
    ...sampling,
    sample: (row) => drawToken(row, sampling, rng),
    stopIds,
    onToken: (id) => {
      ids.push(id);
      if (json) return;
      const text = tokenizer.decode(ids);
      if (text.endsWith('\uFFFD')) return; // an incomplete UTF-8 sequence: wait for its next byte
      process.stdout.write(text.slice(shown.length));
      shown = text;
    },
  });
  model.dispose();
  const text = tokenizer.decode(out);
  // the engine path's finish reasons: a stop token (or a finished constraint) is 'stop', else 'length'
  const stopped = (out.length > 0 && stopIds.includes(out.at(-1)!)) || (constraint?.isFinished() ?? false);
  if (json) console.log(JSON.stringify({ text, ids: out, finishReason: stopped ? 'stop' : 'length' }));
  else process.stdout.write(text.slice(shown.length) + '\n');
}

/** flags that need the engine, given with a value that changes anything (`--n 1` or `--kv-dtype float32`
 * alone must not change the output, so they do not count) */
function engineFlagsGiven(f: ParsedFlags): string[] {
  const has = (n: string) => f.values.has(n) || f.bools.has(n);
  const neutral: Record<string, () => boolean> = {
    n: () => flagNumber(f, 'n', { int: true, min: 1 }) === 1,
    'min-p': () => flagNumber(f, 'min-p', { min: 0 }) === 0,
    'repetition-penalty': () => flagNumber(f, 'repetition-penalty', { min: 0 }) === 1,
    'kv-dtype': () => flagString(f, 'kv-dtype') === 'float32',
    beams: () => flagNumber(f, 'beams', { int: true, min: 1 }) === 1,
  };
  return ENGINE_FLAGS.filter((n) => has(n) && !neutral[n]?.());
}

/** which path runs a request, and what to say about the context first */
interface Route {
  engine: boolean;
  note: string | null;
}

/**
 * One rule for every model. The inference engine runs each family it serves (decoders other than ALiBi,
 * encoder-decoders, Mamba and RNN/LSTM/GRU), with or without engine flags; it stops at the model's context
 * (finishReason "length"), and when prompt + --max-tokens would pass it a note on stderr says so up front.
 * The one exception: a decoder with learned positions (GPT-2, nanoGPT) and no engine flag runs the plain
 * loop when the request exceeds its context, which slides the window over the last context - 1 tokens
 * (nanoGPT's sampling) instead of stopping. Both paths draw with the engine's sampler and seed stream,
 * so a seed gives the same sample whatever --max-tokens. ALiBi decoders run the plain loop (no engine
 * flags) and may extrapolate past their trained length, with a note.
 */
function chooseRoute(f: ParsedFlags, c: ModelConfig, promptTokens: number, maxTokens: number): Route {
  const flags = engineFlagsGiven(f);
  const ctx = 'maxContext' in c ? c.maxContext : Infinity;
  const positions = 'positions' in c ? c.positions.kind : null;
  const served =
    (c.arch === 'decoder' && positions !== 'alibi') || ['encoder-decoder', 'rnn', 'mamba'].includes(c.arch);
  const recurrent = c.arch === 'rnn' || c.arch === 'mamba';
  const drafter = ['draft-model', 'prompt-lookup', 'speculative', 'speculative-tokens'].find((n) => flags.includes(n));
  if (!served) {
    if (flags.length)
      throw new Error(
        `--${flags[0]}: needs the inference engine, which does not run ${c.family} (${positions === 'alibi' ? 'ALiBi positions' : c.arch}); leave out --${flags.join(', --')}`,
      );
    const past = c.arch === 'decoder' && promptTokens + maxTokens > ctx;
    const note = past
      ? `${c.family}'s trained context is ${ctx} positions; prompt (${promptTokens}) + --max-tokens (${maxTokens}) go past it (ALiBi extrapolates, quality may drop)`
      : null;
    return { engine: false, note };
  }
  if (drafter && (recurrent || c.arch === 'encoder-decoder'))
    throw new Error(
      `--${drafter}: speculative decoding needs a decoder-only transformer target (${c.family} ${recurrent ? 'keeps a recurrent state' : 'is encoder-decoder'})`,
    );
  if (maxTokens === 0) return { engine: true, note: null };
  if (c.arch === 'decoder' && positions === 'learned' && flags.length === 0 && promptTokens + maxTokens > ctx)
    return { engine: false, note: null }; // the window slides (see above)
  let note: string | null = null;
  if (c.arch === 'encoder-decoder' && maxTokens > ctx)
    note = `${c.family}'s decoder context is ${ctx} positions: generation stops after at most ${ctx} tokens (--max-tokens ${maxTokens})`;
  else if (c.arch === 'decoder' && promptTokens <= ctx && promptTokens + maxTokens > ctx)
    note =
      `${c.family}'s context is ${ctx} positions: generation stops after at most ${Math.max(1, ctx - promptTokens)} new tokens ` +
      `(the prompt has ${promptTokens}, --max-tokens asks for ${maxTokens})` +
      (positions === 'learned' ? `; without --${flags.join(', --')} the window would slide past it instead` : '');
  return { engine: true, note };
}

/** --top-p in (0, 1] (checked here, so that the error names the flag and comes before any output) */
function topPFlag(f: ParsedFlags): number {
  const p = flagNumber(f, 'top-p', { min: 0, max: 1 }) ?? 1;
  if (p === 0) throw new Error('--top-p: expected a number in (0, 1], got 0');
  return p;
}

/** flags that cannot take effect together (or alone) are refused rather than silently ignored */
function checkFlagCombinations(f: ParsedFlags): void {
  const has = (n: string) => f.values.has(n) || f.bools.has(n);
  const constraint = CONSTRAIN_FLAGS.find(has);
  const beams = (flagNumber(f, 'beams', { int: true, min: 1 }) ?? 1) > 1;
  const drafter = ['draft-model', 'prompt-lookup', 'speculative'].filter(has);
  if (has('logprobs') && !f.bools.has('json'))
    throw new Error('--logprobs needs --json (the log-probabilities are part of the JSON output only)');
  if (beams && constraint)
    throw new Error(`--beams cannot be combined with --${constraint}: beam search does not take a constraint`);
  if (beams && drafter.length)
    throw new Error(`--beams cannot be combined with --${drafter[0]}: beam search does not use speculative decoding`);
  if (has('speculative-tokens') && drafter.length === 0)
    throw new Error('--speculative-tokens needs a drafter: --draft-model DIR, --prompt-lookup or --speculative mtp');
}

/** the CLI flag of a request field, so that an engine error names what the user typed */
const REQUEST_FLAGS: Record<string, string> = {
  topP: '--top-p',
  topK: '--top-k',
  minP: '--min-p',
  temperature: '--temperature',
  repetitionPenalty: '--repetition-penalty',
  maxTokens: '--max-tokens',
  n: '--n',
  beams: '--beams',
  lengthPenalty: '--length-penalty',
  stop: '--stop',
  logprobs: '--logprobs',
  seed: '--seed',
  prompt: '--prompt',
};

/** request errors whose first word is not a field: [pattern, flag] (the message keeps its wording) */
const REQUEST_MESSAGES: [RegExp, string][] = [
  [/^every stop string/, '--stop'],
  [/^the prompt has/, '--prompt'],
  [/^prompt \+ maxTokens need/, '--max-tokens'],
  [/^beam search/, '--beams'],
  [/^\d+ beams of/, '--beams'],
];

/** request field names inside a message, as their flags ("prompt + maxTokens" -> "prompt + --max-tokens") */
const fieldsToFlags = (s: string) =>
  s.replace(/\b(maxTokens|minP|topK|topP|repetitionPenalty|lengthPenalty)\b/g, (k) => REQUEST_FLAGS[k]!);

/** an engine `request: ...` error as the CLI flag it is about */
export function flagError(e: unknown): Error {
  const msg = (e as Error).message ?? String(e);
  const body = /^request: (.*)$/s.exec(msg)?.[1];
  if (body === undefined) return e instanceof Error ? e : new Error(msg);
  const field = /^(\w+)(.*)$/s.exec(body);
  if (field && REQUEST_FLAGS[field[1]!]) return new Error(`${REQUEST_FLAGS[field[1]!]}${fieldsToFlags(field[2]!)}`);
  const known = REQUEST_MESSAGES.find(([re]) => re.test(body));
  return new Error(`${known ? known[1] : '--prompt'}: ${fieldsToFlags(body)}`);
}

/** the engine path (every family the engine serves; see chooseRoute) */
async function engineGenerate(
  f: ParsedFlags,
  model: LanguageModel,
  tokenizer: Tokenizer,
  prompt: string,
  promptTokens: number,
  maxTokens: number,
  constraint: Constraint | null,
): Promise<void> {
  const c = model.config;
  const draftDir = flagString(f, 'draft-model');
  const draftModel = draftDir ? (await loadModelDir(draftDir)).model : null;
  const short = draftModel ? draftContextNotice(c, draftModel.config, promptTokens + maxTokens) : null;
  if (short) console.error(`lineage generate: note: ${short}`);
  const mtpDraft = parseSpeculative(flagString(f, 'speculative'));
  if (mtpDraft) checkMtpModel(c, flagString(f, 'model') ?? 'the model');
  const request: EngineRequest = {
    prompt,
    maxTokens,
    temperature: flagNumber(f, 'temperature', { min: 0 }) ?? 0.8,
    topK: flagNumber(f, 'top-k', { int: true, min: 0 }) ?? 0,
    topP: topPFlag(f),
    minP: flagNumber(f, 'min-p', { min: 0 }) ?? 0,
    repetitionPenalty: flagNumber(f, 'repetition-penalty', { min: 0 }) ?? 1,
    seed: flagNumber(f, 'seed', { int: true }) ?? 0,
    n: flagNumber(f, 'n', { int: true, min: 1 }) ?? 1,
    stop: f.values.get('stop') ?? [],
  };
  // the constraint compiled above, as the engine's per-request logits processor (applies to every --n sample)
  if (constraint) request.logitsProcessor = constraintProcessor(constraint, maxTokens);
  const logprobs = flagNumber(f, 'logprobs', { int: true, min: 0 });
  if (logprobs !== undefined) request.logprobs = logprobs;
  const beams = flagNumber(f, 'beams', { int: true, min: 1 });
  if (beams !== undefined && beams > 1) {
    // beam search is deterministic: the sampling defaults stay out (an explicit sampling flag is refused)
    request.beams = beams;
    const sampling = { temperature: 'temperature', topK: 'top-k', topP: 'top-p', minP: 'min-p' } as const;
    for (const [k, flag] of Object.entries(sampling))
      if (!f.values.has(flag)) delete request[k as keyof typeof sampling];
    if (!f.values.has('repetition-penalty')) delete request.repetitionPenalty;
  }
  const lengthPenalty = flagNumber(f, 'length-penalty');
  if (lengthPenalty !== undefined) request.lengthPenalty = lengthPenalty;
  const json = f.bools.has('json');
  await generateWithEngine(model, tokenizer, {
    request,
    echo: !json && request.n === 1 ? prompt : undefined,
    mapError: flagError,
    draftModel,
    json,
    promptLookup: f.bools.has('prompt-lookup'),
    mtpDraft,
    speculativeTokens: flagNumber(f, 'speculative-tokens', { int: true, min: 1 }), // undefined: the engine's default
    kvDtype: checkKvDtype(flagString(f, 'kv-dtype') ?? 'float32', '--kv-dtype'),
  });
  draftModel?.dispose();
}
