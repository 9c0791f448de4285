// Each family's initialisation against transformers' `_init_weights`: the empirical std (or bound, or
// value) of every parameter kind, on tensors large enough for a tight tolerance. Every parameter of each
// model must be matched by one expectation, so a new parameter without a rule fails here.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { fromHFConfig, type HfJson } from '../../src/models/hf-config.js';
import { getPresetInfo } from '../../src/models/presets.js';
import { createModel } from '../../src/models/registry.js';
import type { LanguageModel } from '../../src/models/model.js';

type Expect =
  | { normal: number }
  | { uniform: number }
  | { value: number }
  | { check: (x: Float32Array, name: string) => void };

function build(preset: string, set: HfJson, seed = 0): LanguageModel {
  return createModel(fromHFConfig({ ...getPresetInfo(preset).hf, ...set }), { seed });
}

const values = (m: LanguageModel, name: string): Float32Array => {
  const t = m.namedParameters().find(([n]) => n === name)?.[1];
  assert.ok(t, `no parameter ${name}`);
  return Float32Array.from(t.data() as Float32Array);
};

function rms(x: Float32Array): number {
  let s = 0;
  for (const v of x) s += v * v;
  return Math.sqrt(s / x.length);
}

/** relative tolerance for an estimated std from n samples (~5 standard errors, at least 3%) */
const tol = (n: number) => Math.max(0.03, 5 / Math.sqrt(2 * n));

function checkParam(name: string, x: Float32Array, e: Expect): void {
  if ('value' in e) {
    assert.ok(x.every((v) => v === e.value), `${name}: expected every value ${e.value}`);
  } else if ('uniform' in e) {
    assert.ok(x.every((v) => Math.abs(v) <= e.uniform * (1 + 1e-6)), `${name}: values beyond ±${e.uniform}`);
    const s = rms(x);
    const want = e.uniform / Math.sqrt(3);
    assert.ok(Math.abs(s / want - 1) < tol(x.length), `${name}: std ${s}, expected U(±${e.uniform}) std ${want}`);
  } else if ('normal' in e) {
    const s = rms(x);
    assert.ok(Math.abs(s / e.normal - 1) < tol(x.length), `${name}: std ${s}, expected ${e.normal}`);
  } else {
    e.check(x, name);
  }
}

/** checks every parameter of `m` against the first rule whose pattern matches its name */
function checkModel(m: LanguageModel, rules: [RegExp, Expect][]): void {
  for (const [name, t] of m.namedParameters()) {
    const rule = rules.find(([re]) => re.test(name));
    assert.ok(rule, `no expectation for parameter ${name}`);
    checkParam(name, Float32Array.from(t.data() as Float32Array), rule[1]);
  }
}

function zeroRow(m: LanguageModel, name: string, row: number): void {
  const t = m.namedParameters().find(([n]) => n === name)![1];
  const cols = t.shape[1]!;
  const x = t.data() as Float32Array;
  assert.ok(x.subarray(row * cols, (row + 1) * cols).every((v) => v === 0), `${name}: padding row ${row} must be zero`);
  const next = x.subarray((row + 1) * cols, (row + 2) * cols);
  assert.ok(next.some((v) => v !== 0), `${name}: row ${row + 1} must not be zero`);
}

const BIAS_NORM: [RegExp, Expect][] = [
  [/bias$/, { value: 0 }],
  [/(ln_\d|ln_f|LayerNorm|layernorm_embedding|layer_norm|_norm|norm)\.weight$/, { value: 1 }],
];

test('gpt2 init: normal(initializer_range), every c_proj normal(initializer_range / sqrt(2 n_layer))', () => {
  const m = build('tiny-gpt2', { n_embd: 256, n_layer: 4, vocab_size: 512, initializer_range: 0.03 });
  const scaled = 0.03 / Math.sqrt(8);
  checkModel(m, [...BIAS_NORM, [/c_proj\.weight$/, { normal: scaled }], [/weight$/, { normal: 0.03 }]]);
  m.dispose();
});

test('openai-gpt init: normal(initializer_range) everywhere, no residual scaling', () => {
  const m = build('tiny-gpt', { n_embd: 256, n_layer: 4, vocab_size: 512, initializer_range: 0.03 });
  checkModel(m, [...BIAS_NORM, [/weight$/, { normal: 0.03 }]]);
  m.dispose();
});

