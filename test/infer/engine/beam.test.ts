// Beam search in the engine against a plain reference: Hugging Face's beam search written out directly
// over full forward passes (no KV cache, one beam at a time), on a tiny random LLaMA.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createModel } from '../../../src/models/registry.js';
import type { LanguageModel } from '../../../src/models/model.js';
import { tensor } from '../../../src/ops/index.js';
import { noGrad } from '../../../src/tensor/engine.js';
import { Engine, type EngineRequest } from '../../../src/infer/engine/engine.js';
import type { TokenEvent } from '../../../src/infer/engine/sequence.js';
import { bytesPerBlock, layerSpecs } from '../../../src/infer/engine/kv-pool.js';
import type { DecoderConfig } from '../../../src/models/config.js';
import { tinyConfig } from '../../models/decoder-helpers.js';
import { referenceBeams as beamsOver, type RefBeamOptions } from './beam-reference.js';

/** log-softmax of the last position's logits of ids, by a full forward pass */
function lastLogprobs(model: LanguageModel, ids: number[]): number[] {
  const logits = noGrad(
    () => model.forward({ inputIds: tensor(Int32Array.from(ids), { shape: [1, ids.length] }) }).logits,
  );
  const V = model.config.vocabSize;
  const row = Array.from((logits.data() as Float32Array).subarray((ids.length - 1) * V, ids.length * V));
  const m = Math.max(...row);
  const lse = m + Math.log(row.reduce((s, x) => s + Math.exp(x - m), 0));
  return row.map((x) => x - lse);
}

/** the reference beam search over full forward passes of a decoder after `prompt` */
const referenceBeams = (model: LanguageModel, prompt: number[], o: RefBeamOptions) =>
  beamsOver((out) => lastLogprobs(model, [...prompt, ...out]), o);

async function engineBeams(
  engine: Engine,
  req: EngineRequest,
): Promise<{ tokens: number[]; score: number; end: TokenEvent }[]> {
  const per = new Map<number, TokenEvent[]>();
  for await (const e of engine.add(req)) per.set(e.index, [...(per.get(e.index) ?? []), e]);
  return [...per.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([, evs]) => {
      const end = evs.at(-1)!;
      const tokens = evs.filter((e) => e.finishReason === null || e.finishReason === 'length').map((e) => e.token);
      return { tokens, score: end.beamScore!, end };
    });
}

const model = createModel(tinyConfig('llama'), { seed: 7 });
/** the same model with its head scaled up: peaked distributions, so end tokens and ranks matter more
 * (a random tiny model is nearly uniform) */
const peaky = createModel(tinyConfig('llama'), { seed: 7 });
{
  const w = peaky.namedParameters().find(([n]) => n === 'lm_head.weight')![1];
  peaky.setParameter(
    'lm_head.weight',
    tensor(
      Float32Array.from(w.data(), (x) => x * 30),
      { shape: [...w.shape] },
    ),
  );
}
const PROMPT = [3, 9, 1, 4, 15, 2];

/** every token but one in 8 */
const mostlyEos = Array.from({ length: 48 }, (_, t) => t).filter((t) => t % 8 !== 0);

