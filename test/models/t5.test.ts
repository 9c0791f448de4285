// T5 v1.0 (relu, tied head) and v1.1 (gated-gelu, untied) against the PyTorch golden fixtures;
// relative-position buckets; cached decoding == full forward.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng, concat, crossEntropy, getBackend, noGrad, randint, reshape, slice, tidy } from '../../src/index.js';
import { createModel } from '../../src/models/registry.js';
import { getPreset } from '../../src/models/presets.js';
import { loadModel } from '../../src/models/load-node.js';
import type { T5 } from '../../src/models/t5.js';
import { relativePositionBucket } from '../../src/nn/t5-bias.js';
import { checkParamCount, checkTrainStep, expectClose, ids, loadFixture, maxDiff, onWasm, type Fixture, ROOT } from './seq-golden.js';

async function loadFixtureModel(name: string): Promise<{ fx: Fixture; model: T5 }> {
  const fx = await loadFixture(name);
  const model = (await loadModel(ROOT + fx.name)) as T5; // config.json -> createModel -> sanitize -> strict load
  return { fx, model: model.eval() };
}

test('t5 buckets: transformers _relative_position_bucket values', () => {
  // offsets -9..9, 8 buckets, max distance 16 (the fixture's setting): 7 distinct buckets, +0 unreachable
  const bi = Array.from({ length: 19 }, (_, i) => relativePositionBucket(i - 9, { buckets: 8, maxDistance: 16, bidirectional: true }));
  assert.deepEqual(bi, [3, 3, 3, 3, 2, 2, 2, 2, 1, 0, 5, 6, 6, 6, 6, 7, 7, 7, 7]);
  // T5 defaults (32 buckets, 128): causal buckets of the past only
  const uni = [0, -1, -5, -8, -16, -20, -64, -127, -500, 3].map((r) => relativePositionBucket(r, { buckets: 32, maxDistance: 128, bidirectional: false }));
  assert.deepEqual(uni, [0, 1, 5, 8, 16, 17, 26, 31, 31, 0]);
});

for (const name of ['t5', 't5-v1_1']) {
  test(`${name}: logits, encoder states, loss and grads match the golden fixture`, async () => {
    const { fx, model } = await loadFixtureModel(name);
    const g = fx.golden.inputs;
    const out = model.forward({ inputIds: ids(g.input_ids), attentionMask: ids(g.attention_mask), decoderInputIds: ids(g.decoder_input_ids) });
    expectClose(`${name} logits`, out.logits, fx.golden.outputs.logits!, fx.tol.outputs);
    expectClose(`${name} encoder_last_hidden_state`, out.encoderLastHiddenState!, fx.golden.outputs.encoder_last_hidden_state!, fx.tol.outputs);
    const V = out.logits.shape[2]!;
    const loss = crossEntropy(reshape(out.logits, [-1, V]), reshape(ids(g.labels), [-1]));
    expectClose(`${name} loss`, loss, fx.golden.loss!, fx.tol.loss);
    loss.backward();
    const params = new Map(model.namedParameters());
    for (const [p, gr] of Object.entries(fx.golden.grads ?? {})) expectClose(`${name} grad ${p}`, params.get(p)!.grad!, gr, fx.tol.grads);
  });

  test(`${name}: cached decoding (self-attention cache + cross-attention K/V) equals the full forward`, async () => {
    const { fx, model } = await loadFixtureModel(name);
    const g = fx.golden.inputs;
    const [src, mask, dec] = [ids(g.input_ids), ids(g.attention_mask), ids(g.decoder_input_ids)];
    noGrad(() => {
      const full = model.forward({ inputIds: src, attentionMask: mask, decoderInputIds: dec }).logits;
      const cache = model.newCache(2);
      const steps = [];
      for (let t = 0; t < dec.shape[1]!; t++) steps.push(model.forward({ inputIds: src, attentionMask: mask, decoderInputIds: slice(dec, 1, t, t + 1), cache }).logits);
      const d = maxDiff(concat(steps, 1), full);
      if (process.env.LINEAGE_REPORT_ERR) console.log(`  ${name} step-vs-full max diff ${d.toExponential(2)}`);
      assert.ok(d < 1e-5, `${name}: incremental vs full max diff ${d}`);
      // prefill 3 tokens, then one at a time
      const c2 = model.newCache(2);
      const a = model.forward({ inputIds: src, attentionMask: mask, decoderInputIds: slice(dec, 1, 0, 3), cache: c2 }).logits;
      const rest = [];
      for (let t = 3; t < dec.shape[1]!; t++) rest.push(model.forward({ inputIds: src, attentionMask: mask, decoderInputIds: slice(dec, 1, t, t + 1), cache: c2 }).logits);
      assert.ok(maxDiff(concat([a, ...rest], 1), full) < 1e-5);
    });
  });
}

