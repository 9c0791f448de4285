// What loading a model costs: the bundled models/shakespeare-char directory through the one loader, next
// to building the same model with and without random initialisation (the cost the loader no longer pays).
//   node --experimental-wasm-relaxed-simd dist/bench/load-model.js [MODEL_DIR]
// Prints JSON: median seconds of each, and the ratios.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { timeIt } from './harness.js';
import { createModel } from '../src/models/registry.js';
import { configFromJson, loadModelFromFiles } from '../src/models/load.js';

const root = fileURLToPath(new URL('../../', import.meta.url)); // dist/bench/ -> package root
const dir = process.argv[2] ?? join(root, 'models', 'shakespeare-char');
const files = {
  config: readFileSync(join(dir, 'config.json'), 'utf8'),
  weights: readFileSync(join(dir, 'model.safetensors')),
  tokenizer: existsSync(join(dir, 'tokenizer.json')) ? readFileSync(join(dir, 'tokenizer.json'), 'utf8') : null,
};
const cfg = configFromJson(JSON.parse(files.config));

const load = timeIt(() => loadModelFromFiles(files).model.dispose(), { reps: 9 });
const random = timeIt(() => createModel(cfg).dispose(), { reps: 9 });
const none = timeIt(() => createModel(cfg, { init: 'none' }).dispose(), { reps: 9 });
console.log(
  JSON.stringify(
    {
      model: dir,
      params: createModel(cfg, { init: 'none' }).numParameters(),
      loadSeconds: load.seconds,
      createRandomSeconds: random.seconds,
      createNoInitSeconds: none.seconds,
      // what a load cost before init 'none': a random init plus this load
      loadVsRandomInitPlusLoad: load.seconds / (random.seconds + load.seconds - none.seconds),
    },
    null,
    2,
  ),
);
