#!/usr/bin/env node
// Stores a model directory's weights in another dtype (e.g. the bundled shakespeare-llama as bfloat16):
//   node scripts/cast-model.mjs SRC_DIR OUT_DIR [bfloat16|float16|float32] [--vocab N]
// Loading casts them back to the parameters' float32, so only the stored values are rounded.
// --vocab N keeps the first N rows of the token embedding and of lm_head (vocab_size N): for a model
// trained with a larger vocab_size than its tokenizer has ids, whose extra rows are never used.
// Copies config.json (via the model's config), tokenizer.json and the training records beside the weights.
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { noGrad } from '../dist/src/tensor/engine.js';
import { loadModelDir, saveModelDir } from '../dist/src/infer/model-dir-node.js';

const argv = process.argv.slice(2);
const vi = argv.indexOf('--vocab');
const vocab = vi >= 0 ? Number(argv.splice(vi, 2)[1]) : null;
const [src, out, dtype = 'bfloat16'] = argv;
if (vocab !== null && !(Number.isInteger(vocab) && vocab > 0)) {
  console.error('cast-model: --vocab must be a positive integer');
  process.exit(2);
}
if (!src || !out) {
  console.error('usage: node scripts/cast-model.mjs SRC_DIR OUT_DIR [bfloat16|float16|float32]');
  process.exit(2);
}
if (!['bfloat16', 'float16', 'float32'].includes(dtype)) {
  console.error(`cast-model: dtype must be bfloat16, float16 or float32, got ${JSON.stringify(dtype)}`);
  process.exit(2);
}
const { model, config, tokenizer } = await loadModelDir(src);
const rows = (n, t) => {
  if (vocab === null || !/(embed_tokens|lm_head)\.weight$/.test(n)) return t;
  if (vocab > t.shape[0]) throw new Error(`cast-model: --vocab ${vocab} exceeds ${n}'s ${t.shape[0]} rows`);
  return t.slice(0, 0, vocab); // (vocab, D)
};
const weights = noGrad(() => model.namedParameters().map(([n, t]) => [n, rows(n, t).to(dtype)]));
if (vocab !== null) config.vocabSize = vocab;
mkdirSync(out, { recursive: true });
await saveModelDir(out, config, weights, tokenizer);
for (const f of ['tokenizer.json', 'metrics.jsonl', 'loss-curve.svg', 'train_config.json', 'train_summary.json']) {
  if (existsSync(join(src, f))) copyFileSync(join(src, f), join(out, f));
}
console.log(`${src} -> ${out} (${dtype})`);
