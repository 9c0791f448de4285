// Mamba (MambaForCausalLM layout) against the PyTorch golden fixture; recurrent decoding == full forward.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng, concat, crossEntropy, getBackend, noGrad, randint, reshape, slice, tidy, type Tensor } from '../../src/index.js';
import { createModel } from '../../src/models/registry.js';
import { getPreset } from '../../src/models/presets.js';
import { loadModel } from '../../src/models/load-node.js';
import type { MambaLM } from '../../src/models/mamba.js';
import { checkParamCount, checkTrainStep, expectClose, ids, loadFixture, maxDiff, onWasm, ROOT } from './seq-golden.js';

async function loadFixtureModel() {
  const fx = await loadFixture('mamba');
  const model = (await loadModel(ROOT + fx.name)) as MambaLM; // config.json -> createModel -> sanitize -> strict load
  return { fx, model: model.eval() };
}

function nextTokenLoss(logits: Tensor, x: Tensor): Tensor {
  const [B, T, V] = logits.shape as [number, number, number];
  return crossEntropy(reshape(slice(logits, 1, 0, T - 1), [B * (T - 1), V]), reshape(slice(x, 1, 1), [B * (T - 1)]));
}

test('mamba: logits, loss and grads match the golden fixture', async () => {
  const { fx, model } = await loadFixtureModel();
  const x = ids(fx.golden.inputs.input_ids);
  const { logits } = model.forward({ inputIds: x });
  expectClose('mamba logits', logits, fx.golden.outputs.logits!, fx.tol.outputs);
  const loss = nextTokenLoss(logits, x);
  expectClose('mamba loss', loss, fx.golden.loss!, fx.tol.loss);
  loss.backward();
  const params = new Map(model.namedParameters());
  for (const [name, g] of Object.entries(fx.golden.grads ?? {})) expectClose(`mamba grad ${name}`, params.get(name)!.grad!, g, fx.tol.grads);
});

test('mamba: recurrent decoding (one token at a time, and in chunks) equals the full forward', async () => {
  const { fx, model } = await loadFixtureModel();
  const x = ids(fx.golden.inputs.input_ids);
  noGrad(() => {
    const full = model.forward({ inputIds: x }).logits;
    const cache = model.newCache(x.shape[0]!);
    const steps = [];
    for (let t = 0; t < x.shape[1]!; t++) steps.push(model.forward({ inputIds: slice(x, 1, t, t + 1), cache }).logits);
    const d = maxDiff(concat(steps, 1), full);
    if (process.env.LINEAGE_REPORT_ERR) console.log(`  mamba step-vs-full max diff ${d.toExponential(2)}`);
    assert.ok(d < 1e-5, `mamba: incremental vs full max diff ${d}`);
    assert.equal(cache.length, x.shape[1]);
    // state is O(1): conv window [B, I, K-1] and ssm [B, I, N] whatever the length
    assert.deepEqual([...cache.layers[0]!.conv.shape], [2, 64, 3]);
    assert.deepEqual([...cache.layers[0]!.ssm.shape], [2, 64, 8]);
    const c2 = model.newCache(x.shape[0]!);
    const a = model.forward({ inputIds: slice(x, 1, 0, 6), cache: c2 }).logits; // prefill
    const b = model.forward({ inputIds: slice(x, 1, 6), cache: c2 }).logits;
    assert.ok(maxDiff(concat([a, b], 1), full) < 1e-5);
  });
});

test('createModel(tiny-mamba): seeded init, forward and a full backward', () => {
  const model = createModel(getPreset('tiny-mamba'), { seed: 1 });
  const x = randint(0, model.config.vocabSize, [2, 6], new Rng(4));
  const { logits } = model.forward({ inputIds: x });
  assert.deepEqual([...logits.shape], [2, 6, model.config.vocabSize]);
  checkTrainStep(model, logits, x, nextTokenLoss);
});

test('mamba: decoding step by step inside tidy() keeps the cache alive with flat memory (O(1) state)', async () => {
  const { fx, model } = await loadFixtureModel();
  const x = ids(fx.golden.inputs.input_ids);
  const cache = model.newCache(2);
  const steps: number[] = [];
  const mem: number[] = [];
  noGrad(() => {
    for (let t = 0; t < x.shape[1]!; t++) {
      steps.push(...tidy(() => model.forward({ inputIds: slice(x, 1, t, t + 1), cache }).logits.toList()));
      mem.push(getBackend().bytesInUse());
    }
  });
  assert.equal(mem[9], mem[3], `memory grew while decoding: ${mem.join(', ')}`);
  const full = noGrad(() => model.forward({ inputIds: x }).logits); // (B, T, V), steps are (T, B, V)
  const [B, T, V] = full.shape as [number, number, number];
  const f = full.data();
  let d = 0;
  for (let t = 0; t < T; t++) for (let b = 0; b < B; b++) for (let v = 0; v < V; v++) d = Math.max(d, Math.abs(steps[(t * B + b) * V + v]! - f[(b * T + t) * V + v]!));
  assert.ok(d < 1e-5, `tidy-wrapped decoding differs from the full forward by ${d}`);
  cache.dispose();
});

test('mamba on the WebAssembly backend: logits and grads match the golden fixture', () =>
  onWasm(async () => {
    const { fx, model } = await loadFixtureModel();
    const x = ids(fx.golden.inputs.input_ids);
    const { logits } = model.forward({ inputIds: x });
    expectClose('wasm mamba logits', logits, fx.golden.outputs.logits!, fx.tol.outputs);
    nextTokenLoss(logits, x).backward();
    const params = new Map(model.namedParameters());
    for (const [name, g] of Object.entries(fx.golden.grads ?? {})) expectClose(`wasm mamba grad ${name}`, params.get(name)!.grad!, g, fx.tol.grads);
  }));

test('tiny-mamba: parameter count equals countParams(config)', () => {
  for (const p of ['tiny-mamba']) checkParamCount(p);
});
