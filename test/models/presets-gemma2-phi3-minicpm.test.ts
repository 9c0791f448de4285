// Issue 12, second part: Gemma 2, Phi-4 (transformers' phi3) and MiniCPM. Published parameter counts from the
// config alone, config.json codecs both ways, the mechanisms each adds (alternating sliding / global layers,
// sandwich norms, attention and final logit soft-caps, fused qkv / gate-up projections, µP scalars), and the
// soft-capped attention kernel: reference vs composed (forward, gradients, finite differences), fast kernels
// declining. Logit parity with the PyTorch reference is in parity-decoder.test.ts (fixtures gemma2, phi3,
// minicpm); cached decoding in cache-decoder.test.ts; the engine's paged path in paged-forward.test.ts.
import '../../src/autograd/index.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as O from '../../src/ops/index.js';
import { Rng } from '../../src/tensor/random.js';
import { getBackend, noGrad, setBackend } from '../../src/tensor/engine.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import type { AttentionParams, Backend } from '../../src/backend/backend.js';
import { createNativeBackend } from '../../src/backend/native/backend.js';
import { loadNativeAddon } from '../../src/backend/native/addon-node.js';
import { createWasmBackend } from '../../src/backend/wasm/backend.js';
import { type DecoderConfig, type StandardAttention, layerWindow, windowGroups } from '../../src/models/config.js';
import { countParams, inspectConfig } from '../../src/models/inspect.js';
import { fromHFConfig, toHFConfig } from '../../src/models/hf-config.js';
import { getPreset, getPresetInfo } from '../../src/models/presets.js';
import { createModel } from '../../src/models/registry.js';
import { gradcheck, inF64, leaf } from '../helpers/gradcheck.js';
import { resolveTrainConfig } from '../../src/cli/commands/train.js';
import { parseFlags } from '../../src/cli/flags.js';
import { randomIds } from './decoder-helpers.js';

test('gemma-2-9b: 9,241,705,984 parameters (the model card\'s "9.24B"), counted instantly from config.json', () => {
  // per layer: q, o 3584 x 4096 (16 heads x 256), k, v 3584 x 2048 (8 kv heads), GeGLU 3 x 3584 x 14336, and FOUR
  // (1 + w) RMSNorms (pre and post around attention and MLP); tied head; final norm
  const layer = 2 * 3584 * 4096 + 2 * 3584 * 2048 + 3 * 3584 * 14336 + 4 * 3584;
  const c = countParams(getPreset('gemma-2-9b'));
  assert.equal(c.params, 256000 * 3584 + 42 * layer + 3584);
  assert.equal(c.params, 9_241_705_984);
  assert.equal(c.byComponent.head, undefined);
  assert.equal(c.byComponent.norms, (42 * 4 + 1) * 3584);
});

test('phi-4: 14,659,507,200 parameters (the model card\'s "14.7B"), fused projections counted once', () => {
  // per layer: qkv_proj 5120 x (5120 + 2 x 1280) (GQA 40/10, head 128), o_proj 5120^2, gate_up_proj 5120 x 2 x 17920,
  // down_proj 17920 x 5120, two RMSNorms; untied embedding and head 100352 x 5120 each
  const layer = 5120 * 7680 + 5120 * 5120 + 5120 * 2 * 17920 + 17920 * 5120 + 2 * 5120;
  const c = countParams(getPreset('phi-4'));
  assert.equal(c.params, 2 * 100352 * 5120 + 40 * layer + 5120);
  assert.equal(c.params, 14_659_507_200);
});

test('minicpm-2b: 2,442,057,984 non-embedding parameters (the MiniCPM paper\'s 2.4B), 2.72B with the tied embedding', () => {
  const layer = 4 * 2304 * 2304 + 3 * 2304 * 5760 + 2 * 2304;
  const c = countParams(getPreset('minicpm-2b'));
  assert.equal(c.params - c.byComponent.embeddings!, 40 * layer + 2304);
  assert.equal(c.params - c.byComponent.embeddings!, 2_442_057_984);
  assert.equal(c.params, 2_724_880_896);
});

test('inspect gemma-2-9b: KV cache of local layers is capped at the 4096-token window, global layers keep 8192', () => {
  const cfg = getPreset('gemma-2-9b') as DecoderConfig;
  const r = inspectConfig(cfg, { context: 8192, dtype: 'bfloat16' });
  const perLayerToken = 2 * 8 * 256 * 2; // k and v, 8 kv heads x 256, bf16
  assert.equal(r.kvCacheBytes, 21 * perLayerToken * 8192 + 21 * perLayerToken * 4096);
});

