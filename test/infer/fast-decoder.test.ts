// The tensor-free decode path (src/infer/fast-decoder.ts) against the reference path (`model.forward`):
// the same logits for a prefill and decode steps (generate's single-sequence cache), the same greedy tokens,
// the same logits for a ragged engine batch, on the reference backend and, where the addon is built, the
// native one. Weights are perturbed so biases and norm weights are not their zero / one initialisation.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createNativeBackend } from '../../src/backend/native/backend.js';
import { loadNativeAddon } from '../../src/backend/native/addon-node.js';
import { tensor } from '../../src/ops/index.js';
import { getBackend, noGrad, setBackend } from '../../src/tensor/engine.js';
import { Rng } from '../../src/tensor/random.js';
import { createModel } from '../../src/models/registry.js';
import type { DecoderConfig, DecoderFamily } from '../../src/models/config.js';
import type { LanguageModel } from '../../src/models/model.js';
import { FastDecoder } from '../../src/infer/fast-decoder.js';
import { FastSequence } from '../../src/infer/fast-generate.js';
import { generate } from '../../src/infer/generate.js';
import { KvPool, layerSpecs } from '../../src/infer/engine/kv-pool.js';
import { ModelRunner, type RunItem } from '../../src/infer/engine/runner.js';
import { tinyConfig } from '../models/decoder-helpers.js';
import { getPreset } from '../../src/models/presets.js';
import { QuantLinear, quantizeModel } from '../../src/nn/quant.js';
import { LoraLinear } from '../../src/nn/lora.js';
import { applyLora, loraLayers, mergeLora } from '../../src/align/lora.js';

const FAMILIES: DecoderFamily[] = ['llama', 'mistral', 'qwen2', 'gpt2', 'phi3', 'gpt3'];

function near(got: Float32Array, want: Float32Array, tol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++)
    assert.ok(
      Math.abs(want[i]! - got[i]!) <= tol * (1 + Math.abs(want[i]!)),
      `${what} at ${i}: ${got[i]} vs ${want[i]}`,
    );
}

/** a tiny model with every parameter moved off its initialisation (biases nonzero, norm weights not 1) */
function tinyModel(family: DecoderFamily, seed: number): LanguageModel {
  const cfg = tinyConfig(family, (c) => {
    const a = c.decoder.block.attention;
    if (a.kind !== 'mla' && (family === 'qwen2' || family === 'gpt2')) a.qkvBias = true;
  });
  const model = createModel(cfg, { seed }).eval();
  const rng = new Rng(seed + 100);
  for (const [, p] of model.namedParameters()) {
    const host = getBackend().view(p.storage.buf) as Float32Array;
    for (let i = p.offset; i < p.offset + p.size; i++) host[i] = host[i]! + 0.05 * rng.normal();
  }
  return model;
}

/** the reference logits of the last position of `ids` (a full forward, no cache) */
function lastLogits(model: LanguageModel, ids: number[]): Float32Array {
  const V = model.config.vocabSize;
  const all = noGrad(
    () =>
      model
        .forward({ inputIds: tensor(Int32Array.from(ids), { shape: [1, ids.length], dtype: 'int32' }) })
        .logits.data() as Float32Array,
  );
  return all.slice((ids.length - 1) * V);
}

