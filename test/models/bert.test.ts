// BERT (all transformers heads) against the PyTorch golden fixtures, with padding.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { Rng, crossEntropy, noGrad, randint, reshape, tensor } from '../../src/index.js';
import { createModel } from '../../src/models/registry.js';
import { getPreset } from '../../src/models/presets.js';
import { fromHFConfig } from '../../src/models/hf-config.js';
import type { EncoderConfig } from '../../src/models/config.js';
import { countParams } from '../../src/models/inspect.js';
import { Bert, bertPretrainingLoss } from '../../src/models/bert.js';
import { checkParamCount, checkTrainStep, expectClose, ids, loadFixture, maxDiff, onWasm, type Fixture, ROOT } from './seq-golden.js';
import { loadModel, saveModel } from '../../src/models/load-node.js';

/** the head comes from config.json alone (architectures, id2label) */
async function loadFixtureModel(name: string): Promise<{ fx: Fixture; model: Bert }> {
  const fx = await loadFixture(name);
  const model = new Bert(fromHFConfig(fx.config) as EncoderConfig);
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

const TASK_FIXTURES = [
  { name: 'bert-seqcls', task: 'sequence-classification', head: { kind: 'sequence-classification', numLabels: 3, labels: null, problemType: null, dropout: null } },
  { name: 'bert-tokcls', task: 'token-classification', head: { kind: 'token-classification', numLabels: 5, labels: null, dropout: null } },
  { name: 'bert-qa', task: 'question-answering', head: { kind: 'question-answering' } },
] as const;

test('bert heads: loadModel(dir) builds sequence / token classification and QA from config.json and matches the fixtures', async () => {
  for (const { name, task, head } of TASK_FIXTURES) {
    const fx = await loadFixture(name);
    const model = (await loadModel(ROOT + name)) as Bert; // strict: every stored tensor used, none missing
    assert.equal(model.task, task, name);
    assert.ok(model.config.arch === 'encoder');
    assert.deepEqual(model.config.head, head, name);
    assert.equal(model.numParameters(), countParams(model.config).params, `${name}: built model vs countParams`);
    model.eval();
    const out = noGrad(() => model.forward(inputs(fx)));
    const o = fx.golden.outputs;
    if (name === 'bert-qa') {
      expectClose(`${name} start_logits`, out.startLogits!, o.start_logits!, fx.tol.outputs);
      expectClose(`${name} end_logits`, out.endLogits!, o.end_logits!, fx.tol.outputs);
      assert.equal(model.bert.pooler, null);
    } else {
      expectClose(`${name} logits`, out.logits, o.logits!, fx.tol.outputs);
      assert.equal(model.bert.pooler !== null, name === 'bert-seqcls'); // BertForTokenClassification has no pooler
    }
  }
});

test('bert heads: saveModel -> loadModel keeps the head, the labels and the weights', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lineage-bert-'));
  try {
    const cfg = getPreset('tiny-bert-tokcls') as EncoderConfig;
    cfg.head = { kind: 'token-classification', numLabels: 3, labels: ['O', 'B-PER', 'I-PER'], dropout: 0.2 };
    const model = createModel(cfg, { seed: 3 }).eval();
    await saveModel(model, dir);
    const json = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(json.architectures, ['BertForTokenClassification']);
    assert.deepEqual(json.id2label, { 0: 'O', 1: 'B-PER', 2: 'I-PER' });
    assert.deepEqual(json.label2id, { O: 0, 'B-PER': 1, 'I-PER': 2 });
    assert.equal(json.classifier_dropout, 0.2);
    const back = (await loadModel(dir)).eval();
    assert.deepEqual(back.config, cfg);
    const x = { inputIds: ids([[5, 6, 7, 8]]) };
    assert.equal(maxDiff(noGrad(() => model.forward(x).logits), noGrad(() => back.forward(x).logits)), 0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('tiny BERT task presets: forward shapes and a full backward through each head', () => {
  const x = randint(0, 256, [2, 5], new Rng(7));
  const mask = ids([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]);
  const seq = createModel(getPreset('tiny-bert-seqcls'), { seed: 1 });
  const s = seq.forward({ inputIds: x, attentionMask: mask });
  assert.deepEqual([...s.logits.shape], [2, 3]);
  assert.deepEqual([...s.poolerOutput!.shape], [2, 64]);
  checkTrainStep(seq, s.logits, ids([2, 0]), (l, t) => crossEntropy(l, t));

  const tok = createModel(getPreset('tiny-bert-tokcls'), { seed: 1 });
  const t = tok.forward({ inputIds: x, attentionMask: mask });
  assert.deepEqual([...t.logits.shape], [2, 5, 5]);
  assert.equal(t.poolerOutput, undefined);
  checkTrainStep(tok, t.logits, ids([[0, 1, 2, 3, 4], [4, 3, 2, 1, 0]]), (l, y) => crossEntropy(reshape(l, [-1, 5]), reshape(y, [-1])));

  const qa = createModel(getPreset('tiny-bert-qa'), { seed: 1 });
  const q = qa.forward({ inputIds: x, attentionMask: mask });
  assert.deepEqual([...q.logits.shape], [2, 5, 2]);
  assert.deepEqual([...q.startLogits!.shape], [2, 5]);
  checkTrainStep(qa, q.startLogits!, ids([1, 2]), (l, y) => crossEntropy(l, y));
});

// `lineage init` runs in a child process (it prints, and the test runner reports on stdout)
const INIT = new URL('../../src/cli/commands/init.js', import.meta.url).href;

test('lineage init --preset tiny-bert-seqcls --set num_labels=4 writes a directory loadModel reads back', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lineage-bert-init-'));
  try {
    const argv = ['--preset', 'tiny-bert-seqcls', '--set', 'num_labels=4', '--set', 'problem_type=multi_label_classification', '--out', dir];
    const script = `const { initCommand } = await import(${JSON.stringify(INIT)}); await initCommand(${JSON.stringify(argv)});`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const json = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(json.problem_type, 'multi_label_classification');
    assert.deepEqual(Object.values(json.id2label as object), ['LABEL_0', 'LABEL_1', 'LABEL_2', 'LABEL_3']);
    const model = await loadModel(dir);
    assert.deepEqual(model.config.arch === 'encoder' && model.config.head,
      { kind: 'sequence-classification', numLabels: 4, labels: null, problemType: 'multi_label_classification', dropout: null });
    assert.deepEqual([...model.forward({ inputIds: ids([[1, 2, 3]]) }).logits.shape], [1, 4]);
  } finally {
    await rm(dir, { recursive: true, force: true });
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
  // a head without pooler / NSP drops those weights instead of failing
  const mlm = new Bert({ ...(fromHFConfig(fx.config) as EncoderConfig), head: 'masked-lm' });
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

test('tiny-bert and its task heads: parameter count equals countParams(config)', () => {
  for (const p of ['tiny-bert', 'tiny-bert-seqcls', 'tiny-bert-tokcls', 'tiny-bert-qa']) checkParamCount(p);
});
