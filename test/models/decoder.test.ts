// The decoder-only model driven by the config: every family builds with transformers' parameter names,
// config variants (residual kinds, position schemes, windows, MQA, MoE options) stay causal and
// cache-consistent, padding masks behave, gradients reach every parameter, MoE outputs make sense.
import '../../src/autograd/index.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crossEntropy, randn, slice, tensor, contiguous } from '../../src/ops/index.js';
import { Rng } from '../../src/tensor/random.js';
import { noGrad } from '../../src/tensor/engine.js';
import type { DecoderConfig, DecoderFamily, MoeFfn, StandardAttention } from '../../src/models/config.js';
import { createModel } from '../../src/models/registry.js';
import { DecoderLM } from '../../src/models/decoder.js';
import { getPreset } from '../../src/models/presets.js';
import { countParams } from '../../src/models/inspect.js';
import { MoE, sequenceBalanceLoss } from '../../src/nn/moe.js';
import { assertCacheConsistent, maxAbsDiff, ones, randomIds, tinyConfig } from './decoder-helpers.js';

test('parameter names follow transformers per family', () => {
  const names = (f: DecoderFamily) => createModel(tinyConfig(f)).namedParameters().map(([n]) => n);
  const gpt2 = names('gpt2');
  for (const n of ['transformer.wte.weight', 'transformer.wpe.weight', 'transformer.h.0.ln_1.weight', 'transformer.h.0.attn.c_attn.weight', 'transformer.h.1.mlp.c_proj.bias', 'transformer.ln_f.bias']) assert.ok(gpt2.includes(n), n);
  assert.ok(!gpt2.includes('lm_head.weight'), 'gpt2 head is tied');
  assert.ok(names('openai-gpt').includes('transformer.tokens_embed.weight'));
  const llama = names('llama');
  for (const n of ['model.embed_tokens.weight', 'model.layers.0.self_attn.q_proj.weight', 'model.layers.1.mlp.gate_proj.weight', 'model.layers.0.input_layernorm.weight', 'model.norm.weight', 'lm_head.weight']) assert.ok(llama.includes(n), n);
  assert.ok(names('qwen2').includes('model.layers.0.self_attn.k_proj.bias'));
  assert.ok(names('mixtral').includes('model.layers.1.block_sparse_moe.experts.3.w3.weight'));
  const ds = names('deepseek_v2');
  for (const n of ['model.layers.0.mlp.down_proj.weight', 'model.layers.1.mlp.gate.weight', 'model.layers.1.mlp.shared_experts.up_proj.weight', 'model.layers.1.self_attn.kv_a_proj_with_mqa.weight', 'model.layers.0.self_attn.q_a_layernorm.weight']) assert.ok(ds.includes(n), n);
});

test('createModel is seeded: same seed same weights, different seed different weights', () => {
  const cfg = tinyConfig('llama');
  const w = (seed: number) => createModel(cfg, { seed }).namedParameters()[0]![1].toList();
  assert.deepEqual(w(1), w(1));
  assert.notDeepEqual(w(1), w(2));
});

test('placeholder families throw a clear "not registered" error', () => {
  const rnn = { arch: 'rnn', family: 'lineage-rnn', cell: 'gru', vocabSize: 10, embedSize: 4, hidden: 4, layers: 1, tieEmbeddings: false, dropout: { embedding: 0, attention: 0, residual: 0, activation: 0 }, initStd: 0.02, tokens: { bos: null, eos: null, pad: null, decoderStart: null } } as const;
  try {
    createModel(rnn);
  } catch (e) {
    if (/not registered yet/.test((e as Error).message)) return;
    throw e;
  }
  // registered by now: fine too
});

function att(c: DecoderConfig): StandardAttention {
  return c.decoder.block.attention as StandardAttention;
}

