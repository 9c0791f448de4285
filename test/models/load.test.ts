// The one checkpoint loader (models/load.ts, models/load-node.ts): no random init on load, refusals with
// messages that name the tensor / file / field, the tokenizer checked against the model, and sizes checked
// before anything is allocated.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { fromHFConfig, type HfJson } from '../../src/models/hf-config.js';
import { getPresetInfo } from '../../src/models/presets.js';
import { createModel } from '../../src/models/registry.js';
import type { LanguageModel } from '../../src/models/model.js';
import { configToJson, loadModelFromFiles, loadWeights, toRaw } from '../../src/models/load.js';
import { loadModel, loadModelDir, saveModel } from '../../src/models/load-node.js';
import { checkModelSize } from '../../src/models/size.js';
import { type RawTensor, serializeSafetensors } from '../../src/io/safetensors.js';
import { Rng } from '../../src/tensor/random.js';
import { bytesTokenizer, charTokenizer } from '../../src/tokenizers/simple.js';

const tinyGpt2 = (set: HfJson = {}) => fromHFConfig({ ...getPresetInfo('tiny-gpt2').hf, vocab_size: 64, ...set });
const rawOf = (m: LanguageModel): RawTensor[] => m.namedParameters().map(([n, t]) => toRaw(n, t));
const charTok = () => charTokenizer('abcdefghijklmnopqrstuvwxyz .,\n');

function files(m: LanguageModel, tensors = rawOf(m), tokenizer: unknown = charTok().toJSON()) {
  const config = JSON.stringify(configToJson(m.config));
  return { config, weights: serializeSafetensors(tensors), tokenizer: JSON.stringify(tokenizer) };
}

/** counts the random numbers drawn while `fn` runs */
function draws(fn: () => void): number {
  const proto = Rng.prototype as unknown as Record<'uniform' | 'normal', () => number>;
  const [u, n] = [proto.uniform, proto.normal];
  let count = 0;
  proto.uniform = function (this: Rng) { count++; return u.call(this); };
  proto.normal = function (this: Rng) { count++; return n.call(this); };
  try {
    fn();
  } finally {
    proto.uniform = u;
    proto.normal = n;
  }
  return count;
}

test("createModel(cfg, { init: 'none' }) draws no random numbers and leaves weight matrices zero", () => {
  for (const preset of ['tiny-gpt2', 'tiny-t5', 'tiny-mamba', 'tiny-deepseek', 'tiny-lstm', 'tiny-bert']) {
    const cfg = fromHFConfig(getPresetInfo(preset).hf);
    let m: LanguageModel | null = null;
    assert.equal(draws(() => { m = createModel(cfg, { init: 'none' }); }), 0, `${preset}: random numbers drawn`);
    for (const [name, t] of m!.namedParameters()) {
      const zero = (t.data() as Float32Array).every((v) => v === 0);
      if (t.ndim >= 2) assert.ok(zero, `${preset}: ${name} is not zero-filled`);
    }
    assert.ok(draws(() => createModel(cfg).dispose()) > 0, `${preset}: the default init draws`);
    m!.dispose();
  }
  assert.throws(() => createModel(tinyGpt2(), { init: 'zeros' as 'none' }), /init must be 'random' or 'none'/);
});

