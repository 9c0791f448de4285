// Shared helpers of the decoder tests: tiny configs of every decoder family (through the same HF mapping
// real checkpoints use), seeded token batches, and full-vs-incremental logits comparison.
import assert from 'node:assert/strict';
import { concat, tensor, slice, contiguous } from '../../src/ops/index.js';
import { noGrad, tidy } from '../../src/tensor/engine.js';
import { Rng } from '../../src/tensor/random.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import type { DecoderConfig, DecoderFamily } from '../../src/models/config.js';
import { fromHFConfig, type HfJson } from '../../src/models/hf-config.js';
import type { CacheOptions, LanguageModel } from '../../src/models/model.js';

const LLAMA_LIKE: HfJson = {
  vocab_size: 48, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
  head_dim: 4, max_position_embeddings: 64, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false,
};

/** tiny config.json of each decoder family */
export const TINY_HF: { [F in DecoderFamily]: HfJson } = {
  gpt2: { model_type: 'gpt2', bos_token_id: 0, eos_token_id: 0, vocab_size: 48, n_positions: 64, n_embd: 16, n_layer: 2, n_head: 4, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0 },
  gpt3: { model_type: 'gpt3', bos_token_id: 0, eos_token_id: 0, vocab_size: 48, n_positions: 64, n_embd: 16, n_layer: 2, n_head: 4, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0, local_attention_window: 3 },
  'openai-gpt': { model_type: 'openai-gpt', vocab_size: 48, n_positions: 64, n_embd: 16, n_layer: 2, n_head: 4, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0 },
  llama: { model_type: 'llama', ...LLAMA_LIKE },
  mistral: { model_type: 'mistral', ...LLAMA_LIKE, sliding_window: 3 },
  qwen2: { model_type: 'qwen2', ...LLAMA_LIKE, use_sliding_window: true, sliding_window: 3, max_window_layers: 1, tie_word_embeddings: true },
  qwen3: { model_type: 'qwen3', ...LLAMA_LIKE, head_dim: 8, attention_bias: true, use_sliding_window: true, sliding_window: 3, max_window_layers: 1 },
  qwen3_moe: { model_type: 'qwen3_moe', ...LLAMA_LIKE, moe_intermediate_size: 8, num_experts: 4, num_experts_per_tok: 2, norm_topk_prob: true },
  gemma: { model_type: 'gemma', ...LLAMA_LIKE, num_key_value_heads: 1, head_dim: 8, hidden_activation: 'gelu_pytorch_tanh', tie_word_embeddings: true, pad_token_id: 0 },
  gemma2: {
    model_type: 'gemma2', ...LLAMA_LIKE, head_dim: 8, hidden_activation: 'gelu_pytorch_tanh', tie_word_embeddings: true, pad_token_id: 0,
    sliding_window: 3, query_pre_attn_scalar: 6, attn_logit_softcapping: 2.0, final_logit_softcapping: 3.0,
  },
  phi3: { model_type: 'phi3', ...LLAMA_LIKE, partial_rotary_factor: 0.5, sliding_window: null, embd_pdrop: 0, resid_pdrop: 0, bos_token_id: 1, eos_token_id: 2, pad_token_id: null },
  minicpm: { model_type: 'minicpm', ...LLAMA_LIKE, scale_emb: 12, scale_depth: 1.4, dim_model_base: 8, tie_word_embeddings: true },
  mixtral: { model_type: 'mixtral', ...LLAMA_LIKE, num_local_experts: 4, num_experts_per_tok: 2, sliding_window: null },
  deepseek_v2: {
    model_type: 'deepseek_v2', bos_token_id: 0, eos_token_id: 1, vocab_size: 48, hidden_size: 16, intermediate_size: 24, moe_intermediate_size: 8, num_hidden_layers: 2,
    num_attention_heads: 2, q_lora_rank: 8, kv_lora_rank: 6, qk_nope_head_dim: 4, qk_rope_head_dim: 4, v_head_dim: 6,
    n_routed_experts: 4, n_shared_experts: 1, num_experts_per_tok: 2, first_k_dense_replace: 1, norm_topk_prob: true,
    routed_scaling_factor: 2, max_position_embeddings: 256, rope_theta: 1000,
    rope_scaling: { type: 'yarn', factor: 4, original_max_position_embeddings: 64, mscale: 0.707, mscale_all_dim: 0.707, beta_fast: 32, beta_slow: 1 },
  },
  deepseek_v3: {
    model_type: 'deepseek_v3', bos_token_id: 0, eos_token_id: 1, vocab_size: 48, hidden_size: 16, intermediate_size: 24, moe_intermediate_size: 8, num_hidden_layers: 2,
    num_attention_heads: 2, q_lora_rank: 8, kv_lora_rank: 6, qk_nope_head_dim: 4, qk_rope_head_dim: 4, v_head_dim: 6,
    n_routed_experts: 8, n_shared_experts: 1, num_experts_per_tok: 2, n_group: 4, topk_group: 2, first_k_dense_replace: 1, norm_topk_prob: true,
    routed_scaling_factor: 2.5, max_position_embeddings: 256, rope_theta: 1000, num_nextn_predict_layers: 1,
    rope_scaling: { type: 'yarn', factor: 4, original_max_position_embeddings: 64, mscale: 1, mscale_all_dim: 1, beta_fast: 32, beta_slow: 1 },
  },
};

export function tinyConfig(family: DecoderFamily, edit?: (c: DecoderConfig) => void): DecoderConfig {
  const c = fromHFConfig(TINY_HF[family]) as DecoderConfig;
  edit?.(c);
  return c;
}

/** int32 [B, T] ids in 0..V-1 */
export function randomIds(B: number, T: number, V: number, seed = 1): Tensor {
  const r = new Rng(seed);
  return tensor(Int32Array.from({ length: B * T }, () => r.int(V)), { shape: [B, T] });
}

export function maxAbsDiff(a: Tensor, b: Tensor): number {
  assert.deepEqual([...a.shape], [...b.shape]);
  const [x, y] = [a.data(), b.data()];
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
  return m;
}

/** logits of feeding ids in `chunks` through a cache, concatenated along time */
export function incrementalLogits(model: LanguageModel, ids: Tensor, chunks: number[], opts: CacheOptions = {}): Tensor {
  return noGrad(() => {
    const cache = model.newCache!(ids.shape[0]!, opts);
    const pieces: Tensor[] = [];
    let at = 0;
    for (const n of chunks) {
      const piece = contiguous(slice(ids, 1, at, at + n));
      pieces.push(tidy(() => model.forward({ inputIds: piece, cache }).logits));
      at += n;
    }
    assert.equal(at, ids.shape[1], 'chunks must cover the sequence');
    assert.equal(cache.length, at);
    const out = concat(pieces, 1);
    cache.dispose();
    return out;
  });
}

/** asserts that full-sequence logits equal token-by-token and chunked cached decoding */
export function assertCacheConsistent(model: LanguageModel, ids: Tensor, chunkings: number[][], tol = 2e-5, opts: CacheOptions = {}): number {
  const full = noGrad(() => model.forward({ inputIds: ids }).logits);
  let worst = 0;
  for (const chunks of chunkings) {
    const d = maxAbsDiff(full, incrementalLogits(model, ids, chunks, opts));
    assert.ok(d < tol, `chunks [${chunks}]: max abs diff ${d}`);
    worst = Math.max(worst, d);
  }
  return worst;
}

export const ones = (n: number) => new Array<number>(n).fill(1);