test('createModel(tiny-t5): seeded init, forward and a full backward', () => {
  const model = createModel(getPreset('tiny-t5'), { seed: 1 });
  const rng = new Rng(4);
  const V = model.config.vocabSize;
  const [src, dec] = [randint(0, V, [2, 7], rng), randint(0, V, [2, 5], rng)];
  const { logits } = model.forward({ inputIds: src, decoderInputIds: dec });
  assert.deepEqual([...logits.shape], [2, 5, V]);
  checkTrainStep(model, logits, dec, (l, t) => crossEntropy(reshape(l, [-1, V]), reshape(t, [-1])));
});

test('t5: cached decoding with every step inside tidy() (encoder output and K/V survive the scopes)', async () => {
  const { fx, model } = await loadFixtureModel('t5');
  const g = fx.golden.inputs;
  const [src, mask, dec] = [ids(g.input_ids), ids(g.attention_mask), ids(g.decoder_input_ids)];
  const cache = model.newCache(2);
  const steps: number[] = [];
  noGrad(() => {
    for (let t = 0; t < dec.shape[1]!; t++) {
      steps.push(...tidy(() => model.forward({ inputIds: src, attentionMask: mask, decoderInputIds: slice(dec, 1, t, t + 1), cache }).logits.toList()));
    }
  });
  const full = noGrad(() => model.forward({ inputIds: src, attentionMask: mask, decoderInputIds: dec }).logits);
  const [B, T, V] = full.shape as [number, number, number];
  const f = full.data();
  let d = 0;
  for (let t = 0; t < T; t++) for (let b = 0; b < B; b++) for (let v = 0; v < V; v++) d = Math.max(d, Math.abs(steps[(t * B + b) * V + v]! - f[(b * T + t) * V + v]!));
  assert.ok(d < 1e-5, `tidy-wrapped decoding differs from the full forward by ${d}`);
  const before = getBackend().bytesInUse();
  cache.dispose();
  assert.ok(getBackend().bytesInUse() < before, 'dispose() frees the cache');
});

test('t5 and t5-v1_1 on the WebAssembly backend: logits and grads match the golden fixtures', () =>
  onWasm(async () => {
    for (const name of ['t5', 't5-v1_1']) {
      const { fx, model } = await loadFixtureModel(name);
      const g = fx.golden.inputs;
      const out = model.forward({ inputIds: ids(g.input_ids), attentionMask: ids(g.attention_mask), decoderInputIds: ids(g.decoder_input_ids) });
      expectClose(`wasm ${name} logits`, out.logits, fx.golden.outputs.logits!, fx.tol.outputs);
      const V = out.logits.shape[2]!;
      crossEntropy(reshape(out.logits, [-1, V]), reshape(ids(g.labels), [-1])).backward();
      const params = new Map(model.namedParameters());
      for (const [p, gr] of Object.entries(fx.golden.grads ?? {})) expectClose(`wasm ${name} grad ${p}`, params.get(p)!.grad!, gr, fx.tol.grads);
    }
  }));

test('tiny-t5: parameter count equals countParams(config)', () => {
  for (const p of ['tiny-t5']) checkParamCount(p);
});