for (const [preset, extra] of [
  ['tiny-llama', {}],
  ['tiny-mixtral', {}],
  ['tiny-deepseek', { moe_intermediate_size: 128, kv_lora_rank: 64 }],
] as const) {
  test(`${preset} init: normal(initializer_range) for projections, router, experts; pad row 0; norms 1`, () => {
    const sizes = { hidden_size: 256, intermediate_size: 512, vocab_size: 512 };
    const m = build(preset, { ...sizes, initializer_range: 0.03, pad_token_id: 3, ...extra });
    checkModel(m, [...BIAS_NORM, [/weight$/, { normal: 0.03 }]]);
    zeroRow(m, 'model.embed_tokens.weight', 3);
    m.dispose();
  });
}

test('bert init: normal(initializer_range), word_embeddings padding row zero, LayerNorm one, biases zero', () => {
  const sizes = { hidden_size: 256, intermediate_size: 512, vocab_size: 512 };
  const m = build('tiny-bert', { ...sizes, initializer_range: 0.05, pad_token_id: 0 });
  checkModel(m, [...BIAS_NORM, [/weight$/, { normal: 0.05 }]]);
  zeroRow(m, 'bert.embeddings.word_embeddings.weight', 0);
  m.dispose();
});

test('bart init: normal(init_std), shared padding row zero, final_logits_bias zero', () => {
  const sizes = { d_model: 256, encoder_ffn_dim: 512, decoder_ffn_dim: 512, vocab_size: 512 };
  const m = build('tiny-bart', { ...sizes, init_std: 0.04 });
  checkModel(m, [...BIAS_NORM, [/weight$/, { normal: 0.04 }]]);
  zeroRow(m, 'model.shared.weight', 1);
  m.dispose();
});

test('t5 init: Mesh TensorFlow fan-in scaling of q, k, v, o, wi, wo, relative bias; shared f·1', () => {
  for (const f of [1, 0.5]) {
    const [D, dkv, H, dff] = [256, 32, 8, 512];
    const sizes = { d_model: D, d_kv: dkv, num_heads: H, d_ff: dff, vocab_size: 512 };
    const m = build('tiny-t5', { ...sizes, initializer_factor: f });
    checkModel(m, [
      [/layer_norm\.weight$/, { value: f }],
      [/Attention\.q\.weight$/, { normal: f * (D * dkv) ** -0.5 }],
      [/Attention\.[kv]\.weight$/, { normal: f * D ** -0.5 }],
      [/Attention\.o\.weight$/, { normal: f * (H * dkv) ** -0.5 }],
      [/relative_attention_bias\.weight$/, { normal: f * D ** -0.5 }],
      [/DenseReluDense\.wi\.weight$/, { normal: f * D ** -0.5 }],
      [/DenseReluDense\.wo\.weight$/, { normal: f * dff ** -0.5 }],
      [/^shared\.weight$/, { normal: f }],
    ]);
    m.dispose();
  }
});

test('t5 v1.1 (gated, untied head) init: wi_0 / wi_1 f·d_model^-0.5, lm_head f·1 (transformers)', () => {
  const sizes = { d_model: 256, d_ff: 512, vocab_size: 512 };
  const m = build('tiny-t5', { ...sizes, feed_forward_proj: 'gated-gelu', tie_word_embeddings: false });
  checkParam('wi_0', values(m, 'encoder.block.0.layer.1.DenseReluDense.wi_0.weight'), { normal: 256 ** -0.5 });
  checkParam('wi_1', values(m, 'decoder.block.1.layer.2.DenseReluDense.wi_1.weight'), { normal: 256 ** -0.5 });
  checkParam('lm_head', values(m, 'lm_head.weight'), { normal: 1 });
  m.dispose();
});

test('t5-small-like model: attention scores at init are O(1) (T5 does not scale by 1/sqrt(d_kv))', () => {
  const [D, dkv, H, T] = [512, 64, 8, 16];
  const m = build('tiny-t5', { d_model: D, d_kv: dkv, num_heads: H, d_ff: 1024, num_layers: 1, vocab_size: 512 });
  const emb = values(m, 'shared.weight');
  const wq = values(m, 'encoder.block.0.layer.0.SelfAttention.q.weight'); // [H·dkv, D]
  const wk = values(m, 'encoder.block.0.layer.0.SelfAttention.k.weight');
  // x: the layer-normed embeddings of tokens 0..T-1 (RMS norm, weight 1)
  const x = Array.from({ length: T }, (_, t) => {
    const row = emb.subarray(t * D, (t + 1) * D);
    const r = rms(row);
    return Float32Array.from(row, (v) => v / r);
  });
  const proj = (w: Float32Array, v: Float32Array) =>
    Float32Array.from({ length: H * dkv }, (_, o) => v.reduce((s, xi, i) => s + xi * w[o * D + i]!, 0));
  const q = x.map((v) => proj(wq, v));
  const k = x.map((v) => proj(wk, v));
  const scores: number[] = [];
  for (let h = 0; h < H; h++) {
    for (let i = 0; i < T; i++) {
      for (let j = 0; j < T; j++) {
        let s = 0;
        for (let d = 0; d < dkv; d++) s += q[i]![h * dkv + d]! * k[j]![h * dkv + d]!;
        scores.push(s);
      }
    }
  }
  const std = rms(Float32Array.from(scores));
  const max = Math.max(...scores.map(Math.abs));
  assert.ok(std > 0.5 && std < 2, `score std ${std} should be about 1`);
  assert.ok(max < 10, `largest |score| ${max} should be O(1)`);
  m.dispose();
});

