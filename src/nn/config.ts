// The block vocabulary: the configuration types the nn blocks take (norms, positions, attention,
// feed-forward, MoE, residual wiring). They belong to the nn layer, which builds from them; the model
// configuration (src/models/config.ts) composes them into whole architectures and re-exports them.
// Same conventions as there: discriminated unions on `kind`, absent values `null`.
//
// Notation in comments: D model width (`hidden`), L layers, nh query heads, nkv key/value heads,
// hs head size, F feed-forward width, E routed experts.

/** Normalization layer. T5's "LayerNorm" (no mean subtraction, no bias) is `rmsnorm`. */
export type NormConfig =
  | { kind: 'layernorm'; eps: number; bias: boolean }
  | {
      kind: 'rmsnorm';
      eps: number;
      /** scale by (1 + weight), weight initialised to zero (Gemma's RMSNorm); absent = false (scale by weight) */
      unitOffset?: boolean;
    };

/**
 * RoPE frequency rescaling for context extension (transformers `rope_scaling`).
 * - linear: positions divided by `factor` (position interpolation).
 * - ntk: dynamic NTK-aware base rescaling (transformers `"dynamic"`), active beyond `originalMax`.
 * - yarn: YaRN (DeepSeek-V2 also uses `mscale`/`mscaleAllDim` to correct the softmax temperature).
 * - llama3: Llama 3.1 wavelength-dependent scaling.
 */
export type RopeScaling =
  | { kind: 'linear'; factor: number }
  | { kind: 'ntk'; factor: number; originalMax: number | null }
  | {
      kind: 'yarn';
      factor: number;
      originalMax: number;
      betaFast: number;
      betaSlow: number;
      mscale: number;
      mscaleAllDim: number;
    }
  | { kind: 'llama3'; factor: number; originalMax: number; lowFreqFactor: number; highFreqFactor: number };

/**
 * How token positions enter the model. The maximum context lives once, in the stack's `maxContext`.
 * - learned: a (maxContext + offset, D) table added to token embeddings. BART reserves `offset = 2` rows.
 * - sinusoidal: fixed sin/cos table (Vaswani 2017); no parameters.
 * - rope: rotary embedding of the first `dim` dims of each head (`null` = the whole head).
 * - t5-relative: a learned (buckets, nh) bias on attention logits, owned by the first layer of each stack.
 * - alibi: fixed per-head linear biases on attention logits.
 * - none: no positional signal (e.g. a NoPE ablation).
 */
export type PositionConfig =
  | { kind: 'learned'; offset: number }
  | { kind: 'sinusoidal' }
  | { kind: 'rope'; theta: number; dim: number | null; scaling: RopeScaling | null }
  | { kind: 't5-relative'; buckets: number; maxDistance: number; bidirectional: boolean }
  | { kind: 'alibi' }
  | { kind: 'none' };

/**
 * Which keys a query may attend to (in addition to the causal mask of decoder self-attention).
 * - full: every (allowed) key.
 * - sliding: the last `size` keys (Mistral). The first `firstFullLayers` layers keep full attention
 *   (Qwen2's `max_window_layers`); 0 means every layer slides. With `alternate` local and global layers
 *   interleave: 'even' (Gemma 2) slides layers 0, 2, ... and the odd ones see everything; 'odd' (GPT-3's
 *   "alternating dense and locally banded sparse attention", Sparse Transformer style) keeps layers
 *   0, 2, ... dense and bands the odd ones (bidirectional stacks: `size` keys centred on the query).
 *   `layerWindow` resolves it per layer.
 * - dilated: `size` keys spaced `dilation` apart (Longformer's dilated heads).
 * - longformer: a sliding window of `size` keys plus the first `globalTokens` tokens, which attend to
 *   and are attended by everything.
 * - bigbird: block-sparse; each block of `blockSize` sees `windowBlocks` neighbouring blocks,
 *   `globalBlocks` global blocks and `randomBlocks` random blocks chosen with `seed`.
 */
export type AttentionWindow =
  | { kind: 'full' }
  | {
      kind: 'sliding';
      size: number;
      firstFullLayers: number;
      /** which layers slide when local and global layers interleave; absent = every layer */
      alternate?: 'even' | 'odd';
    }
  | { kind: 'dilated'; size: number; dilation: number }
  | { kind: 'longformer'; size: number; globalTokens: number }
  | {
      kind: 'bigbird';
      blockSize: number;
      windowBlocks: number;
      globalBlocks: number;
      randomBlocks: number;
      seed: number;
    };

/**
 * Multi-head attention with `heads` query heads sharing `kvHeads` key/value heads.
 * mha: kvHeads === heads; mqa: kvHeads === 1; gqa: anything dividing heads (checked by validateConfig).
 * `scale` is the logit multiplier; `null` means 1/sqrt(headDim) (T5 uses 1: its init absorbs it).
 */
