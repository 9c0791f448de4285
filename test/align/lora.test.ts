// LoRA: merged output equals unmerged; a PEFT-layout round trip preserves the adapter exactly; only
// adapter parameters train (no optimizer state nor float32 masters for the frozen base).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { noGrad, tidy } from '../../src/tensor/engine.js';
import { Rng } from '../../src/tensor/random.js';
import { randn } from '../../src/ops/index.js';
import { createModel } from '../../src/models/registry.js';
import type { LanguageModel } from '../../src/models/model.js';
import { parseSafetensors } from '../../src/io/safetensors.js';
import { applyLora, adapterTensors, loraLayers, mergedWeights, mergeLora, unmergeLora } from '../../src/align/lora.js';
import { loadAdapterDir, saveAdapterDir } from '../../src/align/lora-node.js';
import { MixedPrecision } from '../../src/train/precision.js';
import { createOptimizer } from '../../src/train/optim.js';
import { packBatch, tokenLogps } from '../../src/align/logprobs.js';
import { sftLoss } from '../../src/align/losses.js';
import { maxAbsDiff, randomIds, tinyConfig } from '../models/decoder-helpers.js';

const CASES = [
  { family: 'llama' as const, targets: ['q_proj', 'v_proj', 'down_proj'] },
  { family: 'gpt2' as const, targets: ['c_attn', 'mlp.c_proj'] },
];

/** random B so the adapter is not the zero update it starts as */
function randomizeB(model: LanguageModel, seed = 3): void {
  const rng = new Rng(seed);
  noGrad(() => {
    for (const [n, p] of model.namedParameters())
      if (n.endsWith('lora_B.weight')) model.setParameter(n, randn([...p.shape], { std: 0.3, rng }));
  });
}

const logits = (m: LanguageModel) =>
  noGrad(() =>
    tidy(() =>
      m
        .eval()
        .forward({ inputIds: randomIds(2, 7, 48, 5) })
        .logits.contiguous(),
    ),
  );

test('LoRA: a fresh adapter changes nothing; merged equals unmerged; unmerge restores the base', () => {
  for (const { family, targets } of CASES) {
    const model = createModel(tinyConfig(family), { seed: 1 });
    const before = logits(model);
    const base = new Map(model.namedParameters().map(([n, t]) => [n, t.toList()]));
    const paths = applyLora(model, { r: 4, alpha: 8, dropout: 0, targets });
    assert.ok(paths.length >= 4, `${family}: ${paths.length} adapted layers`);
    assert.ok(maxAbsDiff(logits(model), before) < 1e-6, `${family}: B = 0 at init`);
    randomizeB(model);
    const unmerged = logits(model);
    assert.ok(maxAbsDiff(unmerged, before) > 1e-3, `${family}: the adapter must change the output`);
    mergeLora(model);
    assert.ok(maxAbsDiff(logits(model), unmerged) < 1e-4, `${family}: merged == unmerged`);
    unmergeLora(model);
    assert.ok(maxAbsDiff(logits(model), unmerged) < 1e-4, `${family}: unmerge`);
    for (const [n, t] of model.namedParameters()) {
      const orig = base.get(n.replace('.base_layer.', '.'));
      if (orig && !n.includes('lora_'))
        assert.ok(
          t.toList().every((v, i) => Math.abs(v - orig[i]!) < 1e-6),
          `${family}: ${n} restored`,
        );
    }
    // the folded weights load into a plain model of the family and reproduce the adapted output
    const plain = createModel(tinyConfig(family), { seed: 9 });
    noGrad(() => plain.loadStateDict(new Map(mergedWeights(model))));
    assert.ok(maxAbsDiff(logits(plain), unmerged) < 1e-4, `${family}: merged weights in a plain model`);
  }
});