test('mamba init: dt_proj U(±dt_rank^-0.5·scale), softplus⁻¹(dt) bias, A_log, D, kaiming conv, out_proj', () => {
  const [hidden, inner, N, R, K] = [128, 256, 16, 8, 4];
  const m = build('tiny-mamba', {
    hidden_size: hidden, intermediate_size: inner, state_size: N, time_step_rank: R, conv_kernel: K, vocab_size: 512,
    num_hidden_layers: 2, time_step_scale: 2,
  });
  const dtMin = 0.001, dtMax = 0.1;
  checkModel(m, [
    [/dt_proj\.weight$/, { uniform: 2 * R ** -0.5 }],
    [/dt_proj\.bias$/, {
      check: (b, name) => {
        const dt = Array.from(b, (v) => Math.log1p(Math.exp(v))); // softplus
        const inside = dt.every((v) => v >= dtMin * 0.999 && v <= dtMax * 1.001);
        assert.ok(inside, `${name}: softplus(bias) outside [dt_min, dt_max]`);
        const logs = dt.map(Math.log);
        const mean = logs.reduce((a, c) => a + c, 0) / logs.length;
        const mid = (Math.log(dtMin) + Math.log(dtMax)) / 2;
        assert.ok(Math.abs(mean - mid) < 0.4, `${name}: log dt should be uniform in [log dt_min, log dt_max]: ${mean}`);
      },
    }],
    [/A_log$/, {
      check: (a, name) => a.forEach((v, i) => assert.ok(Math.abs(v - Math.log((i % N) + 1)) < 1e-6, `${name}[${i}]`)),
    }],
    [/mixer\.D$/, { value: 1 }],
    [/conv1d\.weight$/, { uniform: K ** -0.5 }],
    [/conv1d\.bias$/, { value: 0 }],
    [/out_proj\.weight$/, { uniform: inner ** -0.5 }],
    [/norm(_f)?\.weight$/, { value: 1 }],
    [/(in_proj|x_proj)\.weight$/, { normal: 0.1 }],
    [/embeddings\.weight$/, { normal: 0.1 }],
  ]);
  m.dispose();
});

test('mamba init with rescale_prenorm_residual: out_proj U(±inner^-0.5) / sqrt(num_hidden_layers)', () => {
  const sizes = { num_hidden_layers: 4, hidden_size: 128, intermediate_size: 256 };
  const m = build('tiny-mamba', { ...sizes, rescale_prenorm_residual: true });
  checkParam('out_proj', values(m, 'backbone.layers.3.mixer.out_proj.weight'), { uniform: 256 ** -0.5 / 2 });
  assert.equal((m.config as { ssm: { rescalePrenormResidual?: boolean } }).ssm.rescalePrenormResidual, true);
  m.dispose();
});

test('mamba init with time_step_init_scheme "constant": dt_proj.weight = dt_rank^-0.5 · scale', () => {
  const m = build('tiny-mamba', { time_step_init_scheme: 'constant', time_step_rank: 4 });
  checkParam('dt_proj', values(m, 'backbone.layers.0.mixer.dt_proj.weight'), { value: Math.fround(0.5) });
  m.dispose();
});

test('init is seeded: same seed, same weights; another seed, other weights', () => {
  const a = values(build('tiny-t5', {}, 1), 'encoder.block.0.layer.0.SelfAttention.q.weight');
  const b = values(build('tiny-t5', {}, 1), 'encoder.block.0.layer.0.SelfAttention.q.weight');
  const c = values(build('tiny-t5', {}, 2), 'encoder.block.0.layer.0.SelfAttention.q.weight');
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
});
