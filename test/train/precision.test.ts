// Mixed precision: loss scaling rules, skipped steps on fp16 overflow, fp32 masters, memory in numbers,
// and gradient checkpointing (on a test module that honours the flag).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getBackend, tidy, crossEntropy, tensor, manualSeed } from '../../src/index.js';
import { applyTweaks } from '../../src/train/recipes.js';
import { createModel } from '../../src/models/registry.js';
import { getPreset } from '../../src/models/presets.js';
import type { LanguageModel } from '../../src/models/model.js';
import { MemoryTokenFile } from '../../src/train/data/index.js';
import { CausalLMTask } from '../../src/train/family-objectives.js';
import {
  LossScaler,
  MixedPrecision,
  measureMemory,
  parsePrecision,
  type Precision,
} from '../../src/train/precision.js';
import { Trainer } from '../../src/train/trainer.js';
import { ToyLM } from '../infer/toy-model.js';

const TEXT = 'First Citizen:\nBefore we proceed any further, hear me speak.\nAll:\nSpeak, speak.\n'.repeat(20);
const ids = Int32Array.from(new TextEncoder().encode(TEXT));
const data = () => ({ train: new MemoryTokenFile(ids), val: new MemoryTokenFile(ids) });

function tinyTrainer(
  model: LanguageModel,
  precision: Precision,
  extra: Partial<ConstructorParameters<typeof Trainer>[2]> = {},
): Trainer {
  const task = new CausalLMTask(data(), { batchSize: 4, blockSize: 16, seed: 1 });
  return new Trainer(model, task, {
    steps: 10,
    precision,
    schedule: { kind: 'constant', lr: 1e-2 },
    optimizer: { kind: 'adamw', lr: 1e-2, weightDecay: 0.1 },
    gradClip: 1,
    ...extra,
  });
}

test('LossScaler: overflow halves the scale and counts a skip; growthInterval finite steps double it', () => {
  const s = new LossScaler({ initScale: 1024, growthInterval: 3 });
  s.update(false);
  assert.deepEqual(s.getState(), { scale: 512, goodSteps: 0, skipped: 1 });
  s.update(true);
  s.update(true);
  assert.equal(s.scale, 512);
  s.update(true);
  assert.deepEqual(s.getState(), { scale: 1024, goodSteps: 0, skipped: 1 });
  assert.equal(parsePrecision('bfloat16'), 'bf16');
  assert.throws(() => parsePrecision('fp8'), /fp32, bf16 or fp16/);
});

test('fp16: an overflowing loss scale skips the step (weights unchanged) and backs off until steps succeed', () => {
  const model = createModel(getPreset('tiny-gpt2'), { seed: 3 });
  const t = tinyTrainer(model, 'fp16', { lossScale: { initScale: 2 ** 40 } });
  const before = t.weights().map(([, p]) => p.toList());
  const r = t.trainStep();
  assert.equal(r.skipped, true);
  assert.equal(r.lossScale, 2 ** 40);
  assert.deepEqual(
    t.weights().map(([, p]) => p.toList()),
    before,
    'a skipped step must not touch the masters',
  );
  assert.equal(t.mp.scaler!.scale, 2 ** 39);
  let steps = 1;
  while (t.trainStep().skipped) steps++;
  assert.ok(steps < 40, `the scale should back off into range (took ${steps} steps)`);
  assert.ok(t.mp.scaler!.skipped >= 1);
  assert.notDeepEqual(
    t.weights().map(([, p]) => p.toList()),
    before,
  );
  for (const [, p] of model.namedParameters()) assert.equal(p.dtype, 'float16');
  for (const [, p] of t.weights()) assert.equal(p.dtype, 'float32');
  t.dispose();
});

test('bf16 with fp32 masters trains (loss goes down) and the model copy is the rounded master', () => {
  const model = createModel(getPreset('tiny-gpt2'), { seed: 4 });
  const t = tinyTrainer(model, 'bf16', { steps: 30 });
  const losses = Array.from({ length: 30 }, () => t.trainStep().loss);
  assert.ok(
    losses.slice(-5).reduce((a, b) => a + b) / 5 < losses[0]! - 0.5,
    `bf16 loss did not fall: ${losses[0]} -> ${losses.at(-1)}`,
  );
  const byName = new Map(model.namedParameters());
  for (const [name, m] of t.weights()) {
    assert.equal(byName.get(name)!.dtype, 'bfloat16');
    assert.deepEqual(
      byName.get(name)!.toList(),
      m.to('bfloat16').toList(),
      `${name}: model copy is not the rounded master`,
    );
  }
  t.dispose();
});

function memoryReports() {
  return (['fp32', 'bf16', 'fp16'] as Precision[]).map((prec) => {
    const model = createModel(getPreset('tiny-gpt2'), { seed: 5 });
    const mp = new MixedPrecision(model, prec);
    const x = tensor(ids.slice(0, 8 * 64), { shape: [8, 64], dtype: 'int32' });
    const y = tensor(ids.slice(1, 8 * 64 + 1), { shape: [8, 64], dtype: 'int32' });
    const r = measureMemory(mp, () => crossEntropy(model.forward({ inputIds: x }).logits, y));
    mp.dispose();
    model.dispose();
    return r;
  });
}