test('gemma2 sliding window alternates: even layers local, odd layers global (transformers layer_idx % 2 == 0)', () => {
  const w = (getPreset('gemma-2-9b') as DecoderConfig).decoder.block.attention.window;
  assert.deepEqual(w, { kind: 'sliding', size: 4096, firstFullLayers: 0, alternate: 'even' });
  assert.deepEqual(layerWindow(w, 0), { kind: 'sliding', size: 4096, firstFullLayers: 0 });
  assert.deepEqual(layerWindow(w, 1), { kind: 'full' });
  assert.deepEqual(layerWindow(w, 40), { kind: 'sliding', size: 4096, firstFullLayers: 0 });
  assert.deepEqual(windowGroups(w, 5).map((g) => [g.window.kind, g.count]), [['full', 2], ['sliding', 3]]);
});

test('gemma2 config.json: soft-caps, query_pre_attn_scalar, sandwich norms; round trip; null caps disable them', () => {
  const info = getPresetInfo('gemma-2-9b');
  const cfg = fromHFConfig(info.hf) as DecoderConfig;
  const a = cfg.decoder.block.attention as StandardAttention;
  assert.equal(cfg.decoder.block.residual, 'sandwich');
  assert.equal(a.softcap, 50);
  assert.equal(cfg.logitSoftcap, 30);
  assert.equal(a.scale, null); // query_pre_attn_scalar 256 = head_dim
  assert.equal(cfg.embedScale, 'sqrt-hidden');
  assert.deepEqual(cfg.decoder.block.norm, { kind: 'rmsnorm', eps: 1e-6, unitOffset: true });
  const back = toHFConfig(cfg);
  for (const k of ['query_pre_attn_scalar', 'sliding_window', 'attn_logit_softcapping', 'final_logit_softcapping', 'head_dim', 'hidden_activation']) {
    assert.deepEqual(back[k], info.hf[k], k);
  }
  assert.deepEqual(fromHFConfig(back), cfg);
  // Gemma 2 27B scales by 144**-0.5 with head_dim 128
  const big = fromHFConfig({ ...info.hf, head_dim: 128, query_pre_attn_scalar: 144 }) as DecoderConfig;
  assert.equal((big.decoder.block.attention as StandardAttention).scale, 1 / 12);
  assert.equal(toHFConfig(big).query_pre_attn_scalar, 144);
  const uncapped = fromHFConfig({ ...info.hf, attn_logit_softcapping: null, final_logit_softcapping: null }) as DecoderConfig;
  assert.equal((uncapped.decoder.block.attention as StandardAttention).softcap, undefined);
  assert.equal(uncapped.logitSoftcap, undefined);
  assert.deepEqual(fromHFConfig(toHFConfig(uncapped)), uncapped);
  assert.throws(() => fromHFConfig({ ...info.hf, attn_logit_softcapping: -1 }), /attn_logit_softcapping/);
  // another family cannot express the soft-cap: toHFConfig refuses, naming the field
  const llama = fromHFConfig(getPresetInfo('llama-2-7b').hf) as DecoderConfig;
  assert.throws(() => toHFConfig({ ...llama, logitSoftcap: 30 }), /logitSoftcap/);
});

test('phi3 config.json: head_dim from hidden / heads, partial rotary, no biases, longrope refused by name', () => {
  const info = getPresetInfo('phi-4');
  const cfg = fromHFConfig(info.hf) as DecoderConfig;
  const a = cfg.decoder.block.attention as StandardAttention;
  assert.equal(cfg.family, 'phi3');
  assert.deepEqual([a.kind, a.heads, a.kvHeads, a.headDim, a.qkvBias, a.outBias], ['gqa', 40, 10, 128, false, false]);
  assert.deepEqual(cfg.positions, { kind: 'rope', theta: 250000, dim: null, scaling: null });
  assert.equal(cfg.tieEmbeddings, false);
  assert.deepEqual(fromHFConfig(toHFConfig(cfg)), cfg);
  const partial = fromHFConfig({ ...info.hf, partial_rotary_factor: 0.75 }) as DecoderConfig;
  assert.equal(partial.positions.kind === 'rope' && partial.positions.dim, 96);
  assert.equal(toHFConfig(partial).partial_rotary_factor, 0.75);
  assert.throws(
    () => fromHFConfig({ ...info.hf, rope_scaling: { type: 'longrope', short_factor: [1], long_factor: [1] } }),
    /field "rope_scaling"/,
  );
});

