// Encoder-decoder families (T5, BART) in the engine, on tiny random models: greedy output and the
// log-probabilities of every step equal the single-sequence generate() / a full forward pass, for ragged
// requests (different source lengths, chunked prompts, fewer seats than requests, different lengths);
// n > 1 forks share blocks and copy the partial one on write; abort and finishing give every block back; beam search
// equals a reference beam search over full forward passes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../../src/tensor/random.js';
import { noGrad } from '../../../src/tensor/engine.js';
import { tensor } from '../../../src/ops/index.js';
import { createModel } from '../../../src/models/registry.js';
import { getPreset } from '../../../src/models/presets.js';
import type { LanguageModel } from '../../../src/models/model.js';
import type { ModelConfig } from '../../../src/models/config.js';
import { generate } from '../../../src/infer/generate.js';
import { Engine, type EngineRequest } from '../../../src/infer/engine/engine.js';
import type { TokenEvent } from '../../../src/infer/engine/sequence.js';
import type { Seq2SeqRunner } from '../../../src/infer/engine/seq2seq-runner.js';
import { referenceBeams as beamsOver, type RefBeamOptions } from './beam-reference.js';

const ids = (n: number, seed: number, V = 256) => {
  const r = new Rng(seed);
  return Array.from({ length: n }, () => r.int(V));
};

async function collect(h: AsyncIterable<TokenEvent>): Promise<Map<number, TokenEvent[]>> {
  const out = new Map<number, TokenEvent[]>();
  for await (const e of h) out.set(e.index, [...(out.get(e.index) ?? []), e]);
  return out;
}

const tokensOf = (evs: TokenEvent[]) => evs.map((e) => e.token).filter((t) => t >= 0);

const decoderStart = (m: LanguageModel) => m.config.tokens.decoderStart ?? m.config.tokens.pad ?? 0;

/** log-softmax of the decoder's last position for source `src` and decoder output `out`, by a full forward
 * pass without a cache */
function lastLogprobs(model: LanguageModel, src: number[], out: number[]): number[] {
  const dec = [decoderStart(model), ...out];
  const row = (a: number[]) => tensor(Int32Array.from(a), { shape: [1, a.length] });
  const logits = noGrad(() => model.forward({ inputIds: row(src), decoderInputIds: row(dec) }).logits);
  const V = model.config.vocabSize;
  const r = Array.from((logits.data() as Float32Array).subarray((dec.length - 1) * V, dec.length * V));
  const m = Math.max(...r);
  const lse = m + Math.log(r.reduce((s, x) => s + Math.exp(x - m), 0));
  return r.map((x) => x - lse);
}

// sources of different lengths; each request its own length, so they finish at different steps
const SOURCES = [ids(7, 1), ids(20, 2), ids(3, 3), ids(33, 4), ids(12, 5)];
const LENGTHS = [9, 4, 12, 6, 8];

/** a tiny random model with weights large enough that attention is far from uniform (the default init
 * gives near-uniform attention, which would hide a wrong key cache); T5's initStd is Mesh TensorFlow's
 * initializer factor, which scales its fan-in init */
const sharp = (preset: string) =>
  createModel({ ...getPreset(preset), initStd: preset === 'tiny-t5' ? 4 : 0.3 } as ModelConfig, { seed: 4 });

