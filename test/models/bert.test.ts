// BERT (all transformers heads) against the PyTorch golden fixtures, with padding.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng, crossEntropy, noGrad, randint, reshape, tensor } from '../../src/index.js';
import { createModel } from '../../src/models/registry.js';
import { getPreset } from '../../src/models/presets.js';
import { fromHFConfig } from '../../src/models/hf-config.js';
import type { EncoderConfig } from '../../src/models/config.js';
import { Bert, bertPretrainingLoss, bertTaskFromHF } from '../../src/models/bert.js';
import { checkParamCount, checkTrainStep, expectClose, ids, loadFixture, maxDiff, onWasm, type Fixture, ROOT } from './seq-golden.js';
import { loadModel } from '../../src/models/load-node.js';

async function loadFixtureModel(name: string): Promise<{ fx: Fixture; model: Bert }> {
  const fx = await loadFixture(name);
  const { task, numLabels } = bertTaskFromHF(fx.config);
  const model = new Bert(fromHFConfig(fx.config) as EncoderConfig, { task: task!, numLabels });
  model.loadStateDict(fx.weights);
  return { fx, model: model.eval() };
}

function inputs(fx: Fixture) {
  const g = fx.golden.inputs;
  return { inputIds: ids(g.input_ids), attentionMask: ids(g.attention_mask), tokenTypeIds: ids(g.token_type_ids) };
}

test('bert (BertForPreTraining): MLM / NSP logits, losses and grads match the golden fixture', async () => {
  const { fx, model } = await loadFixtureModel('bert');
  assert.equal(model.task, 'pretraining');
  const out = model.forward(inputs(fx));
  const o = fx.golden.outputs;
  expectClose('bert prediction_logits', out.logits, o.prediction_logits!, fx.tol.outputs);
  expectClose('bert seq_relationship_logits', out.nspLogits!, o.seq_relationship_logits!, fx.tol.outputs);
  expectClose('bert last_hidden_state', out.lastHiddenState!, o.last_hidden_state!, fx.tol.outputs);
  const { loss, mlmLoss, nspLoss } = bertPretrainingLoss(out, ids(fx.golden.inputs.labels), tensor(fx.golden.inputs.next_sentence_label as number[], { dtype: 'int32' }));
  expectClose('bert mlm_loss', mlmLoss, o.mlm_loss!, fx.tol.loss);
  expectClose('bert nsp_loss', nspLoss, o.nsp_loss!, fx.tol.loss);
  expectClose('bert loss', loss, fx.golden.loss!, fx.tol.loss);
  loss.backward();
  const params = new Map(model.namedParameters());
  for (const [name, g] of Object.entries(fx.golden.grads ?? {})) expectClose(`bert grad ${name}`, params.get(name)!.grad!, g, fx.tol.grads);
});

test('bert heads: sequence classification, token classification and QA match their fixtures', async () => {
  for (const name of ['bert-seqcls', 'bert-tokcls', 'bert-qa']) {
    const { fx, model } = await loadFixtureModel(name);
    const out = noGrad(() => model.forward(inputs(fx)));
    const o = fx.golden.outputs;
    if (name === 'bert-qa') {
      expectClose(`${name} start_logits`, out.startLogits!, o.start_logits!, fx.tol.outputs);
      expectClose(`${name} end_logits`, out.endLogits!, o.end_logits!, fx.tol.outputs);
    } else {
      expectClose(`${name} logits`, out.logits, o.logits!, fx.tol.outputs);
    }
  }
});

test('bert: padded tokens do not change the outputs of real tokens', async () => {
  const { fx, model } = await loadFixtureModel('bert-tokcls');
  noGrad(() => {
    const inp = inputs(fx);
    const a = model.forward(inp).logits;
    const changed = inp.inputIds.toArray() as number[][];
    changed[1]![7] = 5; // row 1 is padding from position 6
    const b = model.forward({ ...inp, inputIds: tensor(changed, { dtype: 'int32' }) }).logits;
    const real = (t: typeof a) => t.slice(0, 1, 2).slice(1, 0, 6);
    assert.ok(maxDiff(real(a), real(b)) < 1e-6);
  });
});

test('createModel(tiny-bert): seeded init, padded forward and a full backward', () => {
  const model = createModel(getPreset('tiny-bert'), { seed: 1 });
  const V = model.config.vocabSize;
  const x = randint(0, V, [2, 6], new Rng(4));
  const mask = ids([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]]);
  const { logits } = model.forward({ inputIds: x, attentionMask: mask });
  assert.deepEqual([...logits.shape], [2, 6, V]);
  checkTrainStep(model, logits, x, (l, t) => crossEntropy(reshape(l, [-1, V]), reshape(t, [-1])));
});

test('bert: loadModel (config.json -> createModel -> sanitize) loads the pretraining fixture; sanitize maps legacy names', async () => {
  const fx = await loadFixture('bert');
  const model = (await loadModel(ROOT + 'bert')) as Bert;
  const out = noGrad(() => model.forward(inputs(fx)));
  expectClose('bert (loadModel) prediction_logits', out.logits, fx.golden.outputs.prediction_logits!, fx.tol.outputs);
  // a BertModel-style, TF-era state dict: no `bert.` prefix, LayerNorm.gamma/beta, buffers, tied decoder copy
  const legacy = new Map<string, ReturnType<typeof tensor>>();
  for (const [n, t] of fx.weights) legacy.set(n.replace(/^bert\./, '').replace(/LayerNorm\.weight$/, 'LayerNorm.gamma').replace(/LayerNorm\.bias$/, 'LayerNorm.beta'), t);
  legacy.set('embeddings.position_ids', ids([[0, 1, 2]]));
  legacy.set('cls.predictions.decoder.weight', fx.weights.get('bert.embeddings.word_embeddings.weight')!);
  legacy.set('cls.predictions.decoder.bias', fx.weights.get('cls.predictions.bias')!);
  const mapped = model.sanitize(legacy);
  assert.deepEqual([...mapped.keys()].sort(), [...fx.weights.keys()].sort());
  // a task without pooler / NSP drops those weights instead of failing
  const mlm = new Bert(fromHFConfig(fx.config) as EncoderConfig, { task: 'masked-lm' });
  mlm.loadStateDict(mlm.sanitize(fx.weights));
});

test('bert on the WebAssembly backend: pretraining logits and grads match the golden fixture', () =>
  onWasm(async () => {
    const { fx, model } = await loadFixtureModel('bert');
    const out = model.forward(inputs(fx));
    expectClose('wasm bert prediction_logits', out.logits, fx.golden.outputs.prediction_logits!, fx.tol.outputs);
    const { loss } = bertPretrainingLoss(out, ids(fx.golden.inputs.labels), tensor(fx.golden.inputs.next_sentence_label as number[], { dtype: 'int32' }));
    loss.backward();
    const params = new Map(model.namedParameters());
    for (const [name, g] of Object.entries(fx.golden.grads ?? {})) expectClose(`wasm bert grad ${name}`, params.get(name)!.grad!, g, fx.tol.grads);
  }));

test('tiny-bert: parameter count equals countParams(config)', () => {
  for (const p of ['tiny-bert']) checkParamCount(p);
});
