// Named model presets, as data. Each full-size preset is the original config.json (the fields Lineage
// reads) with a link to it, so a preset can be checked against its source by eye; `getPreset` turns it
// into a ModelConfig through the same HF mapping a downloaded checkpoint goes through. Tiny variants
// (vocab 256 for the bytes tokenizer, width 64, 2 layers) are a base preset plus config.json overrides.

import type { ModelConfig } from './config.js';
import { type HfJson, fromHFConfig } from './hf-config.js';

export interface Preset {
  name: string;
  /** where the numbers come from: the original config.json URL or the paper */
  source: string;
  description: string;
  /** the config.json (transformers field names) */
  hf: HfJson;
}

interface PresetSpec {
  source: string;
  description: string;
  hf: HfJson;
}

interface TinySpec {
  base: string;
  description: string;
  set: HfJson;
}

const HF = 'https://huggingface.co';

const gpt2Base = {
  model_type: 'gpt2', architectures: ['GPT2LMHeadModel'], vocab_size: 50257, n_positions: 1024, n_embd: 768, n_layer: 12,
  n_head: 12, n_inner: null, activation_function: 'gelu_new', resid_pdrop: 0.1, embd_pdrop: 0.1, attn_pdrop: 0.1,
  layer_norm_epsilon: 1e-5, initializer_range: 0.02, bos_token_id: 50256, eos_token_id: 50256,
};

// GPT-3 (Brown et al. 2020, Table 2.1): GPT-2's layout and vocabulary, 2048 context, alternating dense and
// locally banded layers. The band width is not in the paper: 256 is GPT-Neo's `window_size`, the open
// replication of this pattern (odd layers local, as GPT-Neo's ["global", "local"] pattern). Lineage
// model_type "gpt3"; transformers has no GPT-3 class.
const GPT3_PAPER = 'Brown et al. 2020, "Language Models are Few-Shot Learners", https://arxiv.org/abs/2005.14165, Table 2.1';
const gpt3 = (n_layer: number, n_embd: number, n_head: number): HfJson => ({
  ...gpt2Base, model_type: 'gpt3', architectures: ['GPT3LMHeadModel'], n_positions: 2048, n_embd, n_layer, n_head,
  local_attention_window: 256,
});

// RoBERTa base: BERT base trained without NSP, byte-level BPE (50265), positions offset by padding_idx + 1.
const robertaBase = {
  model_type: 'roberta', architectures: ['RobertaForMaskedLM'], vocab_size: 50265, hidden_size: 768, num_hidden_layers: 12,
  num_attention_heads: 12, intermediate_size: 3072, hidden_act: 'gelu', hidden_dropout_prob: 0.1,
  attention_probs_dropout_prob: 0.1, max_position_embeddings: 514, type_vocab_size: 1, initializer_range: 0.02,
  layer_norm_eps: 1e-5, bos_token_id: 0, pad_token_id: 1, eos_token_id: 2, position_embedding_type: 'absolute',
};

const t5Base = {
  model_type: 't5', architectures: ['T5ForConditionalGeneration'], vocab_size: 32128, d_model: 512, d_kv: 64, d_ff: 2048,
  num_layers: 6, num_heads: 8, relative_attention_num_buckets: 32, dropout_rate: 0.1, layer_norm_epsilon: 1e-6,
  initializer_factor: 1.0, feed_forward_proj: 'relu', is_encoder_decoder: true, n_positions: 512, pad_token_id: 0,
  eos_token_id: 1, decoder_start_token_id: 0,
};

const llama2 = {
  model_type: 'llama', architectures: ['LlamaForCausalLM'], vocab_size: 32000, hidden_size: 4096, intermediate_size: 11008,
  num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 32, hidden_act: 'silu', max_position_embeddings: 4096,
  initializer_range: 0.02, rms_norm_eps: 1e-5, rope_theta: 10000.0, rope_scaling: null, attention_bias: false,
  tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2,
};

const llama3 = {
  ...llama2, vocab_size: 128256, intermediate_size: 14336, num_key_value_heads: 8, max_position_embeddings: 8192,
  rope_theta: 500000.0, bos_token_id: 128000, eos_token_id: 128001,
};

const rnnBase = (cell: string, hidden: number, layers: number, dropout: number): HfJson => ({
  model_type: 'lineage-rnn', cell, vocab_size: 10000, embedding_size: hidden, hidden_size: hidden,
  num_hidden_layers: layers, tie_word_embeddings: false, dropout,
});

