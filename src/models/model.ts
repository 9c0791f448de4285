// The model interface every family implements (decoder-only, encoder, encoder-decoder, RNN, Mamba).
//
// Contract:
//  - A model is a `Module` whose parameter names are the Hugging Face checkpoint names of its family
//    (`model.layers.0.self_attn.q_proj.weight`), so `loadStateDict` takes a transformers state dict
//    as is; per-family renames of odd checkpoints live in the family's `sanitize` (see load-node.ts).
//  - `forward` is one call for training and inference. It never mutates the inputs; a cache passed in
//    `inputs.cache` IS updated in place (and returned as `outputs.cache`) so generation loops stay simple.
//  - Outputs are plain tensors; `auxLoss` is ready to add to the task loss (coefficients applied).
//  - Families that have no notion of some input ignore it only when it is null/undefined; an input they
//    cannot honour (e.g. `pixelValues` on a text-only model) is an error naming the field.
//
// Notation: B batch, T new tokens, Tk keys (past + new), V vocabulary, D width.
import type { Tensor } from '../tensor/tensor.js';
import type { Module } from '../nn/module.js';
import type { ModelConfig } from './config.js';
import type { PagedLayer } from '../nn/attention.js';

// The cache protocol belongs to the nn layer, whose blocks fill it.
import type { Cache } from '../nn/cache.js';
export type { Cache } from '../nn/cache.js';

export interface ModelInputs {
  /** int32 [B, T] token ids (decoder-only / encoder input; the encoder side of encoder-decoders) */
  inputIds: Tensor;
  /** [B, Tk] 1 = attend, 0 = padding (int32, bool or float). For cached decoding it covers past + new
   * tokens, as transformers' attention_mask does. */
  attentionMask?: Tensor | null;
  /** [B, T] 1 = a token with global attention (Longformer: CLS / question tokens), 0 = local only */
  globalAttentionMask?: Tensor | null;
  /** int32 [B, T] segment ids (BERT) */
  tokenTypeIds?: Tensor | null;
  /** int32 [B, Td] decoder input ids (encoder-decoder families) */
  decoderInputIds?: Tensor | null;
  /** [B, Td] decoder padding mask (encoder-decoder families) */
  decoderAttentionMask?: Tensor | null;
  /** state from `newCache` / a previous call; updated in place */
  cache?: Cache | null;
  /** absolute position of inputIds[:, 0] when no cache is given (default 0) */
  positionOffset?: number;
  /** float32 [B, C, H, W] images (vision-language decoders) */
  pixelValues?: Tensor | null;
  /** encoder states for an encoder-decoder's decoder when the encoder already ran (generation) */
  encoderHiddenStates?: Tensor | null;
  /** a ragged batch of sequences flattened into inputIds [1, T] over a paged KV cache (inference engine) */
  paged?: PagedBatch | null;
}

/**
 * What a model needs to run a flattened ragged batch: each token's absolute position and sequence
 * length, and per layer the paged cache that writes the new keys/values and attends through block tables.
 */
export interface PagedBatch {
  /** absolute position of every token of the row, [T] */
  positions: Int32Array;
  /** length of each token's sequence once this step is done, [T] (dynamic RoPE scaling is per sequence) */
  seqLens: Int32Array;
  /** the paged view of layer i */
  layer(i: number): PagedLayer;
  /** rows whose logits are wanted (the last token of each sampling sequence); logits become [1, R, V] */
  logitRows?: Int32Array | null;
  /** also return the final (normed) hidden states of EVERY row as `lastHiddenState` [1, T, D] (an MTP drafter
   * reads them); logits still cover only `logitRows` */
  allHidden?: boolean;
}

export interface ModelOutputs {
  /** [B, T, V] next-token / masked-token logits (for encoder-decoders: decoder logits) */
  logits: Tensor;
  /** auxiliary training loss, coefficients applied (MoE load balancing + router z-loss) */
  auxLoss?: Tensor;
  /** the cache passed in, now covering the new tokens */
  cache?: Cache;
  /** [B, T, D] final hidden states (after the final norm) */
  lastHiddenState?: Tensor;
  /** [B, Ts, D] encoder output of encoder-decoders */
  encoderLastHiddenState?: Tensor;
  /** [L_moe, B*T, E] pre-softmax router logits of every MoE layer (transformers' router_logits) */
  routerLogits?: Tensor;
  /** [B, D] BERT pooler output */
  poolerOutput?: Tensor;
  /** [B, 2] BERT next-sentence logits (seq_relationship_logits) */
  nspLogits?: Tensor;
  /** [B, T] extractive-QA span logits */
  startLogits?: Tensor;
  endLogits?: Tensor;
  /** anything else a family exposes, by transformers' output name */
  extra?: Record<string, Tensor>;
}

/** What `createModel` returns for every family. */
export interface LanguageModel extends Module {
  readonly config: ModelConfig;
  forward(inputs: ModelInputs): ModelOutputs;
  /** a fresh, empty inference cache for `batch` sequences (families without state may omit it) */
  newCache?(batch: number, opts?: CacheOptions): Cache;
  /** maps a transformers state dict of this family onto the model's parameter names (drops buffers,
   * fixes legacy prefixes, drops a tied head); identity when absent. Used by loadModel. */
  sanitize?(state: Map<string, Tensor>): Map<string, Tensor>;
  /** state a model updates outside the gradient once per optimizer step (DeepSeek-V3's expert-load
   * correction bias); trainers call it after every optimizer step that was taken */
  afterOptimizerStep?(): void;
}

export interface CacheOptions {
  /** preallocate room for this many tokens instead of growing by concatenation */
  maxLength?: number;
  /** storage dtype of cached tensors (default float32; half types halve the memory) */
  dtype?: 'float32' | 'float16' | 'bfloat16';
}

/** Options of `createModel`. */
export interface CreateOptions {
  /** seed of the parameter initializer (default 0) */
  seed?: number;
  /** 'random' (default): each family's transformers initialisation; 'none': zero-filled parameters, no
   * random numbers drawn (a checkpoint is about to overwrite them) */
  init?: 'random' | 'none';
  /** refuse configs whose float32 parameters exceed this many bytes (default 32 GiB, see size.ts) */
  maxBytes?: number;
}
