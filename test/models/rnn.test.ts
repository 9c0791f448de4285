// lineage-rnn (RNN / LSTM / GRU) against the PyTorch golden fixtures; state carry and O(1) decoding.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng, concat, crossEntropy, getBackend, noGrad, randint, reshape, slice, tidy } from '../../src/index.js';
import { createModel } from '../../src/models/registry.js';
import { getPreset } from '../../src/models/presets.js';
import { loadModel } from '../../src/models/load-node.js';
import type { RnnLM } from '../../src/models/rnn.js';
import { checkParamCount, checkTrainStep, expectClose, ids, loadFixture, maxDiff, onWasm, ROOT } from './seq-golden.js';

async function loadFixtureModel(name: string) {
  const fx = await loadFixture(name);
  const model = (await loadModel(ROOT + fx.name)) as RnnLM; // config.json -> createModel -> sanitize -> strict load
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
    const { fx, model } = await loadFixtureModel(name);
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
    const { fx, model } = await loadFixtureModel(name);
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

for (const preset of ['tiny-rnn', 'tiny-lstm', 'tiny-gru']) {
  test(`createModel(${preset}): seeded init, forward and a full backward`, () => {
    const model = createModel(getPreset(preset), { seed: 1 });
    const x = randint(0, model.config.vocabSize, [2, 6], new Rng(4));
    const { logits } = model.forward({ inputIds: x });
    assert.deepEqual([...logits.shape], [2, 6, model.config.vocabSize]);
    checkTrainStep(model, logits, x, nextTokenLoss);
  });
}

test('truncated BPTT: after cache.detach() the next chunk loss reaches no earlier graph', async () => {
  const { fx, model } = await loadFixtureModel('lineage-rnn-lstm');
  const x = ids(fx.golden.inputs.input_ids);
  const cache = model.newCache(2);
  model.forward({ inputIds: slice(x, 1, 0, 5), cache });
  cache.detach();
  assert.ok(cache.state!.every((s) => !s.h.requiresGrad && s.c !== null && !s.c.requiresGrad));
  const { logits } = model.forward({ inputIds: slice(x, 1, 5), cache });
  nextTokenLoss(logits, slice(x, 1, 5)).backward();
  const emb = new Map(model.namedParameters()).get('embed_tokens.weight')!.grad!.data();
  const V = 64;
  const E = emb.length / V;
  // tokens seen only in the first chunk get no gradient
  const first = new Set((slice(x, 1, 0, 5).toList()));
  const second = new Set(slice(x, 1, 5).toList());
  for (const id of first) if (!second.has(id)) assert.ok(emb.slice(id * E, (id + 1) * E).every((v) => v === 0), `token ${id} got a gradient through the detached state`);
});

test('lineage-rnn: decoding step by step inside tidy() keeps the state alive with flat memory (O(1) state)', async () => {
  const { fx, model } = await loadFixtureModel('lineage-rnn-lstm');
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
  const full = noGrad(() => model.forward({ inputIds: x }).logits);
  const [B, T, V] = full.shape as [number, number, number];
  const f = full.data();
  let d = 0;
  for (let t = 0; t < T; t++) for (let b = 0; b < B; b++) for (let v = 0; v < V; v++) d = Math.max(d, Math.abs(steps[(t * B + b) * V + v]! - f[(b * T + t) * V + v]!));
  assert.ok(d < 1e-5, `tidy-wrapped decoding differs from the full forward by ${d}`);
  cache.dispose();
});

test('lineage-rnn on the WebAssembly backend: logits and grads match the golden fixtures', () =>
  onWasm(async () => {
    for (const cell of ['rnn', 'lstm', 'gru']) {
      const name = `lineage-rnn-${cell}`;
      const { fx, model } = await loadFixtureModel(name);
      const x = ids(fx.golden.inputs.input_ids);
      const { logits } = model.forward({ inputIds: x });
      expectClose(`wasm ${name} logits`, logits, fx.golden.outputs.logits!, fx.tol.outputs);
      nextTokenLoss(logits, x).backward();
      const params = new Map(model.namedParameters());
      for (const [p, g] of Object.entries(fx.golden.grads ?? {})) expectClose(`wasm ${name} grad ${p}`, params.get(p)!.grad!, g, fx.tol.grads);
    }
  }));

test('tiny-rnn, tiny-lstm, tiny-gru: parameter count equals countParams(config)', () => {
  for (const p of ['tiny-rnn', 'tiny-lstm', 'tiny-gru']) checkParamCount(p);
});
