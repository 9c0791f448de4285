// The engine end to end on tiny models: greedy output equals the single-sequence generate() for
// concurrent ragged requests, also under preemption and with prefix-cache hits; seeded sampling does not
// depend on the batch; n > 1 shares the prompt's blocks; stop strings spanning tokens; abort frees
// blocks at once; bad requests fail alone; memory stays flat across 10,000 requests.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../../src/tensor/random.js';
import { createModel } from '../../../src/models/registry.js';
import type { LanguageModel } from '../../../src/models/model.js';
import { generate } from '../../../src/infer/generate.js';
import { loadModelDir } from '../../../src/infer/model-dir-node.js';
import { Engine, type EngineRequest } from '../../../src/infer/engine/engine.js';
import type { TokenEvent } from '../../../src/infer/engine/sequence.js';
import { tinyConfig } from '../../models/decoder-helpers.js';
import { getPreset } from '../../../src/models/presets.js';

const ids = (n: number, seed: number, V = 48) => {
  const r = new Rng(seed);
  return Array.from({ length: n }, () => r.int(V));
};

async function collect(h: AsyncIterable<TokenEvent>): Promise<Map<number, TokenEvent[]>> {
  const out = new Map<number, TokenEvent[]>();
  for await (const e of h) out.set(e.index, [...(out.get(e.index) ?? []), e]);
  return out;
}

const tokensOf = (evs: TokenEvent[]) => evs.map((e) => e.token).filter((t) => t >= 0);

/** the engine's greedy tokens for each prompt, all submitted at once */
async function engineGreedy(engine: Engine, prompts: number[][], maxTokens: number): Promise<number[][]> {
  const hs = prompts.map((p) => engine.add({ prompt: p, maxTokens, temperature: 0, ignoreEos: true }));
  return Promise.all(hs.map(async (h) => tokensOf((await collect(h)).get(0)!)));
}

function reference(model: LanguageModel, prompts: number[][], maxTokens: number): number[][] {
  return prompts.map((p) => generate(model, p, { maxTokens, temperature: 0 }));
}

const PROMPTS = [ids(7, 1), ids(20, 2), ids(3, 3), ids(33, 4), ids(12, 5)];

for (const family of ['llama', 'gpt2', 'mistral', 'deepseek_v2'] as const) {
  test(`engine ${family}: greedy output of concurrent requests equals generate()`, async () => {
    const model = createModel(tinyConfig(family), { seed: 2 });
    const want = reference(model, PROMPTS, 12);
    const engine = new Engine(model, { blockSize: 4, maxBatchedTokens: 16, kvMemoryBytes: 1 << 20 });
    assert.deepEqual(await engineGreedy(engine, PROMPTS, 12), want);
    assert.equal(engine.stats().kvBlocksUsed, 0);
    model.dispose();
  });
}

test('engine: preemption by recompute when blocks run out gives the same output', async () => {
  const model = createModel(tinyConfig('llama'), { seed: 2 });
  const want = reference(model, PROMPTS, 12);
  // 13 blocks of 4 tokens: not enough for all five sequences at once
  const spec = new Engine(model, { blockSize: 4, kvMemoryBytes: 1 << 20 });
  const perBlock = (1 << 20) / spec.pool.numBlocks;
  const engine = new Engine(model, { blockSize: 4, maxBatchedTokens: 64, kvMemoryBytes: Math.ceil(13 * perBlock) });
  assert.equal(engine.pool.numBlocks, 13);
  assert.deepEqual(await engineGreedy(engine, PROMPTS, 12), want);
  assert.ok(engine.stats().preemptions > 0, 'expected preemptions');
  assert.equal(engine.stats().kvBlocksUsed, 0);
});

test('engine: prefix-cache hits give identical outputs', async () => {
  const model = createModel(tinyConfig('llama'), { seed: 4 });
  const shared = ids(17, 9);
  const prompts = [
    [...shared, 1, 2],
    [...shared, 3],
    [...shared, 4, 5, 6],
  ];
  const want = reference(model, prompts, 6);
  const engine = new Engine(model, { blockSize: 4 });
  assert.deepEqual(await engineGreedy(engine, [prompts[0]!], 6), [want[0]]);
  assert.equal(engine.stats().prefixCacheHits, 0);
  assert.deepEqual(await engineGreedy(engine, prompts.slice(1), 6), want.slice(1));
  assert.ok(engine.stats().prefixCacheHits >= 8, `hits ${engine.stats().prefixCacheHits}`);
  assert.deepEqual(await engineGreedy(engine, [prompts[0]!], 6), [want[0]]);
});