function checks(label: string): void {
  for (const family of FAMILIES) {
    test(`${label}: ${family} prefill + decode steps give the reference logits`, () => {
      const model = tinyModel(family, 3);
      assert.ok(FastDecoder.create(model), `fast path for ${family}: ${FastDecoder.why}`);
      const rng = new Rng(7);
      const V = model.config.vocabSize;
      // a prefill of 18 tokens (16 and more take the backend's strided copy back to token-major rows)
      const ids = Array.from({ length: 21 }, () => rng.int(V));
      const seq = FastSequence.create(model, 32)!;
      try {
        near(seq.step(ids.slice(0, 18)), lastLogits(model, ids.slice(0, 18)), 2e-4, `${family} prefill`);
        for (let t = 18; t < ids.length; t++)
          near(seq.step([ids[t]!]), lastLogits(model, ids.slice(0, t + 1)), 2e-4, `${family} step ${t}`);
        assert.equal(seq.size, ids.length);
        assert.throws(() => seq.step(Array(12).fill(1)), /exceed the capacity 32/);
        assert.throws(() => seq.step([V]), /outside the vocabulary/);
      } finally {
        seq.dispose();
      }
      const prompt = ids.slice(0, 5);
      const greedy = (fast: boolean) => generate(model, prompt, { maxTokens: 10, temperature: 0, fast });
      assert.deepEqual(greedy(true), greedy(false), `${family}: greedy tokens`);
      const inUse = getBackend().bytesInUse();
      greedy(true);
      assert.equal(getBackend().bytesInUse(), inUse, `${family}: generate frees its fast cache and scratch`);
      model.dispose();
    });
  }

  test(`${label}: a ragged engine batch through the fast runner equals the reference runner`, () => {
    for (const family of ['llama', 'gpt2'] as DecoderFamily[]) {
      const model = tinyModel(family, 5);
      const cfg = model.config as DecoderConfig;
      const runners = [true, false].map(
        (fast) => new ModelRunner(model, new KvPool(layerSpecs(cfg), 4, 1 << 20), { fast }),
      );
      assert.ok(runners[0]!.fast && !runners[1]!.fast);
      const rng = new Rng(11);
      const ids = [
        Array.from({ length: 11 }, () => rng.int(cfg.vocabSize)),
        Array.from({ length: 7 }, () => rng.int(cfg.vocabSize)),
      ];
      const blocks = [
        [9, 2, 5],
        [0, 7],
      ];
      const steps: RunItem[][] = [
        // prefill chunks (no logits, then the chunk's last), then one decode token each
        ids.map((s, i) => ({ ids: s.slice(0, 4), start: 0, blocks: blocks[i]!, logits: 0 })),
        ids.map((s, i) => ({ ids: s.slice(4, -1), start: 4, blocks: blocks[i]!, logits: 2 })),
        ids.map((s, i) => ({ ids: s.slice(-1), start: s.length - 1, blocks: blocks[i]!, logits: 1 })),
      ];
      for (const [k, items] of steps.entries()) {
        const [got, want] = runners.map((r) => r.run(items));
        near(got!, want!, 2e-4, `${family} step ${k}`);
      }
      model.dispose();
    }
  });
}

/** LoRA adapters on the projections named, B made non-zero (a fresh adapter's B is zero: no effect to test) */
function withLora(model: LanguageModel, targets: string[]): void {
  applyLora(model, { r: 4, alpha: 8, dropout: 0, targets });
  model.eval();
  const rng = new Rng(21);
  for (const [, l] of loraLayers(model)) {
    const w = l.loraB.namedParameters()[0]![1];
    const host = getBackend().view(w.storage.buf) as Float32Array;
    for (let i = w.offset; i < w.offset + w.size; i++) host[i] = 0.3 * rng.normal();
  }
}

/**
 * Quantized projections (QuantLinear: q8_0 / q4_0 blocks, run by quantMatmul) and LoRA adapters (unmerged, on a
 * float or a quantized base, or merged) on the fast path: the reference path's logits at the same step sizes
 * (the quantized kernel takes its int8-activation path for M <= 4 and the dequantizing GEMM above: the fast path
 * must choose alike), in a ragged engine batch and in generate's greedy tokens; GPT-2's Conv1D layers included
 */
