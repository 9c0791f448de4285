// The training loop: gradient accumulation, exact resume, determinism, flat memory, eval/checkpoint cadence.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getBackend, manualSeed, type Tensor } from '../../src/index.js';
import { createModel } from '../../src/models/registry.js';
import { getPreset } from '../../src/models/presets.js';
import { MemoryTokenFile } from '../../src/train/data/index.js';
import { CausalLMTask, createTask, type HostBatch } from '../../src/train/family-objectives.js';
import { Trainer, runTraining, type TrainerOptions } from '../../src/train/trainer.js';

const TEXT =
  'ROMEO:\nBut soft, what light through yonder window breaks?\nIt is the east, and Juliet is the sun.\n'.repeat(30);
const ids = Int32Array.from(new TextEncoder().encode(TEXT));
const OPTS: TrainerOptions = {
  steps: 6,
  schedule: { kind: 'cosine', lr: 3e-3, minLr: 3e-4, warmup: 2, decaySteps: 6 },
  optimizer: { kind: 'adamw', lr: 3e-3, beta2: 0.99, weightDecay: 0.1, decay: 'matrices' },
  gradClip: 1,
  evalInterval: 3,
  evalBatches: 2,
};

function makeTrainer(seed: number, opts: Partial<TrainerOptions> = {}, batchSize = 4): Trainer {
  const model = createModel(getPreset('tiny-gpt2'), { seed }); // dropout 0.1: exercises the saved tensor RNG
  const task = new CausalLMTask(
    { train: new MemoryTokenFile(ids), val: new MemoryTokenFile(ids.slice(0, 600)) },
    { batchSize, blockSize: 16, seed: 11 },
  );
  return new Trainer(model, task, { ...OPTS, ...opts });
}

test('gradient accumulation: two half micro-batches give the gradients of the full batch', () => {
  const full = makeTrainer(1, { optimizer: { ...OPTS.optimizer }, gradAccum: 1 });
  const halves = makeTrainer(1, { gradAccum: 2 });
  for (const t of [full, halves]) t.model.eval(); // no dropout: the comparison is exact up to float sums
  const b = full.task.next();
  const half = (r0: number): HostBatch => {
    const pick = (a: { data: Int32Array; shape: [number, number] }) => ({
      data: a.data.slice(r0 * 16, (r0 + 2) * 16),
      shape: [2, 16] as [number, number],
    });
    return { arrays: { inputIds: pick(b.arrays.inputIds!), labels: pick(b.arrays.labels!) }, tokens: 32 };
  };
  full.microStep(b);
  halves.microStep(half(0));
  halves.microStep(half(2));
  const grads = (t: Trainer) => t.model.parameters().map((p) => p.grad!.toList());
  const [g1, g2] = [grads(full), grads(halves)];
  g1.forEach((g, i) =>
    g.forEach((v, j) => assert.ok(Math.abs(v - g2[i]![j]!) < 1e-6, `param ${i}[${j}]: ${v} vs ${g2[i]![j]}`)),
  );
  full.dispose();
  halves.dispose();
});

function losses(t: Trainer, n: number): number[] {
  return Array.from({ length: n }, () => t.trainStep().loss);
}

test('same seed, same loss curve; a different data seed changes it', () => {
  manualSeed(5);
  const a = losses(makeTrainer(3), 4);
  manualSeed(5);
  const b = losses(makeTrainer(3), 4);
  assert.deepEqual(a, b);
  manualSeed(5);
  assert.notDeepEqual(losses(makeTrainer(4), 4), a);
});

test('resume: 3 steps + state save/load into a fresh model + 3 steps == 6 uninterrupted steps, exactly', () => {
  for (const precision of ['fp32', 'bf16'] as const) {
    manualSeed(7);
    const straight = losses(makeTrainer(2, { precision }), 6);
    manualSeed(7);
    const first = makeTrainer(2, { precision });
    const head = losses(first, 3);
    const weights = new Map(first.weights().map(([n, p]) => [n, p.to('float32')] as [string, Tensor]));
    const state = JSON.parse(JSON.stringify(first.state().json));
    const buffers = first.state().buffers;
    first.dispose();
    manualSeed(999); // the checkpoint's RNG state must win
    const resumed = makeTrainer(77, { precision }); // different init: the checkpoint's weights must win
    resumed.loadWeights(weights);
    resumed.loadState(state, buffers);
    assert.equal(resumed.step, 3);
    const tail = losses(resumed, 3);
    assert.deepEqual([...head, ...tail], straight, `${precision}: resumed curve differs`);
  }
});

test('resume of truncated BPTT (tiny-lstm): the carried hidden state is saved, so the curve is exact', () => {
  const make = (seed: number) => {
    const model = createModel(getPreset('tiny-lstm'), { seed });
    const task = createTask(
      'tbptt',
      model.config,
      { train: new MemoryTokenFile(ids), val: new MemoryTokenFile(ids.slice(0, 600)) },
      { batchSize: 4, blockSize: 16, seed: 11 },
    );
    return new Trainer(model, task, OPTS);
  };
  manualSeed(7);
  const straight = losses(make(2), 6);
  manualSeed(7);
  const first = make(2);
  const head = losses(first, 3);
  const weights = new Map(first.weights().map(([n, p]) => [n, p.to('float32')] as [string, Tensor]));
  const { json, buffers } = first.state();
  assert.ok(
    Object.keys(buffers).some((k) => k.startsWith('task.state.')),
    'the LSTM state is part of the checkpoint',
  );
  first.dispose();
  const resumed = make(77);
  resumed.loadWeights(weights);
  resumed.loadState(JSON.parse(JSON.stringify(json)), buffers);
  assert.deepEqual([...head, ...losses(resumed, 3)], straight);
});

test('memory stays flat over many steps (bytesInUse identical after warm-up)', () => {
  const t = makeTrainer(5, { steps: 40 });
  const backend = getBackend();
  losses(t, 3);
  const after3 = backend.bytesInUse();
  losses(t, 25);
  assert.equal(backend.bytesInUse(), after3, 'training steps leak tensors');
  t.evaluate();
  assert.equal(backend.bytesInUse(), after3, 'evaluation leaks tensors');
  t.dispose();
});

test('runTraining: evals before steps 0, 3 and at the end; checkpoints every N steps and at the end', async () => {
  const t = makeTrainer(6);
  const evals: number[] = [];
  const ckpts: number[] = [];
  const steps: number[] = [];
  const r = await runTraining(t, {
    onEval: (e) => evals.push(e.step),
    onStep: (s) => steps.push(s.step),
    checkpointInterval: 2,
    checkpoint: (s) => void ckpts.push(s),
  });
  assert.deepEqual(steps, [0, 1, 2, 3, 4, 5]);
  assert.deepEqual(evals, [0, 3, 6]);
  assert.deepEqual(ckpts, [2, 4, 6]);
  assert.equal(r.steps, 6);
  assert.ok(Number.isFinite(r.valLoss) && r.lastEval!.step === 6);
  t.dispose();
});

test('trainer options are validated with clear messages', () => {
  assert.throws(() => makeTrainer(1, { gradAccum: 0 }), /gradAccum must be a positive integer/);
  assert.throws(
    () => makeTrainer(1, { schedule: { kind: 'cosine', lr: 1, minLr: 0, warmup: 10, decaySteps: 5 } }),
    /decaySteps/,
  );
});
