// Encoder-decoder families batched in the engine: one flattened ragged decoder forward per step over the
// paged pool (the encoder's cross K/V and the decoder's self K/V in blocks). On tiny random T5, BART and
// Marian with sharp weights: the host span kernel (per-token first key + T5's relative bias) equals the
// reference attention op; a runner step mixing prefill chunks, sources completing together (one padded
// encoder batch), multi-token decoder chunks and single decode tokens on shuffled blocks gives every row the
// logits of a full forward pass (1e-4); the engine decodes ragged requests (different source and output
// lengths, some joining later) with exactly one decoder forward per step and the tokens of generate(),
// under preemption too, and every block comes back after finish and abort.
import { KvPool, bytesPerBlock } from '../../../src/infer/engine/kv-pool.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../../src/tensor/random.js';
import { noGrad } from '../../../src/tensor/engine.js';
import { attention, tensor } from '../../../src/ops/index.js';
import type { Tensor } from '../../../src/tensor/tensor.js';
import { createModel } from '../../../src/models/registry.js';
import { getPreset, getPresetInfo } from '../../../src/models/presets.js';
import { fromHFConfig } from '../../../src/models/hf-config.js';
import type { LanguageModel } from '../../../src/models/model.js';
import type { ModelConfig } from '../../../src/models/config.js';
import type { PagedEncoderDecoder } from '../../../src/models/seq2seq-paged.js';
import { relativePositionBucket } from '../../../src/nn/t5-bias.js';
import { generate } from '../../../src/infer/generate.js';
import { Engine } from '../../../src/infer/engine/engine.js';
import type { TokenEvent } from '../../../src/infer/engine/sequence.js';
import type { RunItem } from '../../../src/infer/engine/runner.js';
import { Seq2SeqRunner } from '../../../src/infer/engine/seq2seq-runner.js';
import { pagedAttentionSpan } from '../../../src/infer/engine/paged-span.js';
import { writeKv, type BatchLayout } from '../../../src/infer/engine/paged-attention.js';

const ids = (n: number, seed: number, V = 256) => {
  const r = new Rng(seed);
  return Array.from({ length: n }, () => r.int(V));
};

async function collect(h: AsyncIterable<TokenEvent>): Promise<TokenEvent[]> {
  const out: TokenEvent[] = [];
  for await (const e of h) out.push(e);
  return out;
}
const tokensOf = (evs: TokenEvent[]) => evs.map((e) => e.token).filter((t) => t >= 0);

/** weights large enough that attention is far from uniform (a wrong key, bias or position shows) */
function sharp(name: 'tiny-t5' | 'tiny-bart' | 'tiny-marian'): LanguageModel {
  if (name === 'tiny-marian') {
    const hf = {
      ...getPresetInfo('transformer-base').hf,
      vocab_size: 256,
      decoder_vocab_size: 256,
      d_model: 64,
      encoder_layers: 2,
      decoder_layers: 2,
      encoder_ffn_dim: 128,
      decoder_ffn_dim: 128,
      encoder_attention_heads: 4,
      decoder_attention_heads: 4,
      max_position_embeddings: 128,
      init_std: 0.3,
    };
    return createModel(fromHFConfig(hf), { seed: 4 }).eval();
  }
  return createModel({ ...getPreset(name), initStd: name === 'tiny-t5' ? 2 : 0.3 } as ModelConfig, { seed: 4 }).eval();
}

const decoderStart = (m: LanguageModel) => m.config.tokens.decoderStart ?? m.config.tokens.pad ?? 0;

/** decoder logits of every step for a source and decoder outputs, by one full forward pass (no cache) */
function fullLogits(model: LanguageModel, src: number[], out: number[]): Float32Array {
  const dec = [decoderStart(model), ...out];
  const row = (a: number[]) => tensor(Int32Array.from(a), { shape: [1, a.length] });
  return noGrad(() => model.forward({ inputIds: row(src), decoderInputIds: row(dec) }).logits.data() as Float32Array);
}

function assertClose(got: Float32Array, want: Float32Array, tol: number, what: string): void {
  assert.equal(got.length, want.length, what);
  let worst = 0;
  for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
  assert.ok(worst < tol, `${what}: max |diff| ${worst}`);
}