test('loadModelFromFiles: config + safetensors bytes + tokenizer.json give the same model, no random draws', () => {
  const src = createModel(tinyGpt2({ vocab_size: 64 }), { seed: 3 });
  const f = files(src);
  let loaded: ReturnType<typeof loadModelFromFiles> | null = null;
  assert.equal(draws(() => { loaded = loadModelFromFiles(f); }), 0);
  const { model, tokenizer, config } = loaded!;
  assert.deepEqual(config, src.config);
  for (const [name, t] of src.namedParameters()) {
    const got = model.namedParameters().find(([n]) => n === name)![1];
    assert.deepEqual(got.data(), t.data(), name);
  }
  assert.deepEqual(tokenizer!.encode('abc'), charTok().encode('abc'));
  model.dispose();
  // shards: { file: bytes }, a tensor's file named in errors, a tensor in two shards refused
  const raw = rawOf(src);
  const split = (r: RawTensor[]) => ({
    'a.safetensors': serializeSafetensors(r.slice(0, 3)),
    'b.safetensors': serializeSafetensors(r.slice(3)),
  });
  const shards = split(raw);
  const sharded = loadModelFromFiles({ config: f.config, weights: shards });
  assert.deepEqual(sharded.model.namedParameters()[5]![1].data(), src.namedParameters()[5]![1].data());
  assert.equal(sharded.tokenizer, null);
  sharded.model.dispose();
  const twice = { ...shards, 'c.safetensors': serializeSafetensors(raw.slice(2, 3)) };
  assert.throws(() => loadModelFromFiles({ config: f.config, weights: twice }),
    /c\.safetensors: tensor "[^"]+" is also in a\.safetensors/);
  const nan = raw.map((r, i) => (i === 4 ? { ...r, data: (r.data as Float32Array).map(() => NaN) } : r));
  assert.throws(() => loadModelFromFiles({ config: f.config, weights: split(nan) }),
    new RegExp(`tensor "${raw[4]!.name.replace(/\./g, '\\.')}" in b\\.safetensors holds a non-finite value`));
  src.dispose();
});

test('load refuses a float tensor labelled I32, naming the tensor and the file', () => {
  const src = createModel(tinyGpt2());
  const tensors = rawOf(src).map((r) => r.name === 'transformer.h.0.attn.c_attn.weight'
    ? { ...r, dtype: 'int32' as const, data: new Int32Array((r.data as Float32Array).buffer.slice(0)) } : r);
  assert.throws(() => loadModelFromFiles(files(src, tensors)),
    /tensor "transformer\.h\.0\.attn\.c_attn\.weight" in model\.safetensors is stored as int32 data, .* float32/);
  src.dispose();
});

