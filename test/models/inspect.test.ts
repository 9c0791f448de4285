import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { countParams, inspectConfig } from '../../src/models/inspect.js';
import { toHFConfig } from '../../src/models/hf-config.js';
import { getPreset, presetNames } from '../../src/models/presets.js';
import { inspectCommand } from '../../src/cli/commands/inspect.js';

// Published parameter counts (transformers `model.num_parameters()` of the base checkpoints).
const PUBLISHED: [string, number][] = [
  ['gpt2', 124_439_808],
  ['bert-base-uncased', 109_482_240], // BertModel, with pooler
  ['t5-small', 60_506_624],
  ['llama-2-7b', 6_738_415_616],
  ['mistral-7b', 7_241_732_096],
  ['mixtral-8x7b', 46_702_792_704],
  ['tinyllama-1.1b', 1_100_048_384],
  ['mamba-130m', 129_135_360],
  ['qwen2-0.5b', 494_032_768], // tied embeddings
  ['gpt2-medium', 354_823_168],
  ['gpt2-large', 774_030_080],
  ['gpt2-xl', 1_557_611_200],
  ['gpt', 116_534_784],
  ['t5-base', 222_903_552],
  ['bart-base', 139_420_416],
];

for (const [name, count] of PUBLISHED) {
  test(`${name} has ${count.toLocaleString('en-US')} parameters`, () => {
    assert.equal(countParams(getPreset(name)).params, count);
  });
}

test('deepseek-v2-lite: 15.7B total, 2.4B active as DeepSeek counts it (no input embedding)', () => {
  // Hand count from the config: embed + head 2 x 102400 x 2048; 27 MLA layers of 13,763,072;
  // 1 dense SwiGLU layer (3 x 2048 x 10944); 26 MoE layers of 64 x 3 x 2048 x 1408 routed + 2-expert
  // shared (3 x 2048 x 2816) + router 64 x 2048; 2 RMSNorms per layer + final norm.
  const c = countParams(getPreset('deepseek-v2-lite'));
  const attn = 2048 * 16 * 192 + 2048 * 576 + 512 + 512 * 16 * 256 + 2048 * 2048;
  const routed = 64 * 3 * 2048 * 1408;
  const moeLayer = routed + 3 * 2048 * 2816 + 64 * 2048;
  const expected = 2 * 102400 * 2048 + 27 * attn + 3 * 2048 * 10944 + 26 * moeLayer + 27 * 2 * 2048 + 2048;
  assert.equal(c.params, expected);
  assert.equal(c.params, 15_706_484_224);
  assert.equal(c.activeParams, expected - 26 * (58 / 64) * routed);
  // the paper's "2.4B activated" leaves out the input embedding (a lookup) but keeps the output head
  const withoutLookup = c.activeParams - 102400 * 2048;
  assert.ok(Math.abs(withoutLookup - 2.4e9) < 0.06e9, `${withoutLookup}`);
});

test('active parameters: dense = total; mixtral counts 2 of 8 experts', () => {
  for (const name of ['gpt2', 'llama-2-7b', 'mamba-130m', 'tiny-lstm', 't5-small']) {
    const c = countParams(getPreset(name));
    assert.equal(c.activeParams, c.params, name);
  }
  const m = countParams(getPreset('mixtral-8x7b'));
  const expert = 3 * 4096 * 14336;
  assert.equal(m.activeParams, m.params - 32 * 6 * expert);
  assert.equal(m.activeParams, 12_879_925_248);
  assert.equal(m.byComponent.experts, 32 * 8 * expert);
  assert.equal(m.activeByComponent.experts, 32 * 2 * expert);
});

test('components add up to the total for every preset', () => {
  for (const name of presetNames()) {
    const c = countParams(getPreset(name));
    const total = Object.values(c.byComponent).reduce((a, b) => a + b, 0);
    assert.equal(total, c.params, name);
  }
  const gpt2 = countParams(getPreset('gpt2')).byComponent;
  assert.equal(gpt2.embeddings, 50257 * 768);
  assert.equal(gpt2.positions, 1024 * 768);
  assert.equal(gpt2.head, undefined); // tied
});

