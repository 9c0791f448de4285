// Hugging Face model directories <-> models (Node only): the file reading around load.ts, the one loader.
// `loadModelDir(dir)`: config.json + the safetensors weights (single file or shards) + tokenizer.json when
// present, through load.ts (model allocated without random init, every tensor and the tokenizer checked).
// `loadModel(dir)` is the same returning the model alone. `saveModel(model, dir)`: config.json plus
// model.safetensors with the model's own (HF) parameter names, each file written atomically.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readCheckpoint, writeCheckpoint } from '../io/checkpoint-node.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { loadTokenizer, saveTokenizer } from '../tokenizers/load-node.js';
import { type HfJson, toHFConfig } from './hf-config.js';
import type { LanguageModel } from './model.js';
import { type LoadModelOptions, type LoadedModel, checkTokenizer, configFromJson, modelFromCheckpoint, toRaw } from './load.js';
import type { ModelConfig } from './config.js';

export { fromRaw, toRaw, loadWeights, configFromJson, configToJson, type LoadedModel } from './load.js';

export type LoadOptions = LoadModelOptions;

/** `dir` must be a directory holding config.json: a clear message otherwise (not EISDIR / ENOENT). */
function checkModelDir(dir: string): void {
  if (!existsSync(dir)) throw new Error(`${dir}: not a model directory (it does not exist)`);
  if (!statSync(dir).isDirectory()) {
    throw new Error(`${dir}: not a model directory (a file; expected a directory with config.json)`);
  }
  if (!existsSync(join(dir, 'config.json'))) throw new Error(`${dir}: not a model directory (no config.json)`);
  const weights = join(dir, 'model.safetensors');
  if (existsSync(weights) && statSync(weights).isDirectory()) {
    throw new Error(`${weights}: is a directory, expected a safetensors file`);
  }
}

/** Loads config.json + weights (+ tokenizer.json when present) of a transformers-layout directory. */
export async function loadModelDir(dir: string, opts: LoadModelOptions = {}): Promise<LoadedModel> {
  checkModelDir(dir);
  const ckpt = await readCheckpoint(dir);
  const tokenizerFile = join(dir, 'tokenizer.json');
  const tokenizer = existsSync(tokenizerFile) ? loadTokenizer(dir) : null;
  try {
    return modelFromCheckpoint({ ...ckpt, tokenizer, tokenizerFile }, opts);
  } catch (e) {
    const msg = (e as Error).message;
    throw new Error(msg.includes(dir) ? msg : `${dir}: ${msg}`);
  }
}

/** A directory's config.json and tokenizer.json without its weights (a server's main thread: the
 * weights live in the worker that runs the model). */
export function loadModelInfo(dir: string): { config: ModelConfig; tokenizer: Tokenizer | null } {
  checkModelDir(dir);
  const file = join(dir, 'config.json');
  let json: HfJson;
  try {
    json = JSON.parse(readFileSync(file, 'utf8')) as HfJson;
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
  const config = configFromJson(json);
  const tokenizerFile = join(dir, 'tokenizer.json');
  const tokenizer = existsSync(tokenizerFile) ? loadTokenizer(dir) : null;
  if (tokenizer) checkTokenizer(tokenizer, config, tokenizerFile);
  return { config, tokenizer };
}

/** Loads a transformers-layout directory's model (config.json + model.safetensors or shards). */
export async function loadModel(dir: string, opts: LoadModelOptions = {}): Promise<LanguageModel> {
  checkModelDir(dir);
  const ckpt = await readCheckpoint(dir);
  try {
    return modelFromCheckpoint(ckpt, opts).model;
  } catch (e) {
    throw new Error(`loadModel ${dir}: ${(e as Error).message}`);
  }
}

export interface SaveOptions {
  /** a Tokenizer, or the path of a tokenizer.json to copy */
  tokenizer?: Tokenizer | string;
  /** shard the weights into files of at most this many bytes */
  maxShardBytes?: number;
  /** config.json to write instead of toHFConfig(model.config) (e.g. with Lineage extensions) */
  config?: HfJson;
}

/** Writes `model` as a transformers-layout directory (every file atomically replaced); a Tokenizer object
 * adds tokenizer.json + tokenizer_config.json, a path is copied as tokenizer.json. */
export async function saveModel(model: LanguageModel, dir: string, opts: SaveOptions = {}): Promise<void> {
  const tensors = model.namedParameters().map(([name, t]) => toRaw(name, t));
  const tokenizerPath = typeof opts.tokenizer === 'string' ? opts.tokenizer : undefined;
  const write = { tokenizerPath, maxShardBytes: opts.maxShardBytes };
  await writeCheckpoint(dir, opts.config ?? toHFConfig(model.config), tensors, write);
  if (opts.tokenizer && typeof opts.tokenizer !== 'string') saveTokenizer(opts.tokenizer, dir);
}