const VARIANTS: [string, DecoderFamily, (c: DecoderConfig) => void][] = [
  ['parallel residual (GPT-J / NeoX)', 'llama', (c) => (c.decoder.block.residual = 'parallel')],
  ['post-norm llama', 'llama', (c) => ((c.decoder.block.residual = 'post'), (c.decoder.finalNorm = null))],
  ['MQA', 'llama', (c) => Object.assign(att(c), { kind: 'mqa', kvHeads: 1 })],
  ['partial rotary + llama3 scaling', 'llama', (c) => (c.positions = { kind: 'rope', theta: 500000, dim: 2, scaling: { kind: 'llama3', factor: 8, originalMax: 8, lowFreqFactor: 1, highFreqFactor: 4 } })],
  ['ALiBi', 'llama', (c) => (c.positions = { kind: 'alibi' })],
  ['sinusoidal positions, sqrt embedding scale, tied head', 'llama', (c) => ((c.positions = { kind: 'sinusoidal' }), (c.embedScale = 'sqrt-hidden'), (c.tieEmbeddings = true))],
  ['no positions', 'llama', (c) => (c.positions = { kind: 'none' })],
  ['dilated window', 'llama', (c) => (att(c).window = { kind: 'dilated', size: 3, dilation: 2 })],
  ['longformer window + global tokens', 'llama', (c) => (att(c).window = { kind: 'longformer', size: 2, globalTokens: 2 })],
  ['bigbird blocks', 'llama', (c) => (att(c).window = { kind: 'bigbird', blockSize: 2, windowBlocks: 3, globalBlocks: 1, randomBlocks: 1, seed: 7 })],
  ['gpt2 with a sliding window', 'gpt2', (c) => (att(c).window = { kind: 'sliding', size: 3, firstFullLayers: 0 })],
  ['MoE: sigmoid gating, routed scale, z-loss (capacity dropping depends on the batch, so it is tested in test/nn)', 'mixtral', (c) => Object.assign(c.decoder.block.ffn, { gating: 'sigmoid', normTopK: false, routedScale: 2, zLossCoef: 0.001 })],
  ['MoE: group-limited routing + shared experts', 'deepseek_v2', (c) => Object.assign(c.decoder.block.ffn, { routing: { kind: 'group-limited', groups: 2, topkGroups: 1 } })],
  ['MLA without q LoRA', 'deepseek_v2', (c) => Object.assign(c.decoder.block.attention, { qLoraRank: null })],
];

for (const [label, family, edit] of VARIANTS) {
  test(`variant ${label}: causal and cache-consistent`, () => {
    const model = createModel(tinyConfig(family, edit), { seed: 2 }).eval();
    const ids = randomIds(2, 8, 48, 3);
    assertCacheConsistent(model, ids, [ones(8), [3, 5]]);
    // causality: changing the last token leaves earlier logits unchanged
    const changed = ids.toList();
    changed[7] = (changed[7]! + 1) % 48;
    changed[15] = (changed[15]! + 1) % 48;
    const [a, b] = noGrad(() => [model.forward({ inputIds: ids }).logits, model.forward({ inputIds: tensor(Int32Array.from(changed), { shape: [2, 8] }) }).logits]);
    assert.ok(maxAbsDiff(contiguous(slice(a, 1, 0, 7)), contiguous(slice(b, 1, 0, 7))) < 1e-6);
  });
}

test('padding: right padding (kvLen) leaves real positions unchanged; rope models are shift-invariant under left padding', () => {
  const model = createModel(tinyConfig('llama'), { seed: 4 }).eval();
  const ids = randomIds(1, 5, 48, 8);
  const alone = noGrad(() => model.forward({ inputIds: ids }).logits);
  const row = ids.toList();
  const right = noGrad(() => model.forward({ inputIds: tensor([[...row, 0, 0], [...row, 1, 2]], { dtype: 'int32' }), attentionMask: tensor([[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1]], { dtype: 'int32' }) }).logits);
  assert.ok(maxAbsDiff(contiguous(slice(slice(right, 0, 0, 1), 1, 0, 5)), alone) < 1e-5);
  const left = noGrad(() => model.forward({ inputIds: tensor([[3, 3, ...row]], { dtype: 'int32' }), attentionMask: tensor([[0, 0, 1, 1, 1, 1, 1]], { dtype: 'int32' }) }).logits);
  assert.ok(maxAbsDiff(contiguous(slice(left, 1, 2)), alone) < 1e-4, 'left padding shifts rope positions; scores only depend on offsets');
});

