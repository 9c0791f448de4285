import { test } from 'node:test';
import assert from 'node:assert/strict';

import { type FfnConfig, type ModelConfig, ConfigError, configProblems, ffnGroups, layerFfn, layerWindow, validateConfig, windowGroups } from '../../src/models/config.js';
import { HF_MODEL_TYPES, applyOverrides, fromHFConfig, hfFieldNames, toHFConfig } from '../../src/models/hf-config.js';
import { getPreset, getPresetInfo, presetNames } from '../../src/models/presets.js';

const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;

test('every preset validates, is plain JSON, and round-trips through config.json', () => {
  for (const name of presetNames()) {
    const cfg = getPreset(name);
    assert.deepEqual(clone(cfg), cfg, `${name}: not plain JSON`);
    const hf = toHFConfig(cfg);
    assert.deepEqual(fromHFConfig(hf), cfg, `${name}: cfg -> hf -> cfg`);
    assert.deepEqual(toHFConfig(fromHFConfig(clone(hf))), hf, `${name}: hf -> cfg -> hf`);
  }
});

test('every preset cites a source; the tiny ones fit the bytes tokenizer', () => {
  for (const name of presetNames()) {
    const info = getPresetInfo(name);
    assert.ok(info.source.length > 10, `${name}: source`);
    if (name.startsWith('tiny-')) {
      const cfg = getPreset(name);
      assert.equal(cfg.vocabSize, 256, name);
      assert.ok(cfg.hidden <= 64, name);
    }
  }
});

test('every model_type has at least one preset', () => {
  const families = new Set(presetNames().map((n) => getPreset(n).family));
  for (const t of HF_MODEL_TYPES) assert.ok(families.has(t), t);
});