test('LoRA: PEFT layout round trip preserves the adapter exactly', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lineage-lora-'));
  try {
    const model = createModel(tinyConfig('llama'), { seed: 1 });
    const c = { r: 2, alpha: 16, dropout: 0.05, targets: ['q_proj', 'v_proj'] };
    applyLora(model, c);
    randomizeB(model);
    saveAdapterDir(dir, model, c, 'tiny-llama');
    const cfg = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
    assert.equal(cfg.peft_type, 'LORA');
    assert.equal(cfg.r, 2);
    assert.equal(cfg.lora_alpha, 16);
    const names = parseSafetensors(new Uint8Array(readFileSync(join(dir, 'adapter_model.safetensors')))).tensors.map(
      (t) => t.name,
    );
    assert.ok(names.includes('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'), names.join(', '));
    assert.ok(names.includes('base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight'));
    assert.equal(names.length, 2 * 2 * 2);
    const again = createModel(tinyConfig('llama'), { seed: 1 });
    assert.deepEqual(loadAdapterDir(again, dir), { r: 2, alpha: 16, dropout: 0.05, targets: ['q_proj', 'v_proj'] });
    const a = new Map(adapterTensors(model).map(([n, t]) => [n, t.toList()]));
    for (const [n, t] of adapterTensors(again)) assert.deepEqual(t.toList(), a.get(n), n);
    assert.equal(maxAbsDiff(logits(again), logits(model)), 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('LoRA: bad targets and bad adapter files are named', () => {
  const model = createModel(tinyConfig('llama'), { seed: 1 });
  assert.throws(
    () => applyLora(model, { r: 2, alpha: 4, dropout: 0, targets: ['qproj'] }),
    /--lora-targets: 'qproj' matches no linear layer \(this model has: .*q_proj/,
  );
  assert.throws(() => loadAdapterDir(model, '/nonexistent-adapter'), /not a LoRA adapter directory/);
});

test('LoRA SFT step: only adapters change; no optimizer state or bf16 masters for the frozen base', () => {
  const model = createModel(tinyConfig('llama'), { seed: 1 });
  applyLora(model, { r: 4, alpha: 8, dropout: 0, targets: ['q_proj', 'v_proj'] });
  const trainable = model
    .namedParameters()
    .filter(([, p]) => p.requiresGrad)
    .map(([n]) => n);
  assert.ok(trainable.length > 0 && trainable.every((n) => /lora_[AB]/.test(n)), trainable.join(', '));
  const mp = new MixedPrecision(model, 'bf16');
  assert.deepEqual(
    mp.masters.map(([n]) => n),
    trainable,
    'masters only for trainable parameters',
  );
  const opt = createOptimizer(mp.masters, { kind: 'adamw', lr: 1e-2 });
  const before = new Map(model.namedParameters().map(([n, t]) => [n, t.toList()]));
  for (let s = 0; s < 2; s++) {
    tidy(() => {
      const b = packBatch([
        { prompt: [1, 2, 3], completion: [4, 5, 6] },
        { prompt: [7], completion: [8, 9] },
      ]);
      sftLoss(tokenLogps(model.train(), b).logps, b.mask).backward();
    });
    mp.unscaleToMasters();
    opt.step();
    mp.copyMastersToModel();
    mp.zeroGrad();
  }
  const state = opt.stateDict();
  const keys = Object.keys(state.buffers);
  assert.ok(keys.length > 0 && keys.every((k) => /lora_[AB]/.test(k)), `optimizer state: ${keys.join(', ')}`);
  for (const [n, t] of model.namedParameters()) {
    const same = t.toList().every((v, i) => v === before.get(n)![i]);
    if (n.includes('lora_B')) assert.ok(!same, `${n} must train`);
    if (!n.includes('lora_')) assert.ok(same, `${n} is frozen`);
  }
  assert.ok(loraLayers(model).length === 4);
  mp.dispose();
  opt.dispose();
});

test('PEFT adapter_config: rsLoRA scales by alpha / sqrt(r); per-module rank / alpha patterns are refused', async () => {
  const { parsePeftConfig } = await import('../../src/align/lora.js');
  const base = { peft_type: 'LORA', r: 16, lora_alpha: 8, target_modules: ['q_proj'] };
  const plain = parsePeftConfig(base);
  assert.equal(plain.alpha / plain.r, 8 / 16);
  const rs = parsePeftConfig({ ...base, use_rslora: true });
  assert.ok(Math.abs(rs.alpha / rs.r - 8 / Math.sqrt(16)) < 1e-12, `scaling ${rs.alpha / rs.r}`);
  // the scaling reaches the layers
  const model = createModel(tinyConfig('llama'), { seed: 1 });
  applyLora(model, rs);
  for (const [, l] of loraLayers(model)) assert.ok(Math.abs(l.scaling - 2) < 1e-12);
  assert.throws(() => parsePeftConfig({ ...base, rank_pattern: { q_proj: 4 } }), /rank_pattern/);
  assert.throws(() => parsePeftConfig({ ...base, alpha_pattern: { q_proj: 4 } }), /alpha_pattern/);
  assert.doesNotThrow(() => parsePeftConfig({ ...base, rank_pattern: {}, alpha_pattern: {} }));
});

test('PEFT adapters saved in float16 or bfloat16 load as their float32 values', async () => {
  const { f32ToF16, f16ToF32, f32ToBf16, bf16ToF32 } = await import('../../src/backend/dtype.js');
  const { serializeSafetensors } = await import('../../src/io/safetensors.js');
  const { loadAdapter } = await import('../../src/align/lora.js');
  const c = { r: 2, alpha: 16, dropout: 0, targets: ['q_proj', 'v_proj'] };
  const model = createModel(tinyConfig('llama'), { seed: 1 });
  applyLora(model, c);
  randomizeB(model);
  const dir = mkdtempSync(join(tmpdir(), 'lineage-lora16-'));
  try {
    saveAdapterDir(dir, model, c, 'tiny-llama');
    const saved = parseSafetensors(new Uint8Array(readFileSync(join(dir, 'adapter_model.safetensors'))), {
      copy: true,
    });
    for (const [dtype, enc, dec] of [
      ['float16', f32ToF16, f16ToF32],
      ['bfloat16', f32ToBf16, bf16ToF32],
    ] as const) {
      const bytes = serializeSafetensors(
        saved.tensors.map((t) => ({ ...t, dtype, data: Uint16Array.from(t.data as Float32Array, enc) })),
      );
      const again = createModel(tinyConfig('llama'), { seed: 1 });
      loadAdapter(again, c, bytes);
      const want = new Map(adapterTensors(model).map(([n, w]) => [n, w.data() as Float32Array]));
      for (const [n, t] of adapterTensors(again)) {
        const w = Array.from(want.get(n)!, (x) => dec(enc(x)));
        assert.deepEqual(Array.from(t.data() as Float32Array), w, `${dtype} ${n}`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
