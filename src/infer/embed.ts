// Sentence embeddings from a model's final hidden states: inputs of different lengths are sorted by
// length and run in padded batches (one forward per batch, a padding mask so that encoders never attend
// to the pad), then pooled per sequence and L2-normalised, as OpenAI's embeddings are.
//
// Pooling, as sentence-transformers names it (its 1_Pooling/config.json is read by the Node loader):
//   cls  — the first token's state (BERT-style encoders trained with a [CLS] objective)
//   mean — the mean over the sequence's real tokens (most sentence-transformers models)
//   last — the last real token's state (decoder embedding models, e.g. E5-Mistral; the only position
//          that has seen the whole input under a causal mask)
import { noGrad, tidy } from '../tensor/engine.js';
import { tensor } from '../ops/index.js';
import type { LanguageModel } from '../models/model.js';
import type { ModelConfig } from '../models/config.js';

export type Pooling = 'cls' | 'mean' | 'last';
export const POOLINGS: readonly Pooling[] = ['cls', 'mean', 'last'];

export interface EmbedOptions {
  pooling?: Pooling;
  /** padded tokens per forward batch (default 4096): bounds the activation memory of one batch */
  maxBatchTokens?: number;
  /** L2-normalise each vector (default true) */
  normalize?: boolean;
}

/** the pooling a family uses when nothing configures it: CLS for encoders, mean for decoders */
export function defaultPooling(cfg: ModelConfig): Pooling {
  return cfg.arch === 'encoder' ? 'cls' : 'mean';
}

/** embeds every input (token ids, none empty) → one Float32Array(D) per input, in input order */
export function embedTokens(
  model: LanguageModel,
  inputs: readonly (readonly number[])[],
  o: EmbedOptions = {},
): Float32Array[] {
  const arch = model.config.arch;
  if (arch !== 'encoder' && arch !== 'decoder')
    throw new Error(`embeddings need an encoder or a decoder model; this one is ${arch}`);
  inputs.forEach((ids, i) => {
    if (ids.length === 0) throw new Error(`input[${i}] is empty: an embedding needs at least one token`);
  });
  const pooling = o.pooling ?? defaultPooling(model.config);
  const order = inputs.map((_, i) => i).sort((a, b) => inputs[a]!.length - inputs[b]!.length);
  const out = new Array<Float32Array>(inputs.length);
  const budget = o.maxBatchTokens ?? 4096;
  const wasTraining = model.training;
  model.eval();
  try {
    for (let s = 0; s < order.length;) {
      // sorted ascending, so the batch's longest is its last: grow while B * T_max fits the budget
      let e = s + 1;
      while (e < order.length && (e - s + 1) * inputs[order[e]!]!.length <= budget) e++;
      const batch = order.slice(s, e);
      const vecs = noGrad(() =>
        tidy(() =>
          pooledBatch(
            model,
            batch.map((i) => inputs[i]!),
            pooling,
          ),
        ),
      );
      batch.forEach((i, j) => (out[i] = o.normalize === false ? vecs[j]! : l2normalize(vecs[j]!)));
      s = e;
    }
  } finally {
    if (wasTraining) model.train();
  }
  return out;
}

/** one padded forward over a batch → pooled (D) vectors */
function pooledBatch(model: LanguageModel, batch: readonly (readonly number[])[], pooling: Pooling): Float32Array[] {
  const B = batch.length;
  const T = Math.max(...batch.map((x) => x.length));
  const ids = new Int32Array(B * T); // right-padded with token 0; the mask hides it
  const mask = new Int32Array(B * T);
  batch.forEach((x, b) => {
    ids.set(x, b * T);
    mask.fill(1, b * T, b * T + x.length);
  });
  const out = model.forward({
    inputIds: tensor(ids, { shape: [B, T], dtype: 'int32' }),
    attentionMask: batch.every((x) => x.length === T) ? null : tensor(mask, { shape: [B, T], dtype: 'int32' }),
  });
  const h = out.lastHiddenState;
  if (!h) throw new Error(`${model.config.family} exposes no hidden states to embed`);
  const D = h.shape[2]!;
  const hs = h.data() as Float32Array; // (B, T, D)
  return batch.map((x, b) => {
    const v = new Float32Array(D);
    const row = (t: number) => hs.subarray((b * T + t) * D, (b * T + t + 1) * D);
    if (pooling === 'cls') v.set(row(0));
    else if (pooling === 'last') v.set(row(x.length - 1));
    else {
      for (let t = 0; t < x.length; t++) {
        const r = row(t);
        for (let d = 0; d < D; d++) v[d]! += r[d]!;
      }
      for (let d = 0; d < D; d++) v[d]! /= x.length;
    }
    return v;
  });
}

function l2normalize(v: Float32Array): Float32Array {
  let n = 0;
  for (const x of v) n += x * x;
  n = Math.sqrt(n) || 1;
  for (let i = 0; i < v.length; i++) v[i]! /= n;
  return v;
}