test('paged span attention (per-token first key, T5 relative bias) equals the reference attention op', () => {
  const rng = new Rng(5);
  const [nh, nkv, dk, dv, bs] = [4, 2, 8, 6, 4];
  const spec = { buckets: 8, maxDistance: 16, bidirectional: false };
  const weight = Float32Array.from({ length: 8 * nh }, () => 2 * rng.normal()); // (buckets, nh)
  // per sequence: its keys span stream positions lo .. end-1 (lo mid-block), the last q of them are queries
  const seqs = [
    { lo: 6, end: 9, q: 1 },
    { lo: 0, end: 1, q: 1 },
    { lo: 3, end: 22, q: 5 },
    { lo: 13, end: 14, q: 1 },
  ];
  for (const withBias of [false, true]) {
    const numBlocks = 24;
    // a float32 pool on host arrays, the host kernel's storage
    const kvSpec = { kvHeads: nkv, kDim: dk, vDim: dv, window: null };
    const store = new KvPool([kvSpec], bs, numBlocks * bytesPerBlock([kvSpec], bs), 'host').layers[0]!;
    const free = rng.shuffle(Array.from({ length: numBlocks }, (_, i) => i));
    const tables = seqs.map((s) => Int32Array.from({ length: Math.ceil(s.end / bs) }, () => free.pop()!));
    // every key written (positions lo .. end-1 of each sequence)
    const keyCount = seqs.reduce((n, s) => n + s.end - s.lo, 0);
    const [kseq, kpos] = [new Int32Array(keyCount), new Int32Array(keyCount)];
    let t = 0;
    seqs.forEach((s, i) => {
      for (let p = s.lo; p < s.end; p++, t++) [kseq[t], kpos[t]] = [i, p];
    });
    const rnd = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
    const [k, v] = [rnd(nkv * keyCount * dk), rnd(nkv * keyCount * dv)];
    writeKv(store, { blockSize: bs, seq: kseq, pos: kpos, tables }, k, v);
    // the queries: the last q positions of each sequence
    const T = seqs.reduce((n, s) => n + s.q, 0);
    const [seq, pos, lo] = [new Int32Array(T), new Int32Array(T), new Int32Array(T)];
    t = 0;
    seqs.forEach((s, i) => {
      for (let p = s.end - s.q; p < s.end; p++, t++) [seq[t], pos[t], lo[t]] = [i, p, s.lo];
    });
    const layout: BatchLayout = { blockSize: bs, seq, pos, tables };
    const top = Math.max(...seqs.map((s) => s.end - 1 - s.lo));
    const table = new Float32Array(nh * (top + 1));
    for (let h = 0; h < nh; h++)
      for (let r = 0; r <= top; r++) table[h * (top + 1) + r] = weight[relativePositionBucket(-r, spec) * nh + h]!;
    const q = rnd(nh * T * dk);
    const out = pagedAttentionSpan(store, layout, lo, q, nh, 0.5, withBias ? table : null);
    // reference: each sequence alone, its keys contiguous, causal (queries at the end), the bias as a tensor
    let [qo, ko] = [0, 0];
    for (const s of seqs) {
      const n = s.end - s.lo;
      const pick = (x: Float32Array, H: number, d: number, off: number, len: number, all: number) => {
        const o = new Float32Array(H * len * d);
        for (let h = 0; h < H; h++) o.set(x.subarray((h * all + off) * d, (h * all + off + len) * d), h * len * d);
        return tensor(o, { shape: [1, H, len, d] });
      };
      const b = new Float32Array(nh * s.q * n);
      for (let h = 0; h < nh; h++)
        for (let a = 0; a < s.q; a++)
          for (let j = 0; j < n; j++) {
            const r = n - s.q + a - j; // query (n - q + a) minus key j, in steps
            if (r >= 0) b[(h * s.q + a) * n + j] = weight[relativePositionBucket(-r, spec) * nh + h]!;
          }
      const ref = attention(
        pick(q, nh, dk, qo, s.q, T),
        pick(k, nkv, dk, ko, n, keyCount),
        pick(v, nkv, dv, ko, n, keyCount),
        {
          causal: true,
          scale: 0.5,
          ...(withBias ? { bias: tensor(b, { shape: [1, nh, s.q, n] }) } : {}),
        },
      ).data() as Float32Array;
      assertClose(
        pick(out, nh, dv, qo, s.q, T).data() as Float32Array,
        ref,
        1e-5,
        `bias ${withBias}, keys ${s.lo}..${s.end - 1}`,
      );
      [qo, ko] = [qo + s.q, ko + n];
    }
  }
});

