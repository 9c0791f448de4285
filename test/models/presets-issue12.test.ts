// Issue 12 presets: Llama 3 / 3.1 8B, Qwen3 (qk-norm), Qwen3-MoE and Gemma (GeGLU, sqrt(D) embeddings, (1 + w) RMSNorm). Published parameter counts reproduced from the
// config alone, config.json codecs both ways, and the qk-norm mechanism in the tiny model. Logit parity with
// the independent PyTorch reference is in parity-decoder.test.ts (fixtures qwen3, qwen3_moe, llama-rope-llama3, gemma); cached
// decoding in cache-decoder.test.ts.
import '../../src/autograd/index.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { contiguous, crossEntropy, slice } from '../../src/ops/index.js';
import type { DecoderConfig, StandardAttention } from '../../src/models/config.js';
import { countParams, inspectConfig } from '../../src/models/inspect.js';
import { fromHFConfig, toHFConfig } from '../../src/models/hf-config.js';
import { getPreset, getPresetInfo } from '../../src/models/presets.js';
import { createModel } from '../../src/models/registry.js';
import { randomIds } from './decoder-helpers.js';

test('llama-3-8b and llama-3.1-8b: 8,030,261,248 parameters (the "8.03B" of the model cards)', () => {
  // Hand count from config.json: embed + untied head 2 x 128256 x 4096; per layer q, o 4096^2, k, v 4096 x 1024
  // (GQA 32/8), SwiGLU 3 x 4096 x 14336, two RMSNorms; final norm.
  const layer = 2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 14336 + 2 * 4096;
  const expected = 2 * 128256 * 4096 + 32 * layer + 4096;
  for (const name of ['llama-3-8b', 'llama-3.1-8b']) {
    const c = countParams(getPreset(name));
    assert.equal(c.params, expected, name);
    assert.equal(c.params, 8_030_261_248, name);
    assert.equal(c.activeParams, c.params, name);
  }
});

test('llama-3.1-8b carries llama3 RoPE scaling and the 128k context; llama-3-8b plain theta 500k', () => {
  const l3 = getPreset('llama-3-8b') as DecoderConfig;
  const l31 = getPreset('llama-3.1-8b') as DecoderConfig;
  assert.deepEqual(l3.positions, { kind: 'rope', theta: 500000, dim: null, scaling: null });
  assert.deepEqual(l31.positions, {
    kind: 'rope', theta: 500000, dim: null,
    scaling: { kind: 'llama3', factor: 8, originalMax: 8192, lowFreqFactor: 1, highFreqFactor: 4 },
  });
  assert.equal(l3.maxContext, 8192);
  assert.equal(l31.maxContext, 131072);
  assert.equal(l31.vocabSize, 128256);
  assert.deepEqual(toHFConfig(l31).rope_scaling, getPresetInfo('llama-3.1-8b').hf.rope_scaling);
  // KV cache at 128k, bf16: 2 (k, v) x 32 layers x 8 kv heads x 128 x 2 bytes per token
  const r = inspectConfig(l31, { context: 131072, dtype: 'bfloat16' });
  assert.equal(r.kvCacheBytesPerToken, 2 * 32 * 8 * 128 * 2);
});

test('qwen3-0.6b: 596,049,920 parameters, 440,467,456 without the (tied) embedding ("0.6B", "0.44B")', () => {
  // per layer: q 1024 x 2048, k, v 1024 x 1024, o 2048 x 1024 (head_dim 128 x 16 heads = 2048 != 1024),
  // q_norm + k_norm 2 x 128, SwiGLU 3 x 1024 x 3072, two RMSNorms; tied head adds nothing.
  const layer = 2 * 1024 * 2048 + 2 * 1024 * 1024 + 2 * 128 + 3 * 1024 * 3072 + 2 * 1024;
  const c = countParams(getPreset('qwen3-0.6b'));
  assert.equal(c.params, 151936 * 1024 + 28 * layer + 1024);
  assert.equal(c.params, 596_049_920);
  assert.equal(c.params - c.byComponent.embeddings!, 440_467_456);
  assert.equal(c.byComponent.head, undefined);
  assert.equal(c.activeParams, c.params);
});