for (const preset of ['tiny-t5', 'tiny-bart']) {
  const model = sharp(preset);

  test(`engine ${preset}: greedy output and every step's log-probabilities equal generate() / a full forward`, async () => {
    const want = SOURCES.map((s, i) => generate(model, s, { maxTokens: LENGTHS[i]!, temperature: 0, stopIds: [] }));
    // chunked sources (budget 8 tokens a step) and two slots for five requests: the others wait, join later
    const engine = new Engine(model, { maxBatchedTokens: 8, maxRunningSeqs: 2 });
    const hs = SOURCES.map((p, i) =>
      engine.add({ prompt: p, maxTokens: LENGTHS[i]!, temperature: 0, ignoreEos: true, logprobs: 3 }),
    );
    const got = await Promise.all(hs.map(async (h) => (await collect(h)).get(0)!));
    assert.deepEqual(got.map(tokensOf), want);
    got.forEach((evs, i) => {
      const out = tokensOf(evs);
      evs.forEach((e, j) => {
        const ref = lastLogprobs(model, SOURCES[i]!, out.slice(0, j));
        assert.ok(Math.abs(e.logprobs!.logprob - ref[e.token]!) < 1e-4, `request ${i} step ${j}: logprob`);
        for (const alt of e.logprobs!.top)
          assert.ok(Math.abs(alt.logprob - ref[alt.id]!) < 1e-4, `request ${i} step ${j}: top ${alt.id}`);
      });
    });
    assert.equal(engine.stats().kvBlocksUsed, 0);
  });

  test(`engine ${preset}: n = 2 forks copy the shared partial block on write; seeded samples do not depend on the batch`, async () => {
    const engine = new Engine(model, { maxRunningSeqs: 4 });
    const slots = engine.pool as Seq2SeqRunner;
    let copies = 0;
    const copy = slots.copyBlock.bind(slots);
    slots.copyBlock = (a, b) => {
      copies++;
      copy(a, b);
    };
    const src = SOURCES[1]!;
    const greedy = generate(model, src, { maxTokens: 6, temperature: 0, stopIds: [] });
    const both = await collect(
      engine.add({ prompt: src, maxTokens: 6, temperature: 0, ignoreEos: true, n: 2, logprobs: 3 }),
    );
    assert.equal(copies, 1, 'one sibling copies the shared partial block before its first own step');
    assert.equal(engine.blocks.numUsed, 0);
    for (const i of [0, 1]) {
      assert.deepEqual(tokensOf(both.get(i)!), greedy);
      both.get(i)!.forEach((e, j) => {
        const ref = lastLogprobs(model, src, greedy.slice(0, j));
        for (const alt of e.logprobs!.top)
          assert.ok(Math.abs(alt.logprob - ref[alt.id]!) < 1e-4, `sibling ${i} step ${j}: top ${alt.id}`);
      });
    }
    // sampled: each sibling's tokens, alone, equal the same sibling's within a busy batch
    const req: EngineRequest = { prompt: src, maxTokens: 8, temperature: 1.5, seed: 11, ignoreEos: true, n: 2 };
    const alone = await collect(engine.add(req));
    const others = SOURCES.slice(2).map((p) => engine.add({ prompt: p, maxTokens: 5, temperature: 1, seed: 1 }));
    const busy = await collect(engine.add(req));
    await Promise.all(others.map(collect));
    for (const i of [0, 1]) assert.deepEqual(tokensOf(busy.get(i)!), tokensOf(alone.get(i)!));
    assert.notDeepEqual(tokensOf(alone.get(0)!), tokensOf(alone.get(1)!));
    assert.equal(engine.stats().kvBlocksUsed, 0);
  });

  test(`engine ${preset}: abort mid-prompt and mid-decode gives every slot back; the rest are unchanged`, async () => {
    const engine = new Engine(model, { maxBatchedTokens: 8, maxRunningSeqs: 3, autoRun: false });
    const free0 = engine.blocks.numBlocks - engine.blocks.numUsed;
    const want = generate(model, SOURCES[0]!, { maxTokens: 9, temperature: 0, stopIds: [] });
    const keep = engine.add({ prompt: SOURCES[0]!, maxTokens: 9, temperature: 0, ignoreEos: true });
    const a = engine.add({ prompt: SOURCES[3]!, maxTokens: 9, temperature: 0, ignoreEos: true, id: 'a' });
    const b = engine.add({ prompt: SOURCES[2]!, maxTokens: 9, temperature: 0, ignoreEos: true, id: 'b' });
    for (let i = 0; i < 3; i++) engine.step();
    assert.ok(engine.abort('a')); // its 33-token source is still being encoded in chunks
    for (let i = 0; i < 3; i++) engine.step();
    assert.ok(engine.abort('b')); // decoding by now
    engine.runToCompletion();
    assert.deepEqual(tokensOf((await collect(keep)).get(0)!), want);
    for (const h of [a, b]) assert.equal([...(await collect(h)).get(0)!].at(-1)!.finishReason, 'abort');
    assert.equal(engine.blocks.numBlocks - engine.blocks.numUsed, free0);
  });
}