test('BERT heads: pooler, masked-LM, NSP, classifier and qa_outputs are counted as transformers builds them', () => {
  const base = getPreset('bert-base-uncased'); // BertModel: 109,482,240
  assert.ok(base.arch === 'encoder');
  const D = 768;
  const pooler = D * D + D;
  const count = (head: typeof base.head) => countParams({ ...base, head });
  const seq = count({ kind: 'sequence-classification', numLabels: 2, labels: null, problemType: null, dropout: null });
  assert.equal(seq.params, 109_482_240 + 2 * D + 2); // e.g. bert-base-uncased fine-tuned on SST-2: 109,483,778
  assert.equal(seq.byComponent.pooler, pooler);
  assert.equal(seq.byComponent.head, 2 * D + 2);
  const tok = count({ kind: 'token-classification', numLabels: 9, labels: null, dropout: null });
  assert.equal(tok.params, 109_482_240 - pooler + 9 * D + 9); // no pooler in BertForTokenClassification
  assert.equal(tok.byComponent.pooler, undefined);
  const qa = count({ kind: 'question-answering' });
  assert.equal(qa.params, 109_482_240 - pooler + 2 * D + 2);
  // task heads have no (tied) vocabulary projection: FLOPs are 2 x the non-lookup parameters + attention
  const r = inspectConfig({ ...base, head: { kind: 'question-answering' } }, { context: 128 });
  const lookups = 30522 * D + 512 * D + 2 * D;
  assert.equal(r.lookupParams, lookups);
  assert.equal(r.flopsPerToken.inference, 2 * (qa.params - lookups) + 12 * 2 * (D + D) * 128);
  const mlm = countParams({ ...base, head: 'masked-lm' });
  assert.equal(mlm.params, 109_482_240 - pooler + (D * D + D) + 2 * D + 30522); // cls.predictions transform + bias
});

test('rnn parameters follow torch layouts', () => {
  // LSTM: 4 gates; layer 0 sees E inputs, later layers H
  const c = countParams(getPreset('tiny-lstm'));
  const h = 64;
  const layer = (inDim: number) => 4 * h * inDim + 4 * h * h + 2 * 4 * h;
  assert.equal(c.byComponent.rnn, layer(32) + layer(64));
  assert.equal(c.params, 256 * 32 + layer(32) + layer(64) + 256 * 64);
});

test('KV cache: GQA, MLA, sliding window, Mamba and RNN state', () => {
  const llama = inspectConfig(getPreset('llama-2-7b'), { context: 4096, dtype: 'float16' });
  assert.equal(llama.kvCacheBytesPerToken, 2 * 32 * 32 * 128 * 2); // 512 KiB
  assert.equal(llama.kvCacheBytes, 4096 * 2 * 32 * 32 * 128 * 2);

  const tiny = inspectConfig(getPreset('tinyllama-1.1b'), { context: 100, dtype: 'float32' });
  assert.equal(tiny.kvCacheBytesPerToken, 2 * 22 * 4 * 64 * 4);

  const mistral = inspectConfig(getPreset('mistral-7b'), { context: 32768, dtype: 'bfloat16' });
  assert.equal(mistral.kvCacheBytesPerToken, 2 * 32 * 8 * 128 * 2);
  assert.equal(mistral.kvCacheBytes, 4096 * mistral.kvCacheBytesPerToken); // window caps the cache
  const short = inspectConfig(getPreset('mistral-7b'), { context: 1000, dtype: 'bfloat16' });
  assert.equal(short.kvCacheBytes, 1000 * short.kvCacheBytesPerToken);

  const ds = inspectConfig(getPreset('deepseek-v2-lite'), { context: 10, dtype: 'bfloat16' });
  assert.equal(ds.kvCacheBytesPerToken, 27 * (512 + 64) * 2);

  const mamba = inspectConfig(getPreset('mamba-130m'), { context: 1, dtype: 'float32' });
  const mambaLong = inspectConfig(getPreset('mamba-130m'), { context: 100_000, dtype: 'float32' });
  assert.equal(mamba.kvCacheBytesPerToken, 0);
  assert.equal(mamba.kvCacheBytes, 24 * 1536 * (16 + 4) * 4);
  assert.equal(mambaLong.kvCacheBytes, mamba.kvCacheBytes);

  const lstm = inspectConfig(getPreset('lstm-lm'), { dtype: 'float32' });
  assert.equal(lstm.kvCacheBytes, 2 * 650 * 2 * 4); // (h, c) per layer
  assert.equal(inspectConfig(getPreset('gru-lm'), { dtype: 'int8' }).kvCacheBytes, 2 * 650);
  assert.equal(inspectConfig(getPreset('bert-base-uncased')).kvCacheBytes, 0);
});

test('FLOPs: 2 x matmul params + attention term; training = 3 x forward', () => {
  const r = inspectConfig(getPreset('gpt2'), { context: 1024 });
  const matmul = 124_439_808 - 50257 * 768 - 1024 * 768 + 50257 * 768; // lookups out, tied head in
  const attention = 12 * 2 * (768 + 768) * 1024;
  assert.equal(r.flopsPerToken.inference, 2 * matmul + attention);
  assert.equal(r.flopsPerToken.training, 3 * r.flopsPerToken.inference);
  const mix = inspectConfig(getPreset('mixtral-8x7b'), { context: 1 });
  assert.ok(mix.flopsPerToken.inference < 2.7e10 && mix.flopsPerToken.inference > 2.5e10); // ~2 x 12.9B active
  const w1 = inspectConfig(getPreset('mistral-7b'), { context: 4096 }).flopsPerToken.inference;
  const w2 = inspectConfig(getPreset('mistral-7b'), { context: 32768 }).flopsPerToken.inference;
  assert.equal(w1, w2); // sliding window caps the attention term
});

