// Embeddings: one forward pass per input over the model's final hidden states, pooled per family —
// encoders (BERT) take the [CLS] position (the first token), decoders the mean over the sequence —
// then L2-normalised, as OpenAI's embeddings are.
import { noGrad, tidy } from '../tensor/engine.js';
import { tensor } from '../ops/index.js';
import type { ServedModel } from './models.js';
import { ApiError } from './errors.js';

export function embed(m: ServedModel, inputs: readonly number[][]): { vectors: Float32Array[]; tokens: number } {
  const arch = m.model.config.arch;
  if (arch === 'encoder-decoder')
    throw new ApiError(
      400,
      `${m.name} is an encoder-decoder; embeddings need an encoder or decoder model`,
      'model',
      'model_not_supported',
    );
  const vectors = inputs.map((ids) => noGrad(() => tidy(() => pooled(m, ids, arch === 'encoder' ? 'cls' : 'mean'))));
  return { vectors, tokens: inputs.reduce((s, x) => s + x.length, 0) };
}

function pooled(m: ServedModel, ids: readonly number[], pooling: 'cls' | 'mean'): Float32Array {
  const out = m.model.forward({ inputIds: tensor(Int32Array.from(ids), { shape: [1, ids.length], dtype: 'int32' }) });
  const h = out.lastHiddenState;
  if (!h) throw new ApiError(400, `${m.name} exposes no hidden states to embed`, 'model', 'model_not_supported');
  const D = h.shape[2]!;
  const v = (pooling === 'cls' ? h.slice(1, 0, 1) : h.mean(1, true)).reshape(D).data() as Float32Array; // (D)
  let norm = 0;
  for (const x of v) norm += x * x;
  norm = Math.sqrt(norm) || 1;
  return Float32Array.from(v, (x) => x / norm);
}