function variantChecks(label: string): void {
  const variants: [name: string, preset: string, prepare: (m: LanguageModel) => void][] = [
    ['q8_0', 'tiny-llama', (m) => quantizeModel(m, { bits: 8 })],
    ['q4_0', 'tiny-llama', (m) => quantizeModel(m, { bits: 4 })],
    ['q8_0', 'tiny-gpt2', (m) => quantizeModel(m, { bits: 8 })],
    ['q4_0', 'tiny-gpt2', (m) => quantizeModel(m, { bits: 4 })],
    ['LoRA', 'tiny-llama', (m) => withLora(m, ['q_proj', 'v_proj', 'down_proj'])],
    ['LoRA on Conv1D', 'tiny-gpt2', (m) => withLora(m, ['c_attn', 'c_fc'])],
    [
      'QLoRA (q4_0 base)',
      'tiny-llama',
      (m) => {
        quantizeModel(m, { bits: 4 });
        withLora(m, ['q_proj', 'o_proj', 'up_proj']);
      },
    ],
    [
      'merged LoRA',
      'tiny-llama',
      (m) => {
        withLora(m, ['k_proj', 'gate_proj']);
        mergeLora(m);
      },
    ],
  ];
  for (const [variant, preset, prepare] of variants)
    test(`${label}: ${preset} with ${variant} runs the fast path and gives the reference logits`, () => {
      const model = createModel(getPreset(preset), { seed: 2 }).eval();
      prepare(model);
      assert.ok(
        model.namedModules().some(([, m]) => m instanceof QuantLinear || m instanceof LoraLinear),
        'the model has quantized or adapted layers',
      );
      assert.ok(FastDecoder.create(model), `fast path: ${FastDecoder.why}`);
      const cfg = model.config as DecoderConfig;
      const runners = [true, false].map(
        (fast) => new ModelRunner(model, new KvPool(layerSpecs(cfg), 4, 1 << 20), { fast }),
      );
      assert.ok(runners[0]!.fast && !runners[1]!.fast);
      const rng = new Rng(13);
      const ids = [
        Array.from({ length: 12 }, () => rng.int(cfg.vocabSize)),
        Array.from({ length: 8 }, () => rng.int(cfg.vocabSize)),
      ];
      const blocks = [
        [9, 2, 5],
        [0, 7],
      ];
      const steps: RunItem[][] = [
        ids.map((s, i) => ({ ids: s.slice(0, 6), start: 0, blocks: blocks[i]!, logits: 1 })),
        ids.map((s, i) => ({ ids: s.slice(6, -1), start: 6, blocks: blocks[i]!, logits: 1 })),
        ids.map((s, i) => ({ ids: s.slice(-1), start: s.length - 1, blocks: blocks[i]!, logits: 1 })),
      ];
      for (const [k, items] of steps.entries()) {
        const [got, want] = runners.map((r) => r.run(items));
        near(got!, want!, 2e-4, `${variant} ${preset} step ${k}`);
      }
      const greedy = (fast: boolean) => generate(model, ids[0]!.slice(0, 5), { maxTokens: 8, temperature: 0, fast });
      assert.deepEqual(greedy(true), greedy(false), 'greedy tokens');
      model.dispose();
    });
}

describe('fast decoder on the reference backend', () => {
  variantChecks('reference');
  checks('reference');

  test('the engine runner rebuilds its fast path when the weights are replaced (loadStateDict)', () => {
    const model = tinyModel('llama', 8);
    const other = tinyModel('llama', 9);
    const cfg = model.config as DecoderConfig;
    const runners = [true, false].map(
      (fast) => new ModelRunner(model, new KvPool(layerSpecs(cfg), 4, 1 << 20), { fast }),
    );
    const items = (k: number): RunItem[] => [
      { ids: [1, 2, 3, 4].map((i) => (i * 7 + k) % cfg.vocabSize), start: 0, blocks: [k], logits: 1 },
    ];
    const before = runners[0]!.run(items(0));
    near(before, runners[1]!.run(items(0)), 2e-4, 'before');
    model.loadStateDict(new Map(other.namedParameters()));
    const [got, want] = runners.map((r) => r.run(items(1)));
    near(got!, want!, 2e-4, 'after loadStateDict');
    assert.notDeepEqual(Array.from(want!), Array.from(before), 'the new weights change the logits');
    model.dispose();
    other.dispose();
  });

  test('declines what it does not cover exactly, with the reason', () => {
    const cases: [DecoderFamily, RegExp][] = [
      ['mixtral', /FFN "moe"/],
      ['deepseek_v2', /MLA/],
      ['gemma2', /residual "sandwich"/],
      ['gemma', /unit-offset/],
    ];
    for (const [family, why] of cases) {
      const model = createModel(tinyConfig(family), { seed: 1 }).eval();
      assert.equal(FastDecoder.create(model), null, family);
      assert.match(FastDecoder.why, why, family);
      model.dispose();
    }
    const training = createModel(tinyConfig('llama'), { seed: 1 });
    assert.equal(FastDecoder.create(training), null);
    assert.match(FastDecoder.why, /training/);
    training.dispose();
  });
});

const { addon, error } = loadNativeAddon();
describe('fast decoder on the native backend', { skip: addon ? false : error }, () => {
  const prev = getBackend();
  test('setup', () => setBackend(createNativeBackend(addon!, { threads: 2, forceParallel: true })));
  checks('native');
  variantChecks('native');
  test('teardown', () => setBackend(prev));
});
