// The family table: config.family -> model builder. Typed as a mapped type over `Family`, so adding a
// family to ModelConfig without a builder here is a compile error. Keep this file a table and nothing more.
import type { Family, FamilyConfig, ModelConfig } from './config.js';
import { validateConfig } from './config.js';
import type { CreateOptions, LanguageModel } from './model.js';
import { buildDecoder } from './decoder.js';
import { buildBert } from './bert.js';
import { buildRoberta } from './roberta.js';
import { buildT5 } from './t5.js';
import { buildBart } from './bart.js';
import { buildRnnLM } from './rnn.js';
import { buildMamba } from './mamba.js';
import { initModel } from './init.js';
import { checkModelSize } from './size.js';
import { withoutInit } from '../nn/module.js';

export type ModelBuilder<F extends Family> = (config: FamilyConfig<F>, opts: CreateOptions) => LanguageModel;

const BUILDERS: { [F in Family]: ModelBuilder<F> } = {
  gpt2: buildDecoder,
  gpt3: buildDecoder,
  'openai-gpt': buildDecoder,
  llama: buildDecoder,
  mistral: buildDecoder,
  qwen2: buildDecoder,
  qwen3: buildDecoder,
  qwen3_moe: buildDecoder,
  gemma: buildDecoder,
  gemma2: buildDecoder,
  phi3: buildDecoder,
  minicpm: buildDecoder,
  mixtral: buildDecoder,
  deepseek_v2: buildDecoder,
  deepseek_v3: buildDecoder,
  bert: buildBert,
  roberta: buildRoberta,
  longformer: buildRoberta,
  big_bird: buildBert,
  t5: buildT5,
  bart: buildBart,
  marian: buildBart,
  'lineage-rnn': buildRnnLM,
  mamba: buildMamba,
};

/**
 * Builds a model for any config: sizes checked before anything is allocated (checkModelSize), the module
 * tree built with random initialisation off, then every parameter initialised once by its family's plan
 * (init.ts, seeded). `init: 'none'` skips that last step: zero-filled parameters and no random numbers
 * drawn, for weights about to be overwritten by a checkpoint.
 */
export function createModel(config: ModelConfig, opts: CreateOptions = {}): LanguageModel {
  validateConfig(config);
  const build = BUILDERS[config.family] as ModelBuilder<Family> | undefined;
  if (!build) throw new Error(`createModel: unknown family ${JSON.stringify(config.family)} (known: ${Object.keys(BUILDERS).join(', ')})`);
  const init = opts.init ?? 'random';
  if (init !== 'random' && init !== 'none') throw new Error(`createModel: option init must be 'random' or 'none', got ${JSON.stringify(init)}`);
  checkModelSize(config, { maxBytes: opts.maxBytes });
  const model = withoutInit(() => build(config as FamilyConfig<Family>, opts));
  if (init === 'random') initModel(model as LanguageModel & { config: FamilyConfig<Family> }, opts.seed ?? 0);
  return model;
}

/** Families with a registered (non-placeholder) builder can be probed by calling createModel. */
export const MODEL_FAMILIES = Object.keys(BUILDERS) as Family[];