test('memory report: bf16/fp16 halve parameter bytes and add fp32 masters (numbers printed)', () => {
  const reports = memoryReports();
  for (const r of reports)
    console.log(
      `# ${r.precision}: params ${r.parameterBytes} B + masters ${r.masterBytes} B, activations ${r.activationBytes} B, peak ${r.peakBytes} B`,
    );
  const [f32, b16, f16] = reports as [(typeof reports)[0], (typeof reports)[0], (typeof reports)[0]];
  assert.equal(b16.parameterBytes * 2, f32.parameterBytes);
  assert.equal(b16.masterBytes, f32.parameterBytes);
  assert.equal(f16.parameterBytes, b16.parameterBytes);
  assert.ok(f32.activationBytes > 0);
});

// Fused ops (layerNorm/rmsNorm/softmax/attention) store their outputs in bf16 and drop float32 copies.
test('bf16 activations kept for backward are about half of fp32', () => {
  const [f32, b16] = memoryReports();
  assert.ok(
    b16!.activationBytes < 0.65 * f32!.activationBytes,
    `bf16 activations ${b16!.activationBytes} vs fp32 ${f32!.activationBytes}`,
  );
});

test('gradient checkpointing: same gradients, fewer activation bytes kept between forward and backward', () => {
  const x = tensor(ids.slice(0, 4 * 32), { shape: [4, 32], dtype: 'int32' });
  const y = tensor(ids.slice(1, 4 * 32 + 1), { shape: [4, 32], dtype: 'int32' });
  const run = (ckpt: boolean) => {
    const model = new ToyLM({ layers: 4, seed: 9 });
    model.gradientCheckpointing = ckpt;
    const mp = new MixedPrecision(model, 'fp32');
    const before = getBackend().bytesInUse();
    let kept = 0;
    tidy(() => {
      const loss = crossEntropy(model.forward({ inputIds: x }).logits, y);
      kept = getBackend().bytesInUse() - before;
      loss.backward();
    });
    const grads = model.parameters().map((p) => p.grad!.toList());
    const report = measureMemory(mp, () => crossEntropy(model.forward({ inputIds: x }).logits, y));
    model.dispose();
    return { kept, grads, report };
  };
  const plain = run(false);
  const ckpt = run(true);
  console.log(
    `# activations kept for backward: ${plain.kept} B without, ${ckpt.kept} B with checkpointing (${((100 * ckpt.kept) / plain.kept).toFixed(0)}%)`,
  );
  assert.ok(ckpt.kept < 0.6 * plain.kept, `checkpointing kept ${ckpt.kept} B vs ${plain.kept} B`);
  assert.equal(ckpt.report.activationBytes, ckpt.kept);
  plain.grads.forEach((g, i) =>
    g.forEach((v, j) =>
      assert.ok(Math.abs(v - ckpt.grads[i]![j]!) < 1e-6, `param ${i}[${j}]: ${v} vs ${ckpt.grads[i]![j]}`),
    ),
  );
});

test('the trainer refuses gradient checkpointing for a model without the flag, naming the family', () => {
  const model = createModel(getPreset('tiny-rnn'));
  if ('gradientCheckpointing' in model) return; // the family supports it now
  assert.throws(
    () => tinyTrainer(model, 'fp32', { gradientCheckpointing: true }),
    /lineage-rnn model does not support gradient checkpointing/,
  );
});

test('the trainer runs a checkpointed toy model to the same losses as without', () => {
  const losses = (ckpt: boolean) => {
    const t = tinyTrainer(new ToyLM({ seed: 2 }), 'fp32', { gradientCheckpointing: ckpt });
    const out = Array.from({ length: 4 }, () => t.trainStep().loss);
    t.dispose();
    return out;
  };
  const a = losses(false);
  const b = losses(true);
  a.forEach((v, i) => assert.ok(Math.abs(v - b[i]!) < 1e-5, `step ${i}: ${v} vs ${b[i]}`));
});

function decoderLosses(dropout: number, ckpt: boolean): number[] {
  manualSeed(3);
  const model = createModel(applyTweaks(getPreset('tiny-gpt2'), { dropout }), { seed: 1 });
  const t = tinyTrainer(model, 'fp32', { gradientCheckpointing: ckpt });
  const out = Array.from({ length: 4 }, () => t.trainStep().loss);
  t.dispose();
  return out;
}

test('decoder families honour gradientCheckpointing: identical losses without dropout', (t) => {
  if (!('gradientCheckpointing' in createModel(getPreset('tiny-gpt2'))))
    return t.skip('the decoder has no gradientCheckpointing flag yet');
  assert.deepEqual(decoderLosses(0, true), decoderLosses(0, false));
});

// like torch.utils.checkpoint(preserve_rng_state=True), the recomputation replays the dropout RNG
test('gradient checkpointing with dropout gives the same losses', () => {
  assert.deepEqual(decoderLosses(0.1, true), decoderLosses(0.1, false));
});