test('padding mask with a cache covers past + new tokens', () => {
  const model = createModel(tinyConfig('mistral'), { seed: 4 }).eval();
  const ids = randomIds(2, 6, 48, 2);
  const mask = tensor([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]], { dtype: 'int32' });
  const full = noGrad(() => model.forward({ inputIds: ids, attentionMask: mask }).logits);
  const cache = model.newCache!(2);
  const a = noGrad(() => model.forward({ inputIds: contiguous(slice(ids, 1, 0, 4)), attentionMask: contiguous(slice(mask, 1, 0, 4)), cache }).logits);
  const b = noGrad(() => model.forward({ inputIds: contiguous(slice(ids, 1, 4)), attentionMask: mask, cache }).logits);
  assert.ok(maxAbsDiff(contiguous(slice(full, 1, 0, 4)), a) < 1e-5);
  assert.ok(maxAbsDiff(contiguous(slice(full, 1, 4)), b) < 1e-5);
});

for (const family of ['gpt2', 'openai-gpt', 'llama', 'qwen2', 'qwen3', 'gemma', 'deepseek_v2'] as DecoderFamily[]) {
  test(`${family}: the loss gradient reaches every parameter (experts that got tokens)`, () => {
    const model = createModel(tinyConfig(family), { seed: 1 });
    const ids = randomIds(2, 6, 48, 6);
    const logits = model.forward({ inputIds: ids }).logits;
    crossEntropy(contiguous(slice(logits, 1, 0, 5)), contiguous(slice(ids, 1, 1))).backward();
    const idle = new Set<string>();
    for (const [name, m] of model.namedModules()) {
      if (m instanceof MoE) m.lastStats!.tokensPerExpert.forEach((n, e) => n === 0 && idle.add(`${name}.experts.${e}.`));
    }
    for (const [name, p] of model.namedParameters()) {
      if ([...idle].some((prefix) => name.startsWith(prefix))) continue;
      assert.ok(p.grad && p.grad.toList().some((v) => v !== 0), `no gradient for ${name}`);
    }
  });
}

test('MoE models expose router logits [L_moe, N, E], the weighted aux loss and per-layer stats', () => {
  const model = createModel(tinyConfig('mixtral'), { seed: 5 }) as DecoderLM;
  const out = model.forward({ inputIds: randomIds(2, 5, 48) });
  assert.deepEqual([...out.routerLogits!.shape], [2, 10, 4]);
  const f = model.config.decoder.block.ffn as MoeFfn;
  const aux = out.auxLoss!.item() / f.auxLossCoef;
  assert.ok(aux >= 1 - 1e-6 && aux <= f.topK * 4, `aux ${aux}`);
  for (const [, m] of model.namedModules()) if (m instanceof MoE) assert.equal(m.lastStats!.tokensPerExpert.reduce((a, b) => a + b, 0), 10 * f.topK);
  out.auxLoss!.backward();
  const gate = model.namedParameters().find(([n]) => n.endsWith('block_sparse_moe.gate.weight'))!;
  assert.ok(gate[1].grad, 'aux loss trains the router');
});

test('errors name the problem: wrong ids dtype, positions past a learned table, pixelValues on a text model', () => {
  const model = createModel(tinyConfig('gpt2'));
  assert.throws(() => model.forward({ inputIds: tensor([[1, 2]]) }), /int32/);
  assert.throws(() => model.forward({ inputIds: randomIds(1, 3, 48), positionOffset: 63 }), /maxContext 64/);
  assert.throws(() => model.forward({ inputIds: randomIds(1, 3, 48), pixelValues: tensor([1]) }), /pixelValues/);
});

test('vision-language decoder: [image | text] sequence, cached decoding after the image, names under the root', () => {
  const cfg = tinyConfig('llama', (c) => (c.vision = { imageSize: 4, patchSize: 2, channels: 3 }));
  const model = createModel(cfg, { seed: 3 }).eval();
  assert.ok(model.namedParameters().some(([n]) => n === 'model.vision_embeddings.patch_embeddings.projection.weight'));
  const pixels = randn([2, 3, 4, 4], { rng: new Rng(1) });
  const ids = randomIds(2, 5, 48, 2);
  const full = noGrad(() => model.forward({ inputIds: ids, pixelValues: pixels }).logits);
  assert.deepEqual([...full.shape], [2, 4 + 5, 48]);
  const cache = model.newCache!(2);
  const first = noGrad(() => model.forward({ inputIds: contiguous(slice(ids, 1, 0, 2)), pixelValues: pixels, cache }).logits);
  const rest = noGrad(() => model.forward({ inputIds: contiguous(slice(ids, 1, 2)), cache }).logits);
  assert.equal(cache.length, 9);
  assert.ok(maxAbsDiff(contiguous(slice(full, 1, 0, 6)), first) < 1e-5);
  assert.ok(maxAbsDiff(contiguous(slice(full, 1, 6)), rest) < 1e-5);
});

