// KV-cache decoding of every decoder family: token-by-token and chunked decoding give the full forward's
// logits (fixture weights and tiny configs), including sliding windows beyond the window (rolling cache),
// MLA's latent-only cache, MoE layers and preallocated buffers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tensor } from '../../src/ops/index.js';
import { noGrad, tidy } from '../../src/tensor/engine.js';
import { loadModel } from '../../src/models/load-node.js';
import { createModel } from '../../src/models/registry.js';
import type { DecoderFamily } from '../../src/models/config.js';
import { KVCache } from '../../src/nn/cache.js';
import { assertCacheConsistent, ones, randomIds, tinyConfig } from './decoder-helpers.js';

const FIXTURES = ['gpt2', 'gpt3', 'openai-gpt', 'llama', 'llama-rope-linear', 'llama-rope-yarn', 'llama-rope-llama3', 'mistral', 'qwen2', 'qwen3', 'qwen3_moe', 'gemma', 'mixtral', 'deepseek_v2', 'deepseek_v2-qnolora', 'gemma2', 'phi3', 'minicpm'];

for (const name of FIXTURES) {
  test(`cache ${name}: token by token and in chunks equals the full forward`, async () => {
    const golden = JSON.parse(readFileSync(join('fixtures', name, 'golden.json'), 'utf8')) as { inputs: { input_ids: number[][] } };
    const model = (await loadModel(join('fixtures', name))).eval();
    const ids = tensor(golden.inputs.input_ids, { dtype: 'int32' });
    const T = ids.shape[1]!;
    assertCacheConsistent(model, ids, [ones(T), [3, T - 3], [1, 4, T - 5]]);
  });
}

test('cache llama-rope-dynamic: consistent while the context stays within max_position_embeddings', async () => {
  const golden = JSON.parse(readFileSync(join('fixtures', 'llama-rope-dynamic', 'golden.json'), 'utf8')) as { inputs: { input_ids: number[][] } };
  const model = (await loadModel(join('fixtures', 'llama-rope-dynamic'))).eval();
  const ids = tensor(golden.inputs.input_ids.map((r) => r.slice(0, 8)), { dtype: 'int32' });
  assertCacheConsistent(model, ids, [ones(8), [5, 3]]);
});

const FAMILIES: DecoderFamily[] = ['gpt2', 'gpt3', 'openai-gpt', 'llama', 'mistral', 'qwen2', 'qwen3', 'qwen3_moe', 'gemma', 'gemma2', 'phi3', 'minicpm', 'mixtral', 'deepseek_v2'];
for (const family of FAMILIES) {
  test(`cache ${family} (tiny config): incremental decoding matches, also with a preallocated buffer`, () => {
    const model = createModel(tinyConfig(family), { seed: 3 }).eval();
    const ids = randomIds(2, 9, 48, 5);
    assertCacheConsistent(model, ids, [ones(9), [2, 7], [4, 4, 1]]);
    assertCacheConsistent(model, ids, [ones(9), [3, 6]], 2e-5, { maxLength: 16 });
  });
}

test('sliding-window cache keeps only the last `window` keys and still matches beyond the window', async () => {
  const model = (await loadModel(join('fixtures', 'mistral'))).eval();
  const ids = randomIds(1, 20, 128, 9);
  assertCacheConsistent(model, ids, [ones(20), [6, 1, 13]]);
  const cache = model.newCache!(1) as KVCache;
  noGrad(() => model.forward({ inputIds: ids, cache }));
  for (const l of cache.layers) {
    assert.equal(l.size, 4);
    assert.equal(l.get('k')!.shape[2], 4);
    assert.equal(l.start, 16);
  }
  assert.equal(cache.length, 20);
});

test('qwen2 max_window_layers: the first layers keep every key, the others roll', () => {
  const model = createModel(tinyConfig('qwen2'), { seed: 1 }).eval();
  const cache = model.newCache!(1) as KVCache;
  noGrad(() => model.forward({ inputIds: randomIds(1, 7, 48), cache }));
  assert.equal(cache.layers[0]!.size, 7);
  assert.equal(cache.layers[1]!.size, 3);
});

test('MLA cache holds only the compressed latent and the shared rotary key', async () => {
  const model = (await loadModel(join('fixtures', 'deepseek_v2'))).eval();
  const cache = model.newCache!(2) as KVCache;
  noGrad(() => model.forward({ inputIds: randomIds(2, 5, 96), cache }));
  for (const l of cache.layers) {
    assert.deepEqual([...l.get('latent')!.shape], [2, 1, 5, 16]); // kv_lora_rank 16
    assert.deepEqual([...l.get('kPe')!.shape], [2, 1, 5, 8]); // qk_rope_head_dim 8
    assert.equal(l.get('k'), null);
    assert.equal(l.get('v'), null);
  }
});

test('a cache from another model is refused, naming the problem', () => {
  const a = createModel(tinyConfig('llama'));
  const b = createModel(tinyConfig('llama', (c) => (c.decoder.layers = 3)));
  assert.throws(() => a.forward({ inputIds: randomIds(1, 2, 48), cache: b.newCache!(1) }), /newCache/);
});

test('decoding loops in tidy run in flat memory: the sliding cache stays bounded, replaced entries are freed', () => {
  const model = createModel(tinyConfig('mistral'), { seed: 1 }).eval();
  const cache = model.newCache!(1);
  const backend = model.namedParameters()[0]![1].backend;
  const step = (t: number) => tidy(() => noGrad(() => model.forward({ inputIds: tensor([[t % 48]], { dtype: 'int32' }), cache }).logits.dispose()));
  for (let t = 0; t < 8; t++) step(t);
  const settled = backend.bytesInUse();
  for (let t = 8; t < 40; t++) step(t);
  assert.equal(backend.bytesInUse(), settled);
  cache.dispose();
});

test('half-precision caches (bfloat16 / float16) store half-size entries and stay close to the full forward', () => {
  for (const family of ['llama', 'deepseek_v2', 'mistral'] as DecoderFamily[]) {
    const model = createModel(tinyConfig(family), { seed: 2 }).eval();
    const ids = randomIds(1, 7, 48, 4);
    for (const dtype of ['bfloat16', 'float16'] as const) {
      assertCacheConsistent(model, ids, [ones(7), [3, 4]], 5e-2, { dtype });
      assertCacheConsistent(model, ids, [[2, 5]], 5e-2, { dtype, maxLength: 8 });
      const cache = model.newCache!(1, { dtype }) as KVCache;
      noGrad(() => model.forward({ inputIds: ids, cache }));
      const first = cache.layers[0]!;
      assert.equal((first.get('k') ?? first.get('latent'))!.dtype, dtype);
      cache.dispose();
    }
  }
});

test('dilated-window cache rolls to the span a query can reach and still matches', () => {
  const model = createModel(tinyConfig('llama', (c) => ((c.decoder.block.attention as { window: unknown }).window = { kind: 'dilated', size: 3, dilation: 2 })), { seed: 6 }).eval();
  const ids = randomIds(1, 12, 48, 2);
  assertCacheConsistent(model, ids, [ones(12), [4, 1, 7]]);
  const cache = model.newCache!(1) as KVCache;
  noGrad(() => model.forward({ inputIds: ids, cache }));
  assert.equal(cache.layers[0]!.size, 5);
});