for (const [name, m] of [
  ['near-uniform', model],
  ['peaked', peaky],
] as const) {
  test(`beam search equals the reference beam search (${name} model; widths, length penalties, early stopping, EOS)`, async () => {
    // an end token the beams actually meet: the second token of the plain search's best hypothesis
    const plain = referenceBeams(m, PROMPT, { B: 3, lp: 1, early: false, maxNew: 6, eos: [] });
    const eosTok = plain[0]!.tokens[1]!;
    const first = lastLogprobs(m, PROMPT);
    const firstRanked = first.map((_, t) => t).sort((a, b) => first[b]! - first[a]!);
    const cases = [
      { B: 3, lp: 1, early: false as const, maxNew: 6, eos: [] },
      { B: 3, lp: 1, early: false as const, maxNew: 6, eos: [eosTok] },
      { B: 4, lp: 0.5, early: true as const, maxNew: 7, eos: [eosTok] },
      { B: 2, lp: 2, early: 'never' as const, maxNew: 5, eos: [eosTok] },
      { B: 3, lp: -1, early: false as const, maxNew: 5, eos: [eosTok, plain[1]!.tokens[0]!] },
      // many end tokens: (1 + |eos|) * B candidates, end tokens ranked past B ignored, beams refilled
      { B: 3, lp: 1, early: false as const, maxNew: 6, eos: [0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 33] },
      { B: 5, lp: 0.7, early: 'never' as const, maxNew: 5, eos: [1, 5, 9, 13, 17, 21, 25, 29] },
      // end tokens ranked 1, 2 (close hypotheses) and 3 (past the beams: ignored) at the first step; a
      // negative penalty favours short hypotheses, so a wrongly kept one would rank first
      { B: 3, lp: -1, early: false as const, maxNew: 4, eos: firstRanked.slice(1, 4) },
      // nearly every token ends: most candidates close hypotheses, the few others must refill the beams
      { B: 3, lp: 1, early: false as const, maxNew: 6, eos: mostlyEos },
      { B: 2, lp: 1.5, early: 'never' as const, maxNew: 6, eos: mostlyEos },
      { B: 2, lp: 1.5, early: false as const, maxNew: 6, eos: mostlyEos },
      // min tokens: no end token before the third
      { B: 3, lp: 1, early: false as const, maxNew: 5, eos: mostlyEos, minNew: 2 },
      { B: 2, lp: -1, early: false as const, maxNew: 5, eos: firstRanked.slice(0, 4), minNew: 1 },
    ];
    // a small pool and block size: beams cross block boundaries and share the prompt's blocks
    const engine = new Engine(m, { blockSize: 4, kvMemoryBytes: 1 << 20 });
    let stops = 0;
    for (const c of cases) {
      const want = referenceBeams(m, PROMPT, c);
      const got = await engineBeams(engine, {
        prompt: PROMPT,
        maxTokens: c.maxNew,
        minTokens: c.minNew ?? 0,
        beams: c.B,
        n: c.B,
        lengthPenalty: c.lp,
        earlyStopping: c.early,
        stopTokenIds: c.eos,
        ignoreEos: true,
      });
      const what = JSON.stringify(c);
      assert.equal(got.length, want.length, what);
      got.forEach((g, i) => {
        assert.deepEqual(g.tokens, want[i]!.tokens, `${what} hypothesis ${i}`);
        assert.ok(
          Math.abs(g.score - want[i]!.score) < 1e-4,
          `${what} hypothesis ${i}: ${g.score} vs ${want[i]!.score}`,
        );
        assert.equal(g.end.finishReason, c.eos.includes(g.end.token) ? 'stop' : 'length');
      });
      assert.equal(engine.blocks.numUsed, 0, `${what}: every beam's blocks are back`);
      stops += got.filter((g) => g.end.finishReason === 'stop').length;
    }
    assert.ok(stops >= 3, `the cases close ${stops} hypotheses on an end token`);
  });
}

test('beam search as wide as the vocabulary finds the exact best two-token continuations (exhaustive)', async () => {
  // with B = V every first token survives, so the B hypotheses after two tokens are exactly the B best of
  // all V^2 continuations, scored sum_logprobs / 2^lengthPenalty: checked against enumerating them all
  const V = model.config.vocabSize;
  const first = lastLogprobs(model, PROMPT);
  const all: { tokens: number[]; sum: number }[] = [];
  for (let a = 0; a < V; a++) {
    const second = lastLogprobs(model, [...PROMPT, a]);
    for (let b = 0; b < V; b++) all.push({ tokens: [a, b], sum: first[a]! + second[b]! });
  }
  all.sort((x, y) => y.sum - x.sum);
  const engine = new Engine(model, { blockSize: 4, kvMemoryBytes: 1 << 20 });
  const got = await engineBeams(engine, {
    prompt: PROMPT,
    maxTokens: 2,
    beams: V,
    n: V,
    lengthPenalty: 1,
    ignoreEos: true,
  });
  assert.equal(got.length, V);
  got.forEach((g, i) => {
    assert.deepEqual(g.tokens, all[i]!.tokens, `rank ${i}`);
    assert.ok(Math.abs(g.score - all[i]!.sum / 2) < 1e-4, `rank ${i}: ${g.score} vs ${all[i]!.sum / 2}`);
  });
  assert.equal(engine.blocks.numUsed, 0);
});

