// One request's failure inside a step (its mask leaves nothing to sample, its processor throws) ends that
// request only: the other requests of the batch keep generating. Penalties and seeds are bounded and
// robust: finite logits stay finite, and distinct seeds give distinct streams.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadModelDir } from '../../../src/infer/model-dir-node.js';
import { Engine } from '../../../src/infer/engine/engine.js';
import type { LogitsProcessor, TokenEvent } from '../../../src/infer/engine/sequence.js';
import {
  applyPenalties,
  checkSamplingParams,
  logprobsOf,
  sequenceRng,
  REPETITION_PENALTY_MAX,
  REPETITION_PENALTY_MIN,
} from '../../../src/infer/engine/sampler.js';

async function collect(h: AsyncIterable<TokenEvent>): Promise<TokenEvent[]> {
  const out: TokenEvent[] = [];
  for await (const e of h) out.push(e);
  return out;
}

/** a processor that allows everything for `after` tokens, then nothing (or throws) */
const poison =
  (after: number, how: 'mask' | 'throw'): LogitsProcessor =>
  (ids) => {
    if (ids.length < after) return null;
    if (how === 'throw') throw new Error('constrain: token 7 is not allowed here');
    return new Uint8Array(65);
  };

for (const [how, temperature] of [
  ['mask', 1],
  ['mask', 0],
  ['throw', 0.8],
] as const) {
  test(`a request whose sampling fails (${how}, temperature ${temperature}) fails alone`, async () => {
    const { model, tokenizer } = await loadModelDir('models/shakespeare-char');
    const engine = new Engine(model, { tokenizer, kvMemoryBytes: 4 << 20 });
    const innocent = engine.add({ prompt: 'ROMEO:', maxTokens: 30, n: 3, temperature: 1, seed: 1 });
    const plain = engine.add({ prompt: 'JULIET:', maxTokens: 25, temperature: 0 });
    const bad = engine.add({ prompt: 'KING:', maxTokens: 30, temperature, logitsProcessor: poison(3, how) });
    const [a, b] = await Promise.all([collect(innocent), collect(plain)]);
    await assert.rejects(collect(bad), (e: Error) => {
      assert.match(e.message, /^generation: /);
      assert.match(e.message, how === 'mask' ? /every token is masked out/ : /not allowed here/);
      return true;
    });
    assert.equal(a.filter((e) => e.finishReason === 'length').length, 3, 'every sibling of the innocent request ends');
    assert.equal(a.filter((e) => e.token >= 0).length, 90);
    assert.equal(b.at(-1)!.finishReason, 'length');
    assert.equal(b.filter((e) => e.token >= 0).length, 25);
    assert.equal(engine.stats().kvBlocksUsed, 0, 'the failed request gave its blocks back');
    // the engine keeps serving
    const after = await collect(engine.add({ prompt: 'ROMEO:', maxTokens: 5, temperature: 0 }));
    assert.equal(after.at(-1)!.finishReason, 'length');
  });
}

test('repetitionPenalty is bounded; penalised logits stay finite, logprobs never NaN', () => {
  for (const bad of [1e308, 1e-308, REPETITION_PENALTY_MAX * 1.01, REPETITION_PENALTY_MIN / 2, 0, -1, NaN])
    assert.throws(() => checkSamplingParams({ repetitionPenalty: bad }, 10), /repetitionPenalty must be in/);
  for (const ok of [REPETITION_PENALTY_MIN, 1, 1.3, REPETITION_PENALTY_MAX])
    checkSamplingParams({ repetitionPenalty: ok }, 10);
  assert.throws(() => checkSamplingParams({ logitBias: { 1: 1e38 } }, 10), /logitBias\[1\]/);
  for (const rep of [REPETITION_PENALTY_MIN, REPETITION_PENALTY_MAX, 1e-308, 1e308]) {
    const row = Float32Array.from([3e38, -3e38, 5, -5, 0, -Infinity]);
    applyPenalties(
      row,
      { repetitionPenalty: rep, presencePenalty: 2, frequencyPenalty: 2, logitBias: { 0: 100, 1: -100 } },
      {
        seen: new Set([0, 1, 2, 3, 5]),
        counts: new Map([
          [0, 1e6],
          [1, 1e6],
          [5, 3],
        ]),
      },
    );
    for (let i = 0; i < 5; i++) assert.ok(Number.isFinite(row[i]!), `rep ${rep}: logit ${i} is ${row[i]}`);
    assert.equal(row[5], -Infinity, 'a masked logit stays masked');
    const lp = logprobsOf(row, 2, 3);
    assert.ok(Number.isFinite(lp.logprob!) || lp.logprob === -Infinity, `logprob ${lp.logprob}`);
    for (const t of lp.top!) assert.ok(!Number.isNaN(t.logprob));
  }
});

test('seeds: every safe integer is its own stream, and sibling i of one seed is not sibling 0 of another', () => {
  const first = (seed: number, index = 0) => {
    const r = sequenceRng(seed, index);
    return [r.nextU32(), r.nextU32(), r.nextU32()].join(',');
  };
  const seeds = [0, 1, -1, 2 ** 32, 2 ** 32 + 1, -(2 ** 32), 2 ** 31, 2 ** 53 - 1, -(2 ** 53 - 1), 0x9e3779b1];
  const streams = new Set(seeds.map((s) => first(s)));
  assert.equal(streams.size, seeds.length, 'seeds equal modulo 2^32 no longer collide');
  for (const s of [0, 5, 123456789])
    for (let i = 1; i < 4; i++) assert.notEqual(first(s, i), first(s + i * 0x9e3779b1, 0));
  assert.equal(first(42), first(42), 'reproducible');
  assert.throws(() => checkSamplingParams({ seed: 2 ** 53 }, 10), /seed/);
  assert.throws(() => checkSamplingParams({ seed: 1e30 }, 10), /seed/);
});
