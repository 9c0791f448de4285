// Autoregressive generation with a KV cache: one forward pass over the prompt (prefill), then one
// token per forward pass. Models without `newCache` re-run the whole (cropped) sequence each step.
// When the sequence outgrows a learned-position model's context, the cache is rebuilt from the last
// maxContext-1 tokens (nanoGPT crops `idx[:, -block_size:]` the same way).
import { noGrad, tidy } from '../tensor/engine.js';
import { Rng } from '../tensor/random.js';
import { indexTensor } from '../ops/index.js';
import type { Cache, LanguageModel, ModelInputs } from '../models/model.js';
import type { ModelConfig } from '../models/config.js';
import { FastSequence } from './fast-generate.js';
import { checkSampling, sampleToken, type SamplingOptions } from './sampling.js';

export interface GenerateOptions extends SamplingOptions {
  maxTokens: number;
  seed?: number;
  /** stop after emitting one of these ids (e.g. EOS) */
  stopIds?: readonly number[];
  /** called with each new token id as soon as it is chosen (streaming) */
  onToken?: (id: number) => void;
  /** use the model's KV cache when it has one (default true; false re-runs the sequence, for tests) */
  useCache?: boolean;
  /** constrained decoding (infer/constrain): masks each step's logits; generation ends when it is finished */
  constraint?: StepConstraint;
  /** picks each token from its (constrained) logits row instead of temperature / topK / topP with the seed's
   * Rng: `lineage generate` passes the engine's sampler, so both paths draw the same sample for a seed */
  sample?: (row: Float32Array) => number;
  /** plain decoders: the fast decode path (src/infer/fast-decoder.ts) where it applies (default true;
   * false runs `model.forward`, the reference the tests compare it with) */
  fast?: boolean;
}

/** What generate needs of a constraint (infer/constrain's Constraint has it). */
export interface StepConstraint {
  isFinished(): boolean;
  maskLogits(logits: Float32Array, remaining?: number): void;
  advance(id: number): void;
}

/** the logits row with disallowed tokens at -Infinity (a copy: the row may alias backend memory) */
function constrained(logits: Float32Array, o: GenerateOptions, step: number): Float32Array {
  if (!o.constraint) return logits;
  const row = Float32Array.from(logits);
  o.constraint.maskLogits(row, o.maxTokens - step);
  return row;
}

/** context limit of models with a fixed position table (Infinity for RoPE/RNN/SSM models) */
export function contextLimit(model: LanguageModel): number {
  return contextLimitOf(model.config);
}

/** the same from a config alone (no weights loaded) */
export function contextLimitOf(c: ModelConfig): number {
  if (!('positions' in c) || !('maxContext' in c)) return Infinity;
  return c.positions.kind === 'learned' ? c.maxContext : Infinity;
}

/** ids checked on the host (generate validates them), so the embedding never reads them back per token */
const row = (ids: readonly number[], V: number) =>
  indexTensor(ids, V, { shape: [1, ids.length], what: 'generate: token ids' });

/** logits of the last position of one forward call, as a host array */
function lastLogits(model: LanguageModel, inputs: ModelInputs): Float32Array {
  const { logits } = model.forward(inputs);
  const [, T, V] = logits.shape as [number, number, number];
  return logits
    .slice(1, T - 1, T)
    .reshape(V)
    .data() as Float32Array; // (V)
}

/** generate's numeric options, named in errors (the Engine checks its requests the same way) */
function checkGenerateOptions(o: GenerateOptions | undefined): void {
  if (o === null || typeof o !== 'object') throw new Error('generate: options { maxTokens, ... } are required');
  const show = (v: unknown) => (typeof v === 'string' ? JSON.stringify(v) : String(v));
  if (!(Number.isInteger(o.maxTokens) && o.maxTokens >= 0))
    throw new Error(`generate: maxTokens must be a non-negative integer, got ${show(o.maxTokens)}`);
  if (o.seed !== undefined && !Number.isSafeInteger(o.seed))
    throw new Error(`generate: seed must be a safe integer, got ${show(o.seed)}`);
  checkSampling(o);
}