test('beam search: n best of B, beams share the prompt blocks, abort, bad requests', async () => {
  const engine = new Engine(model, { blockSize: 4, kvMemoryBytes: 1 << 20, autoRun: false });
  const long = Array.from({ length: 13 }, (_, i) => (i * 5) % 40);
  const h = engine.add({ prompt: long, maxTokens: 5, beams: 4, n: 2, ignoreEos: true });
  engine.step(); // prefill
  engine.step(); // first decode, then the search forks the 4 new beams from their parents' tables
  assert.equal(engine.stats().running, 4);
  // copy-on-write: all 4 beams share the 3 full prompt blocks; a parent's partial block (its token 14
  // written) is shared by its children until one of them writes token 15 into it
  const tables = engine.scheduler.running.map((s) => s.table.blocks);
  for (let b = 0; b < 3; b++) {
    assert.equal(new Set(tables.map((t) => t[b])).size, 1, `prompt block ${b} is shared`);
    assert.equal(engine.blocks.refCount(tables[0]![b]!), 4);
  }
  const partial = new Set(tables.map((t) => t[3]!));
  for (const b of partial) assert.equal(engine.blocks.refCount(b), tables.filter((t) => t[3] === b).length);
  assert.equal(engine.blocks.numUsed, 3 + partial.size, 'the dropped beams gave their blocks back');
  engine.step(); // each beam writes into its partial block: shared ones are copied first
  const after = engine.scheduler.running.map((s) => s.table.blocks);
  assert.equal(new Set(after.map((t) => t[0])).size, 1, 'still one copy of the prompt block');
  engine.runToCompletion();
  const evs: TokenEvent[] = [];
  for await (const e of h) evs.push(e);
  assert.deepEqual([...new Set(evs.map((e) => e.index))], [0, 1]);
  const scores = evs.filter((e) => e.finishReason).map((e) => e.beamScore!);
  assert.ok(scores[0]! >= scores[1]!, 'best first');
  assert.equal(engine.blocks.numUsed, 0);
  // abort
  const a = engine.add({ id: 'x', prompt: long, maxTokens: 5, beams: 3 });
  engine.step();
  engine.step();
  engine.abort('x');
  const ends: TokenEvent[] = [];
  for await (const e of a) ends.push(e);
  assert.deepEqual(
    ends.map((e) => e.finishReason),
    ['abort'],
  );
  assert.equal(engine.blocks.numUsed, 0);
  // int8 KV blocks (scales copied with a partial block) through the same search: completes, returns blocks
  const i8 = new Engine(model, { blockSize: 4, kvMemoryBytes: 1 << 18, kvDtype: 'int8' });
  const q = await engineBeams(i8, { prompt: long, maxTokens: 6, beams: 3, n: 3, ignoreEos: true });
  assert.deepEqual(
    q.map((x) => x.tokens.length),
    [6, 6, 6],
  );
  assert.equal(i8.blocks.numUsed, 0);
  assert.throws(() => engine.add({ prompt: long, beams: 2, n: 3 }), /n \(3\) must be at most beams \(2\)/);
  assert.throws(() => engine.add({ prompt: long, beams: 0 }), /beams must be an integer/);
  assert.throws(() => engine.add({ prompt: long, lengthPenalty: 2 }), /lengthPenalty needs beam search/);
  assert.throws(() => engine.add({ prompt: long, beams: 2, earlyStopping: 'yes' as never }), /earlyStopping/);
  assert.throws(
    () => engine.add({ prompt: long, beams: 2, logprobs: 2 }),
    /logprobs is not supported with beam search/,
  );
});

/** greedy continuation by full forward passes */
function referenceGreedy(prompt: number[], maxNew: number): number[] {
  const ids = [...prompt];
  for (let t = 0; t < maxNew; t++) {
    const lp = lastLogprobs(model, ids);
    ids.push(lp.indexOf(Math.max(...lp)));
  }
  return ids.slice(prompt.length);
}

