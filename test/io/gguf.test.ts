import { test } from 'node:test';
import assert from 'node:assert/strict';

import { GGUF_VALUE_TYPES, gguf, readGguf, writeGguf, type GgufTensor, type GgufValue } from '../../src/io/gguf.js';
import { defaultTokens, llamaGguf, llamaMetadata, permuteRope, type LlamaGgufSpec } from '../../src/io/gguf-llama.js';

function sampleMeta(): Map<string, GgufValue> {
  return new Map<string, GgufValue>([
    ['general.architecture', gguf.str('llama')],
    ['u8', { type: 'uint8', value: 255 }],
    ['i8', { type: 'int8', value: -128 }],
    ['u16', { type: 'uint16', value: 65535 }],
    ['i16', { type: 'int16', value: -32768 }],
    ['u32', gguf.u32(4294967295)],
    ['i32', gguf.i32(-2147483648)],
    ['f32', gguf.f32(1.5)],
    ['f64', { type: 'float64', value: Math.PI }],
    ['u64', { type: 'uint64', value: 2n ** 63n }],
    ['i64', { type: 'int64', value: -(2n ** 62n) }],
    ['yes', gguf.bool(true)],
    ['unicode', gguf.str('héllo ✓')],
    ['strings', gguf.array('string', ['a', '', 'ünï'])],
    ['ints', gguf.array('int32', [1, -2, 3])],
    ['empty', gguf.array('float32', [])],
  ]);
}

function sampleTensors(): GgufTensor[] {
  return [
    { name: 'a', dims: [3, 2], type: 'F32', data: Float32Array.from([1, -2, 3.5, 0, 1e-8, -7]) },
    { name: 'b.half', dims: [5], type: 'F16', data: Uint16Array.from([0x3c00, 0xbc00, 0x7c00, 1, 0]) },
    { name: 'c.bf16', dims: [1, 1, 3], type: 'BF16', data: Uint16Array.from([0x3f80, 0xbf80, 0x7f80]) },
  ];
}

test('gguf: metadata of every value type and F32/F16/BF16 tensors round-trip', () => {
  const bytes = writeGguf({ metadata: sampleMeta(), tensors: sampleTensors() });
  const back = readGguf(bytes);
  assert.equal(back.version, 3);
  assert.equal(back.alignment, 32);
  assert.deepEqual([...back.metadata.keys()], [...sampleMeta().keys()]);
  for (const [k, v] of sampleMeta()) {
    const got = back.metadata.get(k)!;
    if (v.type === 'float32') assert.equal(got.type === 'float32' && got.value, Math.fround(v.value as number), k);
    else assert.deepEqual(got, v, k);
  }
  assert.deepEqual(back.tensors, sampleTensors());
});

test('gguf: the layout follows the spec (magic, version, counts, aligned data offsets)', () => {
  const bytes = writeGguf({ metadata: new Map([['general.alignment', gguf.u32(64)]]), tensors: sampleTensors() });
  const dv = new DataView(bytes.buffer, bytes.byteOffset);
  assert.equal(new TextDecoder().decode(bytes.subarray(0, 4)), 'GGUF');
  assert.equal(dv.getUint32(4, true), 3);
  assert.equal(dv.getBigUint64(8, true), 3n); // tensors
  assert.equal(dv.getBigUint64(16, true), 1n); // metadata
  assert.equal(dv.getUint32(24 + 8 + 'general.alignment'.length, true), GGUF_VALUE_TYPES.uint32);
  const back = readGguf(bytes);
  assert.equal(back.alignment, 64);
  assert.equal(bytes.length % 64, 0);
  assert.deepEqual(back.tensors, sampleTensors());
  // the first tensor's data starts at the first aligned byte after the infos: its values are there
  const first = bytes.length - 3 * 64; // three tensors, each padded to one 64-byte slot
  assert.deepEqual(new Float32Array(bytes.slice(first, first + 24).buffer), sampleTensors()[0]!.data);
});

test('gguf: bad tensors and bad files are clear errors', () => {
  const t = (x: Partial<GgufTensor>): GgufTensor => ({ ...sampleTensors()[0]!, ...x });
  const w =
    (ts: GgufTensor[], meta = new Map<string, GgufValue>()) =>
    () =>
      writeGguf({ metadata: meta, tensors: ts });
  assert.throws(w([t({ dims: [4, 2] })]), /tensor "a" \(F32, dims \[4, 2\]\) needs a Float32Array of 8 elements/);
  assert.throws(w([t({ dims: [] })]), /dims \[\] must be 1 to 4/);
  assert.throws(w([t({}), t({})]), /tensor name "a" appears twice/);
  assert.throws(w([], new Map([['general.alignment', gguf.u32(12)]])), /alignment must be a positive multiple of 8/);
  assert.throws(w([], new Map([['x', { type: 'uint32', value: 'no' }]])), /metadata "x" \(uint32\) needs a number/);
  const good = writeGguf({ metadata: sampleMeta(), tensors: sampleTensors() });
  assert.throws(() => readGguf(good.slice(0, 40)), /file ends at byte 40/);
  assert.throws(() => readGguf(good.slice(0, good.length - 30)), /tensor "c.bf16" data .* runs past the file end/);
  const bad = good.slice();
  bad[0] = 0x58;
  assert.throws(() => readGguf(bad), /not a GGUF file/);
  const v9 = good.slice();
  new DataView(v9.buffer).setUint32(4, 9, true);
  assert.throws(() => readGguf(v9), /version 9 is not supported/);
});