test('load refuses NaN / Inf weights, naming the tensor (float32 and bfloat16)', () => {
  const src = createModel(tinyGpt2());
  const poison = (v: number) => rawOf(src).map((r) => {
    if (r.name !== 'transformer.h.1.mlp.c_fc.weight') return r;
    const data = Float32Array.from(r.data as Float32Array);
    data[7] = v;
    return { ...r, data };
  });
  assert.throws(() => loadModelFromFiles(files(src, poison(NaN))),
    /tensor "transformer\.h\.1\.mlp\.c_fc\.weight" in model\.safetensors holds a non-finite value \(NaN at index 7/);
  assert.throws(() => loadModelFromFiles(files(src, poison(-Infinity))), /c_fc\.weight.*non-finite value \(-Infinity/);
  const half = createModel(tinyGpt2()).toDType('bfloat16');
  const nanAt3 = (r: RawTensor) => ({ ...r, data: Uint16Array.from(r.data, (b, i) => (i === 3 ? 0x7fc0 : b)) });
  const bf = rawOf(half).map((r) => (r.name === 'transformer.wte.weight' ? nanAt3(r) : r));
  assert.throws(() => loadModelFromFiles(files(half, bf)),
    /tensor "transformer\.wte\.weight" in model\.safetensors holds a non-finite value \(NaN at index 3/);
  half.dispose();
  src.dispose();
});

test('load checks the tokenizer against the model: duplicate ids, ids beyond vocab_size', () => {
  const src = createModel(tinyGpt2());
  const dup = charTok().toJSON() as { model: { vocab: Record<string, number> } };
  dup.model.vocab.b = dup.model.vocab.a!;
  assert.throws(() => loadModelFromFiles(files(src, rawOf(src), dup)),
    /tokenizer\.json: id \d+ is given to two tokens, "a" and "b"/);
  assert.throws(() => loadModelFromFiles(files(src, rawOf(src), bytesTokenizer().toJSON())),
    /tokenizer\.json: the tokenizer uses ids up to 255 .*beyond the model's vocab_size 64/);
  src.dispose();
});

test('sizes are checked before allocating: hidden_size=1e12 and n_layer=1e6 fail at once, saying how much, why', () => {
  const cases = [[{ n_embd: 1e12 }, /hidden=1000000000000/], [{ n_layer: 1e6 }, /layers=1000000/]] as const;
  for (const [set, field] of cases) {
    const cfg = tinyGpt2(set);
    let drawn = -1;
    assert.throws(() => { drawn = draws(() => createModel(cfg)); }, (e: Error) => {
      assert.match(e.message, /model too large: .* asks for [\d.]+[TB] parameters \([\d.]+ [TG]iB as float32\), /);
      assert.match(e.message, /over the limit of 32\.00 GiB/);
      assert.match(e.message, field);
      assert.match(e.message, /largest parts: \w+ [\d.]+[TBMK]? \(/);
      assert.match(e.message, /maxBytes/);
      return true;
    });
    assert.equal(drawn, -1);
    // a directory / fetched files with that config fail the same way
    const small = createModel(tinyGpt2());
    const f = { ...files(small), config: JSON.stringify({ ...configToJson(small.config), ...(set as HfJson) }) };
    assert.throws(() => loadModelFromFiles(f), /model too large/);
    small.dispose();
  }
  assert.throws(() => checkModelSize(tinyGpt2(), { maxBytes: 1000 }), /over the limit of 1000 B/);
  assert.throws(() => createModel(tinyGpt2({ vocab_size: 3_000_000, n_embd: 1024, n_layer: 1 })),
    /one tensor, the token embedding vocabSize × hidden = 3000000 × 1024 \(3\.07B elements\), exceeds the 2\.15B-/);
  checkModelSize(tinyGpt2({ n_layer: 24 }));
});

test('non-strict loadWeights initialises missing tensors by the family plan instead of leaving zeros', () => {
  const src = createModel(tinyGpt2());
  const dst = createModel(src.config, { init: 'none' });
  const partial = rawOf(src).filter((r) => r.name !== 'transformer.h.0.mlp.c_fc.weight');
  const { missing } = loadWeights(dst, partial, { strict: false });
  assert.deepEqual(missing, ['transformer.h.0.mlp.c_fc.weight']);
  const w = dst.namedParameters().find(([n]) => n === 'transformer.h.0.mlp.c_fc.weight')![1].data() as Float32Array;
  assert.ok(w.some((v) => v !== 0));
  assert.throws(() => loadWeights(createModel(src.config, { init: 'none' }), rawOf(src).slice(1)),
    /missing parameters: transformer\.wte\.weight/);
  src.dispose();
  dst.dispose();
});

test('loadModelDir / loadModel (Node): the bundled model loads with its tokenizer; bad paths named', async () => {
  const { model, tokenizer, config } = await loadModelDir('models/shakespeare-char');
  assert.equal(config.vocabSize, 65);
  assert.ok(tokenizer && tokenizer.vocabSize <= 65);
  model.dispose();
  const dir = await mkdtemp(join(tmpdir(), 'lineage-load-'));
  try {
    await assert.rejects(loadModelDir(join(dir, 'nope')), /nope: not a model directory \(it does not exist\)/);
    await writeFile(join(dir, 'file'), 'x');
    await assert.rejects(loadModelDir(join(dir, 'file')), /file: not a model directory \(a file/);
    const src = createModel(tinyGpt2());
    await saveModel(src, join(dir, 'm'));
    const asInt = (r: RawTensor) => ({ ...r, dtype: 'int32' as const, data: new Int32Array(r.data.length) });
    const bad = rawOf(src).map((r) => (r.name === 'transformer.wpe.weight' ? asInt(r) : r));
    await writeFile(join(dir, 'm', 'model.safetensors'), serializeSafetensors(bad));
    const file = join(dir, 'm', 'model.safetensors').replace(/[.\\/]/g, '\\$&');
    const want = new RegExp(`tensor "transformer\\.wpe\\.weight" in ${file} is stored as int32`);
    await assert.rejects(loadModel(join(dir, 'm')), want);
    await mkdir(join(dir, 'd'));
    await writeFile(join(dir, 'd', 'config.json'), JSON.stringify(configToJson(src.config)));
    await mkdir(join(dir, 'd', 'model.safetensors'));
    await assert.rejects(loadModelDir(join(dir, 'd')),
      /model\.safetensors: is a directory, expected a safetensors file/);
    src.dispose();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