/** Generates up to maxTokens ids after `prompt` (decoder-only and recurrent families). */
export function generate(model: LanguageModel, prompt: readonly number[], o: GenerateOptions): number[] {
  checkGenerateOptions(o);
  if (model.config.arch === 'encoder-decoder') return generateSeq2Seq(model, prompt, o);
  if (model.config.arch === 'encoder')
    throw new Error(
      `generate: ${model.config.family} is an encoder (no next-token head); use a decoder or encoder-decoder model`,
    );
  if (prompt.length === 0) throw new Error('generate: the prompt is empty (give at least one token)');
  const rng = new Rng(o.seed ?? 0);
  const limit = contextLimit(model);
  const useCache = (o.useCache ?? true) && !!model.newCache;
  const seq = [...prompt];
  const out: number[] = [];
  const wasTraining = model.training;
  model.eval();
  let cache: Cache | null = null;
  const capacity = prompt.length + o.maxTokens;
  const fast = useCache && (o.fast ?? true) && capacity <= limit ? FastSequence.create(model, capacity) : null;
  try {
    // the model's own forward over the cache (or the whole window without one): last-position logits
    const referenceStep = () => {
      let feed: number[];
      if (!useCache) feed = seq.slice(-limit);
      else if (cache && cache.length + 1 <= limit && cache.length === seq.length - 1) feed = seq.slice(-1);
      else {
        // (re)fill: the first step, or the context is full and the window slides
        cache?.dispose();
        cache = model.newCache!(1, { maxLength: limit === Infinity ? seq.length + o.maxTokens : limit });
        feed = seq.slice(-Math.max(1, Math.min(seq.length, limit - 1)));
      }
      const c = cache;
      return tidy(() => lastLogits(model, { inputIds: row(feed, model.config.vocabSize), cache: c }));
    };
    noGrad(() => {
      for (let i = 0; i < o.maxTokens; i++) {
        if (o.constraint?.isFinished()) break;
        const logits = fast ? fast.step(i === 0 ? seq : seq.slice(-1)) : referenceStep();
        const id = o.sample
          ? o.sample(Float32Array.from(constrained(logits, o, i)))
          : sampleToken(constrained(logits, o, i), o, rng);
        o.constraint?.advance(id);
        seq.push(id);
        out.push(id);
        o.onToken?.(id);
        if (o.stopIds?.includes(id)) break;
      }
    });
  } finally {
    fast?.dispose();
    (cache as Cache | null)?.dispose();
    model.train(wasTraining);
  }
  return out;
}

/** encoder-decoder: encode the prompt once, decode from decoderStart (cached when the model allows) */
function generateSeq2Seq(model: LanguageModel, prompt: readonly number[], o: GenerateOptions): number[] {
  const start = model.config.tokens.decoderStart ?? model.config.tokens.pad ?? 0;
  const stop = o.stopIds ?? (model.config.tokens.eos !== null ? [model.config.tokens.eos] : []);
  const rng = new Rng(o.seed ?? 0);
  const dec = [start];
  const out: number[] = [];
  const wasTraining = model.training;
  model.eval();
  try {
    noGrad(() => {
      for (let i = 0; i < o.maxTokens; i++) {
        if (o.constraint?.isFinished()) break;
        const logits = tidy(() =>
          lastLogits(model, {
            inputIds: row(prompt, model.config.vocabSize),
            decoderInputIds: row(dec, model.config.vocabSize),
          }),
        );
        const id = sampleToken(constrained(logits, o, i), o, rng);
        o.constraint?.advance(id);
        dec.push(id);
        out.push(id);
        o.onToken?.(id);
        if (stop.includes(id)) break;
      }
    });
  } finally {
    model.train(wasTraining);
  }
  return out;
}
