// Sampling rules and KV-cached generation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/tensor/random.js';
import { createModel } from '../../src/models/registry.js';
import { getPreset } from '../../src/models/presets.js';
import { argmax, candidates, checkSampling, sampleToken } from '../../src/infer/sampling.js';
import { contextLimit, generate } from '../../src/infer/generate.js';

const ROW = [1.0, 3.0, 2.0, 0.5, 2.9];

test('greedy at temperature 0; top-k 1 and a tiny top-p are greedy at any temperature', () => {
  const rng = new Rng(1);
  assert.equal(argmax(ROW), 1);
  assert.equal(sampleToken(ROW, { temperature: 0 }, rng), 1);
  for (let i = 0; i < 20; i++) {
    assert.equal(sampleToken(ROW, { temperature: 5, topK: 1 }, rng), 1);
    assert.equal(sampleToken(ROW, { temperature: 5, topP: 1e-6 }, rng), 1);
  }
});

test('top-k keeps the k best, top-p the smallest set reaching p; probabilities sum to 1', () => {
  assert.deepEqual(candidates(ROW, { topK: 3 }).ids, [1, 4, 2]);
  const all = candidates(ROW, {});
  assert.ok(Math.abs(all.probs.reduce((a, b) => a + b) - 1) < 1e-12);
  // softmax(ROW): p1 ≈ .402, p4 ≈ .363, p2 ≈ .148 ... → 0.3 keeps one, 0.75 two, 0.8 three
  assert.deepEqual(candidates(ROW, { topP: 0.3 }).ids, [1]);
  assert.deepEqual(candidates(ROW, { topP: 0.75 }).ids, [1, 4]);
  assert.deepEqual(candidates(ROW, { topP: 0.8 }).ids, [1, 4, 2]);
  assert.throws(() => checkSampling({ topP: 0 }), /topP must be in \(0, 1\]/);
  assert.throws(() => checkSampling({ temperature: -1 }), /temperature must be >= 0/);
});

test('sampling frequencies follow softmax(logits / T)', () => {
  const rng = new Rng(42);
  const n = 20000;
  const counts = new Array(ROW.length).fill(0);
  for (let i = 0; i < n; i++) counts[sampleToken(ROW, { temperature: 2 }, rng)]++;
  const w = ROW.map((x) => Math.exp(x / 2));
  const z = w.reduce((a, b) => a + b);
  counts.forEach((c, i) => assert.ok(Math.abs(c / n - w[i]! / z) < 0.015, `token ${i}: ${c / n} vs ${w[i]! / z}`));
});

test('KV-cached generation equals re-running the whole sequence; same seed, same sample', () => {
  const model = createModel(getPreset('tiny-gpt2'), { seed: 3 });
  const prompt = [...new TextEncoder().encode('ROMEO:')];
  const greedy = (useCache: boolean) => generate(model, prompt, { maxTokens: 24, temperature: 0, useCache });
  assert.deepEqual(greedy(true), greedy(false));
  const sample = (useCache: boolean, seed: number) =>
    generate(model, prompt, { maxTokens: 24, temperature: 1, topK: 20, seed, useCache });
  assert.deepEqual(sample(true, 5), sample(false, 5));
  assert.deepEqual(sample(true, 5), sample(true, 5));
  assert.notDeepEqual(sample(true, 5), sample(true, 6));
  assert.equal(model.training, true, 'generate restores training mode');
});

test('generation past a learned-position context slides the window instead of failing', () => {
  const model = createModel(getPreset('tiny-gpt2'), { seed: 3 });
  assert.equal(contextLimit(model), 128);
  const out = generate(model, new Array(120).fill(65), { maxTokens: 30, temperature: 0 });
  assert.equal(out.length, 30);
  const stop = generate(model, [65], {
    maxTokens: 50,
    temperature: 0,
    stopIds: [generate(model, [65], { maxTokens: 1, temperature: 0 })[0]!],
  });
  assert.equal(stop.length, 1, 'stops after a stop id');
  assert.throws(() => generate(model, [], { maxTokens: 1 }), /prompt is empty/);
});
