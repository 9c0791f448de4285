// The engine's parts alone: partial top-k selection and the sampler chain against full-sort references,
// the block manager (ref counts, copy-on-write, prefix hashes, LRU eviction), stop-string hold-back, and
// the paged attention kernel against the reference attention op on random block layouts.
import { KvPool, bytesPerBlock } from '../../../src/infer/engine/kv-pool.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../../src/tensor/random.js';
import { attention, tensor } from '../../../src/ops/index.js';
import { BlockManager } from '../../../src/infer/engine/block-manager.js';
import { pagedAttention, writeKv, type BatchLayout } from '../../../src/infer/engine/paged-attention.js';
import { drawToken, topIndices, applyPenalties } from '../../../src/infer/engine/sampler.js';
import { StopText } from '../../../src/infer/engine/stop-text.js';

const randRow = (n: number, seed: number) => {
  const r = new Rng(seed);
  return Float32Array.from({ length: n }, () => r.normal() * 3);
};

test('topIndices equals the head of a full sort (ties by lower id)', () => {
  for (const seed of [1, 2, 3]) {
    const row = randRow(300, seed);
    row[7] = row[8] = 100;
    const sorted = Array.from(row.keys()).sort((a, b) => row[b]! - row[a]! || a - b);
    for (const k of [1, 5, 64, 300, 400]) assert.deepEqual(topIndices(row, k), sorted.slice(0, Math.min(k, 300)));
  }
});

/** the filtered distribution drawToken samples from, computed with a full sort */
function referenceDist(row: Float32Array, t: number, topK: number, topP: number, minP: number): Map<number, number> {
  const ids = Array.from(row.keys())
    .sort((a, b) => row[b]! - row[a]! || a - b)
    .slice(0, topK || row.length);
  const w = ids.map((i) => Math.exp((row[i]! - row[ids[0]!]!) / t));
  const z = Array.from(row).reduce((s, x) => s + Math.exp((x - row[ids[0]!]!) / t), 0);
  let n = 0;
  let cum = 0;
  const mass = w.reduce((s, x) => s + x, 0);
  while (n < ids.length && cum < topP * mass) cum += w[n++]!;
  const keep = ids.slice(0, Math.max(1, n)).filter((_, j) => w[j]! / z >= minP * (w[0]! / z));
  const tot = keep.reduce((s, i) => s + w[ids.indexOf(i)]!, 0);
  return new Map(keep.map((i) => [i, w[ids.indexOf(i)]! / tot]));
}

