// Speculative decoding with the target's own MTP depths (DeepSeek-V3): the first drafts are the argmax of
// mtpForward's depth logits on the same prefix; greedy output equals plain decoding over ragged batches
// (chunked prompts, forks, rejected drafts rolled back); sampled output keeps the target distribution;
// both KV pools are empty after finish and abort; a model without MTP is refused clearly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { noGrad, tidy } from '../../../src/tensor/engine.js';
import { concat, linear, slice, tensor } from '../../../src/ops/index.js';
import { ropeTables } from '../../../src/nn/positions.js';
import { layerWindow } from '../../../src/models/config.js';
import type { Tensor } from '../../../src/tensor/tensor.js';
import { createModel } from '../../../src/models/registry.js';
import type { DecoderLM } from '../../../src/models/decoder.js';
import { generate } from '../../../src/infer/generate.js';
import { Engine } from '../../../src/infer/engine/engine.js';
import type { MtpDrafter } from '../../../src/infer/engine/mtp-drafter.js';
import type { Sequence, TokenEvent } from '../../../src/infer/engine/sequence.js';
import { argmax } from '../../../src/infer/engine/sampler.js';
import { probsOf } from '../../../src/infer/engine/speculative.js';
import { tinyConfig } from '../../models/decoder-helpers.js';

const V = 48;
const v3 = (depth: number, seed = depth === 1 ? 4 : 5) =>
  createModel(
    tinyConfig('deepseek_v3', (c) => (c.mtp = { ...c.mtp!, depth })),
    { seed },
  ) as DecoderLM;

/** the engine's MTP drafter (private field) and its propose step, for white-box checks */
const internals = (e: Engine) =>
  e as unknown as { drafter: { mtp: MtpDrafter } | null; propose(): void; scheduler: { running: Sequence[] } };

async function tokensOf(h: AsyncIterable<TokenEvent>): Promise<number[]> {
  const out: number[] = [];
  for await (const e of h) if (e.token >= 0) out.push(e.token);
  return out;
}

/** each sample's tokens of an n > 1 request (their events interleave) */
async function samplesOf(h: AsyncIterable<TokenEvent>): Promise<number[][]> {
  const out: number[][] = [];
  for await (const e of h) if (e.token >= 0) (out[e.index] ??= []).push(e.token);
  return out;
}

const prompts = [[2, 3, 4, 5, 6, 2, 3, 4], [7, 8, 9], [10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23], [30]];

/** depth logits [T-k, V] of mtpForward over `ids` (full-sequence path, the training one) */
function mtpLogits(model: DecoderLM, ids: number[]): Float32Array[] {
  return noGrad(() =>
    tidy(() => {
      const x = tensor(Int32Array.from(ids), { shape: [1, ids.length], dtype: 'int32' });
      const out = model.forward({ inputIds: x });
      return model.mtpForward(x, out.lastHiddenState!).map((t) => t.data() as Float32Array);
    }),
  );
}

for (const depth of [1, 2]) {
  test(`MTP draft (depth ${depth}): the proposals are argmax of mtpForward's depth logits on the same prefix`, () => {
    const model = v3(depth).eval();
    for (const temperature of [0, 1]) {
      const engine = new Engine(model, { mtpDraft: true, speculativeTokens: depth, autoRun: false, blockSize: 4 });
      engine.add({ prompt: prompts[2]!, maxTokens: 10, temperature, seed: 5, ignoreEos: true });
      engine.step(); // the prompt; samples t_{N-1}
      const e = internals(engine);
      e.propose();
      const seq = e.scheduler.running[0]!;
      const N = seq.tokens.length;
      assert.equal(seq.draft.length, depth);
      // depth d's row N-2 joins position N-2 with the token d ahead: the prefix extended by the earlier drafts
      const all = mtpLogits(model, [...seq.tokens, ...seq.draft.slice(0, depth - 1)]);
      for (let d = 1; d <= depth; d++) {
        const row = all[d - 1]!.slice((N - 2) * V, (N - 1) * V);
        if (temperature === 0) assert.equal(seq.draft[d - 1], argmax(row), `depth ${d}`);
        // the whole draft distribution q is the full-sequence path's
        const want = probsOf(row, { temperature });
        const err = Math.max(...want.map((w, i) => Math.abs(w - seq.draftQ[d - 1]![i]!)));
        assert.ok(err < 1e-4, `depth ${d}, temperature ${temperature}: q differs by ${err}`);
      }
    }
  });

  test(`MTP draft (depth ${depth}): greedy output equals plain decoding; ragged, chunked, forked; pools empty`, async () => {
    const model = v3(depth);
    const want = prompts.map((p) => generate(model, p, { maxTokens: 20, temperature: 0 }));
    for (const k of [1, 3]) {
      const engine = new Engine(model, { mtpDraft: true, speculativeTokens: k, blockSize: 4, maxBatchedTokens: 9 });
      const got = await Promise.all(
        prompts.map((p, i) =>
          samplesOf(engine.add({ prompt: p, maxTokens: 20, temperature: 0, ignoreEos: true, n: i === 1 ? 2 : 1 })),
        ),
      );
      // request 1 forks two samples after its prompt: both greedy, both the plain output
      assert.deepEqual(got, [[want[0]], [want[1], want[1]], [want[2]], [want[3]]]);
      const s = engine.stats();
      assert.ok(
        s.acceptanceRate > 0 && s.acceptanceRate < 1,
        `some drafts accepted, some rolled back: ${s.acceptanceRate}`,
      );
      assert.equal(s.kvBlocksUsed, 0);
      assert.equal(internals(engine).drafter!.mtp.blocks.numUsed, 0);
    }
  });
}