const FULL: Record<string, PresetSpec> = {
  'rnn-lm': {
    source: 'Mikolov et al. 2010, "Recurrent neural network based language model" (Interspeech); PTB-sized vocabulary',
    description: 'Elman RNN language model, 1 x 200 tanh units',
    hf: rnnBase('rnn', 200, 1, 0),
  },
  'lstm-lm': {
    source: 'Zaremba et al. 2014, "Recurrent Neural Network Regularization", https://arxiv.org/abs/1409.2329 (medium model)',
    description: 'LSTM language model, 2 x 650, dropout 0.5',
    hf: rnnBase('lstm', 650, 2, 0.5),
  },
  'gru-lm': {
    source: 'Cho et al. 2014, https://arxiv.org/abs/1406.1078 (GRU cell); sized like Zaremba 2014 medium',
    description: 'GRU language model, 2 x 650, dropout 0.5',
    hf: rnnBase('gru', 650, 2, 0.5),
  },
  'transformer-base': {
    source: 'Vaswani et al. 2017, "Attention Is All You Need", https://arxiv.org/abs/1706.03762 (base model, EN-DE shared 37k BPE)',
    description: 'the original encoder-decoder transformer as a Marian config: post-norm, sinusoidal, sqrt(d) embedding scale',
    hf: {
      model_type: 'marian', architectures: ['MarianMTModel'], vocab_size: 37000, decoder_vocab_size: 37000,
      share_encoder_decoder_embeddings: true, max_position_embeddings: 512, d_model: 512, encoder_layers: 6,
      encoder_ffn_dim: 2048, encoder_attention_heads: 8, decoder_layers: 6, decoder_ffn_dim: 2048,
      decoder_attention_heads: 8, activation_function: 'relu', dropout: 0.1, attention_dropout: 0.0,
      activation_dropout: 0.0, init_std: 0.02, scale_embedding: true, tie_word_embeddings: true,
      pad_token_id: 0, eos_token_id: 1, decoder_start_token_id: 0,
    },
  },
  'bert-base-uncased': {
    source: `${HF}/google-bert/bert-base-uncased/blob/main/config.json`,
    description: 'BERT base (BertModel: backbone + pooler, the published 110M count; use head "masked-lm" to pretrain)',
    hf: {
      model_type: 'bert', architectures: ['BertModel'], vocab_size: 30522, hidden_size: 768, num_hidden_layers: 12,
      num_attention_heads: 12, intermediate_size: 3072, hidden_act: 'gelu', hidden_dropout_prob: 0.1,
      attention_probs_dropout_prob: 0.1, max_position_embeddings: 512, type_vocab_size: 2, initializer_range: 0.02,
      layer_norm_eps: 1e-12, pad_token_id: 0, position_embedding_type: 'absolute',
    },
  },
  gpt: {
    source: `${HF}/openai-community/openai-gpt/blob/main/config.json (Radford et al. 2018)`,
    description: 'GPT-1: 12-layer post-norm decoder, learned positions',
    hf: {
      model_type: 'openai-gpt', architectures: ['OpenAIGPTLMHeadModel'], vocab_size: 40478, n_positions: 512, n_embd: 768,
      n_layer: 12, n_head: 12, afn: 'gelu', resid_pdrop: 0.1, embd_pdrop: 0.1, attn_pdrop: 0.1,
      layer_norm_epsilon: 1e-5, initializer_range: 0.02,
    },
  },
  gpt2: { source: `${HF}/openai-community/gpt2/blob/main/config.json`, description: 'GPT-2 small (124M)', hf: gpt2Base },
  'gpt2-medium': {
    source: `${HF}/openai-community/gpt2-medium/blob/main/config.json`,
    description: 'GPT-2 medium (355M)',
    hf: { ...gpt2Base, n_embd: 1024, n_layer: 24, n_head: 16 },
  },
  'gpt2-large': {
    source: `${HF}/openai-community/gpt2-large/blob/main/config.json`,
    description: 'GPT-2 large (774M)',
    hf: { ...gpt2Base, n_embd: 1280, n_layer: 36, n_head: 20 },
  },
  'gpt2-xl': {
    source: `${HF}/openai-community/gpt2-xl/blob/main/config.json`,
    description: 'GPT-2 XL (1.5B)',
    hf: { ...gpt2Base, n_embd: 1600, n_layer: 48, n_head: 25 },
  },
  't5-small': { source: `${HF}/google-t5/t5-small/blob/main/config.json`, description: 'T5 v1.0 small (60M), tied head', hf: t5Base },
  't5-base': {
    source: `${HF}/google-t5/t5-base/blob/main/config.json`,
    description: 'T5 v1.0 base (220M), tied head',
    hf: { ...t5Base, d_model: 768, d_ff: 3072, num_layers: 12, num_heads: 12 },
  },
  'bart-base': {
    source: `${HF}/facebook/bart-base/blob/main/config.json`,
    description: 'BART base (140M): post-norm encoder-decoder, learned positions (offset 2), embedding layernorm',
    hf: {
      model_type: 'bart', architectures: ['BartModel'], vocab_size: 50265, max_position_embeddings: 1024, d_model: 768,
      encoder_layers: 6, encoder_ffn_dim: 3072, encoder_attention_heads: 12, decoder_layers: 6, decoder_ffn_dim: 3072,
      decoder_attention_heads: 12, activation_function: 'gelu', dropout: 0.1, attention_dropout: 0.1,
      activation_dropout: 0.1, init_std: 0.02, scale_embedding: false, is_encoder_decoder: true,
      bos_token_id: 0, pad_token_id: 1, eos_token_id: 2, decoder_start_token_id: 2,
    },
  },
  'gpt3-small': { source: GPT3_PAPER, description: 'GPT-3 Small (125M): 12 x 768, 12 heads of 64', hf: gpt3(12, 768, 12) },
  'gpt3-medium': { source: GPT3_PAPER, description: 'GPT-3 Medium (350M): 24 x 1024, 16 heads of 64', hf: gpt3(24, 1024, 16) },
  'gpt3-large': { source: GPT3_PAPER, description: 'GPT-3 Large (760M): 24 x 1536, 16 heads of 96', hf: gpt3(24, 1536, 16) },
  'gpt3-xl': {
    source: GPT3_PAPER,
    description: 'GPT-3 XL (1.3B): 24 x 2048, 16 heads of 128 (the table prints 24 heads of 128, which d_model 2048 contradicts)',
    hf: gpt3(24, 2048, 16),
  },
  'gpt3-2.7b': { source: GPT3_PAPER, description: 'GPT-3 2.7B: 32 x 2560, 32 heads of 80', hf: gpt3(32, 2560, 32) },
  'gpt3-6.7b': { source: GPT3_PAPER, description: 'GPT-3 6.7B: 32 x 4096, 32 heads of 128', hf: gpt3(32, 4096, 32) },
  'gpt3-13b': {
    source: GPT3_PAPER,
    description: 'GPT-3 13B: 40 x 5120, 40 heads of 128 (the table prints d_model 5140, which 40 heads of 128 contradict)',
    hf: gpt3(40, 5120, 40),
  },
  'gpt3-175b': { source: GPT3_PAPER, description: 'GPT-3 175B: 96 x 12288, 96 heads of 128', hf: gpt3(96, 12288, 96) },
  'roberta-base': {
    source: `${HF}/FacebookAI/roberta-base/blob/main/config.json`,
    description: 'RoBERTa base (RobertaForMaskedLM, 125M): BERT base without NSP, byte-level BPE, dynamic masking',
    hf: robertaBase,
  },
  'longformer-base': {
    source: `${HF}/allenai/longformer-base-4096/blob/main/config.json`,
    description: 'Longformer base 4096 (149M): RoBERTa base + 512-token sliding windows, global q/k/v, 4096 positions',
    hf: {
      ...robertaBase, model_type: 'longformer', architectures: [], max_position_embeddings: 4098,
      attention_window: Array.from({ length: 12 }, () => 512),
    },
  },
  'bigbird-roberta-base': {
    source: `${HF}/google/bigbird-roberta-base/blob/main/config.json`,
    description: 'BigBird RoBERTa base (BigBirdForPreTraining, 128M): block-sparse attention, blocks of 64, 3 random blocks',
    hf: {
      model_type: 'big_bird', architectures: ['BigBirdForPreTraining'], vocab_size: 50358, hidden_size: 768,
      num_hidden_layers: 12, num_attention_heads: 12, intermediate_size: 3072, hidden_act: 'gelu_new',
      hidden_dropout_prob: 0.1, attention_probs_dropout_prob: 0.1, max_position_embeddings: 4096, type_vocab_size: 2,
      initializer_range: 0.02, layer_norm_eps: 1e-12, use_bias: true, rescale_embeddings: false,
      attention_type: 'block_sparse', block_size: 64, num_random_blocks: 3, bos_token_id: 1, eos_token_id: 2, pad_token_id: 0,
    },
  },
  'llama-2-7b': { source: `${HF}/meta-llama/Llama-2-7b-hf/blob/main/config.json`, description: 'Llama 2 7B', hf: llama2 },
  'llama-3-8b': {
    source: `${HF}/meta-llama/Meta-Llama-3-8B/blob/main/config.json`,
    description: 'Llama 3 8B: 128k vocabulary, GQA 32/8, rope_theta 500k, 8k context',
    hf: llama3,
  },
  'llama-3.1-8b': {
    source: `${HF}/meta-llama/Llama-3.1-8B/blob/main/config.json`,
    description: 'Llama 3.1 8B: Llama 3 8B with llama3 RoPE scaling (factor 8 over 8k) to a 128k context',
    hf: {
      ...llama3, max_position_embeddings: 131072,
      rope_scaling: {
        factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192, rope_type: 'llama3',
      },
    },
  },
  'tinyllama-1.1b': {
    source: `${HF}/TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T/blob/main/config.json`,
    description: 'TinyLlama 1.1B (Llama 2 architecture, GQA 32/4)',
    hf: {
      ...llama2, hidden_size: 2048, intermediate_size: 5632, num_hidden_layers: 22, num_attention_heads: 32,
      num_key_value_heads: 4, max_position_embeddings: 2048,
    },
  },
  'mistral-7b': {
    source: `${HF}/mistralai/Mistral-7B-v0.1/blob/main/config.json`,
    description: 'Mistral 7B v0.1: GQA 32/8, 4096-token sliding window',
    hf: {
      model_type: 'mistral', architectures: ['MistralForCausalLM'], vocab_size: 32000, hidden_size: 4096,
      intermediate_size: 14336, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, hidden_act: 'silu',
      max_position_embeddings: 32768, initializer_range: 0.02, rms_norm_eps: 1e-5, rope_theta: 10000.0,
      sliding_window: 4096, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2,
    },
  },
  'qwen2-0.5b': {
    source: `${HF}/Qwen/Qwen2-0.5B/blob/main/config.json`,
    description: 'Qwen2 0.5B: GQA 14/2 with qkv bias, tied embeddings',
    hf: {
      model_type: 'qwen2', architectures: ['Qwen2ForCausalLM'], vocab_size: 151936, hidden_size: 896, intermediate_size: 4864,
      num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2, hidden_act: 'silu',
      max_position_embeddings: 131072, initializer_range: 0.02, rms_norm_eps: 1e-6, rope_theta: 1000000.0,
      use_sliding_window: false, sliding_window: 131072, max_window_layers: 24, attention_dropout: 0.0,
      tie_word_embeddings: true, bos_token_id: 151643, eos_token_id: 151643,
    },
  },
  'qwen3-0.6b': {
    source: `${HF}/Qwen/Qwen3-0.6B/blob/main/config.json`,
    description: 'Qwen3 0.6B: GQA 16/8, head_dim 128 (2048-wide queries on a 1024 model), qk-norm, tied embeddings',
    hf: {
      model_type: 'qwen3', architectures: ['Qwen3ForCausalLM'], vocab_size: 151936, hidden_size: 1024, intermediate_size: 3072,
      num_hidden_layers: 28, num_attention_heads: 16, num_key_value_heads: 8, head_dim: 128, hidden_act: 'silu',
      max_position_embeddings: 40960, initializer_range: 0.02, rms_norm_eps: 1e-6, rope_theta: 1000000, rope_scaling: null,
      attention_bias: false, attention_dropout: 0.0, use_sliding_window: false, sliding_window: null, max_window_layers: 28,
      tie_word_embeddings: true, bos_token_id: 151643, eos_token_id: 151645,
    },
  },
  'qwen3-30b-a3b': {
    source: `${HF}/Qwen/Qwen3-30B-A3B/blob/main/config.json`,
    description: 'Qwen3-30B-A3B: 48 layers of Qwen3 attention (GQA 32/4, qk-norm) + 128 SwiGLU experts, top-8, normalised top-k',
    hf: {
      model_type: 'qwen3_moe', architectures: ['Qwen3MoeForCausalLM'], vocab_size: 151936, hidden_size: 2048,
      intermediate_size: 6144, moe_intermediate_size: 768, num_hidden_layers: 48, num_attention_heads: 32,
      num_key_value_heads: 4, head_dim: 128, hidden_act: 'silu', max_position_embeddings: 40960, initializer_range: 0.02,
      rms_norm_eps: 1e-6, rope_theta: 1000000.0, rope_scaling: null, attention_bias: false, attention_dropout: 0.0,
      use_sliding_window: false, sliding_window: null, max_window_layers: 48, num_experts: 128, num_experts_per_tok: 8,
      norm_topk_prob: true, decoder_sparse_step: 1, mlp_only_layers: [], router_aux_loss_coef: 0.001,
      output_router_logits: false, tie_word_embeddings: false, bos_token_id: 151643, eos_token_id: 151645,
    },
  },
  'gemma-2b': {
    source: `${HF}/google/gemma-2b/blob/main/config.json`,
    description: 'Gemma 2B: MQA (8 heads, 1 kv head) of head_dim 256, GeGLU, embeddings x sqrt(2048), (1 + w) RMSNorm, tied',
    hf: {
      model_type: 'gemma', architectures: ['GemmaForCausalLM'], vocab_size: 256000, hidden_size: 2048, intermediate_size: 16384,
      num_hidden_layers: 18, num_attention_heads: 8, num_key_value_heads: 1, head_dim: 256, hidden_act: 'gelu',
      hidden_activation: 'gelu_pytorch_tanh', max_position_embeddings: 8192, initializer_range: 0.02, rms_norm_eps: 1e-6,
      rope_theta: 10000.0, rope_scaling: null, attention_bias: false, attention_dropout: 0.0, tie_word_embeddings: true,
      bos_token_id: 2, eos_token_id: 1, pad_token_id: 0,
    },
  },
  'gemma-2-9b': {
    source: `${HF}/google/gemma-2-9b/blob/main/config.json`,
    description: 'Gemma 2 9B: GQA 16/8 of head_dim 256, local (4096-token window, even layers) / global layers, ' +
      'pre+post norms, attention (50) and final (30) logit soft-caps, GeGLU, tied',
    hf: {
      model_type: 'gemma2', architectures: ['Gemma2ForCausalLM'], vocab_size: 256000, hidden_size: 3584,
      intermediate_size: 14336, num_hidden_layers: 42, num_attention_heads: 16, num_key_value_heads: 8, head_dim: 256,
      hidden_act: 'gelu_pytorch_tanh', hidden_activation: 'gelu_pytorch_tanh', max_position_embeddings: 8192,
      initializer_range: 0.02, rms_norm_eps: 1e-6, rope_theta: 10000.0, attention_bias: false, attention_dropout: 0.0,
      query_pre_attn_scalar: 256, sliding_window: 4096, attn_logit_softcapping: 50.0, final_logit_softcapping: 30.0,
      cache_implementation: 'hybrid', tie_word_embeddings: true, bos_token_id: 2, eos_token_id: 1, pad_token_id: 0,
    },
  },
  'phi-4': {
    source: `${HF}/microsoft/phi-4/blob/main/config.json`,
    description: 'Phi-4 (14.7B): transformers phi3 layout with fused qkv_proj / gate_up_proj, GQA 40/10, rope_theta 250k, 16k context',
    hf: {
      model_type: 'phi3', architectures: ['Phi3ForCausalLM'], vocab_size: 100352, hidden_size: 5120, intermediate_size: 17920,
      num_hidden_layers: 40, num_attention_heads: 40, num_key_value_heads: 10, hidden_act: 'silu',
      max_position_embeddings: 16384, original_max_position_embeddings: 16384, initializer_range: 0.02, rms_norm_eps: 1e-5,
      rope_theta: 250000, rope_scaling: null, sliding_window: null, attention_bias: false, attention_dropout: 0.0,
      embd_pdrop: 0.0, resid_pdrop: 0.0, tie_word_embeddings: false, bos_token_id: 100257, eos_token_id: 100265,
      pad_token_id: 100349,
    },
  },
  'minicpm-2b': {
    source: `${HF}/openbmb/MiniCPM-2B-sft-bf16/blob/main/config.json`,
    description: 'MiniCPM 2.4B: Llama with µP scalars (embeddings x12, residual branches x1.4/sqrt(40), logits over ' +
      'hidden/256), tied; pretrained with the WSD schedule (train --schedule wsd)',
    hf: {
      model_type: 'minicpm', architectures: ['MiniCPMForCausalLM'], vocab_size: 122753, hidden_size: 2304,
      intermediate_size: 5760, num_hidden_layers: 40, num_attention_heads: 36, num_key_value_heads: 36, hidden_act: 'silu',
      max_position_embeddings: 4096, initializer_range: 0.1, rms_norm_eps: 1e-5, rope_theta: 10000.0, rope_scaling: null,
      scale_emb: 12, dim_model_base: 256, scale_depth: 1.4, tie_word_embeddings: true, bos_token_id: 1, eos_token_id: 2,
    },
  },
  'mixtral-8x7b': {
    source: `${HF}/mistralai/Mixtral-8x7B-v0.1/blob/main/config.json`,
    description: 'Mixtral 8x7B: 8 SwiGLU experts, top-2 routing',
    hf: {
      model_type: 'mixtral', architectures: ['MixtralForCausalLM'], vocab_size: 32000, hidden_size: 4096,
      intermediate_size: 14336, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, hidden_act: 'silu',
      max_position_embeddings: 32768, initializer_range: 0.02, rms_norm_eps: 1e-5, rope_theta: 1e6, sliding_window: null,
      num_local_experts: 8, num_experts_per_tok: 2, router_aux_loss_coef: 0.02, tie_word_embeddings: false,
      bos_token_id: 1, eos_token_id: 2,
    },
  },
  'deepseek-v2-lite': {
    source: `${HF}/deepseek-ai/DeepSeek-V2-Lite/blob/main/config.json`,
    description: 'DeepSeek-V2-Lite (15.7B, 2.4B active): MLA + DeepSeekMoE (64 routed top-6, 2 shared), YaRN',
    hf: {
      model_type: 'deepseek_v2', architectures: ['DeepseekV2ForCausalLM'], vocab_size: 102400, hidden_size: 2048,
      intermediate_size: 10944, moe_intermediate_size: 1408, num_hidden_layers: 27, num_attention_heads: 16,
      num_key_value_heads: 16, n_shared_experts: 2, n_routed_experts: 64, routed_scaling_factor: 1.0,
      kv_lora_rank: 512, q_lora_rank: null, qk_rope_head_dim: 64, v_head_dim: 128, qk_nope_head_dim: 128,
      topk_method: 'greedy', n_group: 1, topk_group: 1, num_experts_per_tok: 6, moe_layer_freq: 1,
      first_k_dense_replace: 1, norm_topk_prob: false, scoring_func: 'softmax', aux_loss_alpha: 0.001,
      hidden_act: 'silu', max_position_embeddings: 163840, initializer_range: 0.02, rms_norm_eps: 1e-6,
      rope_theta: 10000,
      rope_scaling: {
        type: 'yarn', factor: 40, original_max_position_embeddings: 4096, beta_fast: 32, beta_slow: 1,
        mscale: 0.707, mscale_all_dim: 0.707,
      },
      attention_bias: false, attention_dropout: 0.0, tie_word_embeddings: false, bos_token_id: 100000, eos_token_id: 100001,
    },
  },
  'deepseek-v3': {
    source: `${HF}/deepseek-ai/DeepSeek-V3/blob/main/config.json`,
    description: 'DeepSeek-V3 (671B, 37B active; +11.5B MTP): MLA + DeepSeekMoE (256 routed top-8 in 4 of 8 groups, 1 shared, sigmoid + correction bias), 1 MTP depth',
    hf: {
      model_type: 'deepseek_v3', architectures: ['DeepseekV3ForCausalLM'], vocab_size: 129280, hidden_size: 7168,
      intermediate_size: 18432, moe_intermediate_size: 2048, num_hidden_layers: 61, num_nextn_predict_layers: 1,
      num_attention_heads: 128, num_key_value_heads: 128, n_shared_experts: 1, n_routed_experts: 256,
      routed_scaling_factor: 2.5, kv_lora_rank: 512, q_lora_rank: 1536, qk_rope_head_dim: 64, v_head_dim: 128,
      qk_nope_head_dim: 128, topk_method: 'noaux_tc', n_group: 8, topk_group: 4, num_experts_per_tok: 8,
      moe_layer_freq: 1, first_k_dense_replace: 3, norm_topk_prob: true, scoring_func: 'sigmoid', aux_loss_alpha: 0.001,
      seq_aux: true, hidden_act: 'silu', max_position_embeddings: 163840, initializer_range: 0.02, rms_norm_eps: 1e-6,
      rope_theta: 10000,
      rope_scaling: {
        type: 'yarn', factor: 40, original_max_position_embeddings: 4096, beta_fast: 32, beta_slow: 1,
        mscale: 1.0, mscale_all_dim: 1.0,
      },
      attention_bias: false, attention_dropout: 0.0, tie_word_embeddings: false, bos_token_id: 0, eos_token_id: 1,
    },
  },
  'kimi-k2': {
    // the file says model_type "kimi_k2" (its remote code); the architecture is DeepseekV3ForCausalLM
    source: `${HF}/moonshotai/Kimi-K2-Instruct/blob/main/config.json`,
    description: 'Kimi K2 (1.04T, 32B active): the DeepSeek-V3 architecture with 384 routed experts, 64 heads, 1 dense layer, no MTP',
    hf: {
      model_type: 'deepseek_v3', architectures: ['DeepseekV3ForCausalLM'], vocab_size: 163840, hidden_size: 7168,
      intermediate_size: 18432, moe_intermediate_size: 2048, num_hidden_layers: 61, num_nextn_predict_layers: 0,
      num_attention_heads: 64, num_key_value_heads: 64, n_shared_experts: 1, n_routed_experts: 384,
      routed_scaling_factor: 2.827, kv_lora_rank: 512, q_lora_rank: 1536, qk_rope_head_dim: 64, v_head_dim: 128,
      qk_nope_head_dim: 128, topk_method: 'noaux_tc', n_group: 1, topk_group: 1, num_experts_per_tok: 8,
      moe_layer_freq: 1, first_k_dense_replace: 1, norm_topk_prob: true, scoring_func: 'sigmoid', aux_loss_alpha: 0.001,
      seq_aux: true, hidden_act: 'silu', max_position_embeddings: 131072, initializer_range: 0.02, rms_norm_eps: 1e-6,
      rope_theta: 50000,
      rope_scaling: {
        type: 'yarn', factor: 32, original_max_position_embeddings: 4096, beta_fast: 1, beta_slow: 1,
        mscale: 1.0, mscale_all_dim: 1.0,
      },
      attention_bias: false, attention_dropout: 0.0, tie_word_embeddings: false, bos_token_id: 163584, eos_token_id: 163585,
    },
  },
  'mamba-130m': {
    source: `${HF}/state-spaces/mamba-130m-hf/blob/main/config.json`,
    description: 'Mamba 130M: 24 selective-SSM blocks, d_state 16',
    hf: {
      model_type: 'mamba', architectures: ['MambaForCausalLM'], vocab_size: 50280, hidden_size: 768, intermediate_size: 1536,
      state_size: 16, num_hidden_layers: 24, layer_norm_epsilon: 1e-5, expand: 2, conv_kernel: 4, use_bias: false,
      use_conv_bias: true, hidden_act: 'silu', initializer_range: 0.1, residual_in_fp32: true, time_step_rank: 48,
      time_step_scale: 1.0, time_step_min: 0.001, time_step_max: 0.1, time_step_init_scheme: 'random',
      time_step_floor: 1e-4, tie_word_embeddings: true, bos_token_id: 0, eos_token_id: 0, pad_token_id: 0,
    },
  },
};