test('drawToken: empirical frequencies follow the top-k / top-p / min-p filtered distribution', () => {
  const row = randRow(200, 5).map((x) => x / 2);
  for (const [t, k, p, m] of [
    [1, 0, 0.9, 0],
    [0.7, 10, 1, 0],
    [1.3, 0, 1, 0.05],
    [1, 30, 0.8, 0.02],
    [1, 0, 1, 0],
  ] as const) {
    const want = referenceDist(row, t, k, p, m);
    const rng = new Rng(9);
    const counts = new Map<number, number>();
    const N = 20000;
    for (let i = 0; i < N; i++) {
      const id = drawToken(row, { temperature: t, topK: k, topP: p, minP: m }, rng);
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    for (const id of counts.keys())
      assert.ok(want.has(id), `token ${id} is outside the filtered set (t ${t} k ${k} p ${p} m ${m})`);
    for (const [id, q] of want) {
      const f = (counts.get(id) ?? 0) / N;
      assert.ok(Math.abs(f - q) < 4 * Math.sqrt((q * (1 - q)) / N) + 1e-3, `token ${id}: ${f} vs ${q}`);
    }
  }
  assert.equal(drawToken(row, { temperature: 0 }, new Rng(1)), topIndices(row, 1)[0]);
});

test('penalties: repetition divides positive / multiplies negative logits; presence and frequency subtract', () => {
  const row = Float32Array.of(2, -2, 1, 0.5);
  applyPenalties(
    row,
    { repetitionPenalty: 2, presencePenalty: 0.5, frequencyPenalty: 0.25, logitBias: { 3: 1 } },
    {
      seen: new Set([0, 1]),
      counts: new Map([[1, 2]]),
    },
  );
  assert.deepEqual(Array.from(row), [1, -4 - 0.5 - 0.5, 1, 1.5]);
});

test('block manager: ref counts, copy-on-write of a shared partial block, prefix hits, LRU eviction', () => {
  const bm = new BlockManager(6, 4);
  const copies: [number, number][] = [];
  const copy = (a: number, b: number) => copies.push([a, b]);
  const toks = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const a = { blocks: [] as number[], hashes: [] as string[] };
  assert.ok(bm.ensure(a, 0, 10, copy));
  bm.commit(a, toks, 10);
  assert.equal(a.hashes.length, 2);
  const b = bm.fork(a);
  assert.equal(bm.refCount(a.blocks[2]!), 2);
  assert.ok(bm.ensure(b, 10, 11, copy)); // b writes into the shared partial block: copied first
  assert.equal(copies.length, 1);
  assert.notEqual(b.blocks[2], a.blocks[2]);
  assert.equal(bm.numUsed, 4);
  const prefix = a.blocks.slice(0, 2);
  bm.freeTable(b);
  bm.freeTable(a);
  assert.equal(bm.numUsed, 0);
  const hit = bm.matchPrefix([...toks, 11]);
  assert.equal(hit.tokens, 8);
  assert.deepEqual(hit.table.blocks, prefix);
  bm.freeTable(hit.table);
  // a full prompt never hits its last block: one token must be computed
  const eight = bm.matchPrefix(toks.slice(0, 8));
  assert.equal(eight.tokens, 4);
  bm.freeTable(eight.table);
  // take every block: the cached ones are evicted, least recently freed first
  const c = { blocks: [] as number[], hashes: [] as string[] };
  assert.ok(bm.ensure(c, 0, 24, copy));
  assert.ok(!bm.ensure(c, 24, 25, copy), 'out of blocks: refused, nothing taken');
  bm.freeTable(c);
  assert.equal(bm.matchPrefix([...toks, 11]).tokens, 0);
});

test('stop text: a stop string spanning pushes is cut, text that might start one is held back', () => {
  const chars = 'hello world. bye';
  const stream = { i: 0, push: (id: number) => chars[id]!, flush: () => '' };
  const st = new StopText(stream, ['ld.', 'zz']);
  let shown = '';
  let stopped = false;
  for (let i = 0; i < chars.length && !stopped; i++) {
    const r = st.push(i);
    shown += r.text;
    stopped = r.stopped;
  }
  assert.ok(stopped);
  assert.equal(shown, 'hello wor');
  const st2 = new StopText(stream, ['zz']);
  let s2 = '';
  for (let i = 0; i < 5; i++) s2 += st2.push(i).text;
  assert.equal(s2 + st2.finish(), 'hello');
});

test('paged attention equals the reference attention on random block layouts (GQA, windows)', () => {
  const rng = new Rng(3);
  const [nh, nkv, dk, dv, bs] = [4, 2, 8, 6, 4];
  for (const window of [null, 5]) {
    const lens = [9, 1, 14];
    const numBlocks = 16;
    // a float32 pool on host arrays, the host kernel's storage
    const kvSpec = { kvHeads: nkv, kDim: dk, vDim: dv, window: window };
    const store = new KvPool([kvSpec], bs, numBlocks * bytesPerBlock([kvSpec], bs), 'host').layers[0]!;
    const free = rng.shuffle(Array.from({ length: numBlocks }, (_, i) => i));
    const tables = lens.map((n) => Int32Array.from({ length: Math.ceil(n / bs) }, () => free.pop()!));
    const T = lens.reduce((s, n) => s + n, 0);
    const seq = new Int32Array(T);
    const pos = new Int32Array(T);
    let t = 0;
    lens.forEach((n, i) => {
      for (let p = 0; p < n; p++, t++) [seq[t], pos[t]] = [i, p];
    });
    const layout: BatchLayout = { blockSize: bs, seq, pos, tables };
    const rnd = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
    const [q, k, v] = [rnd(nh * T * dk), rnd(nkv * T * dk), rnd(nkv * T * dv)];
    writeKv(store, layout, k, v);
    const out = pagedAttention(store, layout, q, nh, 0.3);
    // reference: each sequence alone through the attention op
    let off = 0;
    for (const n of lens) {
      const pick = (x: Float32Array, H: number, d: number) => {
        const o = new Float32Array(H * n * d);
        for (let h = 0; h < H; h++) o.set(x.subarray((h * T + off) * d, (h * T + off + n) * d), h * n * d);
        return tensor(o, { shape: [1, H, n, d] });
      };
      const ref = attention(pick(q, nh, dk), pick(k, nkv, dk), pick(v, nkv, dv), {
        causal: true,
        scale: 0.3,
        window: window ?? 0,
      }).data();
      const got = pick(out, nh, dv).data();
      for (let i = 0; i < ref.length; i++)
        assert.ok(Math.abs(ref[i]! - got[i]!) < 1e-5, `window ${window}: ${got[i]} vs ${ref[i]}`);
      off += n;
    }
  }
});

test('the WebAssembly paged kernel equals the host kernel (GQA, MLA-like odd dims, windows, shuffled blocks)', async () => {
  const { KvPool } = await import('../../../src/infer/engine/kv-pool.js');
  const rng = new Rng(8);
  for (const [nh, nkv, dk, dv, window] of [
    [4, 2, 16, 16, null],
    [3, 1, 10, 6, null],
    [4, 4, 8, 8, 5],
    [2, 1, 7, 3, 3],
  ] as const) {
    const bs = 4;
    const pool = new KvPool([{ kvHeads: nkv, kDim: dk, vDim: dv, window }], bs, 1 << 18);
    assert.ok(pool.kernel, 'the wasm kernel loads under node --experimental-wasm-relaxed-simd');
    const store = pool.layers[0]!;
    const lens = [1, 17, 6, 9];
    const free = rng.shuffle(Array.from({ length: pool.numBlocks }, (_, i) => i));
    const tables = lens.map((n) => Int32Array.from({ length: Math.ceil(n / bs) }, () => free.pop()!));
    const T = lens.reduce((s, n) => s + n, 0);
    const [seq, pos] = [new Int32Array(T), new Int32Array(T)];
    let t = 0;
    lens.forEach((n, i) => {
      for (let p = 0; p < n; p++, t++) [seq[t], pos[t]] = [i, p];
    });
    const layout: BatchLayout = { blockSize: bs, seq, pos, tables };
    const rnd = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
    const q = rnd(nh * T * dk);
    writeKv(store, layout, rnd(nkv * T * dk), rnd(nkv * T * dv));
    const want = pagedAttention(store, layout, q, nh, 0.4);
    const got = pool.kernel!.run(store, layout, q, nh, 0.4);
    for (let i = 0; i < want.length; i++)
      assert.ok(Math.abs(want[i]! - got[i]!) < 1e-5, `${[nh, nkv, dk, dv, window]} at ${i}: ${got[i]} vs ${want[i]}`);
  }
});