test('getPreset: unknown name lists the presets', () => {
  assert.throws(() => getPreset('gpt5'), /unknown model preset "gpt5" \(known: .*gpt2.*tiny-llama/);
});

test('getPreset returns a fresh object each call', () => {
  const a = getPreset('tiny-gpt2');
  a.hidden = 1;
  assert.equal(getPreset('tiny-gpt2').hidden, 64);
});

test('family mappings read the fields transformers uses', () => {
  const gpt2 = getPreset('gpt2');
  assert.equal(gpt2.arch, 'decoder');
  if (gpt2.arch !== 'decoder') return;
  assert.deepEqual(gpt2.decoder.block.ffn, { kind: 'mlp', act: 'gelu_tanh', hidden: 3072, bias: true });
  assert.equal(gpt2.decoder.block.residual, 'pre');

  const mistral = getPreset('mistral-7b');
  assert.ok(mistral.arch === 'decoder' && mistral.decoder.block.attention.kind === 'gqa');
  assert.deepEqual(mistral.decoder.block.attention.window, { kind: 'sliding', size: 4096, firstFullLayers: 0 });

  const qwen = getPreset('qwen2-0.5b');
  assert.ok(qwen.arch === 'decoder' && qwen.decoder.block.attention.kind === 'gqa');
  assert.equal(qwen.decoder.block.attention.qkvBias, true);
  assert.equal(qwen.decoder.block.attention.outBias, false);
  assert.equal(qwen.tieEmbeddings, true);

  const ds = getPreset('deepseek-v2-lite');
  assert.ok(ds.arch === 'decoder');
  const att = ds.decoder.block.attention;
  assert.ok(att.kind === 'mla');
  assert.deepEqual([att.qLoraRank, att.kvLoraRank, att.qkNopeHeadDim, att.qkRopeHeadDim, att.vHeadDim], [null, 512, 128, 64, 128]);
  const ffn = ds.decoder.block.ffn;
  assert.ok(ffn.kind === 'moe');
  assert.deepEqual([ffn.experts, ffn.topK, ffn.sharedExperts, ffn.sharedHidden, ffn.denseLayers, ffn.normTopK], [64, 6, 2, 2816, 1, false]);
  assert.deepEqual(layerFfn(ffn, 0), { kind: 'glu', act: 'silu', hidden: 10944, bias: false });
  assert.equal(layerFfn(ffn, 1).kind, 'moe');
  assert.ok(ds.positions.kind === 'rope' && ds.positions.scaling?.kind === 'yarn');

  const mamba = getPreset('mamba-130m');
  assert.ok(mamba.arch === 'mamba');
  assert.deepEqual([mamba.ssm.dState, mamba.ssm.dConv, mamba.ssm.expand, mamba.ssm.dtRank], [16, 4, 2, 48]);

  const base = getPreset('transformer-base');
  assert.ok(base.arch === 'encoder-decoder' && base.family === 'marian');
  assert.equal(base.positions.kind, 'sinusoidal');
  assert.equal(base.embedScale, 'sqrt-hidden');
  assert.equal(base.encoder.block.residual, 'post');
});

test('t5 feed_forward_proj: relu (v1.0) and gated-gelu (v1.1)', () => {
  const v11 = { ...getPresetInfo('t5-small').hf, feed_forward_proj: 'gated-gelu', tie_word_embeddings: false };
  const cfg = fromHFConfig(v11);
  assert.ok(cfg.arch === 'encoder-decoder');
  assert.deepEqual(cfg.encoder.block.ffn, { kind: 'glu', act: 'gelu_tanh', hidden: 2048, bias: false });
  assert.equal(cfg.headScale, 'none');
  assert.equal(toHFConfig(cfg).feed_forward_proj, 'gated-gelu');
  assert.throws(() => fromHFConfig({ ...v11, feed_forward_proj: 'gated-weird' }), /feed_forward_proj/);
});

test('llama rope_scaling forms round-trip', () => {
  const base = getPresetInfo('llama-2-7b').hf;
  const forms = [
    { rope_type: 'linear', factor: 2 },
    { type: 'dynamic', factor: 4 },
    { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 4096, beta_fast: 32, beta_slow: 1, mscale: 1, mscale_all_dim: 0 },
    { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
  ];
  const kinds = forms.map((f) => {
    const cfg = fromHFConfig({ ...base, rope_scaling: f });
    assert.deepEqual(fromHFConfig(toHFConfig(cfg)), cfg);
    return cfg.arch === 'decoder' && cfg.positions.kind === 'rope' ? cfg.positions.scaling?.kind : undefined;
  });
  assert.deepEqual(kinds, ['linear', 'ntk', 'yarn', 'llama3']);
  assert.throws(() => fromHFConfig({ ...base, rope_scaling: { rope_type: 'longrope', factor: 2 } }), /rope_scaling.*longrope/);
});

test('qwen2 sliding window fields and per-layer windows', () => {
  const hf = { ...getPresetInfo('tiny-qwen2').hf, use_sliding_window: true, sliding_window: 16, max_window_layers: 1 };
  const cfg = fromHFConfig(hf);
  assert.ok(cfg.arch === 'decoder');
  const w = cfg.decoder.block.attention.window;
  assert.deepEqual(w, { kind: 'sliding', size: 16, firstFullLayers: 1 });
  assert.deepEqual(layerWindow(w, 0), { kind: 'full' });
  assert.deepEqual(layerWindow(w, 1), w);
  assert.deepEqual(fromHFConfig(toHFConfig(cfg)), cfg);
});

test('lineage-rnn config.json layout', () => {
  const hf = toHFConfig(getPreset('tiny-lstm'));
  assert.deepEqual(hf, {
    model_type: 'lineage-rnn', cell: 'lstm', vocab_size: 256, embedding_size: 32, hidden_size: 64, num_hidden_layers: 2,
    tie_word_embeddings: false, dropout: 0,
  });
});

test('toHFConfig names what a model_type cannot express', () => {
  const cfg = getPreset('tiny-gpt2');
  assert.ok(cfg.arch === 'decoder');
  cfg.decoder.block.attention.window = { kind: 'sliding', size: 8, firstFullLayers: 0 };
  assert.throws(() => toHFConfig(cfg), /model_type "gpt2" cannot express decoder\.block\.attention\.window/);
  const llama = getPreset('tiny-llama');
  llama.dropout.residual = 0.1;
  assert.throws(() => toHFConfig(llama), /cannot express dropout\.residual/);
});

test('fromHFConfig errors name the field', () => {
  assert.throws(() => fromHFConfig({ model_type: 'gpt9' }), /unsupported model_type "gpt9" \(supported: .*llama/);
  assert.throws(() => fromHFConfig({ ...getPresetInfo('gpt2').hf, n_embd: 'wide' }), /field "n_embd" must be a positive integer, got "wide"/);
  assert.throws(() => fromHFConfig({ ...getPresetInfo('gpt2').hf, n_head: 5 }), /field "n_head" = 5 must divide the hidden size n_embd = 768/);
  const { n_layer: _, ...noLayers } = getPresetInfo('gpt2').hf;
  assert.throws(() => fromHFConfig(noLayers), /field "n_layer" is required/);
  assert.throws(() => fromHFConfig({ ...getPresetInfo('bert-base-uncased').hf, position_embedding_type: 'relative_key' }),
    /position_embedding_type/);
});

test('validateConfig names the field', () => {
  const gqa = getPreset('tiny-llama');
  assert.ok(gqa.arch === 'decoder' && gqa.decoder.block.attention.kind !== 'mla');
  gqa.decoder.block.attention.kvHeads = 3;
  assert.throws(() => validateConfig(gqa), (e: unknown) => e instanceof ConfigError && e.field === 'decoder.block.attention.kvHeads');

  const moe = getPreset('tiny-mixtral');
  assert.ok(moe.arch === 'decoder' && moe.decoder.block.ffn.kind === 'moe');
  moe.decoder.block.ffn.topK = 9;
  assert.throws(() => validateConfig(moe), /decoder\.block\.ffn\.topK: must be in 1\.\.experts \(4\), got 9/);

  const rnn = getPreset('tiny-rnn');
  assert.ok(rnn.arch === 'rnn');
  rnn.tieEmbeddings = true;
  assert.throws(() => validateConfig(rnn), /tieEmbeddings: tied embeddings need embedSize === hidden/);

  const pre = getPreset('tiny-gpt2');
  assert.ok(pre.arch === 'decoder');
  pre.decoder.finalNorm = null;
  assert.throws(() => validateConfig(pre), /decoder\.finalNorm/);

  const ids = getPreset('tiny-llama');
  ids.tokens.eos = 300;
  assert.throws(() => validateConfig(ids), /tokens\.eos/);

  const ok: ModelConfig = getPreset('tiny-deepseek');
  assert.deepEqual(configProblems(ok), []);
});

test('applyOverrides: --set by config.json names, with parsed values', () => {
  const hf = applyOverrides(getPresetInfo('llama-2-7b').hf, [
    'num_hidden_layers=2', 'hidden_size=64', 'intermediate_size=128', 'num_attention_heads=4', 'num_key_value_heads=2',
    'tie_word_embeddings=true', 'rope_scaling={"rope_type":"linear","factor":2}', 'hidden_act=silu',
  ]);
  assert.equal(hf.num_hidden_layers, 2);
  assert.equal(hf.tie_word_embeddings, true);
  assert.deepEqual(hf.rope_scaling, { rope_type: 'linear', factor: 2 });
  assert.equal(hf.hidden_act, 'silu');
  const cfg = fromHFConfig(hf);
  assert.equal(cfg.hidden, 64);
  assert.equal(applyOverrides(getPresetInfo('mixtral-8x7b').hf, ['sliding_window=null']).sliding_window, null);
});

test('applyOverrides: unknown field lists the valid names of that model_type', () => {
  assert.throws(() => applyOverrides(getPresetInfo('gpt2').hf, ['hidden_size=64']),
    /--set hidden_size: unknown field for model_type "gpt2" \(valid: .*n_embd.*n_layer/);
  assert.throws(() => applyOverrides(getPresetInfo('gpt2').hf, ['n_layer']), /expected field=value/);
  assert.throws(() => applyOverrides(getPresetInfo('gpt2').hf, ['n_layer=two']), /field "n_layer" must be an integer, got "two"/);
  const names = hfFieldNames(getPresetInfo('deepseek-v2-lite').hf);
  for (const k of ['q_lora_rank', 'kv_lora_rank', 'first_k_dense_replace', 'moe_layer_freq', 'topk_method', 'scoring_func', 'routed_scaling_factor']) {
    assert.ok(names.includes(k), k);
  }
});

test('real config.json files with extra keys read as the presets', () => {
  // verbatim keys from the hub files, including ones Lineage ignores
  const gpt2 = {
    activation_function: 'gelu_new', architectures: ['GPT2LMHeadModel'], attn_pdrop: 0.1, bos_token_id: 50256, embd_pdrop: 0.1,
    eos_token_id: 50256, initializer_range: 0.02, layer_norm_epsilon: 1e-5, model_type: 'gpt2', n_ctx: 1024, n_embd: 768,
    n_head: 12, n_layer: 12, n_positions: 1024, resid_pdrop: 0.1, summary_activation: null, summary_first_dropout: 0.1,
    summary_proj_to_labels: true, summary_type: 'cls_index', summary_use_proj: true,
    task_specific_params: { 'text-generation': { do_sample: true, max_length: 50 } }, vocab_size: 50257,
  };
  assert.deepEqual(fromHFConfig(gpt2), getPreset('gpt2'));
  const llama = {
    _name_or_path: 'meta-llama/Llama-2-7b-hf', architectures: ['LlamaForCausalLM'], bos_token_id: 1, eos_token_id: 2,
    hidden_act: 'silu', hidden_size: 4096, initializer_range: 0.02, intermediate_size: 11008, max_position_embeddings: 4096,
    model_type: 'llama', num_attention_heads: 32, num_hidden_layers: 32, num_key_value_heads: 32, pretraining_tp: 1,
    rms_norm_eps: 1e-5, rope_scaling: null, tie_word_embeddings: false, torch_dtype: 'float16', transformers_version: '4.31.0.dev0',
    use_cache: true, vocab_size: 32000,
  };
  assert.deepEqual(fromHFConfig(llama), getPreset('llama-2-7b'));
  // the hub's bert-base-uncased says BertForMaskedLM: MLM head, no pooler
  const bert = fromHFConfig({ ...getPresetInfo('bert-base-uncased').hf, architectures: ['BertForMaskedLM'], gradient_checkpointing: false });
  assert.ok(bert.arch === 'encoder' && bert.head === 'masked-lm');
});

test('vision patch embedding travels as vision_config', () => {
  const cfg = getPreset('tiny-vlm');
  assert.ok(cfg.arch === 'decoder');
  assert.deepEqual(cfg.vision, { imageSize: 32, patchSize: 8, channels: 3 });
  assert.deepEqual(toHFConfig(cfg).vision_config, { image_size: 32, patch_size: 8, num_channels: 3 });
  assert.equal('vision_config' in toHFConfig(getPreset('tiny-llama')), false);
  assert.throws(() => fromHFConfig({ ...toHFConfig(cfg), vision_config: { image_size: 30, patch_size: 8 } }), /vision\.patchSize: must divide imageSize \(30\)/);
});

test('MoE extensions (capacity factor, z-loss) are written only when set', () => {
  const cfg = getPreset('tiny-mixtral');
  assert.ok(cfg.arch === 'decoder' && cfg.decoder.block.ffn.kind === 'moe');
  assert.equal('capacity_factor' in toHFConfig(cfg), false);
  cfg.decoder.block.ffn.capacityFactor = 1.25;
  cfg.decoder.block.ffn.zLossCoef = 0.001;
  const hf = toHFConfig(cfg);
  assert.deepEqual([hf.capacity_factor, hf.router_z_loss_coef], [1.25, 0.001]);
  assert.deepEqual(fromHFConfig(hf), cfg);
});

test('validateConfig on malformed JSON names the field instead of crashing', () => {
  const cfg = clone(getPreset('tiny-llama')) as unknown as Record<string, Record<string, unknown>>;
  delete cfg.decoder.block;
  assert.throws(() => validateConfig(cfg as unknown as ModelConfig), /invalid model config: decoder\.block: must be an object/);
  const wrongFamily = { ...getPreset('tiny-llama'), family: 'bert' } as unknown as ModelConfig;
  assert.throws(() => validateConfig(wrongFamily), /family: arch 'decoder' admits gpt2, .*got "bert"/);
  assert.throws(() => validateConfig({ arch: 'cnn' } as unknown as ModelConfig), /arch: must be one of decoder, encoder/);
});

test('ffnGroups / windowGroups agree with the per-layer helpers', () => {
  const moe = getPreset('deepseek-v2-lite');
  assert.ok(moe.arch === 'decoder' && moe.decoder.block.ffn.kind === 'moe');
  for (const [denseLayers, layerFreq, layers] of [[1, 1, 27], [0, 2, 7], [3, 3, 4], [2, 1, 3], [0, 1, 5]]) {
    const ffn: FfnConfig = { ...moe.decoder.block.ffn, denseLayers, layerFreq };
    const perLayer: string[] = Array.from({ length: layers }, (_, i) => layerFfn(ffn, i).kind);
    const grouped: string[] = ffnGroups(ffn, layers).flatMap((g) => Array<string>(g.count).fill(g.ffn.kind));
    assert.deepEqual(grouped.sort(), perLayer.sort(), `${denseLayers}/${layerFreq}/${layers}`);
  }
  const w = { kind: 'sliding' as const, size: 8, firstFullLayers: 3 };
  assert.deepEqual(windowGroups(w, 5).map((g) => [g.window.kind, g.count]), [['full', 3], ['sliding', 2]]);
  assert.deepEqual(windowGroups(w, 2).map((g) => [g.window.kind, g.count]), [['full', 2]]);
  assert.deepEqual(windowGroups({ kind: 'full' }, 4).map((g) => g.count), [4]);
});

test('transformers 5 rope_parameters is read like rope_theta + rope_scaling', () => {
  const { rope_theta: _t, rope_scaling: _s, ...base } = getPresetInfo('llama-2-7b').hf;
  const v5 = fromHFConfig({ ...base, rope_parameters: { rope_type: 'linear', factor: 2, rope_theta: 500000 } });
  assert.ok(v5.arch === 'decoder');
  assert.deepEqual(v5.positions, { kind: 'rope', theta: 500000, dim: null, scaling: { kind: 'linear', factor: 2 } });
  const plain = fromHFConfig({ ...base, rope_parameters: { rope_type: 'default', rope_theta: 10000 } });
  assert.deepEqual(plain, getPreset('llama-2-7b'));
});

test('BERT task heads: architectures, num_labels / id2label / label2id, problem_type and classifier_dropout', () => {
  const base = getPresetInfo('bert-base-uncased').hf;
  // a sentiment classifier's config.json as save_pretrained writes it (no num_labels key; problem_type set)
  const sst = {
    ...base, architectures: ['BertForSequenceClassification'], classifier_dropout: null, problem_type: 'single_label_classification',
    id2label: { 0: 'NEGATIVE', 1: 'POSITIVE' }, label2id: { NEGATIVE: 0, POSITIVE: 1 }, torch_dtype: 'float32',
  };
  const cfg = fromHFConfig(sst);
  assert.ok(cfg.arch === 'encoder');
  assert.deepEqual(cfg.head, { kind: 'sequence-classification', numLabels: 2, labels: ['NEGATIVE', 'POSITIVE'], problemType: 'single_label_classification', dropout: null });
  const hf = toHFConfig(cfg);
  for (const k of ['architectures', 'id2label', 'label2id', 'problem_type', 'classifier_dropout'] as const) assert.deepEqual(hf[k], clone(sst)[k], k);
  assert.deepEqual(fromHFConfig(clone(hf)), cfg);

  // older files: num_labels alone; default names read as null; problem_type omitted when unset
  const ner = fromHFConfig({ ...base, architectures: ['BertForTokenClassification'], num_labels: 9, classifier_dropout: 0.2 });
  assert.ok(ner.arch === 'encoder');
  assert.deepEqual(ner.head, { kind: 'token-classification', numLabels: 9, labels: null, dropout: 0.2 });
  const nerHf = toHFConfig(ner);
  assert.equal(Object.keys(nerHf.id2label as object).length, 9);
  assert.equal((nerHf.label2id as Record<string, number>).LABEL_8, 8);
  assert.equal('problem_type' in nerHf, false);
  assert.equal('num_labels' in nerHf, false); // transformers derives it from id2label

  const qa = fromHFConfig({ ...base, architectures: ['BertForQuestionAnswering'] });
  assert.ok(qa.arch === 'encoder');
  assert.deepEqual(qa.head, { kind: 'question-answering' });
  assert.deepEqual(toHFConfig(qa).id2label, { 0: 'LABEL_0', 1: 'LABEL_1' });

  // every head's fields are valid --set names, whatever the current head
  const names = hfFieldNames(base);
  for (const k of ['architectures', 'num_labels', 'id2label', 'label2id', 'problem_type', 'classifier_dropout']) assert.ok(names.includes(k), k);
});

test('BERT task heads: --set num_labels / architectures, and errors naming the field', () => {
  const seqcls = toHFConfig(getPreset('tiny-bert-seqcls'));
  assert.equal(Object.keys(seqcls.id2label as object).length, 3);
  // default label names give way to num_labels, so --set works on a saved config.json
  const five = fromHFConfig(applyOverrides(seqcls, ['num_labels=5']));
  assert.ok(five.arch === 'encoder' && typeof five.head === 'object' && five.head.kind === 'sequence-classification');
  assert.equal(five.head.numLabels, 5);
  const tok = fromHFConfig(applyOverrides(toHFConfig(getPreset('tiny-bert')), ['architectures=["BertForTokenClassification"]']));
  assert.ok(tok.arch === 'encoder');
  assert.deepEqual(tok.head, { kind: 'token-classification', numLabels: 2, labels: null, dropout: null });

  const named = { ...seqcls, id2label: { 0: 'a', 1: 'b', 2: 'c' } };
  assert.deepEqual((fromHFConfig(named) as { head: { labels: string[] } }).head.labels, ['a', 'b', 'c']);
  assert.throws(() => applyOverrides(named, ['num_labels=5']), /field "num_labels" = 5 disagrees with id2label \(3 labels/);
  assert.throws(() => fromHFConfig({ ...seqcls, id2label: { 0: 'a', 2: 'c' } }), /field "id2label" must map "0".."1" to label names/);
  assert.throws(() => fromHFConfig({ ...seqcls, problem_type: 'ranking' }), /field "problem_type" must be null or one of "regression"/);
  assert.throws(() => fromHFConfig({ ...seqcls, num_labels: 0, id2label: undefined }), /head\.numLabels: must be a positive integer, got 0/);
  assert.throws(() => fromHFConfig({ ...toHFConfig(getPreset('tiny-bert-qa')), num_labels: 3, id2label: undefined }),
    /field "num_labels" must be 2 for BertForQuestionAnswering/);
});

test('BERT task heads: validateConfig names the field; impossible combinations do not type-check', () => {
  const cfg = getPreset('tiny-bert-seqcls');
  assert.ok(cfg.arch === 'encoder');
  const withHead = (head: unknown) => ({ ...cfg, head }) as unknown as ModelConfig;
  const seq = { kind: 'sequence-classification', numLabels: 3, labels: null, problemType: null, dropout: null };
  assert.doesNotThrow(() => validateConfig(withHead(seq)));
  assert.throws(() => validateConfig(withHead({ ...seq, labels: ['a', 'b'] })), /head\.labels: must be null or numLabels \(3\) label names/);
  assert.throws(() => validateConfig(withHead({ ...seq, labels: ['LABEL_0', 'LABEL_1', 'LABEL_2'] })), /head\.labels: .*default names: write null/);
  assert.throws(() => validateConfig(withHead({ ...seq, dropout: 1.5 })), /head\.dropout: must be null or in \[0, 1\)/);
  assert.throws(() => validateConfig(withHead({ ...seq, problemType: 'ranking' })), /head\.problemType: must be null or one of regression/);
  assert.throws(() => validateConfig(withHead('classifier')), /head: must be 'model', 'masked-lm', 'pretraining' or a task head object/);
  assert.throws(() => validateConfig(withHead({ kind: 'ranking' })), /head\.kind: must be one of sequence-classification/);
  if (cfg.arch !== 'encoder') return;
  // @ts-expect-error QA always has 2 outputs: no numLabels
  cfg.head = { kind: 'question-answering', numLabels: 2 };
  // @ts-expect-error token classification has no problem_type (transformers always uses cross-entropy)
  cfg.head = { kind: 'token-classification', numLabels: 2, labels: null, dropout: null, problemType: 'regression' };
});