/** Shared tiny sizes: bytes-tokenizer vocabulary, no special ids outside it. */
const TINY_IDS = { bos_token_id: null, eos_token_id: null, pad_token_id: null };

/** the tiny BERT backbone shared by the tiny BERT heads */
const TINY_BERT: HfJson = {
  vocab_size: 256, hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 128, max_position_embeddings: 128,
};

const TINY: Record<string, TinySpec> = {
  'tiny-rnn': { base: 'rnn-lm', description: 'tiny Elman RNN LM', set: { vocab_size: 256, embedding_size: 32, hidden_size: 64, num_hidden_layers: 2 } },
  'tiny-lstm': { base: 'lstm-lm', description: 'tiny LSTM LM', set: { vocab_size: 256, embedding_size: 32, hidden_size: 64, num_hidden_layers: 2, dropout: 0 } },
  'tiny-gru': { base: 'gru-lm', description: 'tiny GRU LM', set: { vocab_size: 256, embedding_size: 32, hidden_size: 64, num_hidden_layers: 2, dropout: 0 } },
  'tiny-transformer': {
    base: 'transformer-base',
    description: 'tiny Vaswani 2017 encoder-decoder',
    set: {
      vocab_size: 256, decoder_vocab_size: 256, d_model: 64, encoder_layers: 2, decoder_layers: 2, encoder_ffn_dim: 128,
      decoder_ffn_dim: 128, encoder_attention_heads: 4, decoder_attention_heads: 4, max_position_embeddings: 128,
    },
  },
  'tiny-bert': { base: 'bert-base-uncased', description: 'tiny BERT with masked-LM head', set: { architectures: ['BertForMaskedLM'], ...TINY_BERT } },
  'tiny-bert-seqcls': {
    base: 'bert-base-uncased',
    description: 'tiny BERT sequence classifier (pooler + 3-way classifier; --set num_labels=N)',
    set: { architectures: ['BertForSequenceClassification'], num_labels: 3, ...TINY_BERT },
  },
  'tiny-bert-tokcls': {
    base: 'bert-base-uncased',
    description: 'tiny BERT token classifier (5 tags per token; --set num_labels=N)',
    set: { architectures: ['BertForTokenClassification'], num_labels: 5, ...TINY_BERT },
  },
  'tiny-bert-qa': {
    base: 'bert-base-uncased',
    description: 'tiny BERT extractive QA (start / end logits per token)',
    set: { architectures: ['BertForQuestionAnswering'], ...TINY_BERT },
  },
  'tiny-gpt': { base: 'gpt', description: 'tiny GPT-1', set: { vocab_size: 256, n_positions: 128, n_embd: 64, n_layer: 2, n_head: 4 } },
  'tiny-gpt2': {
    base: 'gpt2',
    description: 'tiny GPT-2',
    set: { vocab_size: 256, n_positions: 128, n_embd: 64, n_layer: 2, n_head: 4, ...TINY_IDS },
  },
  'tiny-gpt3': {
    base: 'gpt3-small',
    description: 'tiny GPT-3 (layer 0 dense, layer 1 a 16-key causal band)',
    set: { vocab_size: 256, n_positions: 128, n_embd: 64, n_layer: 2, n_head: 4, local_attention_window: 16, ...TINY_IDS },
  },
  'tiny-roberta': {
    base: 'roberta-base',
    description: 'tiny RoBERTa with masked-LM head (positions from pad + 1)',
    set: { ...TINY_BERT, max_position_embeddings: 130 },
  },
  'tiny-longformer': {
    base: 'longformer-base',
    description: 'tiny Longformer with masked-LM head (16-token windows: 8 keys each side; global tokens by mask)',
    set: { ...TINY_BERT, architectures: ['LongformerForMaskedLM'], max_position_embeddings: 130, attention_window: [16, 16] },
  },
  'tiny-bigbird': {
    base: 'bigbird-roberta-base',
    description: 'tiny BigBird with masked-LM head (blocks of 4, 1 random block: block-sparse beyond 28 tokens)',
    set: { ...TINY_BERT, architectures: ['BigBirdForMaskedLM'], block_size: 4, num_random_blocks: 1 },
  },
  'tiny-t5': {
    base: 't5-small',
    description: 'tiny T5 v1.0',
    set: { vocab_size: 256, d_model: 64, d_kv: 16, d_ff: 128, num_layers: 2, num_heads: 4, n_positions: 128 },
  },
  'tiny-bart': {
    base: 'bart-base',
    description: 'tiny BART',
    set: {
      vocab_size: 256, d_model: 64, encoder_layers: 2, decoder_layers: 2, encoder_ffn_dim: 128, decoder_ffn_dim: 128,
      encoder_attention_heads: 4, decoder_attention_heads: 4, max_position_embeddings: 128,
    },
  },
  'tiny-llama': {
    base: 'llama-2-7b',
    description: 'tiny Llama (GQA 4/2)',
    set: {
      vocab_size: 256, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4,
      num_key_value_heads: 2, max_position_embeddings: 128, ...TINY_IDS,
    },
  },
  'tiny-llama3': {
    base: 'llama-3.1-8b',
    description: 'tiny Llama 3.1 (GQA 4/2, rope_theta 500k, llama3 RoPE scaling factor 8 over 32 positions)',
    set: {
      vocab_size: 256, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4,
      num_key_value_heads: 2, max_position_embeddings: 256, ...TINY_IDS,
      rope_scaling: { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 32, rope_type: 'llama3' },
    },
  },
  'tiny-mistral': {
    base: 'mistral-7b',
    description: 'tiny Mistral (GQA 4/2, 32-token sliding window)',
    set: {
      vocab_size: 256, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4,
      num_key_value_heads: 2, max_position_embeddings: 128, sliding_window: 32, ...TINY_IDS,
    },
  },
  'tiny-qwen2': {
    base: 'qwen2-0.5b',
    description: 'tiny Qwen2 (qkv bias, tied)',
    set: {
      vocab_size: 256, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4,
      num_key_value_heads: 2, max_position_embeddings: 128, sliding_window: 128, max_window_layers: 2, ...TINY_IDS,
    },
  },
  'tiny-qwen3': {
    base: 'qwen3-0.6b',
    description: 'tiny Qwen3 (GQA 4/2, head_dim 32 over width 64: q 128 wide, qk-norm, tied)',
    set: {
      vocab_size: 256, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4,
      num_key_value_heads: 2, head_dim: 32, max_position_embeddings: 128, max_window_layers: 2, ...TINY_IDS,
    },
  },
  'tiny-qwen3-moe': {
    base: 'qwen3-30b-a3b',
    description: 'tiny Qwen3-MoE (qk-norm, 8 experts of width 32, top-2, normalised top-k)',
    set: {
      vocab_size: 256, hidden_size: 64, intermediate_size: 128, moe_intermediate_size: 32, num_hidden_layers: 2,
      num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16, num_experts: 8, num_experts_per_tok: 2,
      max_position_embeddings: 128, max_window_layers: 2, ...TINY_IDS,
    },
  },
  'tiny-gemma': {
    base: 'gemma-2b',
    description: 'tiny Gemma (MQA 4/1, head_dim 32, GeGLU, sqrt(64) embedding scale, (1 + w) RMSNorm, tied)',
    set: {
      vocab_size: 256, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4,
      num_key_value_heads: 1, head_dim: 32, max_position_embeddings: 128, ...TINY_IDS,
    },
  },
  'tiny-gemma2': {
    base: 'gemma-2-9b',
    description: 'tiny Gemma 2 (GQA 4/2, head_dim 16, 16-token window on even layers, pre+post norms, soft-caps 50 / 30, tied)',
    set: {
      vocab_size: 256, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4,
      num_key_value_heads: 2, head_dim: 16, query_pre_attn_scalar: 16, sliding_window: 16, max_position_embeddings: 128, ...TINY_IDS,
    },
  },
  'tiny-phi3': {
    base: 'phi-4',
    description: 'tiny Phi-3 / Phi-4 (GQA 4/2, fused qkv_proj and gate_up_proj, untied)',
    set: {
      vocab_size: 256, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4,
      num_key_value_heads: 2, max_position_embeddings: 128, original_max_position_embeddings: 128, ...TINY_IDS,
    },
  },
  'tiny-minicpm': {
    base: 'minicpm-2b',
    description: 'tiny MiniCPM (µP: scale_emb 12, scale_depth 1.4, dim_model_base 16 -> logits / 4, tied)',
    set: {
      vocab_size: 256, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4,
      num_key_value_heads: 4, dim_model_base: 16, max_position_embeddings: 128, ...TINY_IDS,
    },
  },
  'tiny-mixtral': {
    base: 'mixtral-8x7b',
    description: 'tiny Mixtral (4 experts, top-2)',
    set: {
      vocab_size: 256, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4,
      num_key_value_heads: 2, max_position_embeddings: 128, num_local_experts: 4, ...TINY_IDS,
    },
  },
  'tiny-deepseek': {
    base: 'deepseek-v2-lite',
    description: 'tiny DeepSeek-V2 (MLA, 4 routed experts top-2 + 1 shared, first layer dense)',
    set: {
      vocab_size: 256, hidden_size: 64, intermediate_size: 128, moe_intermediate_size: 32, num_hidden_layers: 2,
      num_attention_heads: 4, num_key_value_heads: 4, kv_lora_rank: 32, qk_rope_head_dim: 8, qk_nope_head_dim: 16,
      v_head_dim: 16, n_routed_experts: 4, n_shared_experts: 1, num_experts_per_tok: 2, max_position_embeddings: 128,
      rope_scaling: null, ...TINY_IDS,
    },
  },
  'tiny-deepseek-v3': {
    base: 'deepseek-v3',
    description: 'tiny DeepSeek-V3 (MLA, 8 routed experts top-2 in 2 of 4 groups + 1 shared, sigmoid + correction bias, first layer dense, 1 MTP depth)',
    set: {
      vocab_size: 256, hidden_size: 64, intermediate_size: 128, moe_intermediate_size: 32, num_hidden_layers: 2,
      num_attention_heads: 4, num_key_value_heads: 4, q_lora_rank: 32, kv_lora_rank: 32, qk_rope_head_dim: 8,
      qk_nope_head_dim: 16, v_head_dim: 16, n_routed_experts: 8, n_shared_experts: 1, num_experts_per_tok: 2,
      n_group: 4, topk_group: 2, first_k_dense_replace: 1, max_position_embeddings: 128, rope_scaling: null, ...TINY_IDS,
    },
  },
  'tiny-mamba': {
    base: 'mamba-130m',
    description: 'tiny Mamba',
    set: {
      vocab_size: 256, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, state_size: 8, time_step_rank: 4,
      ...TINY_IDS,
    },
  },
  'tiny-vlm': {
    base: 'llama-2-7b',
    description: 'tiny vision-language Llama: 32x32 RGB images as 16 patch tokens of 8x8',
    set: {
      vocab_size: 256, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4,
      num_key_value_heads: 2, max_position_embeddings: 128, ...TINY_IDS,
      vision_config: { image_size: 32, patch_size: 8, num_channels: 3 },
    },
  },
};