test('gguf llama: permuteRope pairs (i, i + hd/2) as (2i, 2i + 1) per head, rows whole', () => {
  // 2 heads of head dim 4, 3 columns: row r holds r*10 + c
  const w = Float32Array.from({ length: 8 * 3 }, (_, i) => Math.floor(i / 3) * 10 + (i % 3));
  const p = permuteRope(w, 2, 3);
  const rows = Array.from({ length: 8 }, (_, r) => p[r * 3]! / 10);
  assert.deepEqual(rows, [0, 2, 1, 3, 4, 6, 5, 7]);
  assert.deepEqual([...p.subarray(3, 6)], [20, 21, 22]);
});

test('gguf llama: metadata keys llama.cpp needs, tensors under its names, and the file reads back', () => {
  const s: LlamaGgufSpec = {
    vocabSize: 260,
    hidden: 8,
    layers: 2,
    heads: 2,
    kvHeads: 1,
    ffn: 12,
    context: 64,
    rmsEps: 1e-5,
    ropeTheta: 10000,
  };
  const sizes: Record<string, number> = { embed_tokens: 260 * 8, lm_head: 260 * 8, q_proj: 64, o_proj: 64 };
  Object.assign(sizes, { k_proj: 32, v_proj: 32, gate_proj: 96, up_proj: 96, down_proj: 96 });
  const asked: string[] = [];
  const weight = (name: string) => {
    asked.push(name);
    const key = Object.keys(sizes).find((k) => name.includes(k));
    return Float32Array.from({ length: key ? sizes[key]! : 8 }, (_, i) => i + asked.length);
  };
  const back = readGguf(llamaGguf(s, weight));
  const meta = (k: string) => {
    const v = back.metadata.get(k);
    assert.ok(v, `missing ${k}`);
    return v.type === 'array' ? v.values : v.value;
  };
  assert.equal(meta('general.architecture'), 'llama');
  assert.equal(meta('llama.block_count'), 2);
  assert.equal(meta('llama.attention.head_count_kv'), 1);
  assert.equal(meta('llama.rope.dimension_count'), 4);
  assert.equal(meta('llama.feed_forward_length'), 12);
  assert.equal((meta('tokenizer.ggml.tokens') as string[]).length, 260);
  assert.equal((meta('tokenizer.ggml.tokens') as string[])[3 + 0x0a], '<0x0A>');
  const byName = new Map(back.tensors.map((t) => [t.name, t]));
  assert.equal(back.tensors.length, 2 + 2 * 9 + 1);
  assert.deepEqual(byName.get('blk.1.attn_k.weight')!.dims, [8, 4]);
  assert.deepEqual(byName.get('blk.0.ffn_down.weight')!.dims, [12, 8]);
  assert.deepEqual(byName.get('output.weight')!.dims, [8, 260]);
  assert.ok(asked.includes('model.layers.1.post_attention_layernorm.weight'));
  assert.throws(() => llamaMetadata({ ...s, vocabSize: 100 }), /needs vocabSize >= 259/);
  assert.throws(() => llamaMetadata({ ...s, heads: 3 }), /do not divide/);
  assert.equal(defaultTokens(259).at(-1), '<0xFF>');
});

test('gguf llama: node-llama-cpp reads our file (an independent reader)', async (t) => {
  // optional, installed by hand (bench/llamacpp-node.ts says why): a computed name keeps the build independent of it
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  let mod: any;
  const name = 'node-llama-cpp';
  try {
    mod = await import(name);
  } catch {
    return t.skip('node-llama-cpp is not installed');
  }
  const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const os = await import('node:os');
  const s: LlamaGgufSpec = {
    vocabSize: 259,
    hidden: 16,
    layers: 1,
    heads: 4,
    kvHeads: 2,
    ffn: 24,
    context: 32,
    rmsEps: 1e-6,
    ropeTheta: 5e5,
  };
  const n = (name: string) =>
    /embed|lm_head/.test(name)
      ? 259 * 16
      : /norm/.test(name)
        ? 16
        : /[kv]_proj/.test(name)
          ? 128
          : /mlp/.test(name)
            ? 384
            : 256;
  const dir = mkdtempSync(join(os.tmpdir(), 'lineage-gguf-'));
  try {
    const path = join(dir, 'm.gguf');
    writeFileSync(
      path,
      llamaGguf(s, (name) => new Float32Array(n(name)).fill(0.5)),
    );
    const info = await mod.readGgufFileInfo(path, { logWarnings: false });
    assert.equal(info.version, 3);
    const m = info.metadata as unknown as Record<string, Record<string, unknown>>;
    assert.equal((m.general as { architecture: string }).architecture, 'llama');
    const llama = m.llama as {
      block_count: number;
      attention: { head_count_kv: number; layer_norm_rms_epsilon: number };
    };
    assert.equal(llama.block_count, 1);
    assert.equal(llama.attention.head_count_kv, 2);
    assert.ok(Math.abs(llama.attention.layer_norm_rms_epsilon - 1e-6) < 1e-12);
    const tensors = new Map<string, { dimensions: (number | bigint)[] }>(
      info.fullTensorInfo!.map((x: { name: string; dimensions: (number | bigint)[] }) => [x.name, x]),
    );
    assert.equal(tensors.size, 12);
    assert.deepEqual(tensors.get('blk.0.attn_k.weight')!.dimensions.map(Number), [16, 8]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
