import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { planShards, readCheckpoint, readSafetensorsFile, writeCheckpoint } from '../../src/io/checkpoint-node.js';
import { type RawTensor, serializeSafetensors } from '../../src/io/safetensors.js';
import { fromHFConfig, toHFConfig } from '../../src/models/hf-config.js';
import { getPreset } from '../../src/models/presets.js';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'lineage-ckpt-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Deterministic tensors (a simple LCG; no Math.random). */
function tensors(): RawTensor[] {
  let s = 7;
  const next = () => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5;
  const f32 = (name: string, shape: number[]): RawTensor => ({
    name,
    dtype: 'float32',
    shape,
    data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, next),
  });
  return [
    f32('model.embed_tokens.weight', [256, 16]),
    f32('model.layers.0.self_attn.q_proj.weight', [16, 16]),
    f32('model.layers.1.self_attn.q_proj.weight', [16, 16]),
    { name: 'model.norm.weight', dtype: 'bfloat16', shape: [16], data: new Uint16Array(16).fill(0x3f80) },
    {
      name: 'lm_head.weight',
      dtype: 'float16',
      shape: [256, 16],
      data: Uint16Array.from({ length: 4096 }, (_, i) => i),
    },
  ];
}

function assertSameTensors(got: RawTensor[], want: RawTensor[]): void {
  const byName = new Map(got.map((t) => [t.name, t]));
  assert.equal(got.length, want.length);
  for (const t of want) {
    const g = byName.get(t.name);
    assert.ok(g, `missing ${t.name}`);
    assert.equal(g.dtype, t.dtype);
    assert.deepEqual(g.shape, t.shape);
    assert.deepEqual(
      Buffer.from(g.data.buffer, g.data.byteOffset, g.data.byteLength),
      Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength),
    );
  }
}

test('single-file checkpoint round trip, config from a ModelConfig, tokenizer copied', () => {
  return withDir(async (dir) => {
    const tok = join(dir, 'tok-src.json');
    await writeFile(tok, '{"model": {"type": "BPE"}}');
    const out = join(dir, 'model');
    await writeCheckpoint(out, toHFConfig(getPreset('tiny-llama')), tensors(), { tokenizerPath: tok });
    assert.deepEqual((await readdir(out)).sort(), ['config.json', 'model.safetensors', 'tokenizer.json']);
    const ck = await readCheckpoint(out);
    assert.deepEqual(fromHFConfig(ck.config), getPreset('tiny-llama'));
    assert.deepEqual(ck.metadata, { format: 'pt' });
    assertSameTensors(ck.tensors, tensors());
    assert.equal(await readFile(join(out, 'tokenizer.json'), 'utf8'), '{"model": {"type": "BPE"}}');
  });
});

test('sharded checkpoint round trip with index', () => {
  return withDir(async (dir) => {
    await writeCheckpoint(dir, { model_type: 'llama', note: 'raw config.json is written as given' }, tensors(), {
      maxShardBytes: 10000,
    });
    const files = (await readdir(dir)).sort();
    assert.deepEqual(files, [
      'config.json',
      'model-00001-of-00003.safetensors',
      'model-00002-of-00003.safetensors',
      'model-00003-of-00003.safetensors',
      'model.safetensors.index.json',
    ]);
    const index = JSON.parse(await readFile(join(dir, 'model.safetensors.index.json'), 'utf8'));
    const total = tensors().reduce((a, t) => a + t.data.byteLength, 0);
    assert.equal(index.metadata.total_size, total);
    assert.equal(index.weight_map['lm_head.weight'], 'model-00003-of-00003.safetensors');
    assert.deepEqual(Object.keys(index.weight_map), Object.keys(index.weight_map).sort());
    const ck = await readCheckpoint(dir);
    assert.equal(ck.config.note, 'raw config.json is written as given');
    assertSameTensors(ck.tensors, tensors());

    // rewriting unsharded removes the old shards and index, leaves no temp files
    await writeCheckpoint(dir, { model_type: 'llama' }, tensors().slice(0, 2));
    assert.deepEqual((await readdir(dir)).sort(), ['config.json', 'model.safetensors']);
    assertSameTensors((await readCheckpoint(dir)).tensors, tensors().slice(0, 2));
  });
});

test('planShards packs greedily, oversized tensors alone', () => {
  const ts = tensors(); // bytes: 16384, 1024, 1024, 32, 8192
  const sizes = (max: number) => planShards(ts, max).map((s) => s.map((t) => t.data.byteLength));
  assert.deepEqual(sizes(4096), [[16384], [1024, 1024, 32], [8192]]);
  assert.deepEqual(sizes(1e9), [[16384, 1024, 1024, 32, 8192]]);
  assert.throws(() => planShards(ts, 0), /maxShardBytes must be > 0/);
});

test('a failed write leaves no file behind', () => {
  return withDir(async (dir) => {
    const bad: RawTensor[] = [...tensors(), { name: 'bad', dtype: 'float32', shape: [3], data: new Float32Array(2) }];
    await assert.rejects(
      writeCheckpoint(dir, { model_type: 'llama' }, bad, { maxShardBytes: 4096 }),
      /tensor "bad": shape \[3\] has 3 elements/,
    );
    assert.deepEqual(await readdir(dir), []);
    await assert.rejects(
      writeCheckpoint(dir, { model_type: 'llama' }, tensors(), { tokenizerPath: join(dir, 'nope.json') }),
      /ENOENT/,
    );
    assert.deepEqual(await readdir(dir), []);
  });
});

test('readCheckpoint errors name the file and field', () => {
  return withDir(async (dir) => {
    await assert.rejects(readCheckpoint(dir), /config\.json/);
    await writeFile(join(dir, 'config.json'), '{"model_type": ');
    await assert.rejects(readCheckpoint(dir), /config\.json is not valid JSON/);
    await writeFile(join(dir, 'config.json'), '{"model_type": "llama"}');
    await assert.rejects(
      readCheckpoint(dir),
      /no model\.safetensors or model\.safetensors\.index\.json \(found: config\.json\)/,
    );

    await writeFile(
      join(dir, 'model.safetensors.index.json'),
      JSON.stringify({ weight_map: { w: '../../etc/passwd.safetensors' } }),
    );
    await assert.rejects(readCheckpoint(dir), /weight_map\["w"\] must name a \.safetensors file in the same directory/);

    await writeFile(join(dir, 'a.safetensors'), serializeSafetensors(tensors().slice(0, 1)));
    await writeFile(
      join(dir, 'model.safetensors.index.json'),
      JSON.stringify({ weight_map: { 'model.norm.weight': 'a.safetensors' } }),
    );
    await assert.rejects(
      readCheckpoint(dir),
      /a\.safetensors lacks tensors the weight_map assigns to it: model\.norm\.weight/,
    );

    const truncated = serializeSafetensors(tensors()).subarray(0, 500);
    await writeFile(join(dir, 'model.safetensors'), truncated);
    await assert.rejects(readCheckpoint(dir), /safetensors .*model\.safetensors: .*lies outside the .*-byte data area/);
  });
});

test('readSafetensorsFile can load a subset', () => {
  return withDir(async (dir) => {
    const path = join(dir, 'x.safetensors');
    await writeFile(path, serializeSafetensors(tensors()));
    const part = await readSafetensorsFile(path, new Set(['model.norm.weight']));
    assert.deepEqual(
      part.tensors.map((t) => t.name),
      ['model.norm.weight'],
    );
  });
});