export interface StandardAttention {
  kind: 'mha' | 'gqa' | 'mqa';
  heads: number;
  kvHeads: number;
  headDim: number;
  qkvBias: boolean;
  outBias: boolean;
  scale: number | null;
  window: AttentionWindow;
  /** per-head norm (the block's norm kind, width headDim) on queries and keys after projection and before
   * RoPE: Qwen3's "qk-norm" (`q_norm` / `k_norm`). Absent = false, so configs written before it still read. */
  qkNorm?: boolean;
  /** tanh soft-cap of the attention scores before the mask and softmax: cap * tanh(s / cap) (Gemma 2's
   * `attn_logit_softcapping`). Absent = none. */
  softcap?: number;
}

/**
 * DeepSeek-V2 multi-head latent attention. Keys/values are cached as one `kvLoraRank` latent plus a
 * shared `qkRopeHeadDim` rotary key; queries go through an optional `qLoraRank` bottleneck (null = a
 * direct projection). Each head's query/key is [nope part (qkNopeHeadDim) | rope part (qkRopeHeadDim)].
 * The latents are normalized with the block's norm kind (RMSNorm in DeepSeek).
 */
export interface MlaAttention {
  kind: 'mla';
  heads: number;
  qLoraRank: number | null;
  kvLoraRank: number;
  qkNopeHeadDim: number;
  qkRopeHeadDim: number;
  vHeadDim: number;
  window: AttentionWindow;
}

export type AttentionConfig = StandardAttention | MlaAttention;

/** Activation names, as the reference kernels spell them. `gelu_tanh` is GPT-2's `gelu_new`. */
export type Activation = 'relu' | 'gelu' | 'gelu_tanh' | 'silu';
/** Gate activations of a GLU (a ReLU gate is not used by any family we map). */
export type GluActivation = Exclude<Activation, 'relu'>;

/**
 * MoE routing: plain top-k, or DeepSeek's group-limited top-k (pick `topkGroups` of `groups` first). A group's
 * score is its best expert score (V2, `groupScore` absent or 'max') or the sum of its two best scores,
 * correction bias included (V3's `noaux_tc`, 'top2-sum').
 */
export type MoeRouting =
  { kind: 'greedy' } | { kind: 'group-limited'; groups: number; topkGroups: number; groupScore?: 'max' | 'top2-sum' };

/**
 * DeepSeek-V3 auxiliary-loss-free load balancing: a per-expert bias (`gate.e_score_correction_bias`) added
 * to the scores only to choose the experts (the gate weights stay the raw scores). It is not trained by
 * gradient: after each optimizer step, bias_e += updateRate · sign(mean load − load_e), the load counted
 * over the step's training forwards.
 */
export interface CorrectionBias {
  updateRate: number;
}

/**
 * Mixture of experts. Each routed expert is an FFN of width `expertHidden` (`expert: 'glu'` = SwiGLU
 * style, three matrices; `'mlp'` = two). `sharedExperts` always-on experts are fused into one FFN of
 * width `sharedHidden` (DeepSeekMoE; 0 for Mixtral). The first `denseLayers` layers, and layers with
 * `(layer - denseLayers) % layerFreq !== 0`, use a dense FFN of width `denseHidden` instead
 * (DeepSeek `first_k_dense_replace` / `moe_layer_freq`).
 * Gate: `gating` turns router logits into scores; the top-k scores are renormalized if `normTopK`,
 * then multiplied by `routedScale`. `capacityFactor` null = no token dropping.
 */
export interface MoeFfn {
  kind: 'moe';
  experts: number;
  topK: number;
  expert: 'glu' | 'mlp';
  act: Activation;
  expertHidden: number;
  bias: boolean;
  gating: 'softmax' | 'sigmoid';
  normTopK: boolean;
  routedScale: number;
  routing: MoeRouting;
  sharedExperts: number;
  sharedHidden: number;
  capacityFactor: number | null;
  /** V3's selection bias (absent or null: none; configs written before it still read) */
  correctionBias?: CorrectionBias | null;
  auxLossCoef: number;
  zLossCoef: number;
  denseLayers: number;
  layerFreq: number;
  denseHidden: number;
}

/**
 * Position-wise feed-forward network.
 * - mlp: down(act(up(x))).
 * - glu: down(act(gate(x)) * up(x)); SwiGLU is `act: 'silu'`, GeGLU is `'gelu'`/`'gelu_tanh'`.
 * - moe: see MoeFfn.
 */
export type FfnConfig =
  | { kind: 'mlp'; act: Activation; hidden: number; bias: boolean }
  | { kind: 'glu'; act: GluActivation; hidden: number; bias: boolean }
  | MoeFfn;

/**
 * Where the residual stream is normalized.
 * - pre: x + f(norm(x)) (GPT-2, Llama); the stack then needs a `finalNorm`.
 * - post: norm(x + f(x)) (Vaswani 2017, GPT-1, BERT, BART).
 * - parallel: x + attn(norm1(x)) + ffn(norm2(x)) (GPT-J / NeoX style).
 * - sandwich: x + postNorm1(attn(norm1(x))), then h + postNorm2(ffn(norm2(h))): pre- and post-norms around
 *   each sublayer (Gemma 2); the stack then needs a `finalNorm`.
 */
export type ResidualKind = 'pre' | 'post' | 'parallel' | 'sandwich';
