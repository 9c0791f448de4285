// Completion log-probs batched + padded equal one row at a time (every decoder family); chat rows learn
// from assistant tokens only; data lines are validated with the line and field named.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { noGrad, tidy } from '../../src/tensor/engine.js';
import { logSoftmax } from '../../src/ops/index.js';
import { tensor } from '../../src/ops/index.js';
import { createModel } from '../../src/models/registry.js';
import type { DecoderFamily } from '../../src/models/config.js';
import { charTokenizer } from '../../src/tokenizers/simple.js';
import { packBatch, referenceLogps, type Sequence } from '../../src/align/logprobs.js';
import { Encoder, parseAlignData } from '../../src/align/data.js';
import { tinyConfig } from '../models/decoder-helpers.js';

const ROWS: Sequence[] = [
  { prompt: [1, 2, 3], completion: [4, 5] },
  { prompt: [7], completion: [8, 9, 10, 11, 12] },
  { prompt: [3, 3, 3, 3], completion: [1] },
];

/** Σ log p(completion | prompt) of one unpadded row, straight from the logits */
function rowLogp(model: ReturnType<typeof createModel>, r: Sequence): number {
  return noGrad(() =>
    tidy(() => {
      const ids = [...r.prompt, ...r.completion];
      const lsm = logSoftmax(
        model.forward({ inputIds: tensor(Int32Array.from(ids), { shape: [1, ids.length], dtype: 'int32' }) }).logits,
        -1,
      );
      const V = lsm.shape[2]!;
      const d = lsm.data();
      let s = 0;
      for (let t = r.prompt.length - 1; t < ids.length - 1; t++) s += d[t * V + ids[t + 1]!]!;
      return s;
    }),
  );
}

test('completion log-probs: batched and right-padded equal one row at a time, every decoder family', () => {
  const families: DecoderFamily[] = ['gpt2', 'llama', 'mistral', 'qwen2', 'mixtral', 'deepseek_v2'];
  for (const f of families) {
    const model = createModel(tinyConfig(f), { seed: 2 }).eval();
    const { sum, avg } = referenceLogps(model, ROWS, Infinity, 2);
    ROWS.forEach((r, i) => {
      const want = rowLogp(model, r);
      assert.ok(Math.abs(sum[i]! - want) < 1e-4 * Math.max(1, Math.abs(want)), `${f} row ${i}: ${sum[i]} vs ${want}`);
      assert.ok(
        Math.abs(avg[i]! - want / r.completion.length) < 1e-4 * Math.max(1, Math.abs(want)),
        `${f} row ${i} average`,
      );
    });
    model.dispose();
  }
});

test('packBatch: rows longer than the context keep the prompt end and cut the completion', () => {
  const b = packBatch(
    [
      { prompt: [1, 2, 3, 4, 5], completion: [6, 7, 8] },
      { prompt: [1], completion: [2] },
    ],
    6,
  );
  assert.deepEqual([...b.inputIds.shape], [2, 5]);
  assert.deepEqual([...b.targets.data()].slice(0, 5), [-100, -100, 6, 7, 8]);
  assert.deepEqual([...b.mask.data()].slice(5), [1, 0, 0, 0, 0]);
});

test('chat rows: loss on assistant turns only (plain template for tokenizers without one)', () => {
  const tok = charTokenizer('abcdefghijklmnopqrstuvwxyz :\nAEINORSTU?');
  const enc = new Encoder(tok);
  const [r] = parseAlignData(
    JSON.stringify({
      messages: [
        { role: 'user', content: 'hi' },
        { role: 'assistant', content: 'yo' },
        { role: 'user', content: 'ok' },
        { role: 'assistant', content: 'no' },
      ],
    }),
    'sft',
  );
  const s = enc.sft(r as Extract<typeof r, { kind: 'sft' }>);
  assert.equal(tok.decode(s.prompt), 'USER: hi\nASSISTANT: ');
  const learned = s.completion.filter((_, i) => s.mask![i]);
  assert.equal(tok.decode(learned), 'yo\nno\n');
  assert.equal(tok.decode(s.completion), 'yo\nUSER: ok\nASSISTANT: no\n');
});

test('data validation names the line and the field', () => {
  assert.throws(
    () => parseAlignData('{"prompt": "a", "chosen": "b"}', 'preference', 'p.jsonl'),
    /p\.jsonl:1: missing field 'rejected'/,
  );
  assert.throws(
    () => parseAlignData('\n{"prompt": "a", "chosen": "", "rejected": "c"}', 'preference', 'p.jsonl'),
    /p\.jsonl:2: field 'chosen' is empty/,
  );
  assert.throws(
    () => parseAlignData('{"prompt": "a", "completion": "b", "label": "yes"}', 'unpaired', 'k.jsonl'),
    /k\.jsonl:1: field 'label' must be true or false/,
  );
  assert.throws(() => parseAlignData('[1]', 'prompt', 'g.jsonl'), /g\.jsonl:1: expected a JSON object/);
  assert.throws(
    () => parseAlignData('{"messages": [{"role": "user", "content": "x"}]}', 'sft', 's.jsonl'),
    /s\.jsonl:1: field 'messages' has no assistant turn/,
  );
  assert.throws(() => parseAlignData('', 'sft', 's.jsonl'), /s\.jsonl: no examples/);
  const [pm] = parseAlignData(
    '{"prompt": [{"role": "user", "content": "hi"}], "chosen": [{"role": "assistant", "content": "yo"}], "rejected": "no"}',
    'preference',
  );
  const enc = new Encoder(charTokenizer('abcdefghijklmnopqrstuvwxyz :\nAEINORSTU?'));
  const p = pm as Extract<typeof pm, { kind: 'preference' }>;
  assert.equal(enc.tok.decode(enc.pair(p.prompt, p.chosen).completion), 'yo\n');
});

test('rollout sampling draws exactly as infer.sampleToken (temperature only), and stays in range', async () => {
  const { sampleTemperature } = await import('../../src/align/rollout.js');
  const { sampleToken } = await import('../../src/infer/sampling.js');
  const { Rng } = await import('../../src/tensor/random.js');
  const logits = Float32Array.from({ length: 11 }, (_, i) => Math.sin(i * 1.7) * 3);
  for (const t of [0, 0.5, 1, 2]) {
    const [a, b] = [new Rng(5), new Rng(5)];
    for (let k = 0; k < 50; k++)
      assert.equal(sampleTemperature(logits, t, a), sampleToken(logits, { temperature: t }, b), `T=${t} draw ${k}`);
  }
});