test('inspect rejects a bad context or dtype', () => {
  assert.throws(() => inspectConfig(getPreset('gpt2'), { context: 0 }), /context must be a positive integer/);
  assert.throws(() => inspectConfig(getPreset('gpt2'), { dtype: 'fp8' as 'int8' }), /dtype must be one of/);
});

// The handler runs in a child process: its stdout is captured whole, and the test runner's own
// report (also on stdout) is never intercepted.
const HANDLER = new URL('../../src/cli/commands/inspect.js', import.meta.url).href;

async function capture(argv: string[]): Promise<string> {
  const script = `const { inspectCommand } = await import(${JSON.stringify(HANDLER)}); await inspectCommand(${JSON.stringify(argv)});`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout;
}

test('inspect CLI --json for a preset', async () => {
  const out = JSON.parse(await capture(['mixtral-8x7b', '--json', '--context', '4096', '--dtype', 'float16']));
  assert.equal(out.params, 46_702_792_704);
  assert.equal(out.activeParams, 12_879_925_248);
  assert.equal(out.kvCacheBytesPerToken, 2 * 32 * 8 * 128 * 2);
  assert.equal(out.kvCacheBytes, 4096 * out.kvCacheBytesPerToken);
  assert.equal(out.flopsPerToken.training, 3 * out.flopsPerToken.inference);
  assert.equal(out.byComponent.router, 32 * 8 * 4096);
  assert.equal(out.context, 4096);
  assert.equal(out.dtype, 'float16');
});

test('inspect CLI table output', async () => {
  const out = await capture(['gpt2']);
  assert.match(out, /parameters\s+124,439,808 \(124\.44M\)/);
  assert.match(out, /attention/);
  assert.match(out, /cache @ 1024 tokens/);
});

test('inspect CLI reads a model directory, applies --set', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lineage-inspect-'));
  try {
    await writeFile(join(dir, 'config.json'), JSON.stringify(toHFConfig(getPreset('tiny-llama'))));
    const out = JSON.parse(await capture([dir, '--json']));
    assert.equal(out.params, countParams(getPreset('tiny-llama')).params);
    const deeper = JSON.parse(await capture([dir, '--json', '--set', 'num_hidden_layers=3']));
    assert.ok(deeper.params > out.params);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('inspect CLI on a model directory with weights reports what the checkpoint stores', async () => {
  const fixture = fileURLToPath(new URL('../../../fixtures/gpt2', import.meta.url));
  if (!existsSync(`${fixture}/model.safetensors`)) return;
  const out = JSON.parse(await capture([fixture, '--json']));
  assert.equal(out.checkpoint.values, out.params);
  assert.equal(out.checkpoint.files, 1);
  assert.deepEqual(Object.keys(out.checkpoint.dtypes), ['F32']);
  assert.match(await capture([fixture]), /checkpoint\s+\d+ tensors in 1 file\(s\), [\d,]+ parameters \(F32, .*\), matches the config/);
});

test('inspect CLI on the BERT task-head fixtures: the config counts exactly what the checkpoint stores', async () => {
  for (const name of ['bert-seqcls', 'bert-tokcls', 'bert-qa']) {
    const fixture = fileURLToPath(new URL(`../../../fixtures/${name}`, import.meta.url));
    if (!existsSync(`${fixture}/model.safetensors`)) continue;
    const out = JSON.parse(await capture([fixture, '--json']));
    assert.equal(out.checkpoint.values, out.params, name);
    assert.ok(out.byComponent.head > 0, name);
  }
  const wide = JSON.parse(await capture(['tiny-bert-seqcls', '--json', '--set', 'num_labels=7']));
  assert.equal(wide.params, countParams(getPreset('tiny-bert-seqcls')).params + 4 * 64 + 4);
});

test('inspect CLI errors', async () => {
  await assert.rejects(capture(['no-such-model']), /neither a preset nor a model directory.*presets: .*gpt2/);
  await assert.rejects(capture(['gpt2', '--context', 'x']), /--context: expected an integer >= 1, got "x"/);
  await assert.rejects(capture(['gpt2', '--dtype', 'fp4']), /--dtype: expected float32 \| float16 \| bfloat16 \| int8, got "fp4"/);
  await assert.rejects(capture(['gpt2', '--frobnicate']), /unknown option --frobnicate/);
  await assert.rejects(capture([]), /missing preset name/);
});
