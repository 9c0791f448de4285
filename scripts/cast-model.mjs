#!/usr/bin/env node
// Stores a model directory's weights in another dtype (e.g. the bundled shakespeare-llama as bfloat16):
//   node scripts/cast-model.mjs SRC_DIR OUT_DIR [bfloat16|float16|float32]
// Loading casts them back to the parameters' float32, so only the stored values are rounded.
// Copies config.json (via the model's config), tokenizer.json and the training records beside the weights.
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { noGrad } from '../dist/src/tensor/engine.js';
import { loadModelDir, saveModelDir } from '../dist/src/infer/model-dir-node.js';

const [src, out, dtype = 'bfloat16'] = process.argv.slice(2);
if (!src || !out) {
  console.error('usage: node scripts/cast-model.mjs SRC_DIR OUT_DIR [bfloat16|float16|float32]');
  process.exit(2);
}
if (!['bfloat16', 'float16', 'float32'].includes(dtype)) {
  console.error(`cast-model: dtype must be bfloat16, float16 or float32, got ${JSON.stringify(dtype)}`);
  process.exit(2);
}
const { model, config, tokenizer } = await loadModelDir(src);
const weights = noGrad(() => model.namedParameters().map(([n, t]) => [n, t.to(dtype)]));
mkdirSync(out, { recursive: true });
await saveModelDir(out, config, weights, tokenizer);
for (const f of ['tokenizer.json', 'metrics.jsonl', 'loss-curve.svg', 'train_config.json', 'train_summary.json']) {
  if (existsSync(join(src, f))) copyFileSync(join(src, f), join(out, f));
}
console.log(`${src} -> ${out} (${dtype})`);