test('minicpm config.json: µP scalars read and written; the WSD recipe is named in the preset', () => {
  const info = getPresetInfo('minicpm-2b');
  const cfg = fromHFConfig(info.hf) as DecoderConfig;
  assert.deepEqual(cfg.mup, { scaleEmb: 12, scaleDepth: 1.4, dimModelBase: 256 });
  assert.equal(cfg.tieEmbeddings, true);
  const back = toHFConfig(cfg);
  for (const k of ['scale_emb', 'scale_depth', 'dim_model_base', 'vocab_size', 'num_key_value_heads']) assert.deepEqual(back[k], info.hf[k], k);
  assert.deepEqual(fromHFConfig(back), cfg);
  assert.match(info.description, /WSD/);
  assert.throws(() => fromHFConfig({ ...info.hf, scale_emb: 0 }), /mup\.scaleEmb/);
});

test('tiny-phi3 keeps transformers\' fused names and shapes: qkv_proj [(nh + 2 nkv) hs, D], gate_up_proj [2F, D]', () => {
  const model = createModel(getPreset('tiny-phi3'), { seed: 1 });
  const shapes = new Map(model.namedParameters().map(([n, t]) => [n, [...t.shape]]));
  assert.deepEqual(shapes.get('model.layers.0.self_attn.qkv_proj.weight'), [(4 + 2 * 2) * 16, 64]);
  assert.deepEqual(shapes.get('model.layers.0.mlp.gate_up_proj.weight'), [2 * 128, 64]);
  assert.deepEqual(shapes.get('model.layers.1.self_attn.o_proj.weight'), [64, 64]);
  assert.ok(![...shapes.keys()].some((n) => /\.[qkv]_proj|gate_proj|\.up_proj|bias/.test(n)));
  model.dispose();
});

test('tiny-gemma2 has the four sandwich norms per layer, zero-initialised ((1 + w) form)', () => {
  const model = createModel(getPreset('tiny-gemma2'), { seed: 1 });
  const names = model.namedParameters().map(([n]) => n).filter((n) => n.startsWith('model.layers.0.') && n.includes('layernorm'));
  assert.deepEqual(names.sort(), [
    'model.layers.0.input_layernorm.weight', 'model.layers.0.post_attention_layernorm.weight',
    'model.layers.0.post_feedforward_layernorm.weight', 'model.layers.0.pre_feedforward_layernorm.weight',
  ]);
  for (const [n, t] of model.namedParameters()) if (n.endsWith('layernorm.weight')) assert.ok(t.toList().every((v) => v === 0), n);
  model.dispose();
});

test('final logit soft-cap bounds the logits of a trained-scale model to (-cap, cap)', () => {
  const cfg = getPreset('tiny-gemma2') as DecoderConfig;
  cfg.logitSoftcap = 0.5;
  const model = createModel(cfg, { seed: 2 }).eval();
  const logits = noGrad(() => model.forward({ inputIds: randomIds(1, 6, 256, 1) }).logits).toList();
  assert.ok(logits.every((z) => Math.abs(z) < 0.5));
  assert.ok(logits.some((z) => Math.abs(z) > 0.05));
  model.dispose();
});

// ---- the soft-capped attention kernel ----

function leafT(shape: number[], seed: number, scale = 1): Tensor {
  return O.mul(O.randn(shape, { rng: new Rng(seed) }), scale).requireGrad();
}

function maxDiff(a: Tensor, b: Tensor): number {
  const [x, y] = [a.toList(), b.toList()];
  return x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i]!)), 0);
}

