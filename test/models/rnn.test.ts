// lineage-rnn (RNN / LSTM / GRU) against the PyTorch golden fixtures; state carry and O(1) decoding.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { concat, crossEntropy, noGrad, reshape, slice } from '../../src/index.js';
import { fromHFConfig } from '../../src/models/hf-config.js';
import type { RnnConfig } from '../../src/models/config.js';
import { RnnLM } from '../../src/models/rnn.js';
import { expectClose, ids, loadFixture, maxDiff } from './seq-golden.js';

async function loadModel(name: string) {
  const fx = await loadFixture(name);
  const model = new RnnLM(fromHFConfig(fx.config) as RnnConfig);
  model.loadStateDict(fx.weights);
  return { fx, model: model.eval() };
}

/** transformers ForCausalLMLoss: logits[:, :-1] against ids[:, 1:] */
function nextTokenLoss(logits: ReturnType<typeof slice>, x: ReturnType<typeof slice>) {
  const [B, T, V] = logits.shape as [number, number, number];
  const l = reshape(slice(logits, 1, 0, T - 1), [B * (T - 1), V]); // (B*(T-1), V)
  return crossEntropy(l, reshape(slice(x, 1, 1), [B * (T - 1)]));
}

for (const cell of ['rnn', 'lstm', 'gru'] as const) {
  const name = `lineage-rnn-${cell}`;

  test(`${name}: logits, loss and grads match the golden fixture`, async () => {
    const { fx, model } = await loadModel(name);
    const x = ids(fx.golden.inputs.input_ids);
    const { logits } = model.forward({ inputIds: x });
    expectClose(`${name} logits`, logits, fx.golden.outputs.logits!, fx.tol.outputs);
    const loss = nextTokenLoss(logits, x);
    expectClose(`${name} loss`, loss, fx.golden.loss!, fx.tol.loss);
    loss.backward();
    const params = new Map(model.namedParameters());
    for (const [pname, g] of Object.entries(fx.golden.grads ?? {})) expectClose(`${name} grad ${pname}`, params.get(pname)!.grad!, g, fx.tol.grads);
  });

  test(`${name}: token-by-token decoding with carried state equals the full forward`, async () => {
    const { fx, model } = await loadModel(name);
    const x = ids(fx.golden.inputs.input_ids);
    noGrad(() => {
      const full = model.forward({ inputIds: x }).logits;
      const cache = model.newCache(x.shape[0]!);
      const steps = [];
      for (let t = 0; t < x.shape[1]!; t++) steps.push(model.forward({ inputIds: slice(x, 1, t, t + 1), cache }).logits);
      assert.equal(cache.length, x.shape[1]);
      const d = maxDiff(concat(steps, 1), full);
      assert.ok(d < 1e-5, `${name}: incremental vs full max diff ${d}`);
      // chunks of 4 + 6 (truncated BPTT carries state the same way)
      const chunks = model.newCache(x.shape[0]!);
      const a = model.forward({ inputIds: slice(x, 1, 0, 4), cache: chunks });
      chunks.detach();
      const b = model.forward({ inputIds: slice(x, 1, 4), cache: chunks });
      assert.ok(maxDiff(concat([a.logits, b.logits], 1), full) < 1e-5);
    });
  });
}
