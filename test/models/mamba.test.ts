// Mamba (MambaForCausalLM layout) against the PyTorch golden fixture; recurrent decoding == full forward.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { concat, crossEntropy, noGrad, reshape, slice, type Tensor } from '../../src/index.js';
import { fromHFConfig } from '../../src/models/hf-config.js';
import type { MambaConfig } from '../../src/models/config.js';
import { MambaLM } from '../../src/models/mamba.js';
import { expectClose, ids, loadFixture, maxDiff } from './seq-golden.js';

async function loadModel() {
  const fx = await loadFixture('mamba');
  const model = new MambaLM(fromHFConfig(fx.config) as MambaConfig);
  model.loadStateDict(fx.weights);
  return { fx, model: model.eval() };
}

function nextTokenLoss(logits: Tensor, x: Tensor): Tensor {
  const [B, T, V] = logits.shape as [number, number, number];
  return crossEntropy(reshape(slice(logits, 1, 0, T - 1), [B * (T - 1), V]), reshape(slice(x, 1, 1), [B * (T - 1)]));
}

test('mamba: logits, loss and grads match the golden fixture', async () => {
  const { fx, model } = await loadModel();
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
  const { fx, model } = await loadModel();
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
