// Rollouts for online methods (GRPO, PPO): G samples of one prompt decoded together as a batch of G rows
// that share the prompt's length, so one KV cache serves them all (prefill (G, Tp), then (G, 1) per step).
// A row that emits a stop id stops growing (its later tokens are ignored). Models without a cache re-run
// the whole batch each step. (The inference engine's continuous batching can replace this once landed.)
// src/infer sits above align in the layering, so the little sampling needed here (temperature only) is
// its own function rather than infer's sampler chain.
import { noGrad, tidy } from '../tensor/engine.js';
import type { Rng } from '../tensor/random.js';
import { tensor } from '../ops/index.js';
import type { Cache, LanguageModel } from '../models/model.js';

export interface RolloutOptions {
  maxTokens: number;
  temperature: number;
  stopIds?: readonly number[];
  /** sample only ids below this (a model's vocabulary may be padded beyond the tokenizer's) */
  vocabSize?: number;
}

/** G completions of `prompt` (ids, without the prompt; a stop id is kept as the last token) */
export function sampleGroup(
  model: LanguageModel,
  prompt: readonly number[],
  G: number,
  o: RolloutOptions,
  rng: Rng,
): number[][] {
  const limit = contextLimit(model);
  const maxNew = Math.max(0, Math.min(o.maxTokens, limit - prompt.length));
  const outs: number[][] = Array.from({ length: G }, () => []);
  const live = new Array<boolean>(G).fill(true);
  const was = model.training;
  model.eval();
  let cache: Cache | null = null;
  try {
    noGrad(() => {
      cache = model.newCache ? model.newCache(G, { maxLength: prompt.length + maxNew }) : null;
      let feed: number[][] = Array.from({ length: G }, () => [...prompt]);
      for (let s = 0; s < maxNew && live.some((x) => x); s++) {
        const rows = tidy(() => lastRows(model, feed, cache));
        feed = rows.map((logits, g) => {
          const id = sampleTemperature(o.vocabSize ? logits.subarray(0, o.vocabSize) : logits, o.temperature, rng);
          if (live[g]) {
            outs[g]!.push(id);
            if (o.stopIds?.includes(id)) live[g] = false;
          }
          return cache ? [id] : [...feed[g]!, id];
        });
      }
    });
  } finally {
    (cache as Cache | null)?.dispose();
    model.train(was);
  }
  return outs;
}

/** last-position logits of each row (rows of equal length), as host arrays */
function lastRows(model: LanguageModel, feed: number[][], cache: Cache | null): Float32Array[] {
  const G = feed.length;
  const T = feed[0]!.length;
  const ids = tensor(Int32Array.from(feed.flat()), { shape: [G, T], dtype: 'int32' });
  const { logits } = model.forward({ inputIds: ids, cache });
  const V = logits.shape[2]!;
  const last = logits
    .slice(1, T - 1, T)
    .reshape(G, V)
    .to('float32')
    .data() as Float32Array; // (G, V)
  return Array.from({ length: G }, (_, g) => last.subarray(g * V, (g + 1) * V));
}

/** the context of models with a learned position table (Infinity for RoPE / ALiBi / recurrent models) */
export function contextLimit(model: LanguageModel): number {
  const c = model.config;
  if (!('positions' in c) || !('maxContext' in c)) return Infinity;
  return c.positions.kind === 'learned' ? c.maxContext : Infinity;
}

/** one id from softmax(logits / T), argmax at T = 0: the same draw as infer's sampleToken without top-k/top-p */
export function sampleTemperature(logits: ArrayLike<number>, temperature: number, rng: Rng): number {
  const ids = Array.from({ length: logits.length }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]! || a - b);
  if (temperature === 0) return ids[0]!;
  const w = ids.map((i) => Math.exp((logits[i]! - logits[ids[0]!]!) / temperature));
  const total = w.reduce((a, b) => a + b, 0);
  const u = rng.uniform();
  let cum = 0;
  for (let i = 0; i < ids.length; i++) if (u < (cum += w[i]! / total)) return ids[i]!;
  return ids[ids.length - 1]!;
}