test('qwen3 config.json: head_dim explicit (default 128), qk-norm always on, attention_bias read, round trip', () => {
  const info = getPresetInfo('qwen3-0.6b');
  const cfg = fromHFConfig(info.hf) as DecoderConfig;
  const a = cfg.decoder.block.attention as StandardAttention;
  assert.equal(cfg.family, 'qwen3');
  assert.equal(a.headDim, 128);
  assert.equal(a.qkNorm, true);
  assert.equal(a.qkvBias, false);
  const back = toHFConfig(cfg);
  for (const k of ['head_dim', 'attention_bias', 'vocab_size', 'num_key_value_heads', 'tie_word_embeddings', 'rope_theta', 'max_position_embeddings']) {
    assert.deepEqual(back[k], info.hf[k], k);
  }
  assert.deepEqual(fromHFConfig(back), cfg);
  // Qwen3Config's default head_dim is 128 whatever hidden / heads is
  const { head_dim: _omit, ...noHeadDim } = info.hf;
  assert.equal((fromHFConfig({ ...noHeadDim, hidden_size: 512 }) as DecoderConfig).decoder.block.attention.kind, 'gqa');
  assert.equal(((fromHFConfig({ ...noHeadDim, hidden_size: 512 }) as DecoderConfig).decoder.block.attention as StandardAttention).headDim, 128);
  // attention_bias: q, k, v and o biases
  const biased = fromHFConfig({ ...info.hf, attention_bias: true }) as DecoderConfig;
  assert.equal((biased.decoder.block.attention as StandardAttention).outBias, true);
  assert.equal(toHFConfig(biased).attention_bias, true);
});

test('qk-norm is a config option other families cannot write; leaving it out changes nothing', () => {
  const llama = getPreset('tiny-llama') as DecoderConfig;
  assert.equal('qkNorm' in llama.decoder.block.attention, false);
  const withNorm = structuredClone(llama);
  (withNorm.decoder.block.attention as StandardAttention).qkNorm = true;
  assert.throws(() => toHFConfig(withNorm), /cannot express .*qkNorm/);
});

test('tiny-qwen3: q_norm / k_norm parameters of width head_dim, counted by inspect, and gradients reach them', () => {
  const cfg = getPreset('tiny-qwen3') as DecoderConfig;
  const model = createModel(cfg, { seed: 2 });
  const names = model.namedParameters().map(([n]) => n);
  assert.ok(names.includes('model.layers.0.self_attn.q_norm.weight'));
  assert.ok(names.includes('model.layers.1.self_attn.k_norm.weight'));
  const qn = model.namedParameters().find(([n]) => n === 'model.layers.0.self_attn.q_norm.weight')![1];
  assert.deepEqual([...qn.shape], [32]);
  assert.equal(countParams(cfg).params, names.reduce((s, n) => s + model.namedParameters().find(([m]) => m === n)![1].size, 0));
  const ids = randomIds(2, 7, 256, 4);
  const logits = model.forward({ inputIds: ids }).logits;
  crossEntropy(contiguous(slice(logits, 1, 0, 6)), contiguous(slice(ids, 1, 1))).backward();
  for (const [name, p] of model.namedParameters()) {
    assert.ok(p.grad && p.grad.toList().some((v) => v !== 0), `no gradient for ${name}`);
  }
});

test('gemma-2b: 2,506,172,416 parameters (the "2.5B" of the Gemma report / model card)', () => {
  // per layer: q, o 2048 x (8 x 256), k, v 2048 x 256 (MQA), GeGLU 3 x 2048 x 16384, two RMSNorms; tied head
  const layer = 2 * 2048 * 2048 + 2 * 2048 * 256 + 3 * 2048 * 16384 + 2 * 2048;
  const c = countParams(getPreset('gemma-2b'));
  assert.equal(c.params, 256000 * 2048 + 18 * layer + 2048);
  assert.equal(c.params, 2_506_172_416);
  assert.equal(c.activeParams, c.params);
  // MQA: one 256-wide key and value per layer
  assert.equal(inspectConfig(getPreset('gemma-2b'), { context: 8, dtype: 'bfloat16' }).kvCacheBytesPerToken, 2 * 18 * 256 * 2);
});

test('gemma config.json: GeGLU from hidden_activation (tanh GELU when null), sqrt embeddings, (1 + w) norms, round trip', () => {
  const info = getPresetInfo('gemma-2b');
  const cfg = fromHFConfig(info.hf) as DecoderConfig;
  const b = cfg.decoder.block;
  assert.equal(cfg.embedScale, 'sqrt-hidden');
  assert.deepEqual(b.norm, { kind: 'rmsnorm', eps: 1e-6, unitOffset: true });
  assert.deepEqual(b.ffn, { kind: 'glu', act: 'gelu_tanh', hidden: 16384, bias: false });
  assert.equal((b.attention as StandardAttention).kind, 'mqa');
  assert.equal((b.attention as StandardAttention).headDim, 256);
  assert.equal(cfg.tieEmbeddings, true);
  // the original upload's hidden_act "gelu" with no hidden_activation still means the tanh GELU
  const { hidden_activation: _h, ...original } = info.hf;
  assert.deepEqual(fromHFConfig(original), cfg);
  assert.deepEqual(fromHFConfig({ ...info.hf, hidden_activation: 'gelu' }).arch === 'decoder'
    && (fromHFConfig({ ...info.hf, hidden_activation: 'gelu' }) as DecoderConfig).decoder.block.ffn.act, 'gelu');
  const back = toHFConfig(cfg);
  assert.equal(back.hidden_activation, 'gelu_pytorch_tanh');
  assert.equal(back.head_dim, 256);
  assert.deepEqual(fromHFConfig(back), cfg);
  // a llama config cannot carry Gemma's norm or embedding scale
  const llama = structuredClone(getPreset('tiny-llama') as DecoderConfig);
  llama.embedScale = 'sqrt-hidden';
  assert.throws(() => toHFConfig(llama), /cannot express .*embedScale/);
});

