// KV cache dtypes: the float16 / bfloat16 conversions, paged attention over float16, bfloat16 and int8
// pools (host and WebAssembly kernels) against the float32 reference attention on random block layouts,
// memory accounting by bytes, and engine greedy output with a low-precision cache on the bundled model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../../src/tensor/random.js';
import { tensor } from '../../../src/ops/index.js';
import { attention } from '../../../src/ops/nn.js';
import {
  bf16TableF32,
  decodeRow,
  halfTableF32,
  KV_DTYPES,
  toBf16,
  toHalf,
  type KvDtype,
} from '../../../src/infer/engine/kv-dtype.js';
import { KvPool, bytesPerBlock, layerSpecs } from '../../../src/infer/engine/kv-pool.js';
import { pagedAttention, writeKv, type BatchLayout } from '../../../src/infer/engine/paged-attention.js';
import { loadModelDir } from '../../../src/infer/model-dir-node.js';
import { Engine } from '../../../src/infer/engine/engine.js';
import type { DecoderConfig } from '../../../src/models/config.js';

test('float16: every finite half round-trips; rounding to nearest even, saturation, subnormals', () => {
  const t = halfTableF32();
  for (let h = 0; h < 65536; h++) {
    const e = (h >>> 10) & 0x1f;
    if (e === 31) continue;
    assert.equal(toHalf(t[h]!), h, `half 0x${h.toString(16)}`);
  }
  assert.equal(toHalf(1 / 3), 0x3555);
  assert.equal(toHalf(65504), 0x7bff);
  assert.equal(toHalf(65520), 0x7bff, 'would round to Inf: saturates');
  assert.equal(toHalf(1e9), 0x7bff);
  assert.equal(toHalf(-Infinity), 0xfbff);
  assert.equal(toHalf(1 + 2 ** -11), 0x3c00, 'tie to even (down)');
  assert.equal(toHalf(1 + 3 * 2 ** -11), 0x3c02, 'tie to even (up)');
  assert.equal(toHalf(2 ** -24), 1);
  assert.equal(toHalf(2 ** -25), 0, 'subnormal tie to even (zero)');
  assert.equal(toHalf(3 * 2 ** -25), 2, 'subnormal tie to even (up)');
  assert.ok(Number.isNaN(t[toHalf(NaN)]!));
});

test('bfloat16: round to nearest even, round trip of every finite value', () => {
  const t = bf16TableF32();
  for (let h = 0; h < 65536; h += 7) {
    if (((h >>> 7) & 0xff) === 0xff) continue;
    assert.equal(toBf16(t[h]!), h);
  }
  assert.equal(toBf16(1 + 2 ** -8), 0x3f80, 'tie to even (down)');
  assert.equal(toBf16(1 + 3 * 2 ** -8), 0x3f82, 'tie to even (up)');
  assert.ok(Number.isNaN(t[toBf16(NaN)]!));
});

/** a random flattened batch over shuffled blocks of a pool */
function randomLayout(rng: Rng, numBlocks: number, bs: number, lens: number[]): BatchLayout {
  const free = rng.shuffle(Array.from({ length: numBlocks }, (_, i) => i));
  const tables = lens.map((n) => Int32Array.from({ length: Math.ceil(n / bs) }, () => free.pop()!));
  const T = lens.reduce((s, n) => s + n, 0);
  const [seq, pos] = [new Int32Array(T), new Int32Array(T)];
  let t = 0;
  lens.forEach((n, i) => {
    for (let p = 0; p < n; p++, t++) [seq[t], pos[t]] = [i, p];
  });
  return { blockSize: bs, seq, pos, tables };
}

