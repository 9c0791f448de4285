// Speculative decoding: modified rejection sampling leaves the target distribution unchanged
// (statistical test), greedy output with a draft model or prompt lookup equals plain decoding, and
// rolled-back caches keep later steps exact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../../src/tensor/random.js';
import { createModel } from '../../../src/models/registry.js';
import { generate } from '../../../src/infer/generate.js';
import { Engine } from '../../../src/infer/engine/engine.js';
import { draftContextNotice } from '../../../src/infer/engine/drafter.js';
import type { TokenEvent } from '../../../src/infer/engine/sequence.js';
import { drawFrom, probsOf, promptLookup, verifyDraft, verifyGreedy } from '../../../src/infer/engine/speculative.js';
import { tinyConfig } from '../../models/decoder-helpers.js';

const dist = (V: number, rng: Rng, sharp = 1) =>
  probsOf(
    Float32Array.from({ length: V }, () => rng.normal() * sharp),
    {},
  );

test('verifyDraft: the first token follows p, and the next follows p[1] after an accepted draft', () => {
  const rng = new Rng(11);
  const V = 6;
  const p = [dist(V, rng, 1.5), dist(V, rng), dist(V, rng)];
  const q = [dist(V, rng, 1.5), dist(V, rng)];
  const N = 60000;
  const first = new Float64Array(V);
  const second = new Float64Array(V);
  let conditioned = 0;
  for (let i = 0; i < N; i++) {
    const d = [drawFrom(q[0]!, rng), drawFrom(q[1]!, rng)];
    const { tokens } = verifyDraft(p, d, q, rng);
    first[tokens[0]!]!++;
    if (tokens[0] === d[0] && tokens.length > 1) {
      second[tokens[1]!]!++;
      conditioned++;
    }
  }
  for (let v = 0; v < V; v++) {
    const [f, want] = [first[v]! / N, p[0]![v]!];
    assert.ok(Math.abs(f - want) < 4 * Math.sqrt((want * (1 - want)) / N) + 1e-3, `first token ${v}: ${f} vs ${want}`);
    const [g, want2] = [second[v]! / conditioned, p[1]![v]!];
    assert.ok(
      Math.abs(g - want2) < 4 * Math.sqrt((want2 * (1 - want2)) / conditioned) + 1e-3,
      `second token ${v}: ${g} vs ${want2}`,
    );
  }
  // a deterministic (prompt-lookup) draft: q = one-hot
  const one = new Float64Array(V);
  for (let i = 0; i < N; i++) one[verifyDraft(p, [2], [null], rng).tokens[0]!]!++;
  for (let v = 0; v < V; v++) assert.ok(Math.abs(one[v]! / N - p[0]![v]!) < 4 * Math.sqrt(p[0]![v]! / N) + 1e-3);
});

test('verifyGreedy equals verifyDraft at temperature 0 (argmax prefix accepted, then the target token)', () => {
  const rng = new Rng(7);
  const V = 9;
  let full = 0;
  let early = 0;
  for (let trial = 0; trial < 300; trial++) {
    const k = 1 + rng.int(5);
    const rows = Array.from({ length: k + 1 }, () => Float32Array.from({ length: V }, () => rng.normal()));
    const top = rows.map((r) => r.indexOf(Math.max(...r)));
    // drafts that follow the argmax for a random prefix, then (maybe) diverge
    const agree = rng.int(k + 1);
    const draft = top.slice(0, k).map((t, i) => (i < agree ? t : (t + 1 + rng.int(V - 1)) % V));
    const want = verifyDraft(
      rows.map((r) => probsOf(r, { temperature: 0 })),
      draft,
      draft.map(() => null),
      rng,
    );
    const got = verifyGreedy(rows, draft);
    assert.deepEqual(got, want, `trial ${trial}`);
    assert.equal(got.accepted, agree);
    assert.equal(got.tokens.length, agree + 1);
    assert.equal(got.tokens[agree], top[agree]);
    if (agree === k) full++;
    else early++;
  }
  assert.ok(full > 20 && early > 20, `both outcomes exercised (${full} full, ${early} early)`);
});