test('soft-capped attention: fused (reference kernel) equals composed, forward and gradients; the cap changes it', () => {
  const rng = new Rng(3);
  for (let trial = 0; trial < 6; trial++) {
    const [B, Hkv, rep, Tk] = [1 + rng.int(2), 1 + rng.int(2), 1 + rng.int(2), 2 + rng.int(9)];
    const Tq = 1 + rng.int(Tk);
    const q = leafT([B, Hkv * rep, Tq, 8], 10 + trial, 3); // large scores, so the cap bites
    const k = leafT([B, Hkv, Tk, 8], 20 + trial, 3);
    const v = leafT([B, Hkv, Tk, 5], 30 + trial);
    const opts = { causal: trial % 2 === 0, window: trial === 3 ? 2 : 0, softcap: 1.5 };
    assert.ok(maxDiff(O.attention(q, k, v, opts), O.attentionComposed(q, k, v, opts)) < 1e-5, `trial ${trial} forward`);
    assert.ok(maxDiff(O.attention(q, k, v, opts), O.attention(q, k, v, { ...opts, softcap: 0 })) > 1e-3, `trial ${trial}: cap inert`);
    const grads = (y: Tensor) => {
      for (const t of [q, k, v]) t.zeroGrad();
      y.mul(O.randn([...y.shape], { rng: new Rng(trial) })).sum().backward();
      return [q, k, v].map((t) => O.clone(t.grad!));
    };
    const gf = grads(O.attention(q, k, v, opts));
    const gc = grads(O.attentionComposed(q, k, v, opts));
    gf.forEach((g, i) => assert.ok(maxDiff(g, gc[i]!) < 1e-4, `trial ${trial} grad ${i}`));
  }
  assert.throws(() => O.attention(leafT([1, 1, 2, 4], 1), leafT([1, 1, 2, 4], 2), leafT([1, 1, 2, 4], 3), { softcap: -1 }), /softcap/);
});

test('soft-capped attention gradient matches finite differences (float64 reference)', () => {
  const [q, k, v] = inF64(() => [leaf([1, 2, 3, 4], 1, 2), leaf([1, 1, 4, 4], 2, 2), leaf([1, 1, 4, 3], 3)]);
  gradcheck('attention softcap', (a, b, c) => O.attention(a!, b!, c!, { causal: true, softcap: 0.8 }), [q!, k!, v!]);
});

/** the fast backends of this machine: wasm always, native where the addon was built */
async function fastBackends(): Promise<{ name: string; be: Backend & { dispose?(): unknown } }[]> {
  const out: { name: string; be: Backend & { dispose?(): unknown } }[] = [{ name: 'wasm', be: await createWasmBackend({ variant: 'simd', threads: 1 }) }];
  const { addon } = loadNativeAddon();
  if (addon) out.push({ name: 'native', be: createNativeBackend(addon, { threads: 1 }) });
  return out;
}

test('fast attention kernels (wasm, native) decline a soft-cap (return false) and dispatch runs the reference', async () => {
  const prev = getBackend();
  const [q, k, v] = [leafT([1, 2, 5, 4], 1, 3), leafT([1, 2, 5, 4], 2, 3), leafT([1, 2, 5, 3], 3)];
  const want = O.attentionComposed(q, k, v, { causal: true, softcap: 1 }).toList();
  for (const { name, be } of await fastBackends()) {
    setBackend(be);
    try {
      const [qw, kw, vw] = [q, k, v].map((t) => O.tensor(t.toList(), { shape: [...t.shape] }));
      const [out, lse] = [O.zeros([1, 2, 5, 3]), O.zeros([1, 2, 5])];
      const p: AttentionParams = { B: 1, H: 2, Hkv: 2, Tq: 5, Tk: 5, Dk: 4, Dv: 3, scale: 0.5, causal: true, window: 0, kvLen: null, bias: null, softcap: 1 };
      assert.equal(be.kernels.attention!(qw!.view(), kw!.view(), vw!.view(), out.view(), lse.view(), p), false, name);
      const got = O.attention(qw!, kw!, vw!, { causal: true, softcap: 1 }).toList();
      got.forEach((x, i) => assert.ok(Math.abs(x - want[i]!) < 1e-5, `${name} element ${i}: ${x} vs ${want[i]}`));
    } finally {
      setBackend(prev);
      await be.dispose?.();
    }
  }
});

test("lineage train --schedule wsd: MiniCPM's warmup-stable-decay, decay from 90% of the steps or --decay-start", () => {
  const valued = ['model', 'data', 'out', 'steps', 'lr', 'min-lr', 'warmup', 'schedule', 'decay-start'];
  const base = ['--model', 'tiny-minicpm', '--data', 'x', '--out', 'y', '--steps', '300', '--lr', '0.003', '--min-lr', '0.0003', '--warmup', '30', '--schedule', 'wsd'];
  const resolve = (extra: string[]) => resolveTrainConfig(parseFlags('train', [...base, ...extra], valued, []));
  assert.deepEqual(resolve([]).schedule, { kind: 'wsd', lr: 0.003, minLr: 0.0003, warmup: 30, decayStart: 270, decaySteps: 30 });
  assert.deepEqual(resolve(['--decay-start', '200']).schedule, { kind: 'wsd', lr: 0.003, minLr: 0.0003, warmup: 30, decayStart: 200, decaySteps: 100 });
  assert.throws(() => resolve(['--decay-start', '400']), /--decay-start/);
});
