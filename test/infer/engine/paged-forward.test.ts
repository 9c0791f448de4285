// The ragged paged forward against the single-sequence path: several sequences of different lengths,
// starting and finishing at different steps, in chunks and single tokens, on shuffled block layouts,
// give the logits of a plain full forward of each sequence (every decoder family the engine runs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tensor } from '../../../src/ops/index.js';
import { noGrad } from '../../../src/tensor/engine.js';
import { Rng } from '../../../src/tensor/random.js';
import { createModel } from '../../../src/models/registry.js';
import type { DecoderConfig, DecoderFamily } from '../../../src/models/config.js';
import type { LanguageModel } from '../../../src/models/model.js';
import { KvPool, layerSpecs } from '../../../src/infer/engine/kv-pool.js';
import { ModelRunner, type RunItem } from '../../../src/infer/engine/runner.js';
import { tinyConfig } from '../../models/decoder-helpers.js';

/** logits [T, V] of a plain forward of one sequence */
function fullLogits(model: LanguageModel, ids: number[]): Float32Array {
  return noGrad(() =>
    model.forward({ inputIds: tensor(Int32Array.from(ids), { shape: [1, ids.length], dtype: 'int32' }) }).logits.data(),
  ) as Float32Array;
}

/** per sequence: its tokens and the step it joins; per step, how many tokens each running sequence feeds */
interface Plan {
  seqs: { ids: number[]; join: number }[];
  chunks: (step: number, seq: number) => number;
}

function runPlan(model: LanguageModel, plan: Plan, seed: number): Map<string, Float32Array> {
  const cfg = model.config as DecoderConfig;
  const pool = new KvPool(layerSpecs(cfg), 4, 64 * 1024 * 1024);
  const runner = new ModelRunner(model, pool);
  const order = new Rng(seed).shuffle(Array.from({ length: pool.numBlocks }, (_, i) => i));
  const tables = plan.seqs.map(() => [] as number[]);
  const done = plan.seqs.map(() => 0);
  const got = new Map<string, Float32Array>();
  const V = cfg.vocabSize;
  for (let step = 0; done.some((d, i) => d < plan.seqs[i]!.ids.length); step++) {
    const items: RunItem[] = [];
    const who: number[] = [];
    plan.seqs.forEach((s, i) => {
      if (step < s.join || done[i] === s.ids.length) return;
      const n = Math.min(plan.chunks(step, i), s.ids.length - done[i]!);
      if (n === 0) return;
      while (tables[i]!.length * 4 < done[i]! + n) tables[i]!.push(order.pop()!);
      items.push({ ids: s.ids.slice(done[i], done[i]! + n), start: done[i]!, blocks: tables[i]!, logits: n });
      who.push(i);
    });
    const out = runner.run(items);
    let r = 0;
    items.forEach((it, j) => {
      for (let p = 0; p < it.ids.length; p++, r++) got.set(`${who[j]}:${it.start + p}`, out.slice(r * V, (r + 1) * V));
      done[who[j]!]! += it.ids.length;
    });
  }
  return got;
}

function assertMatches(model: LanguageModel, plan: Plan, seed: number, tol = 2e-4): void {
  const got = runPlan(model, plan, seed);
  const V = (model.config as DecoderConfig).vocabSize;
  plan.seqs.forEach((s, i) => {
    const ref = fullLogits(model, s.ids);
    for (let p = 0; p < s.ids.length; p++) {
      const row = got.get(`${i}:${p}`)!;
      for (let v = 0; v < V; v++) {
        assert.ok(
          Math.abs(row[v]! - ref[p * V + v]!) <= tol * (1 + Math.abs(ref[p * V + v]!)),
          `seq ${i} pos ${p} vocab ${v}: ${row[v]} vs ${ref[p * V + v]}`,
        );
      }
    }
  });
}

const ids = (n: number, seed: number, V = 48) => {
  const r = new Rng(seed);
  return Array.from({ length: n }, () => r.int(V));
};

const PLAN: Plan = {
  seqs: [
    { ids: ids(13, 1), join: 0 },
    { ids: ids(5, 2), join: 0 },
    { ids: ids(9, 3), join: 2 },
    { ids: ids(11, 4), join: 4 },
  ],
  // a chunked prefill first (3, then 2 tokens), then one token per step
  chunks: (step, seq) => (seq % 2 === 0 && step < 3 ? 3 : seq === 3 && step === 4 ? 6 : 1),
};

const FAMILIES: DecoderFamily[] = [
  'gpt2',
  'openai-gpt',
  'llama',
  'mistral',
  'qwen2',
  'gemma2',
  'phi3',
  'minicpm',
  'mixtral',
  'deepseek_v2',
];
for (const family of FAMILIES) {
  test(`paged ragged forward ${family}: every sequence's logits equal its single-sequence forward`, () => {
    const model = createModel(tinyConfig(family), { seed: 5 }).eval();
    assertMatches(model, PLAN, 7);
    model.dispose();
  });
}