/** attention of each sequence alone through the float32 attention op, flattened like the paged output */
function referenceAttention(
  layout: BatchLayout,
  lens: number[],
  [q, k, v]: Float32Array[],
  [nh, nkv, dk, dv]: number[],
  window: number | null,
  scale: number,
): Float32Array {
  const T = layout.pos.length;
  const out = new Float32Array(nh * T * dv);
  let off = 0;
  for (const n of lens) {
    const pick = (x: Float32Array, H: number, d: number) => {
      const o = new Float32Array(H * n * d);
      for (let h = 0; h < H; h++) o.set(x.subarray((h * T + off) * d, (h * T + off + n) * d), h * n * d);
      return tensor(o, { shape: [1, H, n, d] });
    };
    const r = attention(pick(q!, nh!, dk!), pick(k!, nkv!, dk!), pick(v!, nkv!, dv!), {
      causal: true,
      scale,
      window: window ?? 0,
    }).data() as Float32Array; // (1, nh, n, dv)
    for (let h = 0; h < nh!; h++) out.set(r.subarray(h * n * dv!, (h + 1) * n * dv!), (h * T + off) * dv!);
    off += n;
  }
  return out;
}

// worst absolute error allowed against float32 attention on unit-normal inputs, per dtype
const TOL: { [D in KvDtype]: number } = { float32: 1e-5, float16: 4e-3, bfloat16: 3e-2, int8: 4e-2 };

test('paged attention with each KV dtype equals the float32 reference attention (host and wasm, random layouts)', () => {
  const rng = new Rng(21);
  const shapes = [
    [4, 2, 16, 16, null],
    [3, 1, 10, 6, null],
    [4, 4, 8, 8, 5],
    [2, 1, 7, 3, 3],
  ] as const;
  for (const dtype of KV_DTYPES) {
    for (const [nh, nkv, dk, dv, window] of shapes) {
      const bs = 4;
      const lens = [1, 17, 6, 9];
      const wasm = new KvPool([{ kvHeads: nkv, kDim: dk, vDim: dv, window }], bs, 1 << 16, 'wasm', dtype);
      const host = new KvPool([{ kvHeads: nkv, kDim: dk, vDim: dv, window }], bs, 1 << 16, 'host', dtype);
      assert.ok(wasm.kernel, 'the wasm kernel loads under node --experimental-wasm-relaxed-simd');
      assert.equal(host.kernel, null);
      const layout = randomLayout(rng, wasm.numBlocks, bs, lens);
      const T = layout.pos.length;
      const rnd = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
      const qkv = [rnd(nh * T * dk), rnd(nkv * T * dk), rnd(nkv * T * dv)];
      for (const pool of [wasm, host]) writeKv(pool.layers[0]!, layout, qkv[1]!, qkv[2]!);
      const want = referenceAttention(layout, lens, qkv, [nh, nkv, dk, dv], window, 0.4);
      const onHost = pagedAttention(host.layers[0]!, layout, qkv[0]!, nh, 0.4);
      const onWasm = wasm.kernel!.run(wasm.layers[0]!, layout, qkv[0]!, nh, 0.4);
      const what = `${dtype} ${[nh, nkv, dk, dv, window]}`;
      let worst = 0;
      for (let i = 0; i < want.length; i++) {
        worst = Math.max(worst, Math.abs(want[i]! - onHost[i]!));
        // both kernels read the same stored values: they agree far more closely than either with float32
        assert.ok(
          Math.abs(onWasm[i]! - onHost[i]!) < 1e-5,
          `${what} wasm vs host at ${i}: ${onWasm[i]} vs ${onHost[i]}`,
        );
      }
      assert.ok(worst < TOL[dtype], `${what}: worst error ${worst} vs float32 attention`);
      if (dtype !== 'float32') assert.ok(worst > 0, `${what}: a lossy dtype that matches exactly is not storing it`);
    }
  }
});

test('int8 rows keep one scale per token per head; copy-on-write copies the scales too', () => {
  const pool = new KvPool([{ kvHeads: 2, kDim: 4, vDim: 4, window: null }], 2, 4096, 'host', 'int8');
  const store = pool.layers[0]!;
  const layout: BatchLayout = {
    blockSize: 2,
    seq: Int32Array.of(0),
    pos: Int32Array.of(1),
    tables: [Int32Array.of(3)],
  };
  const k = Float32Array.of(1, -2, 0.5, 0.25, 100, 50, -25, 0); // heads 0 and 1 of one token, [nkv, T=1, dk]
  writeKv(store, layout, k, k);
  assert.equal(store.kScale![7 * 2 + 0], Math.fround(2 / 127));
  assert.equal(store.kScale![7 * 2 + 1], Math.fround(100 / 127));
  pool.copyBlock(3, 0);
  const row = decodeRow('int8', store.k, store.kScale, 1 * 2 + 1, 4); // block 0, slot 1, head 1
  [100, 50, -25, 0].forEach((x, i) => assert.ok(Math.abs(row[i]! - x) <= 100 / 127 / 2 + 1e-6, `${row[i]} vs ${x}`));
});