test('engine: a seeded request samples the same tokens alone and in a busy batch', async () => {
  const model = createModel(tinyConfig('llama'), { seed: 4 });
  const req: EngineRequest = {
    prompt: ids(5, 1),
    maxTokens: 10,
    temperature: 0.9,
    topP: 0.95,
    topK: 20,
    minP: 0.01,
    seed: 42,
  };
  const alone = tokensOf((await collect(new Engine(model).add(req))).get(0)!);
  const engine = new Engine(model, { maxBatchedTokens: 8 });
  for (let i = 0; i < 4; i++) engine.add({ prompt: ids(9, 20 + i), maxTokens: 7, temperature: 1, seed: i });
  const busy = tokensOf((await collect(engine.add(req))).get(0)!);
  assert.deepEqual(busy, alone);
});

test('engine: n > 1 shares the prompt blocks and gives n different samples', async () => {
  const model = createModel(tinyConfig('llama'), { seed: 4 });
  const engine = new Engine(model, { blockSize: 4, autoRun: false });
  const h = engine.add({ prompt: ids(10, 3), maxTokens: 8, temperature: 1, n: 3, seed: 1, ignoreEos: true });
  engine.step();
  assert.equal(engine.stats().running, 3);
  assert.equal(engine.stats().kvBlocksUsed, 3, 'three prompt blocks shared by three sequences');
  engine.runToCompletion();
  const out = await collect(h);
  assert.deepEqual([...out.keys()].sort(), [0, 1, 2]);
  const samples = [...out.values()].map((e) => tokensOf(e).join(','));
  assert.equal(new Set(samples).size, 3);
  assert.equal(engine.stats().kvBlocksUsed, 0);
});

test('engine: abort frees the blocks at once and ends the stream', async () => {
  const model = createModel(tinyConfig('llama'), { seed: 4 });
  const engine = new Engine(model, { blockSize: 4, autoRun: false });
  const a = engine.add({ id: 'a', prompt: ids(10, 3), maxTokens: 30, temperature: 0, n: 2 });
  const b = engine.add({ id: 'b', prompt: ids(6, 4), maxTokens: 5, temperature: 0 });
  engine.step();
  engine.step();
  assert.ok(engine.stats().kvBlocksUsed > 0);
  assert.equal(engine.abort('a'), true);
  assert.equal(engine.stats().running, 1);
  engine.runToCompletion();
  const ea = await collect(a);
  assert.equal(ea.size, 2);
  for (const evs of ea.values()) assert.equal(evs.at(-1)!.finishReason, 'abort');
  assert.equal((await collect(b)).get(0)!.at(-1)!.finishReason, 'length');
  assert.equal(engine.stats().kvBlocksUsed, 0);
});

test('engine: bad requests get a clear error and leave the running ones alone', async () => {
  const model = createModel(tinyConfig('llama'), { seed: 4 });
  const engine = new Engine(model);
  const ok = engine.add({ prompt: ids(5, 1), maxTokens: 6, temperature: 0 });
  const bad: [EngineRequest, RegExp][] = [
    [{ prompt: ids(3, 1), maxTokens: -1 }, /maxTokens/],
    [{ prompt: ids(3, 1), topP: 0 }, /topP/],
    [{ prompt: ids(3, 1), topP: 1.5 }, /topP/],
    [{ prompt: ids(3, 1), stop: Array.from({ length: 17 }, () => 'x') }, /stop/],
    [{ prompt: ids(65, 1) }, /context/],
    [{ prompt: [1, 99] }, /vocabulary/],
    [{ prompt: ids(3, 1), logitBias: { 500: 1 } }, /logitBias/],
  ];
  for (const [req, msg] of bad) assert.throws(() => engine.add(req), msg);
  assert.equal(tokensOf((await collect(ok)).get(0)!).length, 6);
});