function buildPresets(): Map<string, Preset> {
  const out = new Map<string, Preset>();
  for (const [name, p] of Object.entries(FULL)) out.set(name, { name, ...p });
  for (const [name, t] of Object.entries(TINY)) {
    const base = out.get(t.base);
    if (!base) throw new Error(`preset ${name}: unknown base ${t.base}`);
    out.set(name, { name, source: `${base.name} (${base.source}) shrunk for tests`, description: t.description, hf: { ...base.hf, ...t.set } });
  }
  return out;
}

const PRESETS = buildPresets();

/** Every preset name, full-size first. */
export function presetNames(): string[] {
  return [...PRESETS.keys()];
}

/** The preset record (name, source, description, config.json); throws listing the names. */
export function getPresetInfo(name: string): Preset {
  const p = PRESETS.get(name);
  if (!p) throw new Error(`unknown model preset ${JSON.stringify(name)} (known: ${presetNames().join(', ')})`);
  return { ...p, hf: structuredClone(p.hf) };
}

/** The validated ModelConfig of a preset (a fresh object each call); throws listing the names. */
export function getPreset(name: string): ModelConfig {
  return fromHFConfig(getPresetInfo(name).hf);
}

/** true when `name` is a preset */
export function isPreset(name: string): boolean {
  return PRESETS.has(name);
}
