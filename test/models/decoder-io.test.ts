// Hugging Face directories: load -> save -> load round trips (fixtures and fresh models, tied and untied,
// sharded, bfloat16), names identical to the source checkpoint, legacy GPT-2 names through `sanitize`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tensor } from '../../src/ops/index.js';
import { noGrad } from '../../src/tensor/engine.js';
import { parseSafetensors } from '../../src/io/safetensors.js';
import { readCheckpoint, writeCheckpoint } from '../../src/io/checkpoint-node.js';
import { createModel } from '../../src/models/registry.js';
import { loadModel, saveModel } from '../../src/models/load-node.js';
import type { LanguageModel } from '../../src/models/model.js';
import { bytesTokenizer } from '../../src/tokenizers/simple.js';
import { loadTokenizer } from '../../src/tokenizers/load-node.js';
import { maxAbsDiff, randomIds, tinyConfig } from './decoder-helpers.js';

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'lineage-dec-io-'));
}

function sameParams(a: LanguageModel, b: LanguageModel): void {
  const pb = new Map(b.namedParameters());
  assert.deepEqual(a.namedParameters().map(([n]) => n).sort(), [...pb.keys()].sort());
  for (const [n, t] of a.namedParameters()) assert.deepEqual(t.toList(), pb.get(n)!.toList(), n);
}

for (const name of ['gpt2', 'qwen2', 'deepseek_v2', 'gemma2', 'phi3', 'minicpm']) {
  test(`fixture ${name}: load -> save -> load keeps names, weights and logits`, async () => {
    const dir = tmp();
    try {
      const a = (await loadModel(join('fixtures', name))).eval();
      await saveModel(a, dir);
      const b = (await loadModel(dir)).eval();
      sameParams(a, b);
      const ids = randomIds(1, 5, 64, 3);
      assert.equal(maxAbsDiff(noGrad(() => a.forward({ inputIds: ids }).logits), noGrad(() => b.forward({ inputIds: ids }).logits)), 0);
      const names = (file: string) => parseSafetensors(readFileSync(file)).tensors.map((t) => t.name).sort();
      assert.deepEqual(names(join(dir, 'model.safetensors')), names(join('fixtures', name, 'model.safetensors')));
      const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
      assert.equal(cfg.model_type, name.replace(/-.*/, ''));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('fresh untied model: save (sharded, with tokenizer.json) -> load; tied heads are not written', async () => {
  const dir = tmp();
  try {
    const a = createModel(tinyConfig('mixtral'), { seed: 9 });
    const tok = join(dir, 'src-tokenizer.json');
    writeFileSync(tok, '{"version":"1.0"}');
    await saveModel(a, join(dir, 'm'), { maxShardBytes: 4000, tokenizer: tok });
    const files = readdirSync(join(dir, 'm'));
    assert.ok(files.includes('model.safetensors.index.json') && files.includes('tokenizer.json'), files.join(','));
    assert.ok(!files.some((f) => f.includes('.tmp-')), 'no temp files left');
    sameParams(a, await loadModel(join(dir, 'm')));
    const tied = createModel(tinyConfig('qwen2'));
    await saveModel(tied, join(dir, 't'));
    const ck = await readCheckpoint(join(dir, 't'));
    assert.ok(!ck.tensors.some((t) => t.name === 'lm_head.weight'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('saving with a Tokenizer object writes tokenizer.json and tokenizer_config.json next to the weights', async () => {
  const dir = tmp();
  try {
    await saveModel(createModel(tinyConfig('gpt2')), dir, { tokenizer: bytesTokenizer() });
    assert.ok(existsSync(join(dir, 'tokenizer.json')) && existsSync(join(dir, 'tokenizer_config.json')));
    assert.equal(loadTokenizer(dir).encode('hi').length, bytesTokenizer().encode('hi').length);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bfloat16 weights are written as BF16 and load back to the same values', async () => {
  const dir = tmp();
  try {
    const a = createModel(tinyConfig('llama'), { seed: 2 }).toDType('bfloat16') as LanguageModel;
    await saveModel(a, dir);
    const ck = await readCheckpoint(dir);
    assert.ok(ck.tensors.every((t) => t.dtype === 'bfloat16'));
    const b = await loadModel(dir);
    const pb = new Map(b.namedParameters());
    for (const [n, t] of a.namedParameters()) assert.deepEqual(t.toList(), pb.get(n)!.toList(), n);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('legacy GPT-2 checkpoints (no "transformer." prefix, attn.bias buffers, stored tied head) load', async () => {
  const dir = tmp();
  try {
    const ref = await loadModel(join('fixtures', 'gpt2'));
    const ck = await readCheckpoint(join('fixtures', 'gpt2'));
    const legacy = ck.tensors.map((t) => ({ ...t, name: t.name.replace(/^transformer\./, '') }));
    const mask = { name: 'h.0.attn.bias', dtype: 'float32' as const, shape: [1, 1, 2, 2], data: new Float32Array([1, 0, 1, 1]) };
    const head = { ...ck.tensors.find((t) => t.name === 'transformer.wte.weight')!, name: 'lm_head.weight' };
    await writeCheckpoint(dir, ck.config, [...legacy, mask, head]);
    sameParams(ref, await loadModel(dir));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a checkpoint missing a tensor fails naming it', async () => {
  const dir = tmp();
  try {
    const ck = await readCheckpoint(join('fixtures', 'llama'));
    await writeCheckpoint(dir, ck.config, ck.tensors.filter((t) => t.name !== 'model.norm.weight'));
    await assert.rejects(loadModel(dir), /model\.norm\.weight/);
    assert.ok(existsSync(join(dir, 'config.json')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tensor helper sanity: ids tensor is int32', () => {
  assert.equal(tensor([[1]], { dtype: 'int32' }).dtype, 'int32');
});