interface Crowd {
  B: number;
  maxNew: number;
  beamPrompts: number[][];
  greedyPrompts: number[][];
  greedyNew: number;
  blockSize: number;
  numBlocks: number;
  maxBatchedTokens: number;
}

/** beam requests and greedy ones at once in a small pool; every result equals its reference */
async function crowded(c: Crowd): Promise<Engine> {
  const perBlock = bytesPerBlock(layerSpecs(model.config as DecoderConfig), c.blockSize);
  const engine = new Engine(model, {
    blockSize: c.blockSize,
    kvMemoryBytes: c.numBlocks * perBlock,
    maxBatchedTokens: c.maxBatchedTokens,
    autoRun: false,
  });
  assert.equal(engine.pool.numBlocks, c.numBlocks);
  const o = { B: c.B, lp: 1, early: false as const, maxNew: c.maxNew, eos: [] };
  const add = (prompt: number[]) => engine.add({ prompt, maxTokens: c.maxNew, beams: c.B, n: c.B, ignoreEos: true });
  const beams = c.beamPrompts.map(add);
  const greedy = c.greedyPrompts.map((p) =>
    engine.add({ prompt: p, maxTokens: c.greedyNew, temperature: 0, ignoreEos: true }),
  );
  engine.runToCompletion();
  assert.ok(
    [...beams, ...greedy].every((h) => h.done),
    'every request finished (no deadlock)',
  );
  for (const [i, h] of beams.entries()) {
    const want = referenceBeams(model, c.beamPrompts[i]!, o);
    const per = new Map<number, number[]>();
    const scores: number[] = [];
    for await (const e of h) {
      per.set(e.index, [...(per.get(e.index) ?? []), e.token]);
      if (e.finishReason) scores[e.index] = e.beamScore!;
    }
    want.forEach((w, j) => {
      assert.deepEqual(per.get(j), w.tokens, `request ${i} hypothesis ${j}`);
      assert.ok(Math.abs(scores[j]! - w.score) < 1e-4);
    });
  }
  for (const [i, h] of greedy.entries()) {
    const got: number[] = [];
    for await (const e of h) got.push(e.token);
    assert.deepEqual(got, referenceGreedy(c.greedyPrompts[i]!, c.greedyNew), `greedy request ${i}`);
  }
  assert.equal(engine.blocks.numUsed, 0, 'every block is back');
  return engine;
}

test('beam search under preemption: beam requests and greedy ones in a pool that fits one beam request', async () => {
  // each beam request needs 3 beams x 3 blocks; the pool holds 9: beams wait for their siblings holding
  // blocks, get preempted and recompute
  const engine = await crowded({
    B: 3,
    maxNew: 6,
    beamPrompts: [PROMPT, [7, 7, 2, 30, 11, 5]],
    greedyPrompts: [[1, 2, 3, 4, 5]],
    greedyNew: 8,
    blockSize: 4,
    numBlocks: 9,
    maxBatchedTokens: 512,
  });
  assert.ok(engine.stats().preemptions > 0, 'the pool was too small for everything at once');
  // three half-resident beam requests whose every running beam waits for a sibling that finds no block:
  // without handing the pool to the oldest request this stalls (runToCompletion returns with work left)
  await crowded({
    B: 2,
    maxNew: 4,
    beamPrompts: [0, 1, 2].map((r) => [(r * 3) % 40, (7 + r * 3) % 40]),
    greedyPrompts: [
      [1, 2, 3, 0],
      [1, 2, 3, 1],
    ],
    greedyNew: 3,
    blockSize: 2,
    numBlocks: 6,
    maxBatchedTokens: 8,
  });
  assert.throws(
    () => engine.add({ prompt: PROMPT, maxTokens: 10, beams: 3 }),
    /3 beams of prompt \+ maxTokens need 12 KV blocks; the pool has 9/,
  );
  assert.throws(
    () => engine.add({ prompt: PROMPT, maxTokens: 4, beams: 2, temperature: 0.7 }),
    /temperature is not supported/,
  );
  assert.throws(
    () => engine.add({ prompt: PROMPT, maxTokens: 4, beams: 2, repetitionPenalty: 1.2 }),
    /repetitionPenalty/,
  );
});