test('engine encoder-decoder: speculative decoding is refused with a clear error', () => {
  const model = createModel(getPreset('tiny-t5'), { seed: 4 });
  assert.throws(() => new Engine(model, { promptLookup: true }), /speculative decoding needs a decoder-only target/);
});

// ---- beam search against a reference over full forward passes ----

/** the reference beam search (beam-reference.ts) over full encoder-decoder forward passes */
const referenceBeams = (model: LanguageModel, src: number[], o: RefBeamOptions) =>
  beamsOver((out) => lastLogprobs(model, src, out), o);

for (const preset of ['tiny-t5', 'tiny-bart']) {
  test(`engine ${preset}: beam search equals the reference beam search (widths, penalties, EOS)`, async () => {
    const model = sharp(preset);
    const src = SOURCES[0]!;
    const plain = referenceBeams(model, src, { B: 3, lp: 1, early: false, maxNew: 5, eos: [] });
    const eosTok = plain[0]!.tokens[1]!; // an end token the beams actually meet
    const cases = [
      { B: 3, lp: 1, early: false as const, maxNew: 5, eos: [] },
      { B: 3, lp: 1, early: false as const, maxNew: 5, eos: [eosTok] },
      { B: 4, lp: 0.5, early: true as const, maxNew: 5, eos: [eosTok] },
      { B: 2, lp: 2, early: 'never' as const, maxNew: 4, eos: [eosTok, plain[1]!.tokens[0]!] },
    ];
    // beams of this request and plain requests of others share the step
    const engine = new Engine(model, { maxRunningSeqs: 8, maxBatchedTokens: 16 });
    for (const c of cases) {
      const other = engine.add({ prompt: SOURCES[4]!, maxTokens: 3, temperature: 0 });
      const per = await collect(
        engine.add({
          prompt: src,
          maxTokens: c.maxNew,
          beams: c.B,
          n: c.B,
          lengthPenalty: c.lp,
          earlyStopping: c.early,
          stopTokenIds: c.eos,
          ignoreEos: true,
        }),
      );
      await collect(other);
      const want = referenceBeams(model, src, c);
      const what = JSON.stringify(c);
      assert.equal(per.size, want.length, what);
      want.forEach((w, i) => {
        const evs = per.get(i)!;
        const end = evs.at(-1)!;
        const toks = evs.filter((e) => e.finishReason === null || e.finishReason === 'length').map((e) => e.token);
        assert.deepEqual(toks, w.tokens, `${what} hypothesis ${i}`);
        assert.ok(Math.abs(end.beamScore! - w.score) < 1e-4, `${what} hypothesis ${i}: ${end.beamScore} vs ${w.score}`);
      });
      assert.equal(engine.blocks.numUsed, 0, `${what}: every beam's slot is back`);
    }
    model.dispose();
  });
}

test('engine tiny-bart: the decoder has the whole context to itself (a long source does not shorten the output)', async () => {
  const ctx = 40; // source and decoder positions each
  const model = createModel({ ...getPreset('tiny-bart'), initStd: 0.3, maxContext: ctx } as ModelConfig, { seed: 4 });
  const src = ids(30, 9);
  const engine = new Engine(model);
  const evs = (await collect(engine.add({ prompt: src, maxTokens: 500, temperature: 0, ignoreEos: true }))).get(0)!;
  assert.equal(evs.at(-1)!.finishReason, 'length');
  assert.deepEqual(tokensOf(evs), generate(model, src, { maxTokens: ctx, temperature: 0, stopIds: [] }));
  // a source as long as the context is accepted; one more token is refused
  const whole = engine.add({ prompt: ids(ctx, 10), maxTokens: 2, temperature: 0, ignoreEos: true });
  assert.equal(tokensOf((await collect(whole)).get(0)!).length, 2);
  assert.throws(() => engine.add({ prompt: ids(ctx + 1, 11), maxTokens: 2 }), /the prompt has 41 tokens/);
  model.dispose();
});