test('gradient checkpointing gives the same gradients', () => {
  const ids = randomIds(2, 6, 48, 4);
  const grads = (ckpt: boolean) => {
    const model = createModel(tinyConfig('gpt2'), { seed: 8 }) as DecoderLM;
    model.gradientCheckpointing = ckpt;
    const logits = model.forward({ inputIds: ids }).logits;
    crossEntropy(contiguous(slice(logits, 1, 0, 5)), contiguous(slice(ids, 1, 1))).backward();
    return model.namedParameters().map(([, p]) => p.grad!.toList());
  };
  const [a, b] = [grads(false), grads(true)];
  a.forEach((g, i) => g.forEach((x, j) => assert.ok(Math.abs(x - b[i]![j]!) < 1e-6)));
});

test('attention dropout is active in training only', () => {
  const model = createModel(tinyConfig('llama', (c) => (c.dropout.attention = 0.5)), { seed: 1 });
  const ids = randomIds(1, 6, 48, 1);
  const a = noGrad(() => model.forward({ inputIds: ids }).logits);
  const b = noGrad(() => model.forward({ inputIds: ids }).logits);
  assert.ok(maxAbsDiff(a, b) > 1e-4, 'training: dropped probabilities differ between calls');
  model.eval();
  assert.equal(maxAbsDiff(noGrad(() => model.forward({ inputIds: ids }).logits), noGrad(() => model.forward({ inputIds: ids }).logits)), 0);
});

test('built models have exactly the parameter counts src/models/inspect computes from the config', () => {
  for (const name of ['tiny-gpt', 'tiny-gpt2', 'tiny-llama', 'tiny-mistral', 'tiny-qwen2', 'tiny-mixtral', 'tiny-deepseek', 'tiny-vlm']) {
    const cfg = getPreset(name);
    assert.equal(createModel(cfg).numParameters(), countParams(cfg).params, name);
  }
});

test('DeepSeek aux loss is its per-layer sequence-level balance loss times aux_loss_alpha', () => {
  const model = createModel(tinyConfig('deepseek_v2', (c) => (c.decoder.layers = 3)), { seed: 5 });
  const out = noGrad(() => model.forward({ inputIds: randomIds(2, 5, 48) }));
  const f = (model.config as DecoderConfig).decoder.block.ffn as MoeFfn;
  assert.equal(out.routerLogits!.shape[0], 2); // layer 0 is dense
  const want = [0, 1].map((l) => sequenceBalanceLoss(contiguous(slice(out.routerLogits!, 0, l, l + 1)).reshape(10, 4), 2, f.topK).item()).reduce((a, b) => a + b) * f.auxLossCoef;
  assert.ok(Math.abs(out.auxLoss!.item() - want) < 1e-7);
});

test('GPT-2 init: residual projections (c_proj) have std initializer_range / sqrt(2 · layers)', () => {
  const cfg = tinyConfig('gpt2', (c) => ((c.hidden = 64), (c.decoder.layers = 8), ((c.decoder.block.attention as StandardAttention).headDim = 16), ((c.decoder.block.ffn as { hidden: number }).hidden = 256)));
  const params = new Map(createModel(cfg, { seed: 1 }).namedParameters());
  const std = (name: string) => {
    const v = params.get(name)!.toList();
    return Math.sqrt(v.reduce((s, x) => s + x * x, 0) / v.length);
  };
  assert.ok(Math.abs(std('transformer.h.0.mlp.c_proj.weight') - 0.02 / 4) < 0.0005);
  assert.ok(Math.abs(std('transformer.h.0.mlp.c_fc.weight') - 0.02) < 0.001);
});