test('promptLookup proposes what followed the latest earlier n-gram', () => {
  assert.deepEqual(promptLookup([1, 2, 3, 9, 9, 1, 2, 3, 7, 1, 2, 3], 3), [7, 1, 2]);
  assert.deepEqual(promptLookup([5, 6, 7], 2), []);
  assert.deepEqual(promptLookup([4, 8, 1, 4], 5), [8, 1, 4]);
});

async function tokensOf(h: AsyncIterable<TokenEvent>): Promise<number[]> {
  const out: number[] = [];
  for await (const e of h) if (e.token >= 0) out.push(e.token);
  return out;
}

const prompts = [
  [1, 2, 3, 4, 5, 1, 2, 3],
  [7, 8, 9],
  [10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21],
];

test('speculative decoding (draft model, prompt lookup): greedy output equals plain decoding', async () => {
  const model = createModel(tinyConfig('llama'), { seed: 2 });
  const draft = createModel(
    tinyConfig('llama', (c) => (c.decoder.layers = 1)),
    { seed: 2 },
  );
  const want = prompts.map((p) => generate(model, p, { maxTokens: 20, temperature: 0 }));
  for (const opts of [{ draftModel: draft }, { draftModel: model }, { promptLookup: true }]) {
    const engine = new Engine(model, { blockSize: 4, speculativeTokens: 3, ...opts });
    const got = await Promise.all(
      prompts.map((p) => tokensOf(engine.add({ prompt: p, maxTokens: 20, temperature: 0, ignoreEos: true }))),
    );
    assert.deepEqual(got, want);
    const s = engine.stats();
    assert.equal(s.kvBlocksUsed, 0);
    if (opts.draftModel === model)
      assert.equal(s.acceptanceRate, 1, 'the target drafting for itself is always accepted');
    else assert.ok(s.acceptanceRate >= 0 && s.acceptanceRate <= 1);
  }
});

test('a draft model with a shorter context drafts while it can, then the sequence decodes plainly', async () => {
  const model = createModel(tinyConfig('llama'), { seed: 2 });
  // GPT-2's learned position table: 16 positions, where the target runs to 8 + 30
  const draft = createModel(
    tinyConfig('gpt2', (c) => ((c.vocabSize = model.config.vocabSize), (c.maxContext = 16))),
    { seed: 3 },
  );
  const prompt = [1, 2, 3, 4, 5, 6, 7, 8];
  const want = generate(model, prompt, { maxTokens: 30, temperature: 0 });
  const engine = new Engine(model, { blockSize: 4, speculativeTokens: 4, draftModel: draft });
  const got = await tokensOf(engine.add({ prompt, maxTokens: 30, temperature: 0, ignoreEos: true }));
  assert.deepEqual(got, want);
  assert.equal(engine.stats().kvBlocksUsed, 0);
});

test('speculative decoding with sampling: seeded, in-vocabulary, exact lengths', async () => {
  const model = createModel(tinyConfig('llama'), { seed: 2 });
  const draft = createModel(
    tinyConfig('llama', (c) => (c.decoder.layers = 1)),
    { seed: 5 },
  );
  const run = async () => {
    const engine = new Engine(model, { draftModel: draft, speculativeTokens: 4 });
    return tokensOf(
      engine.add({ prompt: prompts[0]!, maxTokens: 17, temperature: 0.8, topK: 10, seed: 3, ignoreEos: true }),
    );
  };
  const a = await run();
  assert.equal(a.length, 17);
  assert.ok(a.every((t) => t >= 0 && t < 48));
  assert.deepEqual(await run(), a);
});

test('a draft model with a shorter context than the target is named, with where speculation stops', () => {
  const target = { ...tinyConfig('llama'), maxContext: 256 };
  const draft = { ...tinyConfig('gpt2'), maxContext: 64 };
  assert.match(
    draftContextNotice(target, draft) ?? '',
    /draft model's context is 64 positions \(the target's 256\): tokens past position 64 decode without speculation/,
  );
  assert.equal(draftContextNotice(target, draft, 64), null, 'sequences that fit the draft need no notice');
  assert.ok(draftContextNotice(target, draft, 65));
  assert.equal(draftContextNotice(target, { ...draft, maxContext: 256 }), null);
  assert.equal(draftContextNotice(draft, target), null, 'a longer draft is fine');
});
