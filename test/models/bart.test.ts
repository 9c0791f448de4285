// BART and Marian (Vaswani 2017) against the PyTorch golden fixtures; cached decoding == full forward.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng, concat, crossEntropy, noGrad, randint, reshape, slice } from '../../src/index.js';
import { createModel } from '../../src/models/registry.js';
import { getPreset } from '../../src/models/presets.js';
import { loadModel } from '../../src/models/load-node.js';
import type { Bart } from '../../src/models/bart.js';
import { checkParamCount, checkTrainStep, expectClose, ids, loadFixture, maxDiff, onWasm, type Fixture, ROOT } from './seq-golden.js';

async function loadFixtureModel(name: string): Promise<{ fx: Fixture; model: Bart }> {
  const fx = await loadFixture(name);
  const model = (await loadModel(ROOT + fx.name)) as Bart; // config.json -> createModel -> sanitize -> strict load
  return { fx, model: model.eval() };
}

for (const name of ['bart', 'marian']) {
  test(`${name}: logits and encoder states match the golden fixture`, async () => {
    const { fx, model } = await loadFixtureModel(name);
    const g = fx.golden.inputs;
    const out = noGrad(() => model.forward({ inputIds: ids(g.input_ids), attentionMask: ids(g.attention_mask), decoderInputIds: ids(g.decoder_input_ids) }));
    expectClose(`${name} logits`, out.logits, fx.golden.outputs.logits!, fx.tol.outputs);
    expectClose(`${name} encoder_last_hidden_state`, out.encoderLastHiddenState!, fx.golden.outputs.encoder_last_hidden_state!, fx.tol.outputs);
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
      assert.equal(cache.length, dec.shape[1]);
      cache.dispose();
      // a preallocated self-attention cache (no per-step copies of the past) gives the same logits
      const pre = model.newCache(2, { maxLength: dec.shape[1]! });
      const psteps = [];
      for (let t = 0; t < dec.shape[1]!; t++) psteps.push(model.forward({ inputIds: src, attentionMask: mask, decoderInputIds: slice(dec, 1, t, t + 1), cache: pre }).logits);
      assert.ok(maxDiff(concat(psteps, 1), full) < 1e-5);
      pre.dispose();
    });
  });
}

for (const preset of ['tiny-bart', 'tiny-transformer']) {
  test(`createModel(${preset}): seeded init, padded forward and a full backward`, () => {
    const model = createModel(getPreset(preset), { seed: 1 });
    const rng = new Rng(4);
    const V = model.config.vocabSize;
    const [src, dec] = [randint(0, V, [2, 7], rng), randint(0, V, [2, 5], rng)];
    const mask = ids([[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0]]);
    const { logits } = model.forward({ inputIds: src, attentionMask: mask, decoderInputIds: dec });
    assert.deepEqual([...logits.shape], [2, 5, V]);
    checkTrainStep(model, logits, dec, (l, t) => crossEntropy(reshape(l, [-1, V]), reshape(t, [-1])));
  });
}

test('bart and marian on the WebAssembly backend: logits match the golden fixtures', () =>
  onWasm(async () => {
    for (const name of ['bart', 'marian']) {
      const { fx, model } = await loadFixtureModel(name);
      const g = fx.golden.inputs;
      const out = noGrad(() => model.forward({ inputIds: ids(g.input_ids), attentionMask: ids(g.attention_mask), decoderInputIds: ids(g.decoder_input_ids) }));
      expectClose(`wasm ${name} logits`, out.logits, fx.golden.outputs.logits!, fx.tol.outputs);
    }
  }));

test('tiny-bart, tiny-transformer: parameter count equals countParams(config)', () => {
  for (const p of ['tiny-bart', 'tiny-transformer']) checkParamCount(p);
});