/** counts the paged encoder / decoder calls (and any call of the unbatched forward) of a model */
function countCalls(model: LanguageModel) {
  const m = model as unknown as PagedEncoderDecoder & LanguageModel;
  const c = { encode: 0, encodeRows: [] as number[], decode: 0, forward: 0 };
  const [enc, dec, fwd] = [m.pagedEncode.bind(m), m.pagedDecode.bind(m), m.forward.bind(m)];
  m.pagedEncode = (i: Tensor, mask: Tensor | null) => (c.encode++, c.encodeRows.push(i.shape[0]!), enc(i, mask));
  m.pagedDecode = (i, b) => (c.decode++, dec(i, b));
  m.forward = (i) => (c.forward++, fwd(i));
  const restore = () => Object.assign(m, { pagedEncode: enc, pagedDecode: dec, forward: fwd });
  return { c, restore };
}

const MODELS = ['tiny-t5', 'tiny-bart', 'tiny-marian'] as const;

for (const name of MODELS) {
  for (const kernel of ['host', 'auto'] as const) {
    test(`seq2seq runner ${name} (${kernel} cross kernel): a ragged step's rows equal a full forward pass`, () => {
      const model = sharp(name);
      const bs = 4;
      const runner = new Seq2SeqRunner(model, { blockSize: bs, kvMemoryBytes: 1 << 20, kernel });
      // four sequences: source, then decoder outputs (arbitrary tokens: the stream the engine would feed)
      const seqs = [
        { src: ids(7, 1), out: ids(6, 11) },
        { src: ids(10, 2), out: ids(5, 12) },
        { src: ids(3, 3), out: ids(8, 13) },
        { src: ids(13, 4), out: ids(4, 14) },
      ].map((s) => ({ ...s, stream: [...s.src, ...s.out], computed: 0, blocks: [] as number[] }));
      const free = new Rng(7).shuffle(Array.from({ length: runner.numBlocks }, (_, i) => i));
      const want = seqs.map((s) => fullLogits(model, s.src, s.out));
      const V = model.config.vocabSize;
      // steps: [sequence, tokens, logits rows]
      const steps: [number, number, number][][] = [
        [
          [0, 7, 1],
          [1, 6, 0],
        ], // source 0 complete (decoder step 0); source 1 half
        [
          [0, 1, 1],
          [1, 4, 1],
          [2, 3, 1],
          [3, 13, 1],
        ], // 1, 2, 3 complete together: one padded encoder batch
        [
          [0, 2, 2],
          [1, 1, 1],
          [2, 4, 3],
          [3, 1, 1],
        ], // multi-token decoder chunks, some rows skipped
        [
          [2, 1, 1],
          [0, 1, 1],
          [3, 2, 1],
          [1, 3, 3],
        ],
      ];
      const { c, restore } = countCalls(model);
      for (const step of steps) {
        const items: RunItem[] = step.map(([i, n, logits]) => {
          const s = seqs[i]!;
          while (s.blocks.length * bs < s.computed + n) s.blocks.push(free.pop()!);
          return {
            ids: s.stream.slice(s.computed, s.computed + n),
            start: s.computed,
            blocks: s.blocks,
            logits,
            promptLength: s.src.length,
          };
        });
        const before = c.decode;
        const got = runner.run(items);
        assert.equal(c.decode, before + 1, 'one decoder forward for the whole step');
        let r = 0;
        step.forEach(([i, n, logits]) => {
          const s = seqs[i]!;
          s.computed += n;
          for (let j = logits; j > 0; j--, r++) {
            const d = s.computed - j - (s.src.length - 1); // the decoder step of this row
            assertClose(
              got.subarray(r * V, (r + 1) * V),
              want[i]!.subarray(d * V, (d + 1) * V),
              1e-4,
              `${name} sequence ${i} step ${d}`,
            );
          }
        });
        assert.equal(got.length, r * V);
      }
      restore();
      assert.deepEqual(c.encodeRows, [1, 3], 'each source encoded once; the three completing together in one batch');
      assert.equal(c.forward, 0, 'the unbatched forward never runs');
      model.dispose();
    });
  }
}

