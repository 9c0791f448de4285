// DeepSeek-V3 / Kimi K2: golden MTP logits, cached decoding, the correction bias (choice only, updated from
// load by the trainer hook, saved under transformers' name), the MTP objective, the config codec and presets.
import '../../src/autograd/index.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { concat, crossEntropy, slice, tensor } from '../../src/ops/index.js';
import { noGrad } from '../../src/tensor/engine.js';
import { loadModel, saveModel } from '../../src/models/load-node.js';
import { createModel } from '../../src/models/registry.js';
import { DecoderLM } from '../../src/models/decoder.js';
import { fromHFConfig, toHFConfig } from '../../src/models/hf-config.js';
import { getPreset } from '../../src/models/presets.js';
import { countParams } from '../../src/models/inspect.js';
import type { DecoderConfig } from '../../src/models/config.js';
import { MoE } from '../../src/nn/moe.js';
import { MemoryTokenFile } from '../../src/train/data/index.js';
import { CausalLMTask } from '../../src/train/family-objectives.js';
import { Trainer } from '../../src/train/trainer.js';
import { randomIds, tinyConfig } from './decoder-helpers.js';

interface Golden {
  inputs: { input_ids: number[][] };
  outputs: Record<string, { shape: number[]; data: number[] } | number>;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

test('deepseek_v3 fixture: MTP logits and loss match the PyTorch implementation', async () => {
  const golden = JSON.parse(readFileSync('fixtures/deepseek_v3/golden.json', 'utf8')) as Golden;
  const model = (await loadModel('fixtures/deepseek_v3')) as DecoderLM;
  model.eval();
  const ids = tensor(golden.inputs.input_ids, { dtype: 'int32' });
  noGrad(() => {
    const out = model.forward({ inputIds: ids });
    const want = golden.outputs.logits as { data: number[] };
    assert.ok(maxDiff(out.logits.data(), want.data) < 1e-4, 'logits');
    const [mtp] = model.mtpForward(ids, out.lastHiddenState!);
    const g = golden.outputs.mtp_logits as { shape: number[]; data: number[] };
    assert.deepEqual([...mtp!.shape], g.shape);
    const err = maxDiff(mtp!.data(), g.data);
    assert.ok(err < 1e-4, `mtp logits max abs error ${err}`);
    const T = ids.shape[1]!;
    const loss = crossEntropy(slice(mtp!, 1, 0, T - 2), slice(ids, 1, 2)).item();
    assert.ok(Math.abs(loss - (golden.outputs.mtp_loss as number)) < 1e-5, `mtp loss ${loss}`);
  });
});

test('deepseek_v3: the correction bias changes the choice of experts, not the gate weights', async () => {
  const model = (await loadModel('fixtures/deepseek_v3')).eval() as DecoderLM;
  const ids = randomIds(2, 10, 96, 3);
  const before = noGrad(() => model.forward({ inputIds: ids }).logits.data().slice());
  const moe = model.stack.layers.at(1).ffn as MoE;
  const picked = moe.lastStats!.tokensPerExpert.slice();
  // a huge bias on expert 0 forces it into every token's top-k (its group wins too)
  const E = 8;
  const bias = new Float32Array(E);
  bias[0] = 100;
  model.setParameter('model.layers.1.mlp.gate.e_score_correction_bias', tensor(bias));
  const after = noGrad(() => model.forward({ inputIds: ids }).logits.data());
  assert.equal(moe.lastStats!.tokensPerExpert[0], 20);
  assert.notDeepEqual(moe.lastStats!.tokensPerExpert, picked);
  assert.ok(maxDiff(before, after) > 1e-4);
  // the same bias on every expert chooses as no bias: logits unchanged (the bias never enters the weights)
  model.setParameter('model.layers.1.mlp.gate.e_score_correction_bias', tensor(new Float32Array(E).fill(0.37)));
  const shifted = noGrad(() => model.forward({ inputIds: ids }).logits.data());
  model.setParameter('model.layers.1.mlp.gate.e_score_correction_bias', tensor(new Float32Array(E)));
  const zero = noGrad(() => model.forward({ inputIds: ids }).logits.data());
  assert.ok(maxDiff(shifted, zero) < 1e-6);
});

test('deepseek_v3: cached decoding equals the full forward', async () => {
  const model = (await loadModel('fixtures/deepseek_v3')).eval();
  const ids = randomIds(1, 9, 96, 4);
  noGrad(() => {
    const full = model.forward({ inputIds: ids }).logits;
    const cache = model.newCache!(1);
    const parts = [model.forward({ inputIds: slice(ids, 1, 0, 5), cache }).logits];
    for (let t = 5; t < 9; t++) parts.push(model.forward({ inputIds: slice(ids, 1, t, t + 1), cache }).logits);
    assert.ok(maxDiff(concat(parts, 1).data(), full.data()) < 1e-4);
  });
});

test('deepseek_v3: bias update = u · sign(mean load − load), by the trainer hook, not by gradient', () => {
  const cfg = tinyConfig('deepseek_v3');
  const model = createModel(cfg, { seed: 2 }) as DecoderLM;
  model.train();
  const moe = model.stack.layers.at(1).ffn as MoE;
  const router = 'model.layers.1.mlp.gate.e_score_correction_bias';
  const p = new Map(model.namedParameters()).get(router)!;
  assert.equal(p.requiresGrad, false);
  const out = model.forward({ inputIds: randomIds(2, 8, 48, 5) });
  const load = moe.lastStats!.tokensPerExpert;
  const mean = load.reduce((a, b) => a + b, 0) / load.length;
  out.logits.sum().backward();
  assert.equal(p.grad ?? null, null);
  model.afterOptimizerStep();
  const u = (cfg.decoder.block.ffn as { correctionBias: { updateRate: number } }).correctionBias.updateRate;
  const got = new Map(model.namedParameters()).get(router)!.data();
  load.forEach((l, e) => assert.ok(Math.abs(got[e]! - u * Math.sign(mean - l)) < 1e-7, `expert ${e}`));
  // eval forwards do not count as load
  model.eval();
  noGrad(() => model.forward({ inputIds: randomIds(2, 8, 48, 6) }));
  model.afterOptimizerStep();
  assert.deepEqual([...new Map(model.namedParameters()).get(router)!.data()], [...got]);
});

test('deepseek_v3: training adds λ · MTP loss to the auxiliary loss, and it reaches the MTP weights', () => {
  const cfg = tinyConfig('deepseek_v3');
  const model = createModel(cfg, { seed: 3 }) as DecoderLM;
  const ids = randomIds(2, 8, 48, 7);
  const train = model.train().forward({ inputIds: ids });
  const mtp = train.extra!.mtpLoss!.item();
  assert.ok(mtp > 0);
  const evalOut = noGrad(() => model.eval().forward({ inputIds: ids }));
  assert.equal(evalOut.extra, undefined);
  const diff = train.auxLoss!.item() - evalOut.auxLoss!.item();
  assert.ok(Math.abs(diff - cfg.mtp!.lossWeight * mtp) < 1e-5, `${diff} vs ${cfg.mtp!.lossWeight * mtp}`);
  model.train();
  const out = model.forward({ inputIds: ids });
  out.auxLoss!.backward();
  const eh = new Map(model.namedParameters()).get('model.layers.2.eh_proj.weight')!;
  assert.ok(eh.grad && Math.max(...Array.from(eh.grad.data(), Math.abs)) > 0);
});

test('deepseek_v3: checkpoint save/load round-trips (bias and MTP under the V3 names)', async () => {
  const cfg = tinyConfig('deepseek_v3');
  const model = createModel(cfg, { seed: 4 }) as DecoderLM;
  model.setParameter('model.layers.1.mlp.gate.e_score_correction_bias', tensor(Float32Array.from({ length: 8 }, (_, i) => i / 100)));
  const names = model.namedParameters().map(([n]) => n);
  for (const n of ['model.layers.1.mlp.gate.e_score_correction_bias', 'model.layers.2.enorm.weight', 'model.layers.2.hnorm.weight', 'model.layers.2.eh_proj.weight', 'model.layers.2.shared_head.norm.weight', 'model.layers.2.self_attn.kv_b_proj.weight', 'model.layers.2.mlp.experts.7.down_proj.weight']) {
    assert.ok(names.includes(n), n);
  }
  const dir = mkdtempSync(join(tmpdir(), 'dsv3-'));
  try {
    await saveModel(model, dir);
    const back = (await loadModel(dir)) as DecoderLM;
    assert.deepEqual(back.config, model.config);
    const a = new Map(model.namedParameters());
    for (const [n, t] of back.namedParameters()) assert.deepEqual([...t.data()], [...a.get(n)!.data()], n);
    assert.equal(new Map(back.namedParameters()).get('model.layers.1.mlp.gate.e_score_correction_bias')!.requiresGrad, false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('deepseek_v3 config codec round-trips both ways', () => {
  for (const name of ['deepseek-v3', 'kimi-k2', 'tiny-deepseek-v3']) {
    const cfg = getPreset(name) as DecoderConfig;
    assert.equal(cfg.family, 'deepseek_v3');
    const json = toHFConfig(cfg);
    assert.deepEqual(fromHFConfig(json), cfg, name);
    assert.deepEqual(toHFConfig(fromHFConfig(json)), json, name);
  }
  const v3 = getPreset('deepseek-v3') as DecoderConfig;
  const f = v3.decoder.block.ffn;
  assert.ok(f.kind === 'moe' && f.gating === 'sigmoid' && f.correctionBias && f.routing.kind === 'group-limited' && f.routing.groupScore === 'top2-sum');
  assert.deepEqual(v3.mtp, { depth: 1, lossWeight: 0.3 });
  assert.equal((getPreset('kimi-k2') as DecoderConfig).mtp, null);
  assert.throws(() => fromHFConfig({ ...toHFConfig(v3), topk_method: 'greedy' }), /topk_method/);
  assert.throws(() => fromHFConfig({ ...toHFConfig(getPreset('deepseek-v2-lite')), topk_method: 'noaux_tc' }), /noaux_tc/);
});

test('inspect: DeepSeek-V3 671B main + 11.6B MTP, 36.6B active; Kimi K2 1.03T, 32B active', () => {
  const v3 = countParams(getPreset('deepseek-v3'));
  const emb = 129280 * 7168;
  const mtp = v3.byComponent.mtp!;
  assert.ok(Math.abs(v3.params - mtp - 671.03e9) < 0.01e9, `${v3.params - mtp}`);
  // DeepSeek's README_WEIGHTS: MTP 11.5B unique parameters (+ its stored copies of embedding and head = 685B total)
  assert.ok(Math.abs(mtp - 11.61e9) < 0.01e9, `${mtp}`);
  assert.ok(Math.abs(v3.params + 2 * emb - 684.5e9) < 0.1e9);
  // "36.6B activated (including 0.9B for the output head)": the input embedding lookup is left out
  assert.ok(Math.abs(v3.activeParams - emb - 36.63e9) < 0.01e9, `${v3.activeParams - emb}`);
  const k2 = countParams(getPreset('kimi-k2'));
  assert.ok(Math.abs(k2.params - 1.0264e12) < 0.001e12, `${k2.params}`);
  assert.ok(Math.abs(k2.activeParams - 163840 * 7168 - 31.69e9) < 0.01e9, `${k2.activeParams}`);
});

test('the trainer moves the correction bias after each optimizer step (tiny-deepseek-v3 on text)', () => {
  const text = 'ROMEO:\nBut soft, what light through yonder window breaks?\n'.repeat(20);
  const ids = Int32Array.from(new TextEncoder().encode(text));
  const model = createModel(getPreset('tiny-deepseek-v3'), { seed: 1 });
  const task = new CausalLMTask({ train: new MemoryTokenFile(ids), val: new MemoryTokenFile(ids.slice(0, 300)) }, { batchSize: 2, blockSize: 12, seed: 3 });
  const trainer = new Trainer(model, task, {
    steps: 3,
    schedule: { kind: 'constant', lr: 1e-3 },
    optimizer: { kind: 'adamw', lr: 1e-3 },
    gradClip: 1,
    evalInterval: 100,
    evalBatches: 1,
  });
  const bias = () => [...new Map(model.namedParameters()).get('model.layers.1.mlp.gate.e_score_correction_bias')!.data()];
  assert.ok(bias().every((b) => b === 0));
  const r = trainer.trainStep();
  const u = 0.001;
  const after = bias();
  assert.ok(after.every((b) => Math.abs(Math.abs(b) - u) < 1e-9 || b === 0), `${after}`);
  assert.ok(after.some((b) => b !== 0));
  assert.ok(Number.isFinite(r.loss));
});