test('engine: stop strings spanning tokens end the text before them; min tokens; logprobs', async () => {
  const { model, tokenizer } = await loadModelDir('models/shakespeare-char');
  const engine = new Engine(model, { tokenizer });
  const greedy = await collect(engine.add({ prompt: 'ROMEO:\n', maxTokens: 40, temperature: 0 }));
  const full = greedy
    .get(0)!
    .map((e) => e.text)
    .join('');
  assert.equal(full, tokenizer!.decode(tokensOf(greedy.get(0)!)));
  const stop = full.slice(10, 13); // three characters = three tokens
  const evs = (
    await collect(engine.add({ prompt: 'ROMEO:\n', maxTokens: 40, temperature: 0, stop: [stop], logprobs: 3 }))
  ).get(0)!;
  assert.equal(evs.map((e) => e.text).join(''), full.slice(0, full.indexOf(stop)));
  assert.equal(evs.at(-1)!.finishReason, 'stop');
  for (const e of evs) {
    assert.equal(e.logprobs!.top.length, 3);
    assert.ok(e.logprobs!.logprob <= 0 && e.logprobs!.logprob >= e.logprobs!.top[2]!.logprob);
    assert.equal(e.logprobs!.top[0]!.id, e.token, 'greedy picks the top alternative');
  }
  const stopId = tokensOf(greedy.get(0)!)[2]!;
  const minned = (
    await collect(
      engine.add({ prompt: 'ROMEO:\n', maxTokens: 10, minTokens: 5, stopTokenIds: [stopId], temperature: 0 }),
    )
  ).get(0)!;
  assert.ok(minned.length >= 5);
  assert.ok(!tokensOf(minned).slice(0, 5).includes(stopId));
});

test('engine: memory stays flat across 10,000 short requests', () => {
  const model = createModel(
    tinyConfig('llama', (c) => (c.decoder.layers = 1)),
    { seed: 4 },
  );
  const engine = new Engine(model, { blockSize: 4, maxRunningSeqs: 128, maxBatchedTokens: 1024, autoRun: false });
  let done = 0;
  let heapAt1000 = 0;
  for (let i = 0; i < 10_000; i += 250) {
    const hs = Array.from({ length: 250 }, (_, j) =>
      engine.add({ prompt: [(i + j) % 48, 1, 2], maxTokens: 2, temperature: 0 }),
    );
    engine.runToCompletion();
    done += hs.filter((h) => h.done).length;
    if (i === 1000) heapAt1000 = process.memoryUsage().heapUsed;
  }
  assert.equal(done, 10_000);
  const s = engine.stats();
  assert.deepEqual([s.running, s.waiting, s.kvBlocksUsed], [0, 0, 0]);
  const growth = process.memoryUsage().heapUsed - heapAt1000;
  assert.ok(growth < 32 * 1024 * 1024, `heap grew ${(growth / 1e6).toFixed(1)} MB`);
});

test('engine: a sliding-window model frees blocks that fell out of the window, output unchanged', async () => {
  const model = createModel(tinyConfig('mistral'), { seed: 2 }); // window 3 on every layer
  const prompt = ids(30, 8);
  const want = reference(model, [prompt], 20);
  const engine = new Engine(model, { blockSize: 4, autoRun: false });
  const h = engine.add({ prompt, maxTokens: 20, temperature: 0, ignoreEos: true });
  let peak = 0;
  while (engine.step()) peak = Math.max(peak, engine.stats().kvBlocksUsed);
  assert.ok(peak <= 3, `at most the window's blocks stay allocated, saw ${peak}`);
  assert.deepEqual(tokensOf((await collect(h)).get(0)!), want[0]);
});

test('engine: a logitsProcessor mask constrains every step (the constrained-decoding hook)', async () => {
  const model = createModel(tinyConfig('llama'), { seed: 2 });
  const engine = new Engine(model);
  const seen: number[][] = [];
  const even = new Uint8Array(48).map((_, i) => (i % 2 === 0 ? 1 : 0));
  const out = tokensOf(
    (
      await collect(
        engine.add({
          prompt: ids(4, 1),
          maxTokens: 12,
          temperature: 1,
          seed: 5,
          ignoreEos: true,
          logitsProcessor: (soFar) => (seen.push([...soFar]), even),
        }),
      )
    ).get(0)!,
  );
  assert.equal(out.length, 12);
  assert.ok(
    out.every((t) => t % 2 === 0),
    `${out}`,
  );
  assert.deepEqual(
    seen.map((s) => s.length),
    Array.from({ length: 12 }, (_, i) => i),
  );
});

for (const preset of ['tiny-mamba', 'tiny-lstm', 'tiny-gru']) {
  test(`engine ${preset}: recurrent state slots, greedy output equals generate() with fewer slots than requests`, async () => {
    const model = createModel(getPreset(preset), { seed: 3 });
    const prompts = PROMPTS.slice(0, 4);
    const want = reference(model, prompts, 8);
    // chunked prompts (budget 8) and two slots for four requests: the others wait, then run
    const engine = new Engine(model, { maxBatchedTokens: 8, maxRunningSeqs: 2 });
    assert.deepEqual(await engineGreedy(engine, prompts, 8), want);
    assert.equal(engine.stats().kvBlocksUsed, 0);
  });
}