for (const name of MODELS) {
  test(`engine ${name}: ragged requests decode in one forward per step with generate()'s tokens; blocks come back`, async () => {
    const model = sharp(name);
    const srcs = [ids(7, 21), ids(20, 22), ids(3, 23), ids(33, 24), ids(12, 25), ids(1, 26)];
    const lens = [9, 4, 12, 6, 8, 5];
    const late = [ids(9, 27), ids(15, 28)]; // join after three steps
    const lateLens = [7, 3];
    const want = [...srcs, ...late].map((s, i) =>
      generate(model, s, { maxTokens: [...lens, ...lateLens][i]!, temperature: 0, stopIds: [] }),
    );
    const engine = new Engine(model, { autoRun: false, blockSize: 8 });
    const { c, restore } = countCalls(model);
    const hs = srcs.map((p, i) => engine.add({ prompt: p, maxTokens: lens[i]!, temperature: 0, ignoreEos: true }));
    let steps = 0;
    const step = () => {
      const before = c.decode;
      const ran = engine.step();
      if (ran) steps++;
      assert.ok(c.decode - before <= 1, 'at most one decoder forward per step');
      return ran;
    };
    for (let i = 0; i < 3; i++) step();
    assert.equal(engine.stats().running, 6, 'all six run together');
    hs.push(...late.map((p, i) => engine.add({ prompt: p, maxTokens: lateLens[i]!, temperature: 0, ignoreEos: true })));
    while (step());
    restore();
    const got = await Promise.all(hs.map(collect));
    assert.deepEqual(got.map(tokensOf), want);
    // every step decodes every running sequence: 12 steps for the longest, not the sum of the lengths
    assert.equal(steps, 12);
    assert.equal(c.decode, 12);
    assert.deepEqual(c.encodeRows, [6, 2], 'the sources admitted in one step are encoded in one batch');
    assert.equal(c.forward, 0);
    assert.equal(engine.stats().kvBlocksUsed, 0);
    model.dispose();
  });
}

test('engine tiny-t5: preemption (a pool too small for every request) and abort keep outputs exact; blocks come back', async () => {
  const model = sharp('tiny-t5');
  const srcs = [ids(14, 31), ids(6, 32), ids(22, 33), ids(9, 34), ids(17, 35)];
  const want = srcs.map((s) => generate(model, s, { maxTokens: 10, temperature: 0, stopIds: [] }));
  const probe = new Engine(model, { autoRun: false, kvMemoryBytes: 1 << 20, blockSize: 4 });
  const perBlock = (1 << 20) / probe.pool.numBlocks;
  // 14 blocks of 4 tokens: room for two or three of the five streams (up to 32 tokens each) at once
  const engine = new Engine(model, { autoRun: false, kvMemoryBytes: Math.ceil(14 * perBlock), blockSize: 4 });
  assert.equal(engine.pool.numBlocks, 14);
  const hs = srcs.map((p) => engine.add({ prompt: p, maxTokens: 10, temperature: 0, ignoreEos: true }));
  const doomed = engine.add({ prompt: ids(11, 36), maxTokens: 10, temperature: 0, ignoreEos: true, id: 'x' });
  for (let i = 0; i < 4; i++) engine.step();
  assert.ok(engine.abort('x'));
  engine.runToCompletion();
  assert.ok(engine.stats().preemptions > 0, 'the pool ran out: some requests were preempted and recomputed');
  assert.deepEqual((await Promise.all(hs.map(collect))).map(tokensOf), want);
  assert.equal((await collect(doomed)).at(-1)!.finishReason, 'abort');
  assert.equal(engine.stats().kvBlocksUsed, 0);
  model.dispose();
});

test('engine tiny-bart: narrow KV dtypes run the same batched step (logprobs near float32)', async () => {
  const model = sharp('tiny-bart');
  const src = ids(12, 41);
  const run = async (kvDtype: 'float32' | 'float16' | 'bfloat16' | 'int8') => {
    const engine = new Engine(model, { kvDtype });
    const evs = await collect(engine.add({ prompt: src, maxTokens: 6, temperature: 0, ignoreEos: true, logprobs: 5 }));
    assert.equal(engine.stats().kvBlocksUsed, 0);
    return evs;
  };
  const ref = await run('float32');
  for (const [dtype, tol] of [
    ['float16', 5e-3],
    ['bfloat16', 5e-2],
    ['int8', 5e-2],
  ] as const) {
    const evs = await run(dtype);
    // the same first token (a fresh decoder), each step's logprob of the float32 engine's token close
    assert.equal(evs[0]!.token, ref[0]!.token, dtype);
    const a = ref[0]!.logprobs!.top;
    const b = new Map(evs[0]!.logprobs!.top.map((t) => [t.id, t.logprob]));
    for (const t of a) if (b.has(t.id)) assert.ok(Math.abs(b.get(t.id)! - t.logprob) < tol, `${dtype}: ${t.id}`);
  }
  model.dispose();
});