/**
 * Chained drafts j > D by the full-sequence path, independently of the paged drafter: depth D runs over every
 * position at once, its inputs the real states up to N-2 followed by its own output states, its tokens the
 * real ones followed by the drafts. Returns q of drafts D+1..k at temperature 1.
 */
function chainedReference(model: DecoderLM, tokens: number[], draft: number[]): Float32Array[] {
  const c = model.config;
  const a = c.decoder.block.attention;
  if (c.mtp!.depth !== 1 || a.kind !== 'mla' || c.positions.kind !== 'rope')
    throw new Error('reference: depth 1, MLA, RoPE');
  const spec = {
    theta: c.positions.theta,
    dim: a.qkRopeHeadDim,
    scaling: c.positions.scaling,
    maxContext: c.maxContext,
  };
  const layer = model.mtpLayers[0]!;
  const N = tokens.length;
  const ids = (xs: number[]) => tensor(Int32Array.from(xs), { shape: [1, xs.length], dtype: 'int32' });
  return noGrad(() =>
    tidy(() => {
      const h = model.forward({ inputIds: ids(tokens) }).lastHiddenState!; // (1, N, D)
      let prev = slice(h, 1, 0, N - 1); // target states at 0..N-2
      let next = tokens.slice(1); // tokens one ahead of each position
      const qs: Float32Array[] = [];
      for (let j = 1; j < draft.length; j++) {
        next = [...next, draft[j - 1]!];
        const T = next.length;
        // depth 1 over positions 0..T-1: states of all but the newest position first, to get its `prev`
        const run = (p: Tensor, t: number[]) =>
          layer.forward(layer.combine(p, model.stack.embed.forward(ids(t))), {
            mask: { causal: true, window: layerWindow(a.window, c.decoder.layers - 1), padding: null },
            qStart: 0,
            rope: ropeTables(spec, 0, t.length),
            positionBias: null,
            cache: null,
          }).x;
        const before = run(prev, next.slice(0, T - 1)); // (1, T-1, D)
        prev = concat([prev, slice(before, 1, T - 2, T - 1)], 1); // + the output state at T-2
        const out = run(prev, next); // (1, T, D)
        const normed = layer.shared_head.norm.forward(slice(out, 1, T - 1, T));
        const logits = model.lmHead ? model.lmHead.forward(normed) : linear(normed, model.stack.embed.weight);
        qs.push(probsOf(logits.data() as Float32Array, { temperature: 1 }));
      }
      return qs;
    }),
  );
}

test('MTP draft: chained drafts (k > depth) equal the full-sequence chaining', () => {
  const model = v3(1).eval();
  const engine = new Engine(model, { mtpDraft: true, speculativeTokens: 3, autoRun: false, blockSize: 4 });
  engine.add({ prompt: prompts[2]!, maxTokens: 10, temperature: 1, seed: 2, ignoreEos: true });
  engine.step();
  const e = internals(engine);
  e.propose();
  const seq = e.scheduler.running[0]!;
  assert.equal(seq.draft.length, 3);
  const want = chainedReference(model, seq.tokens, seq.draft);
  want.forEach((w, i) => {
    const err = Math.max(...w.map((x, v) => Math.abs(x - seq.draftQ[i + 1]![v]!)));
    assert.ok(err < 1e-4, `chained draft ${i + 2}: q differs by ${err}`);
  });
});