test('tiny-gemma: norm weights start at zero (scale 1 + w), gradients reach every parameter', () => {
  const model = createModel(getPreset('tiny-gemma'), { seed: 3 });
  const params = new Map(model.namedParameters());
  assert.ok(params.get('model.layers.0.input_layernorm.weight')!.toList().every((v) => v === 0));
  assert.ok(params.get('model.norm.weight')!.toList().every((v) => v === 0));
  assert.equal(params.has('lm_head.weight'), false);
  const ids = randomIds(2, 7, 256, 4);
  const logits = model.forward({ inputIds: ids }).logits;
  crossEntropy(contiguous(slice(logits, 1, 0, 6)), contiguous(slice(ids, 1, 1))).backward();
  for (const [name, p] of params) assert.ok(p.grad && p.grad.toList().some((v) => v !== 0), `no gradient for ${name}`);
});

test('qwen3-30b-a3b: 30,532,122,624 total, 3,353,032,704 active ("30.5B", "3.3B activated" on the model card)', () => {
  // per layer: attention q, o 2048 x 4096 (32 x 128), k, v 2048 x 512 (4 kv heads), q_norm + k_norm 2 x 128;
  // router 2048 x 128; 128 SwiGLU experts 3 x 2048 x 768, 8 of them per token; two RMSNorms. Untied head.
  const attn = 2 * 2048 * 4096 + 2 * 2048 * 512 + 2 * 128;
  const expert = 3 * 2048 * 768;
  const rest = 2 * 151936 * 2048 + 2048;
  const c = countParams(getPreset('qwen3-30b-a3b'));
  assert.equal(c.params, rest + 48 * (attn + 2048 * 128 + 128 * expert + 2 * 2048));
  assert.equal(c.params, 30_532_122_624);
  assert.equal(c.activeParams, rest + 48 * (attn + 2048 * 128 + 8 * expert + 2 * 2048));
  assert.equal(c.activeParams, 3_353_032_704);
  assert.equal(c.byComponent.sharedExperts, undefined);
});

test('qwen3_moe config.json: experts, top-k, norm_topk_prob both ways; unsupported placements named', () => {
  const info = getPresetInfo('qwen3-30b-a3b');
  const cfg = fromHFConfig(info.hf) as DecoderConfig;
  const f = cfg.decoder.block.ffn;
  assert.ok(f.kind === 'moe');
  assert.equal(f.experts, 128);
  assert.equal(f.topK, 8);
  assert.equal(f.expertHidden, 768);
  assert.equal(f.normTopK, true);
  assert.equal(f.sharedExperts, 0);
  assert.equal(f.gating, 'softmax');
  assert.equal((cfg.decoder.block.attention as StandardAttention).qkNorm, true);
  const back = toHFConfig(cfg);
  for (const k of ['num_experts', 'num_experts_per_tok', 'moe_intermediate_size', 'intermediate_size', 'norm_topk_prob', 'head_dim', 'router_aux_loss_coef']) {
    assert.deepEqual(back[k], info.hf[k], k);
  }
  assert.deepEqual(fromHFConfig(back), cfg);
  assert.equal((fromHFConfig({ ...info.hf, norm_topk_prob: false }) as DecoderConfig).decoder.block.ffn.kind === 'moe', true);
  assert.throws(() => fromHFConfig({ ...info.hf, decoder_sparse_step: 2 }), /decoder_sparse_step/);
  assert.throws(() => fromHFConfig({ ...info.hf, mlp_only_layers: [0, 1] }), /mlp_only_layers/);
});

test('tiny-qwen3-moe: expert names as transformers saves them, router logits and aux loss, gradients flow', () => {
  const model = createModel(getPreset('tiny-qwen3-moe'), { seed: 4 });
  const names = model.namedParameters().map(([n]) => n);
  for (const n of ['model.layers.0.mlp.gate.weight', 'model.layers.1.mlp.experts.7.down_proj.weight', 'model.layers.0.self_attn.k_norm.weight', 'lm_head.weight']) {
    assert.ok(names.includes(n), n);
  }
  const ids = randomIds(2, 6, 256, 7);
  const out = model.forward({ inputIds: ids });
  assert.deepEqual([...out.routerLogits!.shape], [2, 12, 8]);
  const loss = crossEntropy(contiguous(slice(out.logits, 1, 0, 5)), contiguous(slice(ids, 1, 1)));
  loss.backward();
  const gate = model.namedParameters().find(([n]) => n === 'model.layers.0.mlp.gate.weight')![1];
  assert.ok(gate.grad && gate.grad.toList().some((v) => v !== 0));
});
