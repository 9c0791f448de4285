// Model directories for the train / eval / generate / logits commands (Node only). Wraps the models
// package's loadModel/saveModel with one Lineage extension of config.json:
//
//   "bias": false   every linear layer and LayerNorm of the transformer stacks has no bias (nanoGPT's
//                   GPTConfig.bias). transformers' GPT2Config cannot express it, so the field is written
//                   only when the model_type's own fields cannot, and read back here.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { noGrad } from '../tensor/engine.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ModelConfig } from '../models/config.js';
import { fromHFConfig, toHFConfig, type HfJson } from '../models/hf-config.js';
import type { LanguageModel } from '../models/model.js';
import { createModel } from '../models/registry.js';
import { fromRaw, toRaw } from '../models/load-node.js';
import { readCheckpoint, writeCheckpoint } from '../io/checkpoint-node.js';
import { loadTokenizer, saveTokenizer } from '../tokenizers/load-node.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { applyTweaks } from '../train/recipes.js';
import { takeQuantizedWeights } from './quant-node.js';

/** config.json (+ the `bias` extension) → ModelConfig */
export function configFromJson(json: HfJson): ModelConfig {
  const { bias, ...rest } = json;
  const cfg = fromHFConfig(rest);
  if (bias === undefined) return cfg;
  if (typeof bias !== 'boolean') throw new Error(`config.json: field "bias" must be true or false, got ${JSON.stringify(bias)}`);
  return applyTweaks(cfg, { bias });
}

/** ModelConfig → config.json, adding `"bias": false` when only that makes the config expressible */
export function configToJson(cfg: ModelConfig): HfJson {
  try {
    return toHFConfig(cfg);
  } catch (e) {
    const withBias = applyTweaks(cfg, { bias: true });
    let json: HfJson;
    try {
      json = toHFConfig(withBias);
    } catch {
      throw e;
    }
    if (JSON.stringify(applyTweaks(fromHFConfig(json), { bias: false })) !== JSON.stringify(cfg)) throw e;
    return { ...json, bias: false };
  }
}

export interface LoadedModel {
  model: LanguageModel;
  config: ModelConfig;
  /** the directory's tokenizer.json, when present */
  tokenizer: Tokenizer | null;
}

/** Loads config.json + weights (+ tokenizer.json) of a model directory. */
export async function loadModelDir(dir: string, opts: { seed?: number } = {}): Promise<LoadedModel> {
  if (!existsSync(join(dir, 'config.json'))) throw new Error(`${dir}: not a model directory (no config.json)`);
  const ckpt = await readCheckpoint(dir);
  const config = configFromJson(ckpt.config);
  const model = createModel(config, { seed: opts.seed ?? 0 });
  const state = new Map(takeQuantizedWeights(model, ckpt.config, ckpt.tensors, dir).map((r) => [r.name, fromRaw(r)] as const));
  try {
    const mapped = model.sanitize ? model.sanitize(state) : state;
    noGrad(() => model.loadStateDict(mapped));
  } catch (e) {
    throw new Error(`${dir}: ${(e as Error).message}`);
  } finally {
    for (const t of state.values()) t.dispose();
  }
  const tokenizer = existsSync(join(dir, 'tokenizer.json')) ? loadTokenizer(dir) : null;
  return { model, config, tokenizer };
}

/** Writes config.json, model.safetensors (the given weights, e.g. fp32 masters) and the tokenizer. */
export async function saveModelDir(dir: string, config: ModelConfig, weights: readonly [string, Tensor][], tokenizer: Tokenizer | null): Promise<void> {
  await writeCheckpoint(dir, configToJson(config), weights.map(([n, t]) => toRaw(n, t)));
  if (tokenizer) saveTokenizer(tokenizer, dir);
}