test('MTP draft: preemption (recompute) and prefix-cache hits keep greedy output exact', async () => {
  const model = v3(1);
  const want = prompts.map((p) => generate(model, p, { maxTokens: 16, temperature: 0 }));
  const probe = new Engine(model, { blockSize: 4, kvMemoryBytes: 1 << 20 });
  const perBlock = (1 << 20) / probe.pool.numBlocks;
  // 12 target blocks of 4 tokens: not enough for all four sequences at once
  const tight = new Engine(model, {
    mtpDraft: true,
    speculativeTokens: 2,
    blockSize: 4,
    kvMemoryBytes: Math.ceil(12 * perBlock),
  });
  const got = await Promise.all(
    prompts.map((p) => tokensOf(tight.add({ prompt: p, maxTokens: 16, temperature: 0, ignoreEos: true }))),
  );
  assert.deepEqual(got, want);
  assert.ok(tight.stats().preemptions > 0, 'expected preemptions');
  assert.equal(internals(tight).drafter!.mtp.blocks.numUsed, 0);
  // an explicit prefix cache: the second request of a prompt skips its cached positions and decodes plainly
  const cached = new Engine(model, { mtpDraft: true, prefixCaching: true, blockSize: 4 });
  for (let r = 0; r < 2; r++)
    assert.deepEqual(
      await tokensOf(cached.add({ prompt: prompts[2]!, maxTokens: 16, temperature: 0, ignoreEos: true })),
      want[2],
    );
  assert.ok(cached.stats().prefixCacheHits > 0);
  assert.equal(internals(cached).drafter!.mtp.blocks.numUsed, 0);
});

test('MTP draft: aborted requests give back the MTP blocks too', () => {
  const model = v3(1);
  const engine = new Engine(model, { mtpDraft: true, speculativeTokens: 3, autoRun: false, blockSize: 4 });
  const ids = prompts.map((p) => engine.add({ prompt: p, maxTokens: 30, temperature: 0, ignoreEos: true }).id);
  for (let i = 0; i < 4; i++) engine.step();
  const mtp = internals(engine).drafter!.mtp;
  assert.ok(mtp.blocks.numUsed > 0);
  for (const id of ids) engine.abort(id);
  engine.runToCompletion();
  assert.equal(engine.stats().kvBlocksUsed, 0);
  assert.equal(mtp.blocks.numUsed, 0);
});

test('MTP draft with sampling: seeded, in-vocabulary, exact lengths', async () => {
  const model = v3(2);
  const run = async () => {
    const engine = new Engine(model, { mtpDraft: true, speculativeTokens: 4 });
    return tokensOf(
      engine.add({ prompt: prompts[0]!, maxTokens: 17, temperature: 0.8, topK: 10, seed: 3, ignoreEos: true }),
    );
  };
  const a = await run();
  assert.equal(a.length, 17);
  assert.ok(a.every((t) => t >= 0 && t < V));
  assert.deepEqual(await run(), a);
});

test('MTP draft with sampling: the token decided by verification follows the target marginal', async () => {
  const model = v3(1, 9).eval();
  const prompt = [5, 6, 7, 8];
  // exact marginal of the second new token: sum over t1 of p(t1 | prompt) p(t2 | prompt, t1)
  const next = (ids: number[]) =>
    noGrad(() =>
      tidy(() => {
        const x = tensor(Int32Array.from(ids), { shape: [1, ids.length], dtype: 'int32' });
        const l = model.forward({ inputIds: x }).logits.data() as Float32Array;
        return probsOf(l.slice((ids.length - 1) * V, ids.length * V), { temperature: 1 });
      }),
    );
  const p1 = next(prompt);
  const marginal = new Float64Array(V);
  for (let t = 0; t < V; t++) {
    const p2 = next([...prompt, t]);
    for (let u = 0; u < V; u++) marginal[u]! += p1[t]! * p2[u]!;
  }
  const engine = new Engine(model, { mtpDraft: true, speculativeTokens: 1, autoRun: false, maxRunningSeqs: 64 });
  const N = 2000;
  const second = new Float64Array(V);
  const handles = Array.from({ length: N }, (_, i) =>
    engine.add({ prompt, maxTokens: 3, temperature: 1, seed: 1000 + i, ignoreEos: true }),
  );
  engine.runToCompletion();
  const outs = await Promise.all(handles.map(tokensOf));
  for (const o of outs) second[o[1]!]!++;
  assert.ok(engine.stats().acceptanceRate > 0 && engine.stats().acceptanceRate < 1);
  for (let v = 0; v < V; v++) {
    const [f, w] = [second[v]! / N, marginal[v]!];
    assert.ok(Math.abs(f - w) < 4 * Math.sqrt((w * (1 - w)) / N) + 2e-3, `token ${v}: ${f} vs ${w}`);
  }
});

test('MTP draft: a model without MTP depths and conflicting drafters are refused clearly', () => {
  const plain = createModel(tinyConfig('llama'), { seed: 1 });
  assert.throws(() => new Engine(plain, { mtpDraft: true }), /MTP drafting needs a model with multi-token-prediction/);
  const model = v3(1);
  assert.throws(() => new Engine(model, { mtpDraft: true, promptLookup: true }), /choose one drafter/);
});