test('the pool is sized in bytes: the same memory holds 2x the blocks in 16 bits, ~4x in int8', async () => {
  const { model } = await loadModelDir('models/shakespeare-llama');
  const specs = layerSpecs(model.config as DecoderConfig);
  const f32 = bytesPerBlock(specs, 16, 'float32');
  assert.equal(f32 / 16, 6 * 2 * 4 * 32 * 4, 'shakespeare-llama: 6 layers x (K + V) x 4 KV heads x 32 x 4 bytes');
  assert.equal(bytesPerBlock(specs, 16, 'float16'), f32 / 2);
  assert.equal(bytesPerBlock(specs, 16, 'bfloat16'), f32 / 2);
  assert.equal(bytesPerBlock(specs, 16, 'int8') / 16, 6 * 2 * 4 * (32 + 4));
  const mem = 4 << 20;
  const blocks = (d: KvDtype) => new KvPool(specs, 16, mem, 'host', d).numBlocks;
  const b16 = blocks('float16');
  assert.ok(b16 === 2 * blocks('float32') || b16 === 2 * blocks('float32') + 1, `${b16} float16 blocks`);
  assert.ok(blocks('int8') >= 3.5 * blocks('float32'));
  assert.throws(() => new Engine(model, { kvDtype: 'fp8' as KvDtype, autoRun: false }), /kvDtype.*float32, float16/);
});

test('engine greedy output with float16 / bfloat16 / int8 KV on shakespeare-llama vs float32', async (t) => {
  const { model, tokenizer } = await loadModelDir('models/shakespeare-llama');
  const prompts = ['ROMEO:\n', 'First Citizen:\nBefore we proceed', 'KING'];
  /** per prompt: the greedy tokens and, per token, float32's margin between its top two log-probabilities */
  const run = async (kvDtype: KvDtype) => {
    const engine = new Engine(model, { tokenizer, kvDtype, kvMemoryBytes: 2 << 20 });
    const req = { maxTokens: 48, temperature: 0, ignoreEos: true, logprobs: 2 };
    const hs = prompts.map((prompt) => engine.add({ prompt, ...req }));
    const outs: { ids: number[]; margin: number[] }[] = [];
    for (const h of hs) {
      const o = { ids: [] as number[], margin: [] as number[] };
      for await (const e of h) {
        if (e.token < 0) continue;
        o.ids.push(e.token);
        const top = e.logprobs!.top;
        o.margin.push(top[0]!.logprob - top[1]!.logprob);
      }
      outs.push(o);
    }
    engine.dispose();
    return outs;
  };
  const base = await run('float32');
  // A lower-precision cache may flip a greedy argmax only where float32's top two are nearly tied: the first
  // divergence of each prompt must sit at such a near tie (a broken cache diverges where the choice is clear)
  const check = async (d: KvDtype, tie: number) => {
    const got = await run(d);
    const first = got.map((o, i) => o.ids.findIndex((x, j) => x !== base[i]!.ids[j]));
    t.diagnostic(
      `${d}: first divergence from float32 per prompt (-1: none in 48 tokens) ${first}; float32 margin there ` +
        first.map((f, i) => (f < 0 ? '-' : base[i]!.margin[f]!.toFixed(4))).join(','),
    );
    first.forEach((f, i) => {
      if (f < 0) return;
      const m = base[i]!.margin[f]!;
      assert.ok(m < tie, `${d} KV diverges from float32 at token ${f} of prompt ${i}, where float32's margin is ${m}`);
    });
    return first;
  };
  const f16 = await check('float16', 0.05);
  const bf16 = await check('bfloat16', 0.2);
  await check('int8', 0.5);
  // and the 16-bit caches agree with float32 on most of the output
  assert.ok([...f16, ...bf16].filter((f) => f < 0 || f >= 8).length >= 5, `16-bit KV diverges early: ${f16} ${bf16}`);
});
