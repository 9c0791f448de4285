// Model directories for the train / eval / generate / logits commands (Node only). The loading itself is
// models/load.ts (one loader for the library, the CLI and browsers) read through models/load-node.ts;
// these names stay for the commands that import them from here.
import type { Tensor } from '../tensor/tensor.js';
import type { ModelConfig } from '../models/config.js';
import { configToJson, toRaw } from '../models/load.js';
import { writeCheckpoint } from '../io/checkpoint-node.js';
import { saveTokenizer } from '../tokenizers/load-node.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';

export { configFromJson, configToJson, type LoadedModel } from '../models/load.js';
export { loadModelDir, loadModelInfo } from '../models/load-node.js';

/** Writes config.json, model.safetensors (the given weights, e.g. fp32 masters) and the tokenizer. */
export async function saveModelDir(
  dir: string,
  config: ModelConfig,
  weights: readonly [string, Tensor][],
  tokenizer: Tokenizer | null,
): Promise<void> {
  await writeCheckpoint(
    dir,
    configToJson(config),
    weights.map(([n, t]) => toRaw(n, t)),
  );
  if (tokenizer) saveTokenizer(tokenizer, dir);
}
