// Hugging Face model directories <-> models (Node only). `loadModel(dir)`: config.json through
// fromHFConfig, a freshly built model of that family, then the safetensors weights (single file or
// shards) through the family's `sanitize` name mapping into `loadStateDict` (strict: a missing or
// unexpected tensor is an error naming it). `saveModel(model, dir)`: config.json via toHFConfig plus
// model.safetensors with the model's own (HF) parameter names, each file written atomically.
import type { Tensor } from '../tensor/tensor.js';
import { noGrad } from '../tensor/engine.js';
import { readAs } from '../backend/dtype.js';
import { tensor } from '../ops/index.js';
import type { RawTensor } from '../io/safetensors.js';
import { readCheckpoint, writeCheckpoint } from '../io/checkpoint-node.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { saveTokenizer } from '../tokenizers/load-node.js';
import { fromHFConfig, type HfJson } from './hf-config.js';
import type { ModelConfig } from './config.js';
import type { LanguageModel } from './model.js';
import { createModel } from './registry.js';

/** a RawTensor from a file as a Tensor of the same dtype */
export function fromRaw(r: RawTensor): Tensor {
  if (r.dtype !== 'float16' && r.dtype !== 'bfloat16') return tensor(r.data as Float32Array | Int32Array | Uint8Array, { shape: r.shape, dtype: r.dtype });
  const f = new Float32Array(r.data.length);
  for (let i = 0; i < f.length; i++) f[i] = readAs(r.dtype, r.data, i); // exact: decoded halves re-encode to the same bits
  return tensor(f, { shape: r.shape, dtype: r.dtype });
}

/** a Tensor as a RawTensor for safetensors (float16/bfloat16 as raw 16-bit patterns) */
export function toRaw(name: string, t: Tensor): RawTensor {
  const data = t.data();
  if (t.dtype !== 'float16' && t.dtype !== 'bfloat16') return { name, dtype: t.dtype, shape: [...t.shape], data };
  const raw = t.isContiguous ? t.backend.read(t.storage.buf, t.offset, t.size) : null;
  if (!raw) throw new Error(`saveModel: ${name} is a non-contiguous ${t.dtype} tensor`);
  return { name, dtype: t.dtype, shape: [...t.shape], data: raw as Uint16Array };
}

export interface LoadOptions {
  /** allow missing / unexpected tensors (they are reported, not thrown) */
  strict?: boolean;
  /** config.json -> ModelConfig (default fromHFConfig; a caller with config extensions passes its own) */
  readConfig?: (json: HfJson) => ModelConfig;
  /** seed of the initializer for tensors a non-strict load leaves untouched */
  seed?: number;
}

/**
 * Copies checkpoint tensors into `model` through its family's `sanitize` name mapping. Strict by
 * default: a missing or unexpected tensor is an error naming it. Returns what was missing / unexpected.
 */
export function loadWeights(model: LanguageModel, tensors: readonly RawTensor[], opts: { strict?: boolean } = {}): { missing: string[]; unexpected: string[] } {
  const state = new Map(tensors.map((r) => [r.name, fromRaw(r)] as const));
  try {
    const mapped = model.sanitize ? model.sanitize(state) : state;
    return noGrad(() => model.loadStateDict(mapped, { strict: opts.strict ?? true }));
  } finally {
    for (const t of state.values()) t.dispose();
  }
}

/** Loads a transformers-layout directory (config.json + model.safetensors or shards). */
export async function loadModel(dir: string, opts: LoadOptions = {}): Promise<LanguageModel> {
  const ckpt = await readCheckpoint(dir);
  const model = createModel((opts.readConfig ?? fromHFConfig)(ckpt.config), { seed: opts.seed ?? 0 });
  try {
    loadWeights(model, ckpt.tensors, opts);
  } catch (e) {
    throw new Error(`loadModel ${dir}: ${(e as Error).message}`);
  }
  return model;
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
  await writeCheckpoint(dir, opts.config ?? model.config, tensors, { tokenizerPath, maxShardBytes: opts.maxShardBytes });
  if (opts.tokenizer && typeof opts.tokenizer !== 'string') saveTokenizer(opts.tokenizer, dir);
}
